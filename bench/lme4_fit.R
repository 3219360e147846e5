# Time lme4::lmer on a CSV written by bench/peers.py; only the lmer calls are timed.
#
# Usage: Rscript lme4_fit.R DATA.csv FORMULA REML FACTOR_COLUMNS WARMUP REPEATS
#   REML is TRUE or FALSE; FACTOR_COLUMNS is comma-separated (may be empty).
# Prints, one per line: "times_s <t1> <t2> ..." (elapsed seconds, proc.time's
# resolution of 1 ms) and "objective <value>" (REML criterion or ML deviance).

args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages(library(lme4))

data <- read.csv(args[[1]], stringsAsFactors = FALSE)
form <- as.formula(args[[2]])
reml <- as.logical(args[[3]])
factors <- if (nzchar(args[[4]])) strsplit(args[[4]], ",", fixed = TRUE)[[1]] else character(0)
warmup <- as.integer(args[[5]])
repeats <- as.integer(args[[6]])

for (col in factors) data[[col]] <- factor(data[[col]])

fit <- function() lmer(form, data = data, REML = reml)

for (i in seq_len(warmup)) fit()
times <- numeric(repeats)
for (i in seq_len(repeats)) {
  start <- proc.time()[["elapsed"]]
  model <- fit()
  times[i] <- proc.time()[["elapsed"]] - start
}

objective <- if (reml) REMLcrit(model) else deviance(model)
cat("times_s", sprintf("%.6f", times), "\n")
cat("objective", sprintf("%.10f", objective), "\n")
