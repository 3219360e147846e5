# lme4 reference fits of ~50 randomly generated linear mixed models, each
# with its full data, so that Python fits exactly the same rows.
#
# Usage, from the repository root:
#
#     Rscript tests/reference/make_random_designs.R
#
# (or `make reference`).  Needs R with lme4 and jsonlite.  Takes ~30 seconds.
#
# Generator (set.seed(20261130), then designs 1..N in order; the data, not
# the generator, are the reference: Python reads the records):
#   - design i uses template TEMPLATES[(i - 1) %% length(TEMPLATES) + 1] (the
#     list `templates` below: random slopes (x | g), uncorrelated (x || g),
#     crossed (1 | g) + (1 | h), nested (1 | a/b), (0 + f | g), (f || g),
#     fixed factors and interactions, badly scaled (x * 1e6, x * 1e-6),
#     shifted (x + 1e5) predictors, shifted response (y + 1e6), crossed with
#     a slope, intercept only, two slopes) and REML = (i %% 2 == 1) for the
#     first pass through the templates, the opposite on the next pass, ...
#   - n ~ uniform on 60..400 rows; the number of groups of each grouping
#     factor between 4 and min(30, n / 4); rows are assigned to groups with
#     unequal probabilities (each group gets at least 2 rows)
#   - labels of each grouping column: type cycling integer -> string ->
#     double over the grouping columns of all designs in order; integers are
#     distinct draws from -5..500; strings from a pool with look-alikes
#     ("007", "7", "07", " 7", "7 ", "a b", "A", "a", "grp 1", "grp 10",
#     "x.1", "x_1", "-1", "1e3", "NA", "None", "TRUE", ...; "007" and "7" are
#     DISTINCT levels), topped up with "s001", ...; doubles are distinct
#     multiples of 0.25 in (0, 60] (e.g. 1.5, 2.25, 7), plus 0.1 sometimes
#   - x, z ~ N(0, 1) rounded to 4 decimals (then scaled / shifted by the
#     template); f a 3-level factor with levels c("lo", "mid", "hi") (that
#     order: "lo" is the reference level), e a 2-level factor c("no", "yes")
#   - random-effect SDs drawn from {0, 0.3, 1, 2} (0 gives singular fits),
#     correlations from U(-0.8, 0.8), residual SD from U(0.5, 2), fixed
#     effects from U(-3, 3); y = X beta + Z b + e, rounded to 6 decimals
#   - Fits: lmer(formula, data, REML = reml, control = lmerControl()), with
#     the character label columns left as character (lme4 makes the factors;
#     levels sorted by the C locale, i.e. by code point, set below), integer
#     and double label columns left numeric (lme4's factor(): levels in
#     numeric order, labelled by as.character())
#
# Writes tests/reference/lme4_random_designs.json: an object keyed by design
# name ("d01_slope", ...); each design has
#   template       the generator template
#   formula        exactly as passed to lmer()
#   reml
#   n              number of rows
#   label_types    {grouping column: "integer" | "string" | "double"}: the
#                  label type of each grouping column (labels are written in
#                  `data` with that JSON type; a double label that happens to
#                  be integral, e.g. 7, is written as 7, so cast by this type)
#   column_types   {column: "double" | "integer" | "string" | "factor"}
#   factor_levels  {column: [levels]} for factor columns (fixed-effect factors,
#                  treatment contrasts on this level order)
#   data           the rows as records
#   truth          the generating parameters: {fixef, sd, cor, sigma}
#   objective      REML criterion (reml) or deviance, getME(fit, "devcomp")$cmp
#   theta, theta_order, sigma, fixef, fixef_order, vcov (rows, fixef order),
#   loglik, nobs, ngrps
#   singular       isSingular(fit)
#   ranef          {group: {levels, terms, values (rows = levels)}}; levels are
#                  lme4's labels (as.character of the label; for a nested
#                  group "b:a" the labels of b and a joined by ":")
#   level_values   {group: [the typed label of each level, in ranef order]};
#                  for an interaction group "b:a": [[b label, a label], ...]
#   condvar, condvar_layout, condvar_terms   as in lme4_formulas.json
#   fitted         fitted(fit) in row order
#   lme4_messages  the warnings and messages lme4 gave while fitting
#                  (singular fit, convergence, rescaling advice)
#   optimizer, feval, optimizer_message, optimizer_warnings,
#   lme4_conv_messages, converged       fit@optinfo
#   error          only if lmer() failed: its message (no fit fields)
# Templates scaled_*, shifted_* also have
#   expected       what an exactly invariant fit gives: lme4's fit of the
#                  undone transform (base_data, e.g. "x = xs / 1e-6", fitted
#                  with base_formula, same REML) carried over to the
#                  transformed data by the rules in fit_helpers.R's
#                  expected_fit: {transform, base_data, base_formula,
#                  base_lme4_messages, objective, theta, sigma, fixef}
#   drift          lme4's numbers minus expected: objective_diff,
#                  theta_max_abs_diff, sigma_rel_diff, fixef_max_rel_diff
#   lme4_version, matrix_version, r_version

common_R <- file.path("tests", "reference", "common.R")
if (!file.exists(common_R)) stop("run from the repository root: ", common_R, " not found")
source(common_R)  # lme4, jsonlite; to_json, matrix_rows, records
source(file.path("tests", "reference", "fit_helpers.R"))
invisible(Sys.setlocale("LC_COLLATE", "C"))

out_path <- file.path("tests", "reference", "lme4_random_designs.json")
N_DESIGNS <- 50L
set.seed(20261130)

# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------

string_pool <- c("007", "7", "07", " 7", "7 ", "a b", "A", "a", "grp 1", "grp 10",
                 "grp 2", "x.1", "x_1", "-1", "1e3", "NA", "None", "TRUE", "1.0", "1",
                 "Z", "z", "b-2", "(x)")
label_counter <- 0L
next_label_type <- function() {
  label_counter <<- label_counter + 1L
  c("integer", "string", "double")[(label_counter - 1L) %% 3L + 1L]
}
make_labels <- function(G, type) {
  switch(type,
    integer = sample(-5:500, G),
    string = {
      pool <- sample(string_pool)
      if (G > length(pool)) pool <- c(pool, sprintf("s%03d", seq_len(G - length(pool))))
      pool[seq_len(G)]
    },
    double = {
      v <- sample(seq(0.25, 60, by = 0.25), G)
      if (G > 5 && runif(1) < 0.5) v[1] <- 0.1
      v
    })
}

n_groups <- function(n) sample(4:max(4, min(30, n %/% 4)), 1)
draw_sd <- function(k = 1) sample(c(0, 0.3, 1, 2), k, replace = TRUE, prob = c(0.15, 0.25, 0.35, 0.25))
draw_fixef <- function(k) round(runif(k, -3, 3), 3)
rnd <- function(x, d = 4) round(x, d)

# a grouping column: labels, types, indices
group_col <- function(n, G = n_groups(n)) {
  type <- next_label_type()
  lab <- make_labels(G, type)
  idx <- assign_groups(n, G)
  list(values = lab[idx], idx = idx, G = G, type = type)
}

# random effects for G groups with the given SDs and correlation (2 x 2 at most
# correlated here; more columns uncorrelated unless cor is a matrix)
draw_re <- function(G, sds, cor = NULL) {
  k <- length(sds)
  C <- diag(k)
  if (!is.null(cor)) C <- cor
  S <- diag(sds, k) %*% C %*% diag(sds, k)
  R <- chol(S + diag(1e-12, k))
  matrix(rnorm(G * k), G, k) %*% R
}

# ---------------------------------------------------------------------------
# Templates: function(n) -> list(data, formula, truth, label_cols)
# ---------------------------------------------------------------------------

base_frame <- function(n) {
  data.frame(x = rnd(rnorm(n)), z = rnd(rnorm(n)))
}
finish <- function(d, mu, sigma) {
  d$y <- round(mu + rnorm(nrow(d), 0, sigma), 6)
  d
}
two_cor <- function() {
  r <- round(runif(1, -0.8, 0.8), 3)
  matrix(c(1, r, r, 1), 2, 2)
}

slope_template <- function(formula, xcol = "x", xfun = identity, yshift = 0, corr = TRUE,
                           expect = NULL) {
  function(n) {
    d <- base_frame(n)
    gc <- group_col(n)
    sds <- draw_sd(2)
    cm <- if (corr) two_cor() else diag(2)
    b <- draw_re(gc$G, sds, cm)
    beta <- draw_fixef(2)
    sigma <- round(runif(1, 0.5, 2), 3)
    mu <- beta[1] + beta[2] * d$x + b[gc$idx, 1] + b[gc$idx, 2] * d$x + yshift
    d <- finish(d, mu, sigma)
    d[[xcol]] <- xfun(d$x)
    d$g <- gc$values
    d <- d[, unique(c("y", xcol, "g")), drop = FALSE]
    list(data = d, formula = formula, label_cols = c(g = gc$type), expect = expect,
         truth = list(fixef = beta, sd = sds, cor = cm[2, 1], sigma = sigma))
  }
}

templates <- list(
  slope = slope_template("y ~ x + (x | g)"),
  uncorrelated = slope_template("y ~ x + (x || g)", corr = FALSE),
  crossed = function(n) {
    d <- base_frame(n)
    gc <- group_col(n)
    hc <- group_col(n)
    sds <- draw_sd(2)
    bg <- draw_re(gc$G, sds[1])
    bh <- draw_re(hc$G, sds[2])
    beta <- draw_fixef(2)
    sigma <- round(runif(1, 0.5, 2), 3)
    d <- finish(d, beta[1] + beta[2] * d$x + bg[gc$idx, 1] + bh[hc$idx, 1], sigma)
    d$g <- gc$values
    d$h <- hc$values
    list(data = d[, c("y", "x", "g", "h")], formula = "y ~ x + (1 | g) + (1 | h)",
         label_cols = c(g = gc$type, h = hc$type),
         truth = list(fixef = beta, sd = sds, cor = NULL, sigma = sigma))
  },
  nested = function(n) {
    d <- base_frame(n)
    A <- sample(4:8, 1)
    B <- sample(2:4, 1)  # b labels reused in every a: (1 | a/b) is needed
    ta <- next_label_type()
    tb <- next_label_type()
    la <- make_labels(A, ta)
    lb <- make_labels(B, tb)
    ib <- c(rep(seq_len(B), length.out = A * B), sample(B, n - A * B, replace = TRUE))
    ia <- c(rep(seq_len(A), each = B), sample(A, n - A * B, replace = TRUE))
    perm <- sample(n)
    ia <- ia[perm]
    ib <- ib[perm]
    sds <- draw_sd(2)
    ba <- draw_re(A, sds[1])
    bab <- matrix(draw_re(A * B, sds[2]), A, B)
    beta <- draw_fixef(2)
    sigma <- round(runif(1, 0.5, 2), 3)
    d <- finish(d, beta[1] + beta[2] * d$x + ba[ia, 1] + bab[cbind(ia, ib)], sigma)
    d$a <- la[ia]
    d$b <- lb[ib]
    list(data = d[, c("y", "x", "a", "b")], formula = "y ~ x + (1 | a/b)",
         label_cols = c(a = ta, b = tb),
         truth = list(fixef = beta, sd = sds, cor = NULL, sigma = sigma))
  },
  factor_zero = function(n) {
    d <- base_frame(n)
    gc <- group_col(n)
    f <- sample(1:3, n, replace = TRUE)
    sds <- draw_sd(3)
    r <- round(runif(1, -0.5, 0.8), 3)
    cm <- matrix(r, 3, 3)
    diag(cm) <- 1
    b <- draw_re(gc$G, sds, cm)
    beta <- draw_fixef(3)
    sigma <- round(runif(1, 0.5, 2), 3)
    d <- finish(d, c(0, beta[2:3])[f] + beta[1] + b[cbind(gc$idx, f)], sigma)
    d$f <- factor(c("lo", "mid", "hi")[f], levels = c("lo", "mid", "hi"))
    d$g <- gc$values
    list(data = d[, c("y", "f", "g")], formula = "y ~ f + (0 + f | g)",
         label_cols = c(g = gc$type),
         truth = list(fixef = beta, sd = sds, cor = r, sigma = sigma))
  },
  factor_double_bar = function(n) {
    d <- base_frame(n)
    gc <- group_col(n)
    f <- sample(1:3, n, replace = TRUE)
    sds <- draw_sd(4)
    b0 <- draw_re(gc$G, sds[1])
    bf <- draw_re(gc$G, sds[2:4])
    beta <- draw_fixef(2)
    sigma <- round(runif(1, 0.5, 2), 3)
    d <- finish(d, beta[1] + beta[2] * d$x + b0[gc$idx, 1] + bf[cbind(gc$idx, f)], sigma)
    d$f <- factor(c("lo", "mid", "hi")[f], levels = c("lo", "mid", "hi"))
    d$g <- gc$values
    list(data = d[, c("y", "x", "f", "g")], formula = "y ~ x + (f || g)",
         label_cols = c(g = gc$type),
         truth = list(fixef = beta, sd = sds, cor = NULL, sigma = sigma))
  },
  fixed_interaction = function(n) {
    d <- base_frame(n)
    gc <- group_col(n)
    f <- sample(1:3, n, replace = TRUE)
    sds <- draw_sd(1)
    b <- draw_re(gc$G, sds)
    beta <- draw_fixef(6)
    sigma <- round(runif(1, 0.5, 2), 3)
    X <- cbind(1, d$x, f == 2, f == 3, d$x * (f == 2), d$x * (f == 3))
    d <- finish(d, drop(X %*% beta) + b[gc$idx, 1], sigma)
    d$f <- factor(c("lo", "mid", "hi")[f], levels = c("lo", "mid", "hi"))
    d$g <- gc$values
    list(data = d[, c("y", "x", "f", "g")], formula = "y ~ x * f + (1 | g)",
         label_cols = c(g = gc$type),
         truth = list(fixef = beta, sd = sds, cor = NULL, sigma = sigma))
  },
  fixed_factors = function(n) {
    d <- base_frame(n)
    gc <- group_col(n)
    f <- sample(1:3, n, replace = TRUE)
    e <- sample(1:2, n, replace = TRUE)
    sds <- draw_sd(2)
    b <- draw_re(gc$G, sds, two_cor())
    beta <- draw_fixef(6)
    sigma <- round(runif(1, 0.5, 2), 3)
    X <- cbind(1, f == 2, f == 3, e == 2, (f == 2) * (e == 2), (f == 3) * (e == 2))
    d <- finish(d, drop(X %*% beta) + b[gc$idx, 1] + b[gc$idx, 2] * (e == 2), sigma)
    d$f <- factor(c("lo", "mid", "hi")[f], levels = c("lo", "mid", "hi"))
    d$e <- factor(c("no", "yes")[e], levels = c("no", "yes"))
    d$g <- gc$values
    list(data = d[, c("y", "f", "e", "g")], formula = "y ~ f * e + (e | g)",
         label_cols = c(g = gc$type),
         truth = list(fixef = beta, sd = sds, cor = NULL, sigma = sigma))
  },
  scaled_big = slope_template("y ~ xb + (1 | g)", xcol = "xb", xfun = function(x) x * 1e6,
                              expect = list(kind = "scale_x", amount = 1e6, column = "xb",
                                            undo = "xb / 1e6", formula = "y ~ x + (1 | g)")),
  scaled_small = slope_template("y ~ xs + (xs | g)", xcol = "xs", xfun = function(x) x * 1e-6,
                                expect = list(kind = "scale_x", amount = 1e-6, column = "xs",
                                              undo = "xs / 1e-6", formula = "y ~ x + (x | g)")),
  shifted_x = slope_template("y ~ xh + (1 | g)", xcol = "xh", xfun = function(x) x + 1e5,
                             expect = list(kind = "shift_x", amount = 1e5, column = "xh",
                                           undo = "xh - 1e5", formula = "y ~ x + (1 | g)")),
  shifted_x_slope = slope_template("y ~ xh + (xh | g)", xcol = "xh", xfun = function(x) x + 1e5,
                                   expect = list(kind = "shift_x", amount = 1e5, column = "xh",
                                                 undo = "xh - 1e5", formula = "y ~ x + (x | g)")),
  shifted_y = slope_template("y ~ x + (x | g)", yshift = 1e6,
                             expect = list(kind = "shift_y", amount = 1e6, column = "y",
                                           undo = "y - 1e6", formula = "y ~ x + (x | g)")),
  crossed_slope = function(n) {
    d <- base_frame(n)
    gc <- group_col(n)
    hc <- group_col(n)
    sds <- draw_sd(3)
    cm <- two_cor()
    bg <- draw_re(gc$G, sds[1:2], cm)
    bh <- draw_re(hc$G, sds[3])
    beta <- draw_fixef(3)
    sigma <- round(runif(1, 0.5, 2), 3)
    d <- finish(d, beta[1] + beta[2] * d$x + beta[3] * d$z + bg[gc$idx, 1] +
                  bg[gc$idx, 2] * d$x + bh[hc$idx, 1], sigma)
    d$g <- gc$values
    d$h <- hc$values
    list(data = d[, c("y", "x", "z", "g", "h")], formula = "y ~ x + z + (x | g) + (1 | h)",
         label_cols = c(g = gc$type, h = hc$type),
         truth = list(fixef = beta, sd = sds, cor = cm[2, 1], sigma = sigma))
  },
  intercept_only = function(n) {
    d <- base_frame(n)
    gc <- group_col(n)
    sds <- draw_sd(1)
    b <- draw_re(gc$G, sds)
    beta <- draw_fixef(1)
    sigma <- round(runif(1, 0.5, 2), 3)
    d <- finish(d, beta[1] + b[gc$idx, 1], sigma)
    d$g <- gc$values
    list(data = d[, c("y", "g")], formula = "y ~ 1 + (1 | g)",
         label_cols = c(g = gc$type),
         truth = list(fixef = beta, sd = sds, cor = NULL, sigma = sigma))
  },
  two_slopes = function(n) {
    d <- base_frame(n)
    gc <- group_col(n)
    sds <- draw_sd(3)
    r <- round(runif(1, -0.5, 0.8), 3)
    cm <- matrix(r, 3, 3)
    diag(cm) <- 1
    b <- draw_re(gc$G, sds, cm)
    beta <- draw_fixef(3)
    sigma <- round(runif(1, 0.5, 2), 3)
    d <- finish(d, beta[1] + beta[2] * d$x + beta[3] * d$z + b[gc$idx, 1] +
                  b[gc$idx, 2] * d$x + b[gc$idx, 3] * d$z, sigma)
    d$g <- gc$values
    list(data = d[, c("y", "x", "z", "g")], formula = "y ~ x + z + (x + z | g)",
         label_cols = c(g = gc$type),
         truth = list(fixef = beta, sd = sds, cor = r, sigma = sigma))
  }
)

# ---------------------------------------------------------------------------
# Designs
# ---------------------------------------------------------------------------

results <- list()
n_tpl <- length(templates)
for (i in seq_len(N_DESIGNS)) {
  tpl <- names(templates)[(i - 1L) %% n_tpl + 1L]
  pass <- (i - 1L) %/% n_tpl
  reml <- xor(i %% 2L == 1L, pass %% 2L == 1L)
  n <- sample(60:400, 1)
  gen <- templates[[tpl]](n)
  d <- gen$data
  stopifnot(nrow(d) == n)
  name <- sprintf("d%02d_%s", i, tpl)

  res <- capture(lmer(as.formula(gen$formula), data = d, REML = reml, control = lmerControl()))
  out <- list(template = tpl, formula = gen$formula, reml = reml, n = n,
              label_types = as.list(gen$label_cols))
  out <- c(out, data_fields(d))
  out$truth <- gen$truth
  if (!is.null(res$error)) {
    out$error <- res$error
    out$lme4_messages <- str_array(c(res$warnings, res$messages))
    cat(sprintf("%-26s %-34s ERROR %s\n", name, gen$formula, res$error))
  } else {
    fit <- res$value
    out <- c(out, lmer_fields(fit, data = d))
    out$lme4_messages <- str_array(c(res$warnings, res$messages))
    out <- c(out, conv_info(fit))
    if (!is.null(gen$expect)) {
      ex <- gen$expect
      d0 <- d
      d0[[if (ex$column == "y") "y" else "x"]] <- eval(parse(text = ex$undo)[[1]], d)
      bres <- capture(lmer(as.formula(ex$formula), data = d0, REML = reml, control = lmerControl()))
      if (!is.null(bres$error)) stop(name, ": base fit failed: ", bres$error)
      base <- lmer_fields(bres$value, condvar = FALSE, fitted = FALSE)
      base$reml <- reml
      e <- expected_fit(base, ex$kind, ex$amount, n, fit)
      out$expected <- list(transform = paste(ex$kind, ex$amount),
                           base_data = sprintf("%s = %s", if (ex$column == "y") "y" else "x", ex$undo),
                           base_formula = ex$formula,
                           base_lme4_messages = str_array(c(bres$warnings, bres$messages)),
                           objective = e$objective, theta = e$theta, sigma = e$sigma,
                           fixef = e$fixef)
      out$drift <- drift(out, e)
    }
    cat(sprintf("%-26s %-32s %s n=%3d %s  obj %.8g  theta %s%s%s\n", name, gen$formula,
                if (reml) "REML" else "ML  ", n,
                paste(sprintf("%s:%s", names(gen$label_cols), substr(gen$label_cols, 1, 3)),
                      collapse = ","),
                out$objective, paste(sprintf("%.4g", out$theta), collapse = " "),
                if (!is.null(out$drift)) sprintf("\n      drift: objective %+.3g theta %.3g fixef %.3g",
                  out$drift$objective_diff, out$drift$theta_max_abs_diff, out$drift$fixef_max_rel_diff) else "",
                if (length(out$lme4_messages)) paste0("\n      lme4: ", paste(out$lme4_messages, collapse = " | ")) else ""))
  }
  results[[name]] <- c(out, versions())
}

write_checked(results, out_path)
