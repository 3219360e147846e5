# lme4 / lmerTest / pbkrtest reference values for inference on linear mixed
# models: profile and Wald confidence intervals, Satterthwaite and
# Kenward-Roger coefficient tables and type III ANOVA tables, and
# likelihood-ratio tests of nested models.
#
# Usage, from the repository root:
#
#     Rscript tests/reference/make_inference.R
#
# (or `make reference`).  Needs R with lme4, lmerTest, pbkrtest and jsonlite
# (Debian: r-cran-lmertest, r-cran-pbkrtest).  Takes ~30 seconds (the
# sleepstudy profiles).
#
# Data: the bundled sleepstudy, and a small unbalanced design simulated here
# (set.seed(20261130); 40 rows, 8 groups c1..c8 of sizes 2, 3, 4, 5, 5, 6, 7,
# 8; x ~ U(0, 10) rounded to 2 decimals varies within groups; trt is 0 / 1 by
# group (between-group); y = 5 + 0.4 x + 1.2 trt + b_g + e, b_g ~ N(0, 1.5^2),
# e ~ N(0, 1), rounded to 4 decimals), written into the JSON as records.
#
# Writes tests/reference/lme4_inference.json: an object with keys
#   versions       {r_version, lme4_version, lmertest_version,
#                  pbkrtest_version, matrix_version}
#   fits           {case: fit object} (below)
#   lrt            {case: likelihood-ratio test} (below)
#
# A fit object (fits[case]):
#   dataset        bundled data set name, or null (then data, column_types,
#                  factor_levels hold the rows as records)
#   formula, reml  lme4::lmer(formula, data, REML = reml) (lmerTest::lmer for
#                  the lmerTest tables: the same fit)
#   objective, theta, sigma, fixef, vcov (rows, fixef order)   of that fit
#   confint_profile  confint(fit, method = "profile", oldNames = FALSE,
#                  level = 0.95): {names, lower, upper}, rows in lme4's order
#                  and with lme4's names: "sd_(Intercept)|Subject",
#                  "cor_Days.(Intercept)|Subject", "sd_Days|Subject", "sigma",
#                  then the fixed effects
#                  NOTE: lme4 profiles the ML deviance even for a REML fit
#                  (lme4:::devfun2 starts with refitML(fm)), so the profile
#                  intervals of a REML fit are those of the ML fit (the
#                  *_reml and *_ml cases agree up to the optimizer's
#                  tolerance, ~1e-5), centred on the ML estimates, not on
#                  the REML estimates reported in this case
#   confint_profile_messages   warnings / messages of the profile (unique)
#   confint_wald   confint(fit, method = "Wald", oldNames = FALSE): same
#                  layout; the variance-parameter rows are null (lme4 gives NA)
#   satterthwaite  summary(lmerTest fit)$coefficients (ddf = "Satterthwaite"):
#                  {terms, estimate, se, df, t, p}, one entry per fixed effect
#   kenward_roger  summary(lmerTest fit, ddf = "Kenward-Roger")$coefficients,
#                  same layout (se is the KR-adjusted SE); for ML fits lmerTest
#                  refuses: then {error: message}
#   pbkrtest       {vcov_adj: rows of as.matrix(pbkrtest::vcovAdj(fit)),
#                  se: sqrt(diag(vcov_adj)), df: pbkrtest::get_Lb_ddf(fit, L)
#                  for L each unit row (one per fixed effect), t: fixef / se,
#                  p: 2 * pt(-|t|, df)}.  pbkrtest computes these for ML fits
#                  too (lmerTest does not): recorded as given.  For REML fits
#                  se, df, t, p agree with kenward_roger (checked, 1e-6)
#   anova_satterthwaite, anova_kenward_roger
#                  anova(lmerTest fit, type = 3, ddf = ...): {terms, sum_sq,
#                  mean_sq, num_df, den_df, f, p} ({error} when refused)
#   lme4_messages  warnings / messages of the fit
#
# A likelihood-ratio test (lrt[case]):
#   dataset / data ..., formulas {m0, m1}, reml (how m0 and m1 were fitted)
#   table          anova(m0, m1) (lme4; REML fits are refitted with ML first,
#                  refit = TRUE, lme4's default): {models: ["m0", "m1"],
#                  npar, AIC, BIC, logLik, deviance, Chisq, Df, p}; the first
#                  row's Chisq, Df and p are null
#   anova_messages  lme4's messages (e.g. "refitting model(s) with ML (instead
#                  of REML)")
#   ml_fits        {m0: {objective, theta, fixef}, m1: ...}: the ML refits, so
#                  that Python can check its own refits
#
# All numbers at full double precision (tests/reference/common.R's writer).

common_R <- file.path("tests", "reference", "common.R")
if (!file.exists(common_R)) stop("run from the repository root: ", common_R, " not found")
source(common_R)  # lme4, jsonlite; load_dataset, to_json, matrix_rows, records
source(file.path("tests", "reference", "fit_helpers.R"))
suppressPackageStartupMessages({
  library(lmerTest)
  library(pbkrtest)
})

out_path <- file.path("tests", "reference", "lme4_inference.json")
set.seed(20261130)

# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

sleep <- load_dataset("sleepstudy")
unbalanced <- local({
  sizes <- c(2, 3, 4, 5, 5, 6, 7, 8)
  G <- length(sizes)
  g <- rep(seq_len(G), sizes)
  trt <- rep(rep(0:1, G / 2), sizes)
  x <- round(runif(length(g), 0, 10), 2)
  b <- rnorm(G, 0, 1.5)
  y <- round(5 + 0.4 * x + 1.2 * trt + b[g] + rnorm(length(g)), 4)
  data.frame(y = y, x = x, trt = as.integer(trt),
             g = factor(sprintf("c%d", g), levels = sprintf("c%d", seq_len(G))))
})
datasets <- list(sleepstudy = sleep, unbalanced = unbalanced)

fit_cases <- list(
  sleepstudy_reml = list(dataset = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", reml = TRUE),
  sleepstudy_ml = list(dataset = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", reml = FALSE),
  unbalanced_reml = list(dataset = "unbalanced", formula = "y ~ x + trt + (1 | g)", reml = TRUE),
  unbalanced_ml = list(dataset = "unbalanced", formula = "y ~ x + trt + (1 | g)", reml = FALSE),
  unbalanced_slope_reml = list(dataset = "unbalanced", formula = "y ~ x + trt + (x | g)", reml = TRUE)
)
lrt_cases <- list(
  sleepstudy_days = list(dataset = "sleepstudy", reml = TRUE,
                         m0 = "Reaction ~ 1 + (Days | Subject)",
                         m1 = "Reaction ~ Days + (Days | Subject)"),
  sleepstudy_random_slope = list(dataset = "sleepstudy", reml = FALSE,
                                 m0 = "Reaction ~ Days + (1 | Subject)",
                                 m1 = "Reaction ~ Days + (Days | Subject)"),
  unbalanced_trt = list(dataset = "unbalanced", reml = TRUE,
                        m0 = "y ~ x + (1 | g)", m1 = "y ~ x + trt + (1 | g)")
)

data_part <- function(name) {
  if (name %in% c("sleepstudy")) return(list(dataset = name))
  c(list(dataset = NULL), data_fields(datasets[[name]]))
}

interval_table <- function(ci) {
  list(names = I(rownames(ci)), lower = num_array(ci[, 1]), upper = num_array(ci[, 2]))
}

coef_table <- function(ct) {
  list(terms = I(rownames(ct)), estimate = num_array(ct[, "Estimate"]),
       se = num_array(ct[, "Std. Error"]), df = num_array(ct[, "df"]),
       t = num_array(ct[, "t value"]), p = num_array(ct[, "Pr(>|t|)"]))
}

anova_table <- function(a) {
  list(terms = I(rownames(a)), sum_sq = num_array(a[["Sum Sq"]]),
       mean_sq = num_array(a[["Mean Sq"]]), num_df = num_array(a[["NumDF"]]),
       den_df = num_array(a[["DenDF"]]), f = num_array(a[["F value"]]),
       p = num_array(a[["Pr(>F)"]]))
}

or_error <- function(res, f) if (is.null(res$error)) f(res$value) else list(error = res$error)

# ---------------------------------------------------------------------------
# Fits
# ---------------------------------------------------------------------------

fits_out <- list()
for (case_name in names(fit_cases)) {
  spec <- fit_cases[[case_name]]
  d <- datasets[[spec$dataset]]
  formula <- as.formula(spec$formula)
  cat(sprintf("%-22s %s  (REML = %s)\n", case_name, spec$formula, spec$reml))
  res <- capture(lme4::lmer(formula, data = d, REML = spec$reml))
  if (!is.null(res$error)) stop(case_name, ": ", res$error)
  fit <- res$value
  lt <- suppressMessages(lmerTest::lmer(formula, data = d, REML = spec$reml))
  check_close(fixef(lt), fixef(fit), paste(case_name, "lmerTest fit = lme4 fit"))
  check_close(getME(lt, "theta"), getME(fit, "theta"), paste(case_name, "lmerTest theta"))

  prof <- capture(confint(fit, method = "profile", oldNames = FALSE, level = 0.95))
  if (!is.null(prof$error)) stop(case_name, " profile: ", prof$error)
  wald <- confint(fit, method = "Wald", oldNames = FALSE, level = 0.95)

  sat <- coef_table(summary(lt, ddf = "Satterthwaite")$coefficients)
  kr_res <- capture(summary(lt, ddf = "Kenward-Roger")$coefficients)
  kr <- or_error(kr_res, coef_table)
  if (length(kr_res$warnings) && is.null(kr_res$error)) kr$warnings <- str_array(kr_res$warnings)

  # pbkrtest directly
  va <- as.matrix(vcovAdj(fit))
  beta <- fixef(fit)
  p <- length(beta)
  kr_df <- vapply(seq_len(p), function(j) {
    L <- matrix(0, 1, p)
    L[j] <- 1
    get_Lb_ddf(fit, L)
  }, 0)
  kr_se <- sqrt(diag(va))
  kr_t <- unname(beta) / kr_se
  pbk <- list(vcov_adj = matrix_rows(va), se = num_array(kr_se), df = num_array(kr_df),
              t = num_array(kr_t), p = num_array(2 * pt(-abs(kr_t), kr_df)))
  if (is.null(kr$error)) {
    check_close(kr$se, kr_se, paste(case_name, "KR se: lmerTest vs pbkrtest"), 1e-6)
    check_close(kr$df, kr_df, paste(case_name, "KR df: lmerTest vs pbkrtest"), 1e-6)
    check_close(kr$p, pbk$p, paste(case_name, "KR p: lmerTest vs pbkrtest"), 1e-6)
  }

  a_sat <- anova_table(anova(lt, type = 3, ddf = "Satterthwaite"))
  a_kr <- or_error(capture(anova(lt, type = 3, ddf = "Kenward-Roger")), anova_table)

  reml <- isREML(fit)
  out <- c(data_part(spec$dataset), list(
    formula = spec$formula, reml = spec$reml,
    objective = unname(getME(fit, "devcomp")$cmp[if (reml) "REML" else "dev"]),
    theta = getME(fit, "theta"), sigma = sigma(fit), fixef = beta,
    vcov = matrix_rows(as.matrix(vcov(fit))),
    singular = isSingular(fit),
    confint_profile = interval_table(prof$value),
    confint_profile_messages = str_array(unique(c(prof$warnings, prof$messages))),
    confint_wald = interval_table(wald),
    satterthwaite = sat, kenward_roger = kr, pbkrtest = pbk,
    anova_satterthwaite = a_sat, anova_kenward_roger = a_kr,
    lme4_messages = str_array(c(res$warnings, res$messages))))
  fits_out[[case_name]] <- out
  cat("    profile:", paste(sprintf("%s [%.5g, %.5g]", rownames(prof$value), prof$value[, 1],
                                    prof$value[, 2]), collapse = "; "), "\n")
  cat("    Satterthwaite df:", paste(sprintf("%.6g", sat$df), collapse = " "),
      "  KR df (pbkrtest):", paste(sprintf("%.6g", kr_df), collapse = " "),
      if (!is.null(kr$error)) paste("  lmerTest KR:", kr$error) else "", "\n")
  msgs <- c(out$lme4_messages, out$confint_profile_messages)
  msgs <- msgs[msgs != "Computing profile confidence intervals ..."]
  if (length(msgs)) cat("    messages:", paste(msgs, collapse = " | "), "\n")
}

# ---------------------------------------------------------------------------
# Likelihood-ratio tests
# ---------------------------------------------------------------------------

lrt_out <- list()
for (case_name in names(lrt_cases)) {
  spec <- lrt_cases[[case_name]]
  d <- datasets[[spec$dataset]]
  m0 <- lme4::lmer(as.formula(spec$m0), data = d, REML = spec$reml)
  m1 <- lme4::lmer(as.formula(spec$m1), data = d, REML = spec$reml)
  res <- capture(anova(m0, m1))
  if (!is.null(res$error)) stop(case_name, ": ", res$error)
  a <- res$value
  stopifnot(identical(rownames(a), c("m0", "m1")))
  tab <- list(models = I(rownames(a)), npar = num_array(a$npar), AIC = num_array(a$AIC),
              BIC = num_array(a$BIC), logLik = num_array(a$logLik),
              deviance = num_array(a$deviance), Chisq = num_array(a$Chisq),
              Df = num_array(a$Df), p = num_array(a[["Pr(>Chisq)"]]))
  ml <- lapply(list(m0 = m0, m1 = m1), function(m) {
    if (isREML(m)) m <- refitML(m)
    list(objective = unname(getME(m, "devcomp")$cmp["dev"]), theta = getME(m, "theta"),
         fixef = fixef(m))
  })
  check_close(c(ml$m0$objective, ml$m1$objective), a$deviance, paste(case_name, "ML refits"))
  lrt_out[[case_name]] <- c(data_part(spec$dataset), list(
    formulas = list(m0 = spec$m0, m1 = spec$m1), reml = spec$reml,
    table = tab, anova_messages = str_array(c(res$warnings, res$messages)),
    ml_fits = ml))
  cat(sprintf("lrt %-24s Chisq %.8g  Df %g  p %.6g  (%s)\n", case_name, a$Chisq[2], a$Df[2],
              a[["Pr(>Chisq)"]][2], paste(c(res$warnings, res$messages), collapse = " | ")))
}

results <- list(
  versions = c(versions(c("lme4", "lmerTest", "pbkrtest", "Matrix"))),
  fits = fits_out,
  lrt = lrt_out)
write_checked(results, out_path)
