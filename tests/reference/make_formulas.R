# lme4 reference fits for formula spellings R users write: transforms of the
# response and of predictors (I(), log, sqrt, exp, abs, log1p), stateful
# transforms (scale(), poly()) in the fixed and random parts, factor() /
# as.factor() of a numeric column, offsets, ^2 interaction expansion, (f || g)
# with a factor f, a transform in the random part, and shifted / rescaled
# responses and predictors.
#
# Usage, from the repository root:
#
#     Rscript tests/reference/make_formulas.R
#
# (or `make reference`).  Needs R with lme4 and jsonlite.  Takes ~10 seconds.
#
# Writes tests/reference/lme4_formulas.json: one object per case, keyed by
# case name.  Numbers are full double precision (tests/reference/common.R's
# writer).  Every case has
#   dataset        the bundled data set the rows come from (mixedfx.datasets
#                  .load(dataset)), or null for simulated data
#   derived        {column: R expression}: columns added to the bundled data
#                  (and to newdata where the expression's inputs are there),
#                  evaluated in this order, in double precision, e.g.
#                  "k": "Days %/% 3" (numpy: np.floor_divide(Days, 3)),
#                  "y": "Reaction + 1e6" (Reaction + 1e6 rounded once, IEEE
#                  double), "w" / "x" likewise.  {} when none.  The derived
#                  columns are also in `data` / `newdata`, so recomputing
#                  them is optional.
#   data           present when the case's rows are not exactly a bundled data
#                  set (derived columns, simulated data): the training rows as
#                  records, one object per row, with all columns (the bundled
#                  data set's and the derived ones)
#                  (labels as strings, numbers at full precision; an integral
#                  double is written without a decimal point).  With it:
#   column_types   {column: "double" | "integer" | "string" | "factor"}
#   factor_levels  {column: [levels in R's order]} for factor columns
#   formula        exactly as passed to lmer()
#   fit_args       extra lmer() arguments as R source text, e.g.
#                  {"offset": "Days * 2"} ({} when none)
#   reml           REML = reml
#   error          only if lmer() failed: its error message (no fit fields)
#   objective      REML criterion (reml) or deviance, from getME(fit, "devcomp")$cmp
#   theta, theta_order     getME(fit, "theta"): names in lme4's order
#   sigma
#   fixef, fixef_order     fixef(fit): names exactly as lme4 prints them
#                          ("I(Days^2)", "poly(Days, 2)1", "factor(k)2",
#                          "scale(Days)", "log(Days + 1)", "Days:I(Days^2)")
#   vcov           vcov(fit) as rows, rows and columns in fixef order
#   loglik, nobs, singular, ngrps
#   ranef          {group: {levels, terms, values (rows = levels, columns = terms)}}
#                  terms exactly as lme4 names them, e.g. "scale(Days)",
#                  "log(Days + 1)", "fb" (a level column of a factor)
#   condvar, condvar_layout   attr(ranef(fit, condVar = TRUE)[[g]], "postVar"),
#                  layout as in lme4_fits.json ("array": one q x q matrix per
#                  level; "per_term": {term: [one matrix per level]} when
#                  several terms share the grouping factor; the keys are
#                  lme4's names for the postVar list, which for a
#                  multi-column term are a deparse such as
#                  'c("fa", "fb", "fc")')
#   condvar_terms  (per_term groups only) {group: [[columns of term 1], ...]}
#                  in the order of condvar[group]'s keys
#   level_values   {group: [the label of each ranef level, typed as in the data]}
#   fitted         fitted(fit), training row order, on the scale of the
#                  (transformed) response, offsets included
#   newdata        the rows predicted, as records (predictor and grouping
#                  columns, derived columns included, no response; labels as
#                  strings).
#                  Predictor values are chosen off the training grid where
#                  the formula allows (e.g. Days 0.5, 10, 12), so scale() and
#                  poly() must use the training data's centre / scale /
#                  polynomial coefficients; one row per case has an unseen
#                  group level (e.g. Subject "999")
#   pred_all       predict(fit, newdata, re.form = NULL, allow.new.levels = TRUE):
#                  fixed part + BLUPs of known levels (an unseen level adds 0),
#                  on the transformed-response scale, formula offsets included
#   pred_none      predict(fit, newdata, re.form = NA)
#   pred_all_with_offset, pred_none_with_offset   (offset_argument only)
#                  pred_all / pred_none + 2 * Days: lme4's predict(newdata)
#                  drops an offset given as lmer(offset = ...), so these are
#                  what the offset_linear case (offset in the formula) gives
#   predict_check  max relative difference of predict(fit, newdata = training
#                  rows) from fitted(fit) (0 up to rounding: the stateful
#                  transforms are re-applied with the training state)
#   lme4_messages  warnings and messages lme4 gave while fitting (e.g.
#                  "Some predictor variables are on very different scales",
#                  "Model is nearly unidentifiable", singular fit)
#   predict_messages  warnings and messages from the predict() calls
#   optimizer, feval, optimizer_message, optimizer_warnings,
#   lme4_conv_messages, converged       fit@optinfo
#   notes          (some cases) what to watch for
# Shift / scale cases (shift_*, scale_*) also have
#   expected       what an exact, shift- and scale-invariant fit gives, derived
#                  from the untransformed base case's lme4 fit:
#                  {base_case, transform, objective, theta, sigma, fixef}:
#                    y + c:  same theta, sigma, objective; intercept + c
#                    y * s:  same theta; sigma * s; fixef * s; objective +
#                            2 (n - p) log s (REML) or 2 n log s (ML)
#                    x * s:  slope / s; the slope row of the relative
#                            factor (theta[2:3] of an (x | g) term) / s;
#                            objective + 2 log s (REML), same (ML)
#                    x + c:  intercept - c * slope; for (x | g) the relative
#                            factor T becomes chol(A T T' A'), A = [1 -c; 0 1];
#                            same objective
#                  (the shift_y_1e10 data are Reaction + 1e10 rounded to
#                  multiples of 2^-19, so even an exact fit differs slightly)
#   drift          lme4's fit minus the expected one: objective_diff,
#                  theta_max_abs_diff, sigma_rel_diff, fixef_max_rel_diff
#   lme4_version, matrix_version, r_version

common_R <- file.path("tests", "reference", "common.R")
if (!file.exists(common_R)) stop("run from the repository root: ", common_R, " not found")
source(common_R)  # lme4, jsonlite; data_dir, load_dataset, to_json, matrix_rows, records
source(file.path("tests", "reference", "fit_helpers.R"))

out_path <- file.path("tests", "reference", "lme4_formulas.json")

# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

sleep <- load_dataset("sleepstudy")
sleep_levels <- levels(sleep$Subject)

# newdata for sleepstudy cases: off-grid Days, two known subjects, one unseen
sleep_nd <- function(days = c(0.5, 10, 12, 3, 0, 12), subj = c("308", "308", "372", "335", "999", "999")) {
  data.frame(Subject = factor(subj, levels = unique(c(sleep_levels, subj))), Days = days)
}
# newdata for factor(k) cases: Days whose k = Days %/% 3 was seen in training
sleep_nd_k <- sleep_nd(days = c(0.5, 4, 9, 7.5, 2, 8),
                       subj = c("308", "308", "372", "335", "999", "999"))

# orthodont: ages 8, 10, 12, 14
ortho <- load_dataset("orthodont")
ortho_nd <- data.frame(
  Subject = factor(c("M01", "M01", "F05", "F05", "N99", "N99"),
                   levels = c(levels(ortho$Subject), "N99"), ordered = TRUE),
  Sex = factor(c("Male", "Male", "Female", "Female", "Male", "Female"), levels = levels(ortho$Sex)),
  age = c(8, 11, 14, 9.5, 10, 16))
# for factor(age): ages seen in training only
ortho_nd_grid <- transform(ortho_nd, age = c(8, 12, 14, 10, 10, 8))

# simulated: a 3-level factor f varying within 20 groups g (for (f || g))
set.seed(20261130)
sim_fg <- local({
  G <- 20
  glab <- sprintf("g%02d", seq_len(G))
  d <- expand.grid(rep = 1:4, f = c("a", "b", "c"), g = glab, stringsAsFactors = FALSE)
  d <- d[, c("g", "f")]
  b0 <- rnorm(G, 0, 2)
  bf <- matrix(rnorm(G * 3, 0, 1.5), G, 3)  # per-group level effects
  gi <- match(d$g, glab)
  fi <- match(d$f, c("a", "b", "c"))
  d$x <- round(runif(nrow(d), 0, 10), 2)
  d$y <- 10 + c(0, 2, -1)[fi] + 0.3 * d$x + b0[gi] + bf[cbind(gi, fi)] + rnorm(nrow(d), 0, 1)
  d$g <- factor(d$g, levels = glab)
  d$f <- factor(d$f, levels = c("a", "b", "c"))
  d
})
sim_fg_nd <- data.frame(
  g = factor(c("g01", "g01", "g07", "g99", "g99"), levels = c(levels(sim_fg$g), "g99")),
  f = factor(c("a", "c", "b", "b", "c"), levels = c("a", "b", "c")),
  x = c(0.5, 12, 5.25, 3, 7))

penicillin <- load_dataset("penicillin")
penicillin_nd <- data.frame(
  plate = factor(c("a", "a", "x", "zz"), levels = c(levels(penicillin$plate), "zz")),
  sample = factor(c("A", "F", "C", "B"), levels = levels(penicillin$sample)))
pastes <- load_dataset("pastes")
pastes_nd <- data.frame(
  batch = factor(c("A", "A", "J", "Z"), levels = c(levels(pastes$batch), "Z")),
  cask = factor(c("a", "q", "c", "a"), levels = c(levels(pastes$cask), "q")))

datasets <- list(sleepstudy = sleep, orthodont = ortho, sim_fg = sim_fg,
                 penicillin = penicillin, pastes = pastes)

# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

S <- function(formula, ..., nd = sleep_nd()) {
  list(dataset = "sleepstudy", formula = formula, newdata = nd, ...)
}

cases <- list(
  # baselines (also the base cases of the shift / scale expectations)
  days_slope = S("Reaction ~ Days + (Days | Subject)"),
  days_intercept = S("Reaction ~ Days + (1 | Subject)"),
  days_slope_ml = S("Reaction ~ Days + (Days | Subject)", reml = FALSE),
  # I() and powers
  days_squared = S("Reaction ~ Days + I(Days^2) + (Days | Subject)"),
  explicit_one = S("Reaction ~ 1 + Days + (1 + Days | Subject)"),
  no_intercept = S("Reaction ~ 0 + Days + (1 | Subject)"),
  minus_one = S("Reaction ~ Days - 1 + (1 | Subject)"),
  # response transforms: fitted and predictions on the transformed scale
  log_response = S("log(Reaction) ~ Days + (Days | Subject)"),
  sqrt_response = S("sqrt(Reaction) ~ Days + (Days | Subject)"),
  log1p_response = S("log1p(Reaction) ~ Days + (Days | Subject)"),
  I_response = S("I(Reaction/100) ~ Days + (Days | Subject)"),
  # stateful transforms
  poly2 = S("Reaction ~ poly(Days, 2) + (1 | Subject)"),
  poly2_raw = S("Reaction ~ poly(Days, 2, raw = TRUE) + (1 | Subject)"),
  poly3_slope = S("Reaction ~ poly(Days, 3) + (Days | Subject)"),
  scale_both = S("Reaction ~ scale(Days) + (scale(Days) | Subject)"),
  scale_fixed = S("Reaction ~ scale(Days) + (1 | Subject)", reml = FALSE),
  # elementwise functions
  functions = S("Reaction ~ log(Days + 1) + exp(Days/10) + sqrt(Days) + abs(Days - 4) + (1 | Subject)"),
  # factor() of a derived integer-valued column
  factor_k = S("Reaction ~ factor(k) + (1 | Subject)",
               derived = c(k = "Days %/% 3"), nd = sleep_nd_k),
  as_factor_k = S("Reaction ~ as.factor(k) + (1 | Subject)",
                  derived = c(k = "Days %/% 3"), nd = sleep_nd_k),
  factor_k_days = S("Reaction ~ Days + factor(k) + (Days | Subject)",
                    derived = c(k = "Days %/% 3"), nd = sleep_nd_k),
  # offsets
  offset_linear = S("Reaction ~ Days + offset(Days * 2) + (1 | Subject)"),
  offset_log = S("Reaction ~ Days + offset(log(Days + 1)) + (1 | Subject)"),
  offset_argument = S("Reaction ~ Days + (1 | Subject)", fit_args = c(offset = "Days * 2"),
                      notes = c(paste(
                        "offset given as lmer(offset = Days * 2), not in the formula:",
                        "fitted() includes the offset, but lme4's predict(newdata = ...)",
                        "drops it (compare pred_none with offset_linear's).",
                        "pred_all / pred_none are lme4's numbers as returned;",
                        "pred_all_with_offset / pred_none_with_offset add 2 * Days."))),
  # interaction expansion
  power_interaction = S("Reaction ~ (Days + I(Days^2))^2 + (1 | Subject)"),
  # a transform in the random part
  random_log = S("Reaction ~ Days + (log(Days + 1) | Subject)"),
  random_uncorrelated = S("Reaction ~ Days + (1 + Days || Subject)"),
  # orthodont: factor x factor expansion, transforms with a factor
  ortho_factor_power = list(dataset = "orthodont",
                            formula = "distance ~ (agef + Sex)^2 + (1 | Subject)",
                            derived = c(agef = "factor(age)"),
                            newdata = ortho_nd_grid),
  ortho_scale_sex = list(dataset = "orthodont",
                         formula = "log(distance) ~ scale(age) * Sex + (scale(age) | Subject)",
                         newdata = ortho_nd),
  ortho_centered = list(dataset = "orthodont",
                        formula = "distance ~ I(age - 11) + Sex + (I(age - 11) | Subject)",
                        newdata = ortho_nd),
  # crossed and explicit nesting spellings with a response transform
  penicillin_log = list(dataset = "penicillin",
                        formula = "log(diameter) ~ 1 + (1 | plate) + (1 | sample)",
                        newdata = penicillin_nd),
  pastes_colon = list(dataset = "pastes", formula = "strength ~ 1 + (1 | batch) + (1 | batch:cask)",
                      newdata = pastes_nd,
                      notes = paste("(1 | batch) + (1 | batch:cask) is lme4's expansion of",
                                    "(1 | batch/cask); newdata row 2 (batch A, new cask q) keeps",
                                    "batch A's effect")),
  # (f || g) with a factor f: (1 | g) + (0 + f | g), a full block for f
  fg_double_bar = list(dataset = NULL, data_name = "sim_fg",
                       formula = "y ~ f + x + (f || g)", newdata = sim_fg_nd),
  fg_correlated = list(dataset = NULL, data_name = "sim_fg",
                       formula = "y ~ f + x + (f | g)", newdata = sim_fg_nd),
  fg_zero_f = list(dataset = NULL, data_name = "sim_fg",
                   formula = "y ~ f + x + (1 | g) + (0 + f | g)", newdata = sim_fg_nd),
  # shifted / rescaled response
  shift_y_1e6 = S("y ~ Days + (Days | Subject)", derived = c(y = "Reaction + 1e6"),
                  expect = list(base = "days_slope", kind = "shift_y", c = 1e6)),
  shift_y_1e8 = S("y ~ Days + (Days | Subject)", derived = c(y = "Reaction + 1e8"),
                  expect = list(base = "days_slope", kind = "shift_y", c = 1e8)),
  shift_y_1e10 = S("y ~ Days + (Days | Subject)", derived = c(y = "Reaction + 1e10"),
                   expect = list(base = "days_slope", kind = "shift_y", c = 1e10),
                   notes = c(paste("Reaction + 1e10 is rounded to a multiple of 2^-19",
                                   "(about 1.9e-6): the data differ from Reaction + 1e10",
                                   "in exact arithmetic by up to ~1e-6, so a perfect fit",
                                   "differs slightly from expected."))),
  "scale_y_1e-8" = S("y ~ Days + (Days | Subject)", derived = c(y = "Reaction * 1e-8"),
                   expect = list(base = "days_slope", kind = "scale_y", s = 1e-8)),
  scale_y_1e8 = S("y ~ Days + (Days | Subject)", derived = c(y = "Reaction * 1e8"),
                  expect = list(base = "days_slope", kind = "scale_y", s = 1e8)),
  scale_x_1e6_slope = S("Reaction ~ x + (x | Subject)", derived = c(x = "Days * 1e6"),
                        expect = list(base = "days_slope", kind = "scale_x", s = 1e6)),
  scale_x_1e6_intercept = S("Reaction ~ x + (1 | Subject)", derived = c(x = "Days * 1e6"),
                            expect = list(base = "days_intercept", kind = "scale_x", s = 1e6)),
  shift_x_1e6_slope = S("Reaction ~ x + (x | Subject)", derived = c(x = "Days + 1e6"),
                        expect = list(base = "days_slope", kind = "shift_x", c = 1e6)),
  shift_x_1e6_intercept = S("Reaction ~ x + (1 | Subject)", derived = c(x = "Days + 1e6"),
                            expect = list(base = "days_intercept", kind = "shift_x", c = 1e6)),
  shift_y_1e6_ml = S("y ~ Days + (Days | Subject)", derived = c(y = "Reaction + 1e6"),
                     reml = FALSE,
                     expect = list(base = "days_slope_ml", kind = "shift_y", c = 1e6)),
  scale_x_1e6_slope_ml = S("Reaction ~ x + (x | Subject)", derived = c(x = "Days * 1e6"),
                           reml = FALSE,
                           expect = list(base = "days_slope_ml", kind = "scale_x", s = 1e6))
)

# ---------------------------------------------------------------------------
# Fits
# ---------------------------------------------------------------------------

derive <- function(df, derived) {
  for (col in names(derived)) {
    expr <- parse(text = derived[[col]])[[1]]
    if (all(all.vars(expr) %in% names(df))) df[[col]] <- eval(expr, df)
  }
  df
}

results <- list()
for (case_name in names(cases)) {
  spec <- cases[[case_name]]
  reml <- if (is.null(spec$reml)) TRUE else spec$reml
  derived <- if (is.null(spec$derived)) character(0) else spec$derived
  data_name <- if (is.null(spec$dataset)) spec$data_name else spec$dataset
  train <- derive(datasets[[data_name]], derived)
  nd <- derive(spec$newdata, derived)
  fit_args <- if (is.null(spec$fit_args)) character(0) else spec$fit_args

  formula <- as.formula(spec$formula)
  cat(sprintf("%-24s %s%s\n", case_name, spec$formula,
              if (length(fit_args)) paste0(", ", names(fit_args), " = ", fit_args) else ""))
  args <- list(formula = formula, data = train, REML = reml)
  for (a in names(fit_args)) args[[a]] <- eval(parse(text = fit_args[[a]]), train)
  res <- capture(do.call(lmer, args))

  out <- list(dataset = spec$dataset,
              derived = if (length(derived)) as.list(derived) else structure(list(), names = character(0)))
  if (is.null(spec$dataset) || length(derived)) {
    out <- c(out, data_fields(train))
  }
  out <- c(out, list(
    formula = spec$formula,
    fit_args = if (length(fit_args)) as.list(fit_args) else structure(list(), names = character(0)),
    reml = reml))
  if (!is.null(res$error)) {
    cat("    ERROR:", res$error, "\n")
    out$error <- res$error
    out$lme4_messages <- str_array(c(res$warnings, res$messages))
    results[[case_name]] <- c(out, versions())
    next
  }
  fit <- res$value
  out <- c(out, lmer_fields(fit, data = train))

  rownames(nd) <- NULL
  pres <- capture(list(
    all = predict(fit, newdata = nd, re.form = NULL, allow.new.levels = TRUE),
    none = predict(fit, newdata = nd, re.form = NA),
    train = predict(fit, newdata = train)))
  if (!is.null(pres$error)) stop(case_name, ": predict failed: ", pres$error)
  out$newdata <- records(nd)
  out$pred_all <- num_array(pres$value$all)
  out$pred_none <- num_array(pres$value$none)
  if (case_name == "offset_argument") {
    out$pred_all_with_offset <- num_array(pres$value$all + 2 * nd$Days)
    out$pred_none_with_offset <- num_array(pres$value$none + 2 * nd$Days)
    check_close(pres$value$train + 2 * train$Days, fitted(fit), "offset_argument train")
    out$predict_check <- max(abs(pres$value$train + 2 * train$Days - fitted(fit)) /
                               pmax(1, abs(fitted(fit))))
  } else {
    check_close(pres$value$train, fitted(fit), paste(case_name, "predict(train) vs fitted"))
    out$predict_check <- max(abs(pres$value$train - fitted(fit)) / pmax(1, abs(fitted(fit))))
  }
  out$lme4_messages <- str_array(c(res$warnings, res$messages))
  out$predict_messages <- str_array(c(pres$warnings, pres$messages))
  out <- c(out, conv_info(fit))
  if (!is.null(spec$notes)) out$notes <- str_array(spec$notes)

  if (!is.null(spec$expect)) {
    base <- results[[spec$expect$base]]
    base$reml <- reml
    amount <- if (is.null(spec$expect$c)) spec$expect$s else spec$expect$c
    e <- expected_fit(base, spec$expect$kind, amount, nobs(fit), fit)
    out$expected <- list(base_case = spec$expect$base,
                         transform = paste(spec$expect$kind, amount),
                         objective = e$objective, theta = e$theta, sigma = e$sigma,
                         fixef = e$fixef)
    out$drift <- drift(out, e)
    cat(sprintf("    drift: objective %+.3g  theta %.3g  sigma %+.3g  fixef %.3g\n",
                out$drift$objective_diff, out$drift$theta_max_abs_diff,
                out$drift$sigma_rel_diff, out$drift$fixef_max_rel_diff))
  }
  out <- c(out, versions())
  cat(sprintf("    objective %.10g  theta %s  fixef %s\n", out$objective,
              paste(sprintf("%.6g", out$theta), collapse = " "),
              paste(sprintf("%s=%.6g", names(out$fixef), out$fixef), collapse = " ")))
  if (length(out$lme4_messages)) cat("    lme4:", paste(out$lme4_messages, collapse = " | "), "\n")
  results[[case_name]] <- out
}

write_checked(results, out_path)
