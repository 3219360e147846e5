# Time lme4::glmer on a CSV written by bench/peers.py; only the glmer calls are timed.
#
# Usage: Rscript lme4_glmer.R DATA.csv FORMULA FAMILY WEIGHTS FACTOR_COLUMNS WARMUP REPEATS
#   FAMILY is binomial or poisson; WEIGHTS a column name or "" (none);
#   FACTOR_COLUMNS is comma-separated (may be empty).
# Prints "times_s <t1> <t2> ..." (elapsed seconds) and "objective <-2 logLik>".

args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages(library(lme4))

data <- read.csv(args[[1]], stringsAsFactors = FALSE)
form <- as.formula(args[[2]])
family <- get(args[[3]], mode = "function")()
weights <- if (nzchar(args[[4]])) data[[args[[4]]]] else NULL
factors <- if (nzchar(args[[5]])) strsplit(args[[5]], ",", fixed = TRUE)[[1]] else character(0)
warmup <- as.integer(args[[6]])
repeats <- as.integer(args[[7]])

for (col in factors) data[[col]] <- factor(data[[col]])
data$.w <- if (is.null(weights)) rep(1, nrow(data)) else weights

fit <- function() glmer(form, data = data, family = family, weights = .w)

for (i in seq_len(warmup)) fit()
times <- numeric(repeats)
for (i in seq_len(repeats)) {
  start <- proc.time()[["elapsed"]]
  model <- fit()
  times[i] <- proc.time()[["elapsed"]] - start
}

cat("times_s", sprintf("%.6f", times), "\n")
cat("objective", sprintf("%.10f", -2 * as.numeric(logLik(model))), "\n")
