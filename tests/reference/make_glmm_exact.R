# lme4's GLMM fits solved to convergence: the glmer cases of lme4_glmm.json,
# refitted with PIRLS and the optimizer run to tight tolerances.
#
# Usage, from the repository root (after make_glmm.R):
#
#     Rscript tests/reference/make_glmm_exact.R
#
# Why: with its defaults (tolPwrss = 1e-7) glmer stops PIRLS while the
# conditional modes are still ~1e-3 from the mode, and evaluates the Laplace
# log-determinant at the working weights of the previous iteration; the
# Laplace deviance it minimises is then off by up to ~1e-3 (bernoulli_cloglog:
# 8e-4 at the same parameters), and its optimum by up to ~6e-4 in theta and
# beta (bernoulli_slope). Refitted with tolPwrss = 1e-12 and BOBYQA to
# rhoend = 1e-11 in both stages, lme4 gives the optimum of the Laplace (or
# AGQ) deviance itself, which mixedfx computes exactly; these are the values
# the tests hold mixedfx to (1e-6 relative in -2 log L, 1e-4 in theta and
# beta, 1e-5 in predictions). lme4_glmm.json keeps the default fits, which
# mixedfx must match or beat in log-likelihood.
#
# Each case is fitted twice (BOBYQA and Nelder-Mead, both to tight
# tolerances); the lower deviance is kept and the two must agree to 1e-4 in
# theta and beta (else the script stops).
#
# Writes tests/reference/lme4_glmm_exact.json: one object per glmer case of
# lme4_glmm.json, keyed by the same name, with
#   formula, family, link, nAGQ, weights, offset_arg   as in lme4_glmm.json
#   control        the glmerControl settings used
#   minus2loglik   -2 logLik(fit); for nAGQ > 1 WITHOUT the saturated part
#                  (as lme4 reports it), see lme4_glmm.json's header
#   saturated_minus2loglik   -2 log-likelihood of the saturated model
#   theta, fixef, vcov, ranef, condvar, condvar_layout, level_values,
#   fitted, fitted_link, pred, re_forms   as in lme4_glmm.json
#   agreement      max |difference| of theta and beta between the two optimizers
#   devfun_at      lme4's deviance function (tolPwrss = 1e-12) evaluated at
#                  fixed parameters: a list of {label, theta, fixef, value}
#                  ("exact": this fit's optimum; "default": lme4_glmm.json's
#                  estimates); value is -2 log L as the fit reports it (for
#                  nAGQ > 1 without the saturated part)

common_R <- file.path("tests", "reference", "common.R")
if (!file.exists(common_R)) stop("run from the repository root: ", common_R, " not found")
source(common_R)
source(file.path("tests", "reference", "fit_helpers.R"))

in_path <- file.path("tests", "reference", "lme4_glmm.json")
out_path <- file.path("tests", "reference", "lme4_glmm_exact.json")
ref <- fromJSON(in_path, simplifyVector = FALSE)

CONTROLS <- list(
  bobyqa = list(optimizer = c("bobyqa", "bobyqa"),
                optCtrl = list(rhoend = 1e-11, maxfun = 100000)),
  nelder_mead = list(optimizer = c("bobyqa", "Nelder_Mead"),
                     optCtrl = list(FtolAbs = 1e-14, FtolRel = 1e-15, XtolRel = 1e-12,
                                    maxfun = 100000)))
TOL_PWRSS <- 1e-14

# the training rows of a case: a bundled data set or the case's records
train_data <- function(case) {
  if (!is.null(case$dataset)) {
    df <- load_dataset(case$dataset)
    for (col in names(case$derived)) df[[col]] <- eval(parse(text = case$derived[[col]])[[1]], df)
    return(df)
  }
  df <- do.call(rbind.data.frame, lapply(case$data, function(r) as.data.frame(r)))
  for (col in names(case$column_types)) {
    type <- case$column_types[[col]]
    if (type == "factor") {
      df[[col]] <- factor(as.character(df[[col]]), levels = unlist(case$factor_levels[[col]]))
    } else if (type == "integer") {
      df[[col]] <- as.integer(df[[col]])
    } else {
      df[[col]] <- as.numeric(df[[col]])
    }
  }
  df
}

# the case's newdata, factors extended by their new labels (as make_glmm.R)
new_data <- function(case, train) {
  nd <- do.call(rbind.data.frame, lapply(case$newdata, function(r) as.data.frame(r)))
  for (col in names(nd)) {
    if (is.factor(train[[col]])) {
      x <- as.character(nd[[col]])
      nd[[col]] <- factor(x, levels = unique(c(levels(train[[col]]), x)))
    } else if (is.character(nd[[col]])) {
      nd[[col]] <- as.numeric(nd[[col]])
    }
  }
  nd
}

fit_case <- function(case, train, control) {
  args <- list(formula = as.formula(case$formula), data = train,
               family = eval(parse(text = case$family_call)[[1]]), nAGQ = case$nAGQ,
               control = do.call(glmerControl, c(control, list(tolPwrss = TOL_PWRSS))))
  if (!is.null(case$weights)) args$weights <- train[[case$weights]]
  if (!is.null(case$offset_arg)) args$offset <- eval(parse(text = case$offset_arg)[[1]], train)
  suppressWarnings(suppressMessages(do.call(glmer, args)))
}

family_call <- function(case) {
  if (case$link %in% c("logit", "log") && case$family %in% c("binomial", "poisson")) {
    return(case$family)
  }
  sprintf("%s(link = \"%s\")", case$family, case$link)
}

devfun_value <- function(case, train, theta, fixef) {
  args <- list(formula = as.formula(case$formula), data = train,
               family = eval(parse(text = case$family_call)[[1]]), nAGQ = case$nAGQ,
               control = glmerControl(tolPwrss = TOL_PWRSS), devFunOnly = TRUE)
  if (!is.null(case$weights)) args$weights <- train[[case$weights]]
  if (!is.null(case$offset_arg)) args$offset <- eval(parse(text = case$offset_arg)[[1]], train)
  dfun <- suppressWarnings(suppressMessages(do.call(glmer, args)))
  dfun(c(unlist(theta), unlist(fixef)))
}

results <- list()
for (name in names(ref)) {
  case <- ref[[name]]
  if (!identical(case$fitter, "glmer")) next
  case$family_call <- family_call(case)
  train <- train_data(case)
  nd <- new_data(case, train)
  fits <- lapply(CONTROLS, function(ctl) fit_case(case, train, ctl))
  devs <- vapply(fits, function(f) -2 * as.numeric(logLik(f)), 0)
  pars <- lapply(fits, function(f) c(getME(f, "theta"), fixef(f)))
  agreement <- max(abs(pars[[1]] - pars[[2]]))
  cat(sprintf("%-24s -2logLik %.12g / %.12g  agreement %.2g\n", name, devs[1], devs[2],
              agreement))
  if (agreement > 1e-4) cat("    (the two fits disagree by more than 1e-4)\n")
  fit <- fits[[which.min(devs)]]
  fam <- family(fit)
  theta <- getME(fit, "theta")
  beta <- fixef(fit)
  r <- fit@resp
  out <- list(
    formula = case$formula, family = case$family, link = case$link, nAGQ = case$nAGQ,
    weights = case$weights, offset_arg = case$offset_arg,
    control = list(tolPwrss = TOL_PWRSS, kept = names(CONTROLS)[which.min(devs)],
                   optimizers = CONTROLS),
    minus2loglik = -2 * as.numeric(logLik(fit)),
    saturated_minus2loglik = fam$aic(r$y, r$n, r$y, r$weights, 0),
    agreement = agreement,
    theta = theta, theta_order = I(names(theta)),
    fixef = beta, fixef_order = I(names(beta)),
    vcov = matrix_rows(as.matrix(vcov(fit))))
  for (k in c("weights", "offset_arg")) if (is.null(out[[k]])) out[k] <- list(NULL)
  out <- c(out, ranef_fields(fit, data = train))
  out$fitted <- num_array(fitted(fit))
  out$fitted_link <- num_array(fam$linkfun(fitted(fit)))
  pred <- list(link = list(), response = list())
  for (key in names(case$re_forms)) {
    rf <- case$re_forms[[key]]
    re_form <- if (rf == "NULL") NULL else if (rf == "NA") NA else as.formula(rf)
    for (type in c("link", "response")) {
      p <- predict(fit, newdata = nd, re.form = re_form, allow.new.levels = TRUE, type = type)
      if (!is.null(case$offset_arg) && isTRUE(case$offset_dropped_by_predict)) {
        off <- eval(parse(text = case$offset_arg)[[1]], nd)
        p <- predict(fit, newdata = nd, re.form = re_form, allow.new.levels = TRUE,
                     type = "link") + off
        if (type == "response") p <- fam$linkinv(p)
      }
      pred[[type]][[key]] <- num_array(p)
    }
  }
  out$pred <- pred
  out$pred_offset_note <- if (isTRUE(case$offset_dropped_by_predict))
    "offset_arg added to the predictions (lme4's predict(newdata) drops it)" else NULL
  out$re_forms <- case$re_forms
  out$devfun_at <- list(
    list(label = "exact", theta = theta, fixef = beta,
         value = devfun_value(case, train, theta, beta)),
    list(label = "default", theta = unlist(case$theta), fixef = unlist(case$fixef),
         value = devfun_value(case, train, case$theta, case$fixef)))
  out <- c(out, versions())
  results[[name]] <- out
}

write_checked(results, out_path)
