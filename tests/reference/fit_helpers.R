# Helpers shared by the second set of lme4 reference scripts
# (make_formulas.R, make_random_designs.R, make_glmm.R, make_inference.R,
# make_glmm_random_designs.R);
# sourced after common.R, not run on its own.
#
#   capture(expr)            evaluate expr, collecting its warnings and
#                            messages; an error is caught and returned as text
#   lmer_fields(fit)         the usual fit fields (objective, theta, sigma,
#                            fixef, vcov, ranef, condvar, fitted, ...), the
#                            same layout as lme4_fits.json
#   ranef_fields(fit, data)  ranef / condvar / condvar_layout / level_values
#   data_fields(df)          column_types, factor_levels and the rows as records
#   conv_info(fit)           optimizer, feval, optimizer messages and lme4's
#                            convergence messages
#   check_close(a, b, what)  stop() unless a and b agree to a relative 1e-8
#   assign_groups(n, G)      row -> group index of a random design: unequal
#                            group sizes, each group at least 2 rows
#   versions()               R, lme4, Matrix versions
#   expected_fit(base, kind, amount, n, fit), drift(out, expected)
#                            what an exactly shift- / scale-invariant fit gives
#                            on transformed data, from the fit on the
#                            untransformed data, and lme4's distance from it

#
# Reproducibility: re-running a script does not give bit-identical numbers.
# The same lme4 fit run in separate R processes on this machine differs at
# ~1e-10 relative (e.g. penicillin theta 1.5396755543064833 vs
# 1.5396755541521649), deterministically within a process and identical
# with address-space randomisation off (setarch -R), i.e. memory-alignment-
# dependent floating point in the compiled code.  Compare with tolerances of
# 1e-8 relative or looser; exact equality holds only for data columns.

suppressPackageStartupMessages(library(Matrix))

# row -> group index: unequal group sizes, each group at least 2 rows
assign_groups <- function(n, G) {
  p <- runif(G, 0.2, 1)
  idx <- c(rep(seq_len(G), 2), sample(G, n - 2 * G, replace = TRUE, prob = p))
  sample(idx)
}

check_close <- function(a, b, what, tolerance = 1e-8) {
  a <- as.numeric(a)
  b <- as.numeric(b)
  err <- if (length(a) == 0L) 0 else max(abs(a - b) / pmax(1, abs(b)))
  if (length(a) != length(b) || !(err <= tolerance)) {
    stop(sprintf("check failed: %s (max rel. difference %g)", what, err))
  }
  invisible(TRUE)
}

# one number per row: always a JSON array, never an object keyed by row name
num_array <- function(x) I(unname(as.numeric(x)))
str_array <- function(x) I(if (is.null(x)) character(0) else as.character(x))

# evaluate `expr`, collecting warnings and messages (muffled, so the run's
# output stays short); an error is returned as list(error = text)
capture <- function(expr) {
  warnings <- character(0)
  messages <- character(0)
  value <- tryCatch(
    withCallingHandlers(
      expr,
      warning = function(w) {
        warnings <<- c(warnings, conditionMessage(w))
        invokeRestart("muffleWarning")
      },
      message = function(m) {
        messages <<- c(messages, sub("\n$", "", conditionMessage(m)))
        invokeRestart("muffleMessage")
      }),
    error = function(e) structure(list(message = conditionMessage(e)), class = "captured_error"))
  if (inherits(value, "captured_error")) {
    return(list(value = NULL, error = value$message, warnings = warnings, messages = messages))
  }
  list(value = value, error = NULL, warnings = warnings, messages = messages)
}

column_type <- function(x) {
  if (is.ordered(x)) return("ordered")
  if (is.factor(x)) return("factor")
  if (is.character(x)) return("string")
  if (is.integer(x)) return("integer")
  if (is.double(x)) return("double")
  if (is.logical(x)) return("logical")
  stop("unsupported column class: ", paste(class(x), collapse = "/"))
}

# the data of a case: its columns' types, the level order of its factor
# columns and the rows as records
data_fields <- function(df) {
  types <- vapply(df, column_type, "")
  levs <- list()
  for (col in names(df)) {
    if (is.factor(df[[col]])) levs[[col]] <- I(levels(df[[col]]))
  }
  list(column_types = as.list(types),
       factor_levels = if (length(levs)) levs else structure(list(), names = character(0)),
       data = records(df))
}

# the typed label(s) behind each level of each grouping factor of the fit:
# for a simple grouping factor g, the value of column g (a string for
# factor and character columns, a number for numeric ones); for an
# interaction group "b:a" (from (1 | a/b) or (1 | a:b)), an array
# [value of b, value of a] in the order of the group's name
level_values <- function(re, data) {
  out <- list()
  for (grp in names(re)) {
    comps <- strsplit(grp, ":", fixed = TRUE)[[1]]
    if (!all(comps %in% names(data))) next
    labels <- lapply(comps, function(c) {
      x <- data[[c]]
      if (is.factor(x)) as.character(x) else x
    })
    keys <- do.call(paste, c(lapply(labels, as.character), sep = ":"))
    lev <- rownames(re[[grp]])
    idx <- match(lev, keys)
    if (anyNA(idx)) stop("cannot match the levels of ", grp, " to the data")
    if (length(comps) == 1L) {
      out[[grp]] <- I(labels[[1]][idx])
    } else {
      out[[grp]] <- lapply(idx, function(i) {
        structure(paste0("[", paste(vapply(labels, function(l) atomic_to_json(l[i]), ""),
                                    collapse = ", "), "]"), class = "json_raw")
      })
    }
  }
  out
}

# ranef (conditional modes), condvar (postVar) and their layout, as in
# lme4_fits.json; `data` (optional) adds level_values
ranef_fields <- function(fit, data = NULL, condvar = TRUE) {
  re <- ranef(fit, condVar = condvar)
  ranef_out <- list()
  condvar_out <- list()
  condvar_layout <- list()
  condvar_terms <- list()
  per_level <- function(arr) {
    lapply(seq_len(dim(arr)[3]), function(k) {
      matrix_rows(matrix(arr[, , k], dim(arr)[1], dim(arr)[2]))
    })
  }
  for (grp in names(re)) {
    r <- re[[grp]]
    ranef_out[[grp]] <- list(levels = I(rownames(r)), terms = I(colnames(r)),
                             values = matrix_rows(as.matrix(r)))
    if (!condvar) next
    pv <- attr(r, "postVar")
    if (is.list(pv)) {
      condvar_layout[[grp]] <- "per_term"
      if (is.null(names(pv)) || any(names(pv) == "")) stop("unnamed per-term postVar for ", grp)
      condvar_out[[grp]] <- lapply(pv, per_level)
      # the columns of each term sharing this grouping factor, in postVar order
      cn <- fit@cnms[names(fit@cnms) == grp]
      stopifnot(length(cn) == length(pv),
                identical(unname(unlist(cn)), colnames(r)))
      condvar_terms[[grp]] <- lapply(unname(cn), I)
    } else {
      condvar_layout[[grp]] <- "array"
      stopifnot(dim(pv)[3] == nrow(r), dim(pv)[1] == ncol(r))
      condvar_out[[grp]] <- per_level(pv)
    }
  }
  out <- list(ranef = ranef_out)
  if (condvar) {
    out <- c(out, list(condvar = condvar_out, condvar_layout = condvar_layout))
    if (length(condvar_terms)) out$condvar_terms <- condvar_terms
  }
  if (!is.null(data)) out$level_values <- level_values(re, data)
  out
}

conv_info <- function(fit) {
  oi <- fit@optinfo
  msgs <- oi$conv$lme4$messages
  list(
    optimizer = oi$optimizer,
    feval = oi$feval,
    optimizer_message = if (is.null(oi$message)) NA_character_ else as.character(oi$message),
    optimizer_warnings = str_array(unlist(oi$warnings)),
    lme4_conv_messages = str_array(msgs),
    converged = length(msgs) == 0L && length(oi$warnings) == 0L
  )
}

# the fields of an lmer fit, in the layout of lme4_fits.json
lmer_fields <- function(fit, data = NULL, condvar = TRUE, fitted = TRUE) {
  reml <- isREML(fit)
  theta <- getME(fit, "theta")
  beta <- fixef(fit)
  out <- list(
    objective = unname(getME(fit, "devcomp")$cmp[if (reml) "REML" else "dev"]),
    theta = theta,
    theta_order = I(names(theta)),
    sigma = sigma(fit),
    fixef = beta,
    fixef_order = I(names(beta)),
    vcov = matrix_rows(as.matrix(vcov(fit))),
    loglik = as.numeric(logLik(fit)),
    nobs = nobs(fit),
    singular = isSingular(fit),
    ngrps = ngrps(fit)
  )
  out <- c(out, ranef_fields(fit, data, condvar))
  if (fitted) out$fitted <- num_array(fitted(fit))
  out
}

versions <- function(pkgs = c("lme4", "Matrix")) {
  v <- lapply(pkgs, function(p) as.character(packageVersion(p)))
  names(v) <- paste0(tolower(pkgs), "_version")
  c(v, list(r_version = R.version.string))
}

write_checked <- function(results, path) {
  writeLines(to_json(results), path, useBytes = TRUE)
  back <- fromJSON(path, simplifyVector = FALSE)
  stopifnot(identical(names(back), names(results)))
  cat(sprintf("wrote %s (%.0f kB)\n", path, file.size(path) / 1024))
  invisible(back)
}

# What an exactly invariant fit of the transformed data gives, from `base`
# (lmer_fields() of the fit on untransformed data, plus base$reml).  kind:
#   shift_y  y + c:  same theta, sigma, objective; intercept + c
#   scale_y  y * s:  same theta; sigma * s; fixef * s; objective +
#                    2 (n - p) log s (REML) or 2 n log s (ML)
#   scale_x  x * s:  slope / s; theta entries of the slope row / s;
#                    objective + 2 log s (REML), same (ML)
#   shift_x  x + c:  intercept - c * slope; for (x | g) the relative factor T
#                    becomes chol(A T T' A'), A = [1 -c; 0 1]; same objective
# The slope is fixef[2]; a (x | g) term is theta[1:3], a (1 | g) term theta[1].
# Names are taken from `fit` (the lme4 fit of the transformed data) if given.
expected_fit <- function(base, kind, amount, n, fit = NULL) {
  theta <- base$theta
  sigma <- base$sigma
  beta <- base$fixef
  objective <- base$objective
  p <- length(beta)
  reml <- base$reml
  slope_term <- length(theta) == 3L
  if (kind == "shift_y") {
    beta[1] <- beta[1] + amount
  } else if (kind == "scale_y") {
    sigma <- sigma * amount
    beta <- beta * amount
    objective <- objective + 2 * (if (reml) n - p else n) * log(amount)
  } else if (kind == "scale_x") {
    beta[2] <- beta[2] / amount
    if (slope_term) theta[2:3] <- theta[2:3] / amount
    if (reml) objective <- objective + 2 * log(amount)
  } else if (kind == "shift_x") {
    beta[1] <- beta[1] - amount * beta[2]
    if (slope_term) {
      # the lower-triangular L with L L' = M M', M = A T, by rows (stable,
      # and defined when T is singular): L11 = |m1|, L21 = m2.m1 / L11,
      # L22 = |det M| / L11 = |t11 t22| / L11
      m1 <- c(theta[1] - amount * theta[2], -amount * theta[3])
      m2 <- c(theta[2], theta[3])
      l11 <- sqrt(sum(m1^2))
      if (l11 > 0) {
        theta <- c(l11, sum(m1 * m2) / l11, abs(theta[1] * theta[3]) / l11)
      } else {
        theta <- c(0, 0, sqrt(sum(m2^2)))
      }
    }
  } else {
    stop("unknown transform ", kind)
  }
  if (!is.null(fit)) {
    names(theta) <- names(getME(fit, "theta"))
    names(beta) <- names(fixef(fit))
  }
  list(objective = objective, theta = theta, sigma = sigma, fixef = beta)
}

drift <- function(out, e) {
  list(objective_diff = out$objective - e$objective,
       theta_max_abs_diff = max(abs(out$theta - e$theta)),
       sigma_rel_diff = out$sigma / e$sigma - 1,
       fixef_max_rel_diff = max(abs(out$fixef - e$fixef) / pmax(abs(e$fixef), 1e-300)))
}
