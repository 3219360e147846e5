# lme4 reference fits of 40 randomly generated generalized linear mixed
# models, each with its full data, so that Python fits exactly the same rows.
#
# Usage, from the repository root:
#
#     Rscript tests/reference/make_glmm_random_designs.R
#
# (or `make reference`).  Needs R with lme4 and jsonlite.  Takes ~20 seconds.
#
# Generator (set.seed(20261201), then designs 1..N in order; the data, not
# the generator, are the reference: Python reads the records):
#   - design i uses template TEMPLATES[(i - 1) %% length(TEMPLATES) + 1]:
#     Bernoulli logit with a random intercept, a correlated slope (x | g), an
#     uncorrelated slope (x || g), crossed intercepts; binomial counts as
#     cbind(s, fl) with a fixed factor; proportions with prior weights;
#     Bernoulli probit and cloglog; Poisson with a random intercept, an
#     offset(log(t)), crossed and nested (g/h) intercepts, a slope, and a
#     factor interaction; Bernoulli with x shifted by 1e4
#   - n ~ uniform on 80..500 rows; G groups of g between 5 and
#     min(40, n / 5), rows assigned with unequal probabilities (each group
#     at least 2 rows); h (crossed or nested in g) has 4..15 groups
#   - labels of g alternate string / integer by design; strings come from a
#     pool with look-alikes ("007", "7", "07", "a", "A", "x.1", "x_1") that
#     are DISTINCT levels, topped up with "s001", ...; h is integer
#   - x, z ~ N(0, 1) rounded to 4 decimals; f a 3-level factor c("lo",
#     "mid", "hi"); random-effect SDs from {0, 0.3, 0.8, 1.5} (0 gives
#     singular fits); fixed effects from U(-1.5, 1.5)
#   - Fits: glmer(formula, data, family, weights) with nAGQ = 1 (Laplace),
#     solved twice with tolPwrss = 1e-12 (BOBYQA and Nelder-Mead, maxfun
#     1e5); the fit with the lower -2 log L is kept and `agreement` is the
#     largest difference of the two fits' (theta, beta) (null when one
#     failed)
#
# Writes tests/reference/lme4_glmm_random_designs.json: an object keyed by
# design name ("g01_bern_int", ...); each design has
#   template, formula, family, link, weights (the prior-weights column, or
#   null), n
#   column_types, factor_levels, data   the rows (data_fields)
#   minus2loglik   -2 * logLik(fit) of the kept fit
#   agreement      see above
#   singular       isSingular(fit)
#   theta, theta_order, fixef, fixef_order, vcov (rows, fixef order)
#   vcov_fd        the fixed effects' block of 2 H^-1, H the Hessian of lme4's
#                  deviance function over (theta, beta) at the estimates by
#                  central differences (step 1e-3); lme4's vcov uses its own
#                  finite-difference Hessian, which is off by a factor 2 in
#                  g20 (var(x) 1.52e-3 where these differences, numDeriv and
#                  lme4's RX approximation give 3.19e-3, 3.19e-3 and 3.18e-3);
#                  null where lme4's PIRLS fails at a step (the shifted predictor)
#   devfun         lme4's deviance function (devFunOnly, tolPwrss = 1e-14) at
#                  the kept fit's (theta, beta)
#   devfun_tol_pwrss  1e-14, or 1e-12 where lme4's PIRLS fails at 1e-14
#   ranef, condvar, condvar_layout, condvar_terms, level_values  (ranef_fields)
#   fitted         fitted(fit) (the mean) in row order
#   newdata, newdata_types   24 new rows (records) and their column types: 18
#                  with training labels and fresh predictors, 6 with labels
#                  never seen (see new_rows)
#   pred           {link | response: {all | none | "~ (term)": [n_new]}}:
#                  predict(fit, newdata, re.form = NULL | NA | the one term,
#                  allow.new.levels = TRUE, type); single terms only where the
#                  formula has several
#   lme4_version, matrix_version, r_version

common_R <- file.path("tests", "reference", "common.R")
if (!file.exists(common_R)) stop("run from the repository root: ", common_R, " not found")
source(common_R)  # lme4, jsonlite; to_json, matrix_rows, records
source(file.path("tests", "reference", "fit_helpers.R"))
invisible(Sys.setlocale("LC_COLLATE", "C"))

out_path <- file.path("tests", "reference", "lme4_glmm_random_designs.json")
N_DESIGNS <- 40L
TOL_PWRSS <- 1e-12
# lme4's deviance function stops PIRLS short at tolPwrss = 1e-12: up to 5e-8
# (relative) off the Laplace deviance at the exact modes, in either direction;
# at 1e-14 up to 2.4e-9 (probit and cloglog, where its PIRLS converges
# linearly) and ~1e-14 for the logit slope model g17 at 7 points
DEVFUN_TOL_PWRSS <- 1e-14
set.seed(20261201)

TEMPLATES <- c("bern_int", "bern_slope", "bern_uncorr", "cbind_factor", "prop_weights",
               "probit", "cloglog", "pois_int", "pois_offset", "pois_crossed",
               "pois_nested", "pois_slope", "bern_shift", "pois_factor_inter", "bern_crossed")
STRING_POOL <- c("007", "7", "07", "a", "A", "x.1", "x_1")

group_col <- function(n, G, type) {
  idx <- assign_groups(n, G)
  lab <- if (type == "integer") {
    sample(-5:500, G)
  } else {
    sample(c(STRING_POOL, sprintf("s%03d", seq_len(max(0, G - length(STRING_POOL))))), G)
  }
  list(values = lab[idx], idx = idx, G = G)
}
draw_sd <- function(k) sample(c(0, 0.3, 0.8, 1.5), k, replace = TRUE, prob = c(0.1, 0.3, 0.35, 0.25))

# one design: list(data, formula, family, link, weights)
make_design <- function(i, template) {
  n <- sample(80:500, 1)
  G <- sample(5:max(5, min(40, n %/% 5)), 1)
  g <- group_col(n, G, c("integer", "string")[i %% 2 + 1])
  d <- data.frame(x = round(rnorm(n), 4), z = round(rnorm(n), 4))
  d$f <- factor(sample(c("lo", "mid", "hi"), n, replace = TRUE), levels = c("lo", "mid", "hi"))
  sds <- draw_sd(2)
  b0 <- rnorm(G, 0, sds[1])
  b1 <- rnorm(G, 0, sds[2])
  beta <- round(runif(2, -1.5, 1.5), 3)
  eta <- beta[1] + beta[2] * d$x + b0[g$idx]
  d$g <- g$values
  if (template %in% c("pois_crossed", "pois_nested", "bern_crossed")) {
    h <- group_col(n, sample(4:15, 1), "integer")
    eta <- eta + rnorm(h$G, 0, draw_sd(1))[h$idx]
    d$h <- h$values
  }
  if (template %in% c("bern_slope", "bern_uncorr", "pois_slope")) eta <- eta + b1[g$idx] * d$x
  if (template %in% c("cbind_factor", "pois_factor_inter")) {
    eta <- eta + c(0, 0.5, -0.4)[as.integer(d$f)]
  }
  bern <- function(eta, linkinv = plogis) rbinom(n, 1, linkinv(eta))
  out <- list(family = "binomial", link = "logit", weights = NULL)
  if (template %in% c("bern_int", "bern_slope", "bern_uncorr", "bern_crossed", "bern_shift")) {
    d$y <- bern(eta)
    out$formula <- switch(template, bern_slope = "y ~ x + (x | g)",
                          bern_uncorr = "y ~ x + (x || g)", bern_crossed = "y ~ x + (1 | g) + (1 | h)",
                          "y ~ x + (1 | g)")
    if (template == "bern_shift") {
      d$x <- d$x + 1e4
      out$shift <- 1e4
    }
  } else if (template == "cbind_factor") {
    d$m <- sample(1:12, n, replace = TRUE)
    d$s <- rbinom(n, d$m, plogis(eta))
    d$fl <- d$m - d$s
    out$formula <- "cbind(s, fl) ~ x + f + (1 | g)"
  } else if (template == "prop_weights") {
    d$m <- sample(1:15, n, replace = TRUE)
    d$p <- rbinom(n, d$m, plogis(eta)) / d$m
    out$formula <- "p ~ x + (1 | g)"
    out$weights <- "m"
  } else if (template == "probit") {
    d$y <- bern(eta, pnorm)
    out$formula <- "y ~ x + (1 | g)"
    out$link <- "probit"
  } else if (template == "cloglog") {
    d$y <- bern(eta - 0.5, function(e) 1 - exp(-exp(e)))
    out$formula <- "y ~ x + (1 | g)"
    out$link <- "cloglog"
  } else {
    out$family <- "poisson"
    out$link <- "log"
    mu <- exp(0.6 * eta + 0.5)
    if (template == "pois_offset") {
      d$t <- round(runif(n, 0.5, 5), 2)
      mu <- d$t * mu
    }
    d$y <- rpois(n, mu)
    out$formula <- switch(template, pois_offset = "y ~ x + offset(log(t)) + (1 | g)",
                          pois_crossed = "y ~ x + (1 | g) + (1 | h)",
                          pois_nested = "y ~ x + (1 | g/h)", pois_slope = "y ~ x + (x | g)",
                          pois_factor_inter = "y ~ x * f + (1 | g)", "y ~ x + (1 | g)")
  }
  d$z <- NULL  # drawn (it is part of the designs' random stream) but unused
  out$data <- d
  out
}

# 24 new rows: 18 with training labels (fresh x, f, t), 6 with labels never seen
# ("new1", ... or 10001, ... by the column's type), mixed into both grouping
# columns where there are two; drawn from their own seed
new_rows <- function(design, seed) {
  main_stream <- .Random.seed  # the designs' stream is left as it was
  on.exit(assign(".Random.seed", main_stream, envir = globalenv()))
  set.seed(seed)
  d <- design$data
  n_new <- 24L
  nd <- data.frame(x = round(rnorm(n_new), 4))
  if (!is.null(d$t)) nd$t <- round(runif(n_new, 0.5, 5), 2)
  if (!is.null(d$f)) nd$f <- factor(sample(levels(d$f), n_new, replace = TRUE), levels = levels(d$f))
  unseen <- function(values, k) if (is.character(values)) sprintf("new%d", seq_len(k)) else 10000L + seq_len(k)
  for (col in intersect(c("g", "h"), names(d))) {
    v <- sample(unique(d[[col]]), n_new, replace = TRUE)
    fresh <- sample(n_new, 6L)
    v[fresh] <- unseen(d[[col]], 6L)
    nd[[col]] <- v
  }
  if (!is.null(design$shift)) nd$x <- nd$x + design$shift
  nd
}

glmer_args <- function(design) {
  fam <- get(design$family)(link = design$link)
  args <- list(formula = as.formula(design$formula), data = design$data, family = fam)
  if (!is.null(design$weights)) args$weights <- design$data[[design$weights]]
  args
}

fit_with <- function(design, optimizer) {
  args <- glmer_args(design)
  args$control <- glmerControl(optimizer = optimizer, tolPwrss = TOL_PWRSS,
                               optCtrl = list(maxfun = 1e5))
  tryCatch(suppressWarnings(suppressMessages(do.call(glmer, args))), error = function(e) NULL)
}

# lme4's deviance function at DEVFUN_TOL_PWRSS, or at TOL_PWRSS where its PIRLS
# cannot get there (the shifted predictor); the tolerance used is attribute "tol"
deviance_function <- function(design) {
  make <- function(tol) {
    args <- glmer_args(design)
    args$control <- glmerControl(tolPwrss = tol)
    args$devFunOnly <- TRUE
    dfun <- suppressWarnings(suppressMessages(do.call(glmer, args)))
    structure(dfun, tol = tol)
  }
  tryCatch(make(DEVFUN_TOL_PWRSS), error = function(e) make(TOL_PWRSS))
}

# the fixed effects' block of 2 H^-1, H the Hessian of the deviance over
# (theta, beta) by central differences with step FD_STEP (lme4's vcov uses its
# own finite-difference Hessian; numDeriv's Richardson extrapolation takes steps
# so small that the deviance function's 1e-9 noise shows: 1.3e-3 off on g17)
FD_STEP <- 1e-3
vcov_fd <- function(dfun, theta, beta) {
  x <- c(theta, beta)
  k <- length(x)
  H <- matrix(0, k, k)
  for (i in seq_len(k)) for (j in i:k) {
    ei <- FD_STEP * (seq_len(k) == i)
    ej <- FD_STEP * (seq_len(k) == j)
    H[i, j] <- H[j, i] <- (dfun(x + ei + ej) - dfun(x + ei - ej) - dfun(x - ei + ej) +
                             dfun(x - ei - ej)) / (4 * FD_STEP^2)
  }
  V <- 2 * solve(H)
  kt <- length(theta)
  V[-seq_len(kt), -seq_len(kt), drop = FALSE]
}

# each random-effects term of a formula alone, as lme4's re.form: "~ (1 | g)", ...
# (only for formulas with more than one term; nested g/h is two terms, h:g and g)
re_terms <- function(formula) {
  bars <- lme4::findbars(as.formula(formula))
  if (length(bars) < 2L) return(character(0))
  vapply(bars, function(b) paste0("~ (", deparse(b), ")"), "")
}

results <- list()
for (i in seq_len(N_DESIGNS)) {
  template <- TEMPLATES[(i - 1L) %% length(TEMPLATES) + 1L]
  design <- make_design(i, template)
  name <- sprintf("g%02d_%s", i, template)
  fits <- Filter(Negate(is.null), lapply(c("bobyqa", "Nelder_Mead"), function(o) fit_with(design, o)))
  if (length(fits) == 0L) stop(name, ": glmer failed with both optimizers")
  devs <- vapply(fits, function(f) -2 * as.numeric(logLik(f)), 0)
  fit <- fits[[which.min(devs)]]
  pars <- lapply(fits, function(f) c(getME(f, "theta"), fixef(f)))
  theta <- getME(fit, "theta")
  beta <- fixef(fit)
  dfun <- deviance_function(design)
  out <- list(
    template = template, formula = design$formula, family = design$family, link = design$link,
    weights = design$weights, n = nrow(design$data),
    minus2loglik = min(devs),
    agreement = if (length(fits) == 2L) max(abs(pars[[1]] - pars[[2]])) else NULL,
    singular = isSingular(fit),
    theta = theta, theta_order = I(names(theta)),
    fixef = beta, fixef_order = I(names(beta)),
    vcov = matrix_rows(as.matrix(vcov(fit))),
    vcov_fd = tryCatch(matrix_rows(vcov_fd(dfun, theta, beta)), error = function(e) NULL),
    devfun = dfun(c(theta, beta)), devfun_tol_pwrss = attr(dfun, "tol"))
  for (k in c("weights", "agreement", "vcov_fd")) if (is.null(out[[k]])) out[k] <- list(NULL)
  out <- c(out, ranef_fields(fit, data = design$data), data_fields(design$data))
  out$fitted <- num_array(fitted(fit))
  nd <- new_rows(design, seed = 1000L + i)
  out$newdata <- records(nd)
  out$newdata_types <- lapply(nd, column_type)
  forms <- c(list(all = NULL, none = NA), setNames(lapply(re_terms(design$formula), as.formula),
                                                    re_terms(design$formula)))
  out$pred <- lapply(c(link = "link", response = "response"), function(type) {
    lapply(forms, function(rf) num_array(predict(fit, newdata = nd, re.form = rf,
                                                  allow.new.levels = TRUE, type = type)))
  })
  out <- c(out, versions())
  results[[name]] <- out
  cat(sprintf("%-24s n = %3d  -2logLik %.10g  agreement %s%s\n", name, nrow(design$data),
              min(devs), format(out$agreement, digits = 2), if (out$singular) "  singular" else ""))
}

write_checked(results, out_path)
