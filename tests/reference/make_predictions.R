# lme4 reference predictions for the mixedfx test suite: prediction modes
# (re.form, new levels), prediction from "given" rows, and Henderson
# standard errors.
#
# Usage, from the repository root:
#
#     Rscript tests/reference/make_predictions.R
#
# (or `make reference`, which also runs make_reference.R).  Needs R with the
# lme4 and jsonlite packages.  Takes a few seconds.
#
# Reads the bundled data sets (src/mixedfx/datasets/data/*.csv.gz, factors in
# the level order of levels.json) through tests/reference/common.R, which
# also holds the full-precision JSON writer shared with make_reference.R.
#
# Writes tests/reference/lme4_predictions.json: one object per case, keyed by
# case name.  Every case has
#   dataset, formula, reml   the model, fitted with lmer(formula, data, REML = reml)
#   theta, sigma, fixef      that fit's parameters (the same fits as in
#                            lme4_fits.json), the values held fixed below
#   newdata                  rows to predict, as records: the predictors and
#                            grouping factors only, labels as strings
#   lme4_version, r_version
# and results, one number per newdata row, in row order:
#
# Prediction modes (cases sleepstudy, penicillin, pastes, orthodont):
#   pred_all        predict(fit, newdata, allow.new.levels = TRUE): fixed effects
#                   plus the BLUPs of every known level; new levels contribute
#                   0 (a new cask in a known batch keeps the batch effect)
#   pred_none       re.form = NA: fixed effects only
#   pred_<name>     re.form given in re_forms[pred_<name>], e.g. pred_intercept
#                   is re.form = ~(1 | Subject) on a (Days | Subject) fit: the
#                   intercept column of the term only
#   re_forms        the re.form behind each pred_* field ("NULL", "NA", or a formula)
#
# Given rows (cases *_given*): parameters beta, theta, sigma held at the fit
# (no refit), the conditional modes of the random effects from the training
# rows plus the given rows,
#     u = (Lambda'Z'Z Lambda + I)^-1 Lambda'Z'(y - X beta),  b = Lambda u,
# over all rows at once, with Z and Lambda from lme4::lFormula on
# rbind(training, given) (new levels appended) and Lambda filled from theta
# through Lind.  Fields:
#   given           the given rows, as records, with the response
#   b_given         b of the given rows' group after conditioning, {term: value}
#                   (for penicillin_given: the new plate "zz")
#   b_sample        (penicillin_given) the conditioned sample effects, all
#                   levels: {levels, terms, values (rows = levels)}
#   pred_given      x'beta + z'b for newdata with the conditioned b (levels
#                   still unknown would contribute 0)
# For the single-factor cases the script also checks the per-group formula
#     b_i = (Z_i'Z_i + sigma^2 G^-1)^-1 Z_i'(y_i - X_i beta)
# over the group's training and given rows against the joint solve (1e-8).
#
# Standard errors (cases sleepstudy and penicillin), Henderson, parameters at
# their estimates, from the training rows only:
#     C_u = [X'X, X'Z Lambda; Lambda'Z'X, Lambda'Z'Z Lambda + I]
#   se_confidence        for pred_all: sqrt(sigma^2 v'C_u^-1 v + sum over the
#                        terms whose level is NEW in this row of z_t'Sigma_t z_t),
#                        v = [x; Lambda'z], z the row's random-effects design
#                        for known levels only (0 for new levels), z_t the
#                        row's model-matrix values for term t, and
#                        Sigma_t = sigma^2 T_t T_t' the covariance of one
#                        level's effects for term t
#   se_prediction        sqrt(se_confidence^2 + sigma^2)
#   se_confidence_none   for pred_none: sqrt(x' vcov(fit) x)
#   se_prediction_none   sqrt(x' vcov(fit) x + sum over all terms of
#                        z_t'Sigma_t z_t + sigma^2)
#   notes                cross-checks made (and lme4 limitations met)
#
# Cross-checks done here (stopifnot): the hand-built predictions with the
# fit's own b reproduce every predict() result above; the conditional-mode
# solve with no given rows reproduces ranef(fit); sigma^2 times the beta
# block of C_u^-1 is vcov(fit); for rows whose every level is new, the
# re = all se equals the re = none se with the prior variances added.

common_R <- file.path("tests", "reference", "common.R")
if (!file.exists(common_R)) stop("run from the repository root: ", common_R, " not found")
source(common_R)  # lme4, jsonlite; data_dir, load_dataset, to_json, matrix_rows
suppressPackageStartupMessages(library(Matrix))

out_path <- file.path("tests", "reference", "lme4_predictions.json")
tol <- 1e-8

check_close <- function(a, b, what, tolerance = tol) {
  a <- as.numeric(a)
  b <- as.numeric(b)
  err <- max(abs(a - b) / pmax(1, abs(b)))
  if (length(a) != length(b) || !(err <= tolerance)) {
    stop(sprintf("check failed: %s (max rel. difference %g)", what, err))
  }
  invisible(TRUE)
}

# one number per newdata row: always a JSON array, never an object keyed by row name
num_array <- function(x) I(unname(as.numeric(x)))

# ---------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------

# a data frame from row records; label columns of `like` become factors with
# the levels of `like` followed by the new labels in order of appearance
records_frame <- function(rows, like) {
  cols <- names(rows[[1]])
  out <- lapply(cols, function(col) {
    vals <- unlist(lapply(rows, function(r) r[[col]]))
    if (is.factor(like[[col]])) {
      lev <- unique(c(levels(like[[col]]), as.character(vals)))
      factor(as.character(vals), levels = lev, ordered = is.ordered(like[[col]]))
    } else {
      as.numeric(vals)
    }
  })
  names(out) <- cols
  as.data.frame(out, stringsAsFactors = FALSE)
}

# rbind of two frames with the columns of `a`; factor levels: a's, then b's new ones
stack_frames <- function(a, b) {
  out <- lapply(names(a), function(col) {
    x <- a[[col]]
    y <- b[[col]]
    if (is.factor(x)) {
      lab <- c(as.character(x), as.character(y))
      factor(lab, levels = unique(c(levels(x), lab)), ordered = is.ordered(x))
    } else {
      c(x, y)
    }
  })
  names(out) <- names(a)
  as.data.frame(out, stringsAsFactors = FALSE)
}

# newdata frame with a dummy response so that lFormula can build its design
with_response <- function(nd, response) {
  nd[[response]] <- 0
  nd
}

# ---------------------------------------------------------------------------
# Random-effects bookkeeping (lme4 layout: per term, levels outer, term
# columns inner, terms in reTrms order)
# ---------------------------------------------------------------------------

re_layout <- function(rt) {
  asg <- attr(rt$flist, "assign")
  lapply(seq_along(rt$cnms), function(t) {
    list(group = names(rt$cnms)[t], terms = rt$cnms[[t]], k = length(rt$cnms[[t]]),
         levels = levels(rt$flist[[asg[t]]]), offset = rt$Gp[t],
         factor = rt$flist[[asg[t]]])
  })
}

same_terms <- function(l1, l2) {
  identical(lapply(l1, function(t) list(t$group, t$terms)),
            lapply(l2, function(t) list(t$group, t$terms)))
}

lambdat_at <- function(rt, theta) {
  lt <- rt$Lambdat
  lt@x <- unname(theta)[rt$Lind]
  lt
}

# per term: the relative factor T_t of one level (Lambda = blockdiag of T_t)
term_factors <- function(layout, lambdat) {
  lapply(layout, function(t) {
    idx <- t$offset + seq_len(t$k)
    t(as.matrix(lambdat[idx, idx, drop = FALSE]))
  })
}

# design of some rows of a stacked frame (reTrms rt2), mapped onto the
# random-effects columns of a reference system (`base`, a re_layout):
#   Z    rows x q_base, the rows' design for levels known to base (0 otherwise)
#   new  per term, logical: the row's level is not in base
#   zt   per term, rows x k_t: the row's model-matrix values for the term
rows_design <- function(rt2, base, rows) {
  lay2 <- re_layout(rt2)
  stopifnot(same_terms(lay2, base))
  q <- sum(vapply(base, function(t) t$k * length(t$levels), 0))
  Z <- matrix(0, length(rows), q)
  new <- list()
  zt <- list()
  for (t in seq_along(base)) {
    bt <- base[[t]]
    t2 <- lay2[[t]]
    k <- bt$k
    zt_t <- as.matrix(rt2$Ztlist[[t]])[, rows, drop = FALSE]
    m <- matrix(0, length(rows), k)
    for (j2 in seq_along(t2$levels)) {
      block <- t(zt_t[(j2 - 1) * k + seq_len(k), , drop = FALSE])
      j <- match(t2$levels[j2], bt$levels)
      if (!is.na(j)) Z[, bt$offset + (j - 1) * k + seq_len(k)] <- block
      m <- m + block  # each row has one level per term
    }
    new[[t]] <- !(as.character(t2$factor[rows]) %in% bt$levels)
    zt[[t]] <- m
  }
  list(Z = Z, new = new, zt = zt)
}

# mask over base's random-effects columns for an re.form given as
# NULL (all), NA (none) or list(group = columns)
re_mask <- function(base, keep) {
  unlist(lapply(base, function(t) {
    on <- if (is.null(keep)) rep(TRUE, t$k)
          else if (identical(keep, NA)) rep(FALSE, t$k)
          else t$terms %in% keep[[t$group]]
    rep(on, length(t$levels))
  }))
}

# b (in base's layout) as per-group tables, levels x terms
b_tables <- function(base, b) {
  out <- list()
  for (t in base) {
    nl <- length(t$levels)
    out[[t$group]] <- matrix(b[t$offset + seq_len(t$k * nl)], nl, t$k, byrow = TRUE,
                             dimnames = list(t$levels, t$terms))
  }
  out
}

# the design (X and mapped Z) of newdata against a reference frame `ref`
# (training, or training + given) with reference layout `base`
newdata_design <- function(formula, ref, nd, base, beta) {
  response <- all.vars(formula)[1]
  st <- stack_frames(ref, with_response(nd, response))
  lf2 <- lFormula(formula, data = st)
  rows <- nrow(ref) + seq_len(nrow(nd))
  X <- lf2$X[rows, , drop = FALSE]
  stopifnot(identical(colnames(X), names(beta)))
  c(list(X = X), rows_design(lf2$reTrms, base, rows))
}

# conditional modes of the random effects with beta, theta held fixed, over
# all rows of `data`
cond_modes <- function(formula, data, theta, beta) {
  lf <- lFormula(formula, data = data)
  stopifnot(identical(colnames(lf$X), names(beta)))
  rt <- lf$reTrms
  lt <- lambdat_at(rt, theta)
  lzt <- lt %*% rt$Zt
  r <- model.response(lf$fr) - drop(lf$X %*% beta)
  u <- solve(tcrossprod(lzt) + Diagonal(nrow(lzt)), lzt %*% r)
  b <- as.numeric(crossprod(lt, u))  # Lambda u
  list(lf = lf, layout = re_layout(rt), b = b, lambdat = lt)
}

# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

mode_cases <- list(
  sleepstudy = list(
    dataset = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", reml = TRUE,
    newdata = list(
      list(Subject = "308", Days = 10), list(Subject = "308", Days = 12.5),
      list(Subject = "372", Days = 10), list(Subject = "372", Days = 12.5),
      list(Subject = "999", Days = 0), list(Subject = "999", Days = 5)),
    re = list(pred_all = list(form = "NULL", keep = NULL),
              pred_none = list(form = "NA", keep = NA),
              pred_intercept = list(form = "~(1 | Subject)",
                                    keep = list(Subject = "(Intercept)"))),
    intervals = TRUE),
  penicillin = list(
    dataset = "penicillin", formula = "diameter ~ 1 + (1 | plate) + (1 | sample)",
    reml = TRUE,
    newdata = list(
      list(plate = "a", sample = "A"), list(plate = "a", sample = "Z"),
      list(plate = "zz", sample = "A"), list(plate = "zz", sample = "Z")),
    re = list(pred_all = list(form = "NULL", keep = NULL),
              pred_none = list(form = "NA", keep = NA),
              pred_plate = list(form = "~(1 | plate)", keep = list(plate = "(Intercept)")),
              pred_sample = list(form = "~(1 | sample)",
                                 keep = list(sample = "(Intercept)"))),
    intervals = TRUE),
  pastes = list(
    dataset = "pastes", formula = "strength ~ 1 + (1 | batch/cask)", reml = TRUE,
    newdata = list(
      list(batch = "A", cask = "a"), list(batch = "A", cask = "q"),
      list(batch = "Z", cask = "a")),
    re = list(pred_all = list(form = "NULL", keep = NULL),
              pred_none = list(form = "NA", keep = NA),
              pred_batch = list(form = "~(1 | batch)", keep = list(batch = "(Intercept)"))),
    intervals = FALSE),
  orthodont = list(
    dataset = "orthodont", formula = "distance ~ age * Sex + (1 | Subject)", reml = TRUE,
    newdata = list(
      list(Subject = "M01", Sex = "Male", age = 9),
      list(Subject = "F01", Sex = "Female", age = 15),
      list(Subject = "N01", Sex = "Male", age = 15),
      list(Subject = "N02", Sex = "Female", age = 9)),
    re = list(pred_all = list(form = "NULL", keep = NULL),
              pred_none = list(form = "NA", keep = NA)),
    intervals = FALSE)
)

given_cases <- list(
  sleepstudy_given_new = list(
    model = "sleepstudy",
    given = list(
      list(Subject = "999", Days = 0, Reaction = 290),
      list(Subject = "999", Days = 1, Reaction = 300),
      list(Subject = "999", Days = 2, Reaction = 325)),
    newdata = c(lapply(3:9, function(d) list(Subject = "999", Days = d)),
                list(list(Subject = "308", Days = 3))),
    b_group = c(Subject = "999"), per_group_check = TRUE),
  sleepstudy_given_known = list(
    model = "sleepstudy",
    given = list(
      list(Subject = "308", Days = 10, Reaction = 480),
      list(Subject = "308", Days = 11, Reaction = 490)),
    newdata = list(list(Subject = "308", Days = 12), list(Subject = "308", Days = 13)),
    b_group = c(Subject = "308"), per_group_check = TRUE),
  penicillin_given = list(
    model = "penicillin",
    given = list(
      list(plate = "zz", sample = "A", diameter = 25),
      list(plate = "zz", sample = "B", diameter = 24),
      list(plate = "zz", sample = "C", diameter = 23)),
    newdata = list(list(plate = "zz", sample = "A"), list(plate = "zz", sample = "D"),
                   list(plate = "a", sample = "A")),
    b_group = c(plate = "zz"), per_group_check = FALSE, record_sample = TRUE)
)

# ---------------------------------------------------------------------------
# Fits and prediction modes
# ---------------------------------------------------------------------------

se_fit_note <- NULL
fits <- list()
results <- list()

for (case_name in names(mode_cases)) {
  spec <- mode_cases[[case_name]]
  formula <- as.formula(spec$formula)
  train <- load_dataset(spec$dataset)[, all.vars(formula), drop = FALSE]
  cat(sprintf("%-24s %s\n", case_name, spec$formula))
  fit <- lmer(formula, data = train, REML = spec$reml)
  beta <- fixef(fit)
  theta <- getME(fit, "theta")
  sigma <- sigma(fit)
  nd <- records_frame(spec$newdata, train)

  # the training system, as lme4 built it
  lf <- lFormula(formula, data = train)
  base <- re_layout(lf$reTrms)
  stopifnot(identical(names(lf$reTrms$cnms), names(fit@cnms)),
            identical(unname(lf$reTrms$cnms), unname(fit@cnms)))
  check_close(lf$reTrms$Zt, getME(fit, "Zt"), "training Zt")
  b_fit <- as.numeric(getME(fit, "b"))
  fits[[case_name]] <- list(fit = fit, train = train, base = base, lf = lf)

  # conditional modes with no given rows reproduce ranef(fit)
  cm <- cond_modes(formula, train, theta, beta)
  check_close(cm$b, b_fit, paste(case_name, "conditional modes vs getME(fit, 'b')"))
  tabs <- b_tables(base, b_fit)
  re <- ranef(fit)
  for (g in names(tabs)) {
    check_close(tabs[[g]], as.matrix(re[[g]])[rownames(tabs[[g]]), colnames(tabs[[g]])],
                paste(case_name, "ranef", g))
  }

  des <- newdata_design(formula, train, nd, base, beta)
  out <- list(dataset = spec$dataset, formula = spec$formula, reml = spec$reml,
              theta = theta, sigma = sigma, fixef = beta, newdata = spec$newdata)
  re_forms <- list()
  for (key in names(spec$re)) {
    r <- spec$re[[key]]
    re_form <- if (r$form == "NULL") NULL else if (r$form == "NA") NA else as.formula(r$form)
    p <- predict(fit, newdata = nd, re.form = re_form, allow.new.levels = TRUE)
    manual <- drop(des$X %*% beta) + drop(des$Z %*% (b_fit * re_mask(base, r$keep)))
    check_close(p, manual, paste(case_name, key, "predict() vs x'beta + z'b"))
    out[[key]] <- num_array(p)
    re_forms[[key]] <- r$form
  }
  out$re_forms <- re_forms

  if (spec$intervals) {
    X <- as.matrix(getME(fit, "X"))
    Lambda <- as.matrix(getME(fit, "Lambda"))
    ZL <- as.matrix(getME(fit, "Z")) %*% Lambda
    p <- ncol(X)
    q <- ncol(ZL)
    C <- rbind(cbind(crossprod(X), crossprod(X, ZL)),
               cbind(crossprod(ZL, X), crossprod(ZL) + diag(q)))
    Cinv <- solve(C)
    V <- as.matrix(vcov(fit))
    check_close(sigma^2 * Cinv[seq_len(p), seq_len(p)], V,
                paste(case_name, "sigma^2 C_u^-1 beta block vs vcov(fit)"))
    Tt <- term_factors(base, t(getME(fit, "Lambda")))
    Sigma <- lapply(Tt, function(T) sigma^2 * tcrossprod(T))
    v <- cbind(des$X, des$Z %*% Lambda)
    var_all <- sigma^2 * rowSums((v %*% Cinv) * v)
    prior_new <- 0
    prior_all <- 0
    for (t in seq_along(base)) {
      zt <- des$zt[[t]]
      pv <- rowSums((zt %*% Sigma[[t]]) * zt)
      prior_all <- prior_all + pv
      prior_new <- prior_new + ifelse(des$new[[t]], pv, 0)
    }
    var_none <- rowSums((des$X %*% V) * des$X)
    se_conf <- sqrt(var_all + prior_new)
    se_conf_none <- sqrt(var_none)
    all_new <- Reduce(`&`, des$new)
    if (any(all_new)) {
      check_close(se_conf[all_new], sqrt(var_none + prior_all)[all_new],
                  paste(case_name, "all-new rows: se re=all vs re=none + prior"))
    }
    out$se_confidence <- num_array(se_conf)
    out$se_prediction <- num_array(sqrt(se_conf^2 + sigma^2))
    out$se_confidence_none <- num_array(se_conf_none)
    out$se_prediction_none <- num_array(sqrt(var_none + prior_all + sigma^2))

    # lme4's own se.fit, where the installed version has it
    notes <- c(
      "se_* are computed in R from C_u, vcov(fit) and theta, not by lme4's predict().",
      "Checked: sigma^2 times the beta block of C_u^-1 equals vcov(fit); rows whose levels are all new give se_confidence = sqrt(se_confidence_none^2 + prior variances).")
    lme4_se <- tryCatch(
      withCallingHandlers(
        predict(fit, newdata = nd, re.form = NA, se.fit = TRUE),
        warning = function(w) {
          if (grepl("unused arguments", conditionMessage(w))) {
            stop("no se.fit")
          }
        }),
      error = function(e) NULL)
    if (is.list(lme4_se) && !is.null(lme4_se$se.fit)) {
      check_close(lme4_se$se.fit, se_conf_none, paste(case_name, "lme4 se.fit"))
      notes <- c(notes, sprintf(
        "se_confidence_none agrees with predict(fit, re.form = NA, se.fit = TRUE) of lme4 %s.",
        packageVersion("lme4")))
    } else {
      se_fit_note <- sprintf(
        paste("lme4 %s's predict.merMod has no se.fit argument (it warns 'unused arguments",
              "ignored' and returns the bare predictions), so se_confidence_none was not",
              "cross-checked against lme4."), packageVersion("lme4"))
      notes <- c(notes, se_fit_note)
    }
    out$notes <- I(notes)
  }
  out$lme4_version <- as.character(packageVersion("lme4"))
  out$r_version <- R.version.string
  results[[case_name]] <- out
}

# ---------------------------------------------------------------------------
# Given rows
# ---------------------------------------------------------------------------

for (case_name in names(given_cases)) {
  spec <- given_cases[[case_name]]
  mspec <- mode_cases[[spec$model]]
  f <- fits[[spec$model]]
  fit <- f$fit
  formula <- as.formula(mspec$formula)
  response <- all.vars(formula)[1]
  beta <- fixef(fit)
  theta <- getME(fit, "theta")
  sigma <- sigma(fit)
  cat(sprintf("%-24s given %d rows\n", case_name, length(spec$given)))

  given <- records_frame(spec$given, f$train)[, names(f$train)]
  full <- stack_frames(f$train, given)
  cm <- cond_modes(formula, full, theta, beta)
  stopifnot(same_terms(cm$layout, f$base))
  tabs <- b_tables(cm$layout, cm$b)

  gname <- names(spec$b_group)
  glevel <- unname(spec$b_group)
  b_given <- tabs[[gname]][glevel, ]
  names(b_given) <- colnames(tabs[[gname]])

  if (spec$per_group_check) {
    # one grouping factor: b_i = (Z_i'Z_i + sigma^2 G^-1)^-1 Z_i'(y_i - X_i beta),
    # sigma^2 G^-1 = (T T')^-1
    stopifnot(length(cm$layout) == 1L)
    T <- term_factors(cm$layout, cm$lambdat)[[1]]
    rows <- which(as.character(full[[gname]]) == glevel)
    Xi <- cm$lf$X[rows, , drop = FALSE]
    Zi <- t(as.matrix(cm$lf$reTrms$Zt)[
      cm$layout[[1]]$offset + (match(glevel, cm$layout[[1]]$levels) - 1) *
        cm$layout[[1]]$k + seq_len(cm$layout[[1]]$k), rows, drop = FALSE])
    yi <- full[[response]][rows]
    b_formula <- solve(crossprod(Zi) + solve(tcrossprod(T)),
                       crossprod(Zi, yi - drop(Xi %*% beta)))
    check_close(b_formula, b_given, paste(case_name, "per-group formula vs joint solve"))
  }

  nd <- records_frame(spec$newdata, full)
  des <- newdata_design(formula, full, nd, cm$layout, beta)
  pred <- drop(des$X %*% beta) + drop(des$Z %*% cm$b)

  out <- list(dataset = mspec$dataset, formula = mspec$formula, reml = mspec$reml,
              theta = theta, sigma = sigma, fixef = beta,
              given = spec$given, newdata = spec$newdata,
              b_given = b_given)
  if (isTRUE(spec$record_sample)) {
    s <- tabs[["sample"]]
    out$b_sample <- list(levels = I(rownames(s)), terms = I(colnames(s)),
                         values = matrix_rows(s))
  }
  out$pred_given <- num_array(pred)
  out$lme4_version <- as.character(packageVersion("lme4"))
  out$r_version <- R.version.string
  results[[case_name]] <- out
}

writeLines(to_json(results), out_path, useBytes = TRUE)
# check: the file parses and gives back exactly the doubles that were written
back <- fromJSON(out_path, simplifyVector = FALSE)
for (case_name in names(results)) {
  r <- results[[case_name]]
  b <- back[[case_name]]
  for (key in grep("^(pred_|se_|b_given)", names(r), value = TRUE)) {
    stopifnot(identical(as.numeric(unlist(b[[key]])), as.numeric(unlist(r[[key]]))))
  }
}
if (!is.null(se_fit_note)) cat("note:", se_fit_note, "\n")
cat("wrote", out_path, "\n")
