# lme4 reference fits for the mixedfx test suite.
#
# Usage, from the repository root:
#
#     Rscript tests/reference/make_reference.R
#
# (or `make reference`).  Needs R with the lme4 and jsonlite packages
# (Debian: apt-get install r-base-core r-cran-lme4 r-cran-jsonlite).
# The InstEval case takes about a minute.
#
# Reads the data sets bundled with mixedfx (src/mixedfx/datasets/data/*.csv.gz,
# written by tests/reference/export_datasets.R), not lme4's own copies, so that
# R and Python fit exactly the same numbers; factors are rebuilt with the level
# order recorded in src/mixedfx/datasets/data/levels.json.
#
# Writes tests/reference/lme4_fits.json: one object per case, keyed by case
# name.  Numbers are written with the fewest significant digits (15 to 17)
# that read back to the identical double, so no precision is lost
# (jsonlite 1.8 caps numbers at 15 significant digits, hence the small
# writer in tests/reference/common.R, shared with make_predictions.R).
#
# Fields of each case:
#   dataset, formula, reml      what was fitted (formula exactly as passed to lmer)
#   objective                   REML criterion (reml) or deviance, from devcomp$cmp
#   theta, theta_order          getME(fit, "theta"), names in lme4's order
#   sigma, fixef, fixef_order, vcov (rows in fixef order)
#   loglik, aic, bic, nobs, singular, ngrps
#   ranef     {group: {levels, terms, values (rows = levels, columns = terms)}}
#   condvar   {group: ...}, from attr(ranef(fit, condVar = TRUE)[[group]], "postVar");
#             layout described in condvar_note (and condvar_layout per group)
#   fitted    fitted(fit) in data row order (insteval: fitted_head, the first 200)
#   varcorr   as.data.frame(VarCorr(fit)) as records (NA -> null)
#   feval, optimizer, optimizer_message, lme4_messages
#   lme4_version, matrix_version, r_version

common_R <- file.path("tests", "reference", "common.R")
if (!file.exists(common_R)) stop("run from the repository root: ", common_R, " not found")
source(common_R)  # lme4, jsonlite; data_dir, load_dataset, to_json, matrix_rows

out_path <- file.path("tests", "reference", "lme4_fits.json")

# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

cases <- list(
  dyestuff_reml = list(dataset = "dyestuff", formula = "Yield ~ 1 + (1 | Batch)", reml = TRUE),
  dyestuff_ml = list(dataset = "dyestuff", formula = "Yield ~ 1 + (1 | Batch)", reml = FALSE),
  dyestuff2_reml = list(dataset = "dyestuff2", formula = "Yield ~ 1 + (1 | Batch)", reml = TRUE),
  penicillin_reml = list(dataset = "penicillin",
                         formula = "diameter ~ 1 + (1 | plate) + (1 | sample)", reml = TRUE),
  pastes_reml = list(dataset = "pastes", formula = "strength ~ 1 + (1 | batch/cask)",
                     reml = TRUE),
  sleepstudy_reml = list(dataset = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)",
                         reml = TRUE),
  sleepstudy_ml = list(dataset = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)",
                       reml = FALSE),
  sleepstudy_uncorr_reml = list(dataset = "sleepstudy",
                                formula = "Reaction ~ Days + (Days || Subject)", reml = TRUE),
  orthodont_interaction_reml = list(dataset = "orthodont",
                                    formula = "distance ~ age * Sex + (1 | Subject)",
                                    reml = TRUE),
  sleepstudy_nointercept_ml = list(dataset = "sleepstudy",
                                   formula = "Reaction ~ Days + (0 + Days | Subject)",
                                   reml = FALSE),
  insteval_ml = list(dataset = "insteval",
                     formula = "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)",
                     reml = FALSE)
)

condvar_note <- paste(
  "condvar[group] comes from attr(ranef(fit, condVar = TRUE)[[group]], 'postVar'),",
  "conditional variances of the random effects given the data, on the response scale",
  "(they include sigma^2).",
  "Layout 'array' (one random-effects term for the group): a list with one q x q matrix",
  "(list of rows) per level, levels in the order of ranef[group]$levels, rows and columns",
  "in the order of ranef[group]$terms.",
  "Layout 'per_term' (several terms share the grouping factor, e.g. (Days || Subject),",
  "which lme4 expands to (1 | Subject) + (0 + Days | Subject)): lme4 returns a list with",
  "one array per term, so condvar[group] is an object keyed by term name whose value is",
  "a list, one per level, of that term's own q_t x q_t matrix; covariances between",
  "different terms of the same group are not given by lme4."
)

fit_case <- function(case_name, spec, data_cache) {
  df <- data_cache[[spec$dataset]]
  cat(sprintf("fitting %-28s %s  (REML = %s)\n", case_name, spec$formula, spec$reml))
  elapsed <- system.time(
    fit <- lmer(as.formula(spec$formula), data = df, REML = spec$reml)
  )[["elapsed"]]

  reml <- isREML(fit)
  stopifnot(reml == spec$reml)
  objective <- unname(getME(fit, "devcomp")$cmp[if (reml) "REML" else "dev"])
  theta <- getME(fit, "theta")
  beta <- fixef(fit)
  vc <- as.matrix(vcov(fit))

  re <- ranef(fit, condVar = TRUE)
  ranef_out <- list()
  condvar_out <- list()
  condvar_layout <- list()
  for (grp in names(re)) {
    r <- re[[grp]]
    ranef_out[[grp]] <- list(
      levels = I(rownames(r)),
      terms = I(colnames(r)),
      values = matrix_rows(as.matrix(r))
    )
    pv <- attr(r, "postVar")
    per_level <- function(arr) {
      lapply(seq_len(dim(arr)[3]), function(k) {
        matrix_rows(matrix(arr[, , k], dim(arr)[1], dim(arr)[2]))
      })
    }
    if (is.list(pv)) {
      condvar_layout[[grp]] <- "per_term"
      # name the per-term arrays: lme4 names them by term when it can
      term_arrays <- lapply(pv, per_level)
      if (is.null(names(pv)) || any(names(pv) == "")) {
        stop("unnamed per-term postVar for ", grp)
      }
      condvar_out[[grp]] <- term_arrays
    } else {
      condvar_layout[[grp]] <- "array"
      stopifnot(dim(pv)[3] == nrow(r), dim(pv)[1] == ncol(r))
      condvar_out[[grp]] <- per_level(pv)
    }
  }

  vcdf <- as.data.frame(VarCorr(fit))
  varcorr <- lapply(seq_len(nrow(vcdf)), function(i) {
    list(grp = vcdf$grp[i], var1 = vcdf$var1[i], var2 = vcdf$var2[i],
         vcov = vcdf$vcov[i], sdcor = vcdf$sdcor[i])
  })

  fitted_values <- unname(fitted(fit))
  msgs <- fit@optinfo$conv$lme4$messages

  out <- list(
    dataset = spec$dataset,
    formula = spec$formula,
    reml = reml,
    objective = objective,
    theta = theta,
    theta_order = I(names(theta)),
    sigma = sigma(fit),
    fixef = beta,
    fixef_order = I(names(beta)),
    vcov = matrix_rows(vc),
    loglik = as.numeric(logLik(fit)),
    aic = AIC(fit),
    bic = BIC(fit),
    nobs = nobs(fit),
    singular = isSingular(fit),
    ngrps = ngrps(fit),
    ranef = ranef_out,
    condvar = condvar_out,
    condvar_layout = condvar_layout,
    condvar_note = condvar_note
  )
  if (spec$dataset == "insteval") {
    out$fitted_head <- I(fitted_values[seq_len(200)])
  } else {
    out$fitted <- I(fitted_values)
  }
  out <- c(out, list(
    varcorr = varcorr,
    feval = fit@optinfo$feval,
    optimizer = fit@optinfo$optimizer,
    optimizer_message = fit@optinfo$message,
    lme4_messages = I(if (is.null(msgs)) character(0) else as.character(msgs)),
    lme4_version = as.character(packageVersion("lme4")),
    matrix_version = as.character(packageVersion("Matrix")),
    r_version = R.version.string
  ))
  cat(sprintf("    objective %.10g  theta %s  (%.1f s)\n", objective,
              paste(sprintf("%.7g", theta), collapse = " "), elapsed))
  out
}

data_cache <- list()
for (name in unique(vapply(cases, function(s) s$dataset, ""))) {
  data_cache[[name]] <- load_dataset(name)
}

results <- list()
for (case_name in names(cases)) {
  results[[case_name]] <- fit_case(case_name, cases[[case_name]], data_cache)
}

writeLines(to_json(results), out_path, useBytes = TRUE)
# check: the file parses and gives back exactly the doubles that were written
back <- fromJSON(out_path, simplifyVector = FALSE)
for (case_name in names(results)) {
  r <- results[[case_name]]
  b <- back[[case_name]]
  stopifnot(
    identical(as.numeric(b$objective), r$objective),
    identical(as.numeric(unlist(b$theta)), unname(r$theta)),
    identical(as.numeric(unlist(b$fixef)), unname(r$fixef)),
    identical(as.numeric(unlist(b$vcov)), as.numeric(unlist(r$vcov))),
    identical(as.numeric(unlist(b$fitted)), as.numeric(unlist(r$fitted)))
  )
}
cat("wrote", out_path, "\n")
