# lme4 reference fits for generalized linear mixed models (glmer: binomial
# with cbind() and with proportions + weights, Laplace and adaptive
# Gauss-Hermite, Bernoulli with logit / probit / cloglog links, Poisson with
# crossed effects and an offset) and for lmer with prior weights and offsets.
#
# Usage, from the repository root:
#
#     Rscript tests/reference/make_glmm.R
#
# (or `make reference`).  Needs R with lme4 and jsonlite.  Takes ~30 seconds.
#
# Data: the bundled data sets (cbpp, grouseticks, sleepstudy; read through
# tests/reference/common.R so R and Python see the same numbers) and
# simulated data (set.seed(20261130)) written into the JSON as records.
#
# Writes tests/reference/lme4_glmm.json: one object per case, keyed by case
# name.  Every case has
#   dataset        bundled data set name, or null for simulated data
#   derived        {column: R expression} added to the bundled data ({} if none),
#                  e.g. "w": "1 + (Days %% 3)"
#   data, column_types, factor_levels   (simulated or derived data only) the
#                  training rows as records, all columns; column types;
#                  factor level orders
#   formula        exactly as passed to glmer() / lmer()
#   fitter         "glmer" or "lmer"
#   family, link   family(fit)$family / $link ("gaussian" / "identity" for lmer)
#   nAGQ           glmer's nAGQ (1 = Laplace; 9 = adaptive Gauss-Hermite with
#                  9 nodes); null for lmer
#   weights        name of the prior-weights column (weights = data[[weights]]),
#                  or null
#   offset_arg     the offset= argument as R source text evaluated in the data
#                  (e.g. "0.5 * Days"), or null; offsets written inside the
#                  formula (offset(...)) are part of `formula`
#   reml           (lmer) REML = reml; null for glmer
#   error          only if the fit failed: the message (no fit fields)
#   deviance       glmer: deviance(fit), lme4's GLMM deviance, which is NOT
#                  -2 logLik: it equals devcomp_cmp["drsum"], the sum of the
#                  deviance residuals at the conditional modes; lmer:
#                  deviance(fit, REML = FALSE), the ML deviance at the fitted
#                  parameters (for a REML fit: not the REML criterion)
#   minus2loglik   -2 * logLik(fit) (glmer: the Laplace / AGQ approximation of
#                  -2 log L, the quantity minimised; lmer: the REML criterion
#                  for REML fits, the deviance for ML fits)
#                  CAUTION, nAGQ > 1: lme4's logLik / -2logLik for nAGQ > 1
#                  leave out the saturated model's log-likelihood, which the
#                  Laplace (nAGQ = 1) values include, so they are not
#                  comparable across nAGQ (cbpp: -2logLik 184.05 with nAGQ = 1,
#                  100.01 with nAGQ = 9; the difference is
#                  saturated_minus2loglik = 83.96, not the approximation)
#   saturated_minus2loglik  (glmer) family$aic(y, n, mu = y, prior weights, 0):
#                  -2 log-likelihood of the saturated model, e.g. binomial
#                  -2 sum log dbinom(incidence, size, incidence / size)
#   minus2loglik_parts  (glmer) {drsum_ldL2_ussq: devcomp drsum + ldL2 + ussq,
#                  plus_saturated: that + saturated_minus2loglik}.  For
#                  nAGQ = 1, minus2loglik equals plus_saturated; for nAGQ > 1
#                  the AGQ value is close to drsum_ldL2_ussq (not equal: it
#                  is the quadrature, not the Laplace formula), so the
#                  comparable -2 log L is minus2loglik + saturated_minus2loglik
#   loglik         as.numeric(logLik(fit)), with
#   loglik_df      attr(logLik(fit), "df")
#   aic, bic, nobs
#   objective      (lmer) REML criterion or deviance from devcomp$cmp, as in
#                  lme4_fits.json
#   devcomp_cmp    getME(fit, "devcomp")$cmp: lme4's named components (ldL2,
#                  ldRX2, wrss, ussq, pwrss, drsum, REML, dev, sigmaML,
#                  sigmaREML, tolPwrss)
#   theta, theta_order, fixef, fixef_order, vcov (rows, fixef order)
#   sigma          sigma(fit) (1 for binomial / Poisson glmer)
#   singular, ngrps
#   ranef, condvar, condvar_layout, level_values   as in lme4_formulas.json:
#                  conditional modes and attr(ranef(fit, condVar = TRUE), "postVar")
#                  (for glmer: the conditional variances of the Laplace
#                  approximation at the modes)
#   fitted         fitted(fit): response scale (probabilities for binomial,
#                  means for Poisson, offsets included), training row order
#   fitted_link    the linear predictor of the training rows (X beta + Z b +
#                  offset), family$linkfun(fitted)
#   newdata        rows to predict, as records (labels as strings, except
#                  integer-labelled columns, which are numbers), including
#                  unseen levels; offset / exposure columns included
#   pred           {"link": {re: [...]}, "response": {re: [...]}}:
#                  predict(fit, newdata, type = ..., re.form = re_forms[re],
#                  allow.new.levels = TRUE), one number per newdata row
#   re_forms       {re: "NULL" | "NA" | formula}: "all" is re.form = NULL,
#                  "none" re.form = NA; other keys a partial re.form such as
#                  "~(1 | site)" (a subset of the terms) or "~(1 | g)" from a
#                  (x | g) term (its intercept column only)
#   offset_dropped_by_predict  (cases with offset_arg) TRUE when lme4's
#                  predict(newdata) leaves the offset= argument out (checked on
#                  the training rows); then
#   pred_with_offset  the same layout as pred, with the offset added to the
#                  link predictions (response = linkinv(link + offset))
#   predict_check  max relative difference of predict(fit, newdata = training
#                  rows, type = "link") from fitted_link
#   optimizer, feval, optimizer_message, optimizer_warnings,
#   lme4_conv_messages, converged       fit@optinfo
#   lme4_messages  warnings and messages lme4 gave while fitting
#   predict_messages  warnings / messages of the predict() calls
#   notes          (some cases) what to watch for
#   lme4_version, matrix_version, r_version

common_R <- file.path("tests", "reference", "common.R")
if (!file.exists(common_R)) stop("run from the repository root: ", common_R, " not found")
source(common_R)  # lme4, jsonlite; data_dir, load_dataset, to_json, matrix_rows, records
source(file.path("tests", "reference", "fit_helpers.R"))

out_path <- file.path("tests", "reference", "lme4_glmm.json")
set.seed(20261130)

# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

cbpp <- load_dataset("cbpp")
grouse <- load_dataset("grouseticks")
sleep <- load_dataset("sleepstudy")

# Bernoulli with correlated random slopes: 50 groups of 12..28 rows
bern <- local({
  G <- 50
  sizes <- sample(12:28, G, replace = TRUE)
  glab <- sprintf("G%02d", seq_len(G))
  g <- rep(seq_len(G), sizes)
  n <- length(g)
  x <- round(rnorm(n), 4)
  S <- matrix(c(1, 0.3 * 0.6, 0.3 * 0.6, 0.36), 2, 2)
  b <- matrix(rnorm(2 * G), G, 2) %*% chol(S)
  eta <- -0.5 + 1.0 * x + b[g, 1] + b[g, 2] * x
  y <- rbinom(n, 1, plogis(eta))
  data.frame(y = as.integer(y), x = x, g = factor(glab[g], levels = glab))
})

# Poisson, crossed site x month with exposure
pois <- local({
  sites <- sprintf("S%02d", 1:30)
  d <- expand.grid(month = 1:12, site = sites, stringsAsFactors = FALSE)
  d <- d[sort(sample(nrow(d), 300)), c("site", "month")]
  bs <- rnorm(30, 0, 0.6)
  bm <- rnorm(12, 0, 0.3)
  d$z <- round(rnorm(nrow(d)), 4)
  d$exposure <- round(runif(nrow(d), 0.5, 5), 3)
  mu <- d$exposure * exp(0.3 + 0.5 * d$z + bs[match(d$site, sites)] + bm[d$month])
  d$count <- as.integer(rpois(nrow(d), mu))
  d$site <- factor(d$site, levels = sites)
  d$month <- as.integer(d$month)
  rownames(d) <- NULL
  d[, c("count", "z", "exposure", "site", "month")]
})

# ---------------------------------------------------------------------------
# Newdata
# ---------------------------------------------------------------------------

with_levels <- function(x, train) factor(x, levels = unique(c(levels(train), x)))

cbpp_nd <- data.frame(herd = with_levels(c("1", "1", "5", "15", "99", "99"), cbpp$herd),
                      period = factor(c("1", "4", "2", "3", "1", "4"), levels = levels(cbpp$period)),
                      size = c(14, 10, 20, 5, 10, 10))
bern_nd <- data.frame(g = with_levels(c("G01", "G01", "G17", "G50", "G99", "G99"), bern$g),
                      x = c(-1.5, 0.25, 2, 0, -0.5, 1.75))
pois_nd <- data.frame(site = with_levels(c("S01", "S01", "S12", "S99", "S99", "S07"), pois$site),
                      month = c(1L, 12L, 6L, 3L, 13L, 13L),
                      z = c(0, 1.5, -0.75, 0.2, 0, 1),
                      exposure = c(1, 2.5, 0.75, 3, 1, 4))
grouse_nd <- local({
  nd <- grouse[c(1, 6, 200, 403), c("INDEX", "BROOD", "HEIGHT", "YEAR", "LOCATION")]
  extra <- data.frame(INDEX = c("new1", "new2", "new3"), BROOD = c("501", "new", "new"),
                      HEIGHT = c(470, 500.5, 440), YEAR = c("96", "97", "95"),
                      LOCATION = c("32", "1", "new"), stringsAsFactors = FALSE)
  nd <- data.frame(lapply(nd, function(x) if (is.factor(x)) as.character(x) else x),
                   stringsAsFactors = FALSE)
  nd <- rbind(nd, extra)
  for (col in c("INDEX", "BROOD", "LOCATION")) nd[[col]] <- with_levels(nd[[col]], grouse[[col]])
  nd$YEAR <- factor(nd$YEAR, levels = levels(grouse$YEAR))
  rownames(nd) <- NULL
  nd
})
sleep_nd <- data.frame(Subject = with_levels(c("308", "308", "372", "999", "999"), sleep$Subject),
                       Days = c(0.5, 10, 4, 0, 12))

# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

B <- function(...) modifyList(list(fitter = "glmer", nAGQ = 1L), list(...))
ALL_NONE <- list(all = "NULL", none = "NA")

cases <- list(
  cbpp_cbind_laplace = B(dataset = "cbpp", family = "binomial",
                         formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                         newdata = cbpp_nd, re = ALL_NONE),
  cbpp_cbind_agq9 = B(dataset = "cbpp", family = "binomial", nAGQ = 9L,
                      formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                      newdata = cbpp_nd, re = ALL_NONE),
  cbpp_prop_laplace = B(dataset = "cbpp", family = "binomial", weights = "size",
                        formula = "incidence/size ~ period + (1 | herd)",
                        newdata = cbpp_nd, re = ALL_NONE),
  cbpp_prop_agq9 = B(dataset = "cbpp", family = "binomial", weights = "size", nAGQ = 9L,
                     formula = "incidence/size ~ period + (1 | herd)",
                     newdata = cbpp_nd, re = ALL_NONE),
  bernoulli_slope = B(dataset = NULL, data_name = "bern", family = "binomial",
                      formula = "y ~ x + (x | g)", newdata = bern_nd,
                      re = c(ALL_NONE, list(intercept = "~(1 | g)"))),
  bernoulli_probit = B(dataset = NULL, data_name = "bern", family = "binomial(link = \"probit\")",
                       formula = "y ~ x + (1 | g)", newdata = bern_nd, re = ALL_NONE),
  bernoulli_cloglog = B(dataset = NULL, data_name = "bern",
                        family = "binomial(link = \"cloglog\")",
                        formula = "y ~ x + (1 | g)", newdata = bern_nd, re = ALL_NONE),
  poisson_crossed_offset = B(dataset = NULL, data_name = "pois", family = "poisson",
                             formula = "count ~ z + offset(log(exposure)) + (1 | site) + (1 | month)",
                             newdata = pois_nd,
                             re = c(ALL_NONE, list(site = "~(1 | site)", month = "~(1 | month)"))),
  poisson_offset_arg = B(dataset = NULL, data_name = "pois", family = "poisson",
                         formula = "count ~ z + (1 | site) + (1 | month)",
                         offset_arg = "log(exposure)", newdata = pois_nd,
                         re = c(ALL_NONE, list(site = "~(1 | site)")),
                         notes = paste(
                           "offset given as glmer(offset = log(exposure)): check whether",
                           "lme4's predict(newdata) adds it (compare with",
                           "poisson_crossed_offset); pred_with_offset adds log(exposure)",
                           "to the link predictions when lme4 dropped it")),
  grouseticks = B(dataset = "grouseticks", family = "poisson",
                  formula = "TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
                  newdata = grouse_nd,
                  re = c(ALL_NONE, list(brood = "~(1 | BROOD)",
                                        brood_location = "~(1 | BROOD) + (1 | LOCATION)")),
                  notes = paste("the model of lme4's ?grouseticks example",
                                "(form <- TICKS~YEAR+HEIGHT+(1|BROOD)+(1|INDEX)+(1|LOCATION))")),
  grouseticks_scaled = B(dataset = "grouseticks", family = "poisson",
                         formula = "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
                         newdata = grouse_nd,
                         re = c(ALL_NONE, list(brood = "~(1 | BROOD)"))),
  lmer_weights_reml = list(fitter = "lmer", dataset = "sleepstudy", reml = TRUE,
                           derived = c(w = "1 + (Days %% 3)"), weights = "w",
                           formula = "Reaction ~ Days + (Days | Subject)",
                           newdata = sleep_nd, re = c(ALL_NONE, list(intercept = "~(1 | Subject)"))),
  lmer_weights_ml = list(fitter = "lmer", dataset = "sleepstudy", reml = FALSE,
                         derived = c(w = "1 + (Days %% 3)"), weights = "w",
                         formula = "Reaction ~ Days + (Days | Subject)",
                         newdata = sleep_nd, re = ALL_NONE),
  lmer_offset_formula_ml = list(fitter = "lmer", dataset = "sleepstudy", reml = FALSE,
                                formula = "Reaction ~ Days + offset(0.5 * Days) + (Days | Subject)",
                                newdata = sleep_nd, re = ALL_NONE),
  lmer_offset_arg_ml = list(fitter = "lmer", dataset = "sleepstudy", reml = FALSE,
                            formula = "Reaction ~ Days + (Days | Subject)",
                            offset_arg = "0.5 * Days", newdata = sleep_nd, re = ALL_NONE,
                            notes = paste(
                              "offset given as lmer(offset = 0.5 * Days): the fit equals",
                              "lmer_offset_formula_ml's, but lme4's predict(newdata) drops",
                              "the offset; pred_with_offset adds 0.5 * Days"))
)

datasets <- list(cbpp = cbpp, grouseticks = grouse, sleepstudy = sleep, bern = bern, pois = pois)

# ---------------------------------------------------------------------------
# Fits
# ---------------------------------------------------------------------------

derive <- function(df, derived) {
  for (col in names(derived)) df[[col]] <- eval(parse(text = derived[[col]])[[1]], df)
  df
}
empty_obj <- structure(list(), names = character(0))

results <- list()
for (case_name in names(cases)) {
  spec <- cases[[case_name]]
  derived <- if (is.null(spec$derived)) character(0) else spec$derived
  train <- derive(datasets[[if (is.null(spec$dataset)) spec$data_name else spec$dataset]], derived)
  nd <- spec$newdata
  formula <- as.formula(spec$formula)
  glmm <- spec$fitter == "glmer"
  fam <- if (glmm) eval(parse(text = spec$family)[[1]]) else gaussian()
  if (is.function(fam)) fam <- fam()
  cat(sprintf("%-24s %s  [%s %s%s%s%s]\n", case_name, spec$formula, fam$family, fam$link,
              if (glmm) sprintf(", nAGQ = %d", spec$nAGQ) else sprintf(", REML = %s", spec$reml),
              if (!is.null(spec$weights)) paste0(", weights = ", spec$weights) else "",
              if (!is.null(spec$offset_arg)) paste0(", offset = ", spec$offset_arg) else ""))

  args <- list(formula = formula, data = train)
  if (!is.null(spec$weights)) args$weights <- train[[spec$weights]]
  if (!is.null(spec$offset_arg)) args$offset <- eval(parse(text = spec$offset_arg)[[1]], train)
  if (glmm) {
    args$family <- fam
    args$nAGQ <- spec$nAGQ
    res <- capture(do.call(glmer, args))
  } else {
    args$REML <- spec$reml
    res <- capture(do.call(lmer, args))
  }

  out <- list(dataset = spec$dataset,
              derived = if (length(derived)) as.list(derived) else empty_obj)
  if (is.null(spec$dataset) || length(derived)) out <- c(out, data_fields(train))
  out <- c(out, list(
    formula = spec$formula, fitter = spec$fitter, family = fam$family, link = fam$link,
    nAGQ = if (glmm) spec$nAGQ else NULL,
    weights = spec$weights, offset_arg = spec$offset_arg,
    reml = if (glmm) NULL else spec$reml))
  # keep the keys even when null
  for (k in c("nAGQ", "weights", "offset_arg", "reml")) if (is.null(out[[k]])) out[k] <- list(NULL)
  if (!is.null(res$error)) {
    cat("    ERROR:", res$error, "\n")
    out$error <- res$error
    out$lme4_messages <- str_array(c(res$warnings, res$messages))
    results[[case_name]] <- c(out, versions())
    next
  }
  fit <- res$value
  ll <- logLik(fit)
  theta <- getME(fit, "theta")
  beta <- fixef(fit)
  out <- c(out, list(
    deviance = if (glmm) deviance(fit) else deviance(fit, REML = FALSE),
    minus2loglik = -2 * as.numeric(ll),
    loglik = as.numeric(ll),
    loglik_df = attr(ll, "df"),
    aic = AIC(fit), bic = BIC(fit), nobs = nobs(fit)))
  if (glmm) {
    # -2 log-likelihood of the saturated model (mu = y), lme4's family$aic
    # without the 2 * npar; see the header on nAGQ > 1
    r <- fit@resp
    sat <- fam$aic(r$y, r$n, r$y, r$weights, 0)
    cmp <- getME(fit, "devcomp")$cmp
    out$saturated_minus2loglik <- sat
    lap <- unname(cmp["drsum"] + cmp["ldL2"] + cmp["ussq"])
    out$minus2loglik_parts <- list(drsum_ldL2_ussq = lap, plus_saturated = lap + sat)
  } else {
    out$objective <- unname(getME(fit, "devcomp")$cmp[if (isREML(fit)) "REML" else "dev"])
  }
  out <- c(out, list(
    devcomp_cmp = getME(fit, "devcomp")$cmp,
    theta = theta, theta_order = I(names(theta)),
    fixef = beta, fixef_order = I(names(beta)),
    vcov = matrix_rows(as.matrix(vcov(fit))),
    sigma = sigma(fit),
    singular = isSingular(fit),
    ngrps = ngrps(fit)))
  out <- c(out, ranef_fields(fit, data = train))
  fitted_resp <- unname(fitted(fit))
  fitted_link <- fam$linkfun(fitted_resp)
  out$fitted <- num_array(fitted_resp)
  out$fitted_link <- num_array(fitted_link)

  # predictions
  pred <- list(link = list(), response = list())
  re_forms <- list()
  pres <- capture({
    for (key in names(spec$re)) {
      rf <- spec$re[[key]]
      re_form <- if (rf == "NULL") NULL else if (rf == "NA") NA else as.formula(rf)
      for (type in c("link", "response")) {
        p <- predict(fit, newdata = nd, re.form = re_form, allow.new.levels = TRUE, type = type)
        pred[[type]][[key]] <- num_array(p)
      }
      re_forms[[key]] <- rf
      check_close(fam$linkinv(pred$link[[key]]), pred$response[[key]],
                  paste(case_name, key, "linkinv(link) vs response"))
    }
    ptrain <- predict(fit, newdata = train, type = "link")
  })
  if (!is.null(pres$error)) stop(case_name, ": predict failed: ", pres$error)
  out$newdata <- records(nd)
  out$pred <- pred
  out$re_forms <- re_forms
  if (!is.null(spec$offset_arg)) {
    off_nd <- eval(parse(text = spec$offset_arg)[[1]], nd)
    off_tr <- eval(parse(text = spec$offset_arg)[[1]], train)
    dropped <- max(abs(ptrain + off_tr - fitted_link) / pmax(1, abs(fitted_link))) < 1e-8
    out$offset_dropped_by_predict <- dropped
    if (dropped) {
      out$pred_with_offset <- list(
        link = lapply(pred$link, function(p) num_array(p + off_nd)),
        response = lapply(pred$link, function(p) num_array(fam$linkinv(p + off_nd))))
      ptrain <- ptrain + off_tr
    }
  }
  out$predict_check <- max(abs(ptrain - fitted_link) / pmax(1, abs(fitted_link)))
  check_close(ptrain, fitted_link, paste(case_name, "predict(train) vs fitted"), 1e-7)
  out <- c(out, conv_info(fit))
  out$lme4_messages <- str_array(c(res$warnings, res$messages))
  out$predict_messages <- str_array(unique(c(pres$warnings, pres$messages)))
  if (!is.null(spec$notes)) out$notes <- str_array(spec$notes)
  out <- c(out, versions())
  cat(sprintf("    deviance %.10g  -2logLik %.10g  theta %s\n    fixef %s\n", out$deviance,
              out$minus2loglik, paste(sprintf("%.6g", theta), collapse = " "),
              paste(sprintf("%s=%.6g", names(beta), beta), collapse = " ")))
  if (length(out$lme4_messages)) cat("    lme4:", paste(out$lme4_messages, collapse = " | "), "\n")
  results[[case_name]] <- out
}

# ---------------------------------------------------------------------------
# Sanity checks across cases
# ---------------------------------------------------------------------------

same_fit <- function(a, b, tol, what) {
  ra <- results[[a]]
  rb <- results[[b]]
  check_close(unlist(ra$fixef), unlist(rb$fixef), paste(what, "fixef"), tol)
  check_close(unlist(ra$theta), unlist(rb$theta), paste(what, "theta"), tol)
  pb <- if (is.null(rb$pred_with_offset)) rb$pred else rb$pred_with_offset
  check_close(unlist(ra$pred$response$all), unlist(pb$response$all), paste(what, "pred"), tol)
  cat(sprintf("check %-40s max |d fixef| %.2g  |d theta| %.2g  d(-2logLik) %.3g\n", what,
              max(abs(unlist(ra$fixef) - unlist(rb$fixef))),
              max(abs(unlist(ra$theta) - unlist(rb$theta))),
              ra$minus2loglik - rb$minus2loglik))
}
same_fit("cbpp_cbind_laplace", "cbpp_prop_laplace", 1e-4, "cbpp cbind vs proportion+weights (Laplace)")
same_fit("cbpp_cbind_agq9", "cbpp_prop_agq9", 1e-4, "cbpp cbind vs proportion+weights (AGQ 9)")
same_fit("lmer_offset_formula_ml", "lmer_offset_arg_ml", 1e-6, "lmer offset formula vs argument")
same_fit("poisson_crossed_offset", "poisson_offset_arg", 1e-4, "poisson offset formula vs argument")

write_checked(results, out_path)
