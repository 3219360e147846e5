# Time lme4's predict.merMod (with the BLUPs) on new rows; the lmer fit is not timed.
#
# Usage: Rscript lme4_predict.R TRAIN.csv NEW.csv FORMULA WARMUP REPEATS
#   The grouping column is g; both files are read with g as a factor.
# Prints "times_s <t1> <t2> ..." and "check <sum of the predictions>".

args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages(library(lme4))

train <- read.csv(args[[1]])
new <- read.csv(args[[2]])
train$g <- factor(train$g)
new$g <- factor(new$g, levels = levels(train$g))
model <- lmer(as.formula(args[[3]]), data = train, REML = TRUE)
warmup <- as.integer(args[[4]])
repeats <- as.integer(args[[5]])

for (i in seq_len(warmup)) predict(model, newdata = new)
times <- numeric(repeats)
for (i in seq_len(repeats)) {
  start <- proc.time()[["elapsed"]]
  p <- predict(model, newdata = new)
  times[i] <- proc.time()[["elapsed"]] - start
}
cat("times_s", sprintf("%.6f", times), "\n")
cat("check", sprintf("%.10f", sum(p)), "\n")
