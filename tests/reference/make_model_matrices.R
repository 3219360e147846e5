# R's reference for formula terms and model-matrix coding: for each formula,
# the term labels and intercept of terms(), and the column names and values
# of model.matrix() on a small data set with a 3-level factor f, a
# character column h, an ordered factor o, a logical b, numerics x and z
# and an integer k.  mixedfx expands terms and codes factors itself (R's
# rules: contrasts for a factor when the term without it is in the model,
# indicators otherwise; no intercept: the first factor gets indicators);
# tests/frame/test_modelmatrix.py compares with this file.
#
# Usage, from the repository root:
#
#     Rscript tests/reference/make_model_matrices.R
#
# Writes tests/reference/model_matrices.json:
#   data     the rows, one record per row (f, h, o as strings)
#   levels   {f: [...], o: [...]}: the factor levels in R's order
#   cases    {formula: {labels, intercept, columns, matrix (rows)}}

common_R <- file.path("tests", "reference", "common.R")
if (!file.exists(common_R)) stop("run from the repository root: ", common_R, " not found")
source(common_R)  # to_json, matrix_rows, records

set.seed(7)
n <- 12
d <- data.frame(
  f = factor(rep(c("a", "b", "c"), 4), levels = c("a", "b", "c")),
  h = rep(c("u", "v"), each = 6),
  o = factor(rep(c("lo", "mid", "hi"), times = 4)[c(2:12, 1)], levels = c("lo", "mid", "hi"),
             ordered = TRUE),
  b = rep(c(TRUE, FALSE, FALSE), 4),
  x = round(runif(n, 0, 10), 2),
  z = round(rnorm(n), 3),
  k = rep(c(2L, 5L, 9L, 5L), 3),
  stringsAsFactors = FALSE)

formulas <- c(
  "~ x", "~ 0 + x", "~ x - 1", "~ -1 + x", "~ x + z", "~ x * z", "~ x:z",
  "~ f", "~ 0 + f", "~ f - 1", "~ f + h", "~ 0 + f + h", "~ f * h", "~ f:h", "~ 0 + f:h",
  "~ x:f", "~ x + x:f", "~ f:x", "~ x * f", "~ f * x", "~ 0 + x:f", "~ f + x:f",
  "~ f/x", "~ f/x - 1", "~ x %in% f", "~ (f + h + x)^2", "~ (f + h + x)^3 - f:h:x",
  "~ f*h*x", "~ b", "~ x + b", "~ o", "~ 0 + o", "~ o + x", "~ o:h",
  "~ factor(k)", "~ as.factor(k)", "~ x + factor(k)", "~ factor(k):x", "~ 0 + factor(k)",
  "~ I(x^2)", "~ x + I(x^2)", "~ (x + I(x^2))^2", "~ poly(x, 2)", "~ poly(x, 3)",
  "~ poly(x, 2, raw = TRUE)", "~ poly(x, 2):f", "~ f + poly(x, 2):f", "~ scale(x)",
  "~ scale(x) * h", "~ scale(x, scale = FALSE)", "~ scale(x, center = FALSE)",
  "~ log(x + 1) + exp(z/10) + sqrt(x) + abs(z - 0.5)", "~ log2(x) + log10(x) + log1p(x)",
  "~ log(x, 2)", "~ I(x > 5)", "~ I(x > 5) + f", "~ x > 5", "~ I(-x)", "~ I(x %% 3)",
  "~ I(x %/% 3)", "~ I(x * 1e6)", "~ I(x / 1e5)", "~ I(1e-4 * x)", "~ I(x**2)",
  "~ h:f", "~ z + h:f + f", "~ c(1)[1] + x"
)

results <- list()
for (fs in formulas) {
  f <- as.formula(fs)
  res <- tryCatch({
    tt <- terms(f)
    mm <- model.matrix(f, d)
    list(labels = I(attr(tt, "term.labels")), intercept = attr(tt, "intercept"),
         columns = I(colnames(mm)), matrix = matrix_rows(unname(mm)))
  }, error = function(e) list(error = conditionMessage(e)))
  results[[fs]] <- res
}

out <- list(
  data = records(transform(d, f = as.character(f), o = as.character(o))),
  levels = list(f = I(levels(d$f)), o = I(levels(d$o))),
  cases = results,
  r_version = R.version.string)
path <- file.path("tests", "reference", "model_matrices.json")
writeLines(to_json(out), path, useBytes = TRUE)
cat(sprintf("wrote %s (%d formulas)\n", path, length(formulas)))
