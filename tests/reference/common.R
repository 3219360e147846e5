# Helpers shared by the lme4 reference scripts (make_reference.R,
# make_predictions.R); sourced by them, not run on its own.
#
#   data_dir, load_dataset(name)   the data sets bundled with mixedfx
#                                  (src/mixedfx/datasets/data/*.csv.gz), with
#                                  factors rebuilt in the level order of
#                                  levels.json
#   to_json(x), matrix_rows(m)     a JSON writer that keeps full double
#                                  precision (jsonlite 1.8 caps numbers at 15
#                                  significant digits)
#   records(df)                    a data frame as JSON records, one per line
#
# Paths are relative to the repository root, the working directory the
# scripts must be run from.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
})

data_dir <- file.path("src", "mixedfx", "datasets", "data")
if (!dir.exists(data_dir)) {
  stop("run from the repository root: ", data_dir, " not found")
}

# ---------------------------------------------------------------------------
# Data: the bundled CSVs, with factors rebuilt from levels.json
# ---------------------------------------------------------------------------

levels_meta <- fromJSON(file.path(data_dir, "levels.json"), simplifyVector = FALSE)

load_dataset <- function(name) {
  meta <- levels_meta[[name]]
  if (is.null(meta)) stop("no levels.json entry for ", name)
  types <- vapply(meta$columns, function(col) col$type, "")
  col_names <- vapply(meta$columns, function(col) col$name, "")
  classes <- c(factor = "character", ordered = "character",
               integer = "integer", double = "numeric")[types]
  df <- read.csv(gzfile(file.path(data_dir, paste0(name, ".csv.gz"))),
                 colClasses = unname(classes), check.names = FALSE,
                 na.strings = character(0))
  stopifnot(identical(names(df), col_names), nrow(df) == meta$nrow)
  for (col in meta$columns) {
    if (col$type %in% c("factor", "ordered")) {
      lev <- unlist(col$levels)
      x <- factor(df[[col$name]], levels = lev, ordered = col$type == "ordered")
      if (anyNA(x)) stop(name, "$", col$name, ": labels outside levels.json")
      df[[col$name]] <- x
    }
  }
  df
}

# ---------------------------------------------------------------------------
# A small JSON writer that keeps full double precision
#   - named list            -> object
#   - unnamed list          -> array
#   - named atomic vector   -> object
#   - atomic vector wrapped in I() -> array, whatever its length
#   - other atomic vector   -> scalar if length 1, else array
#   - NA / NaN              -> null
#   - a string of class "json_raw" -> written as is (already JSON; used by
#     records() below to keep one data row per line)
#   - a small unnamed list of unnamed atomic vectors (a matrix as rows, at most
#     16 numbers) is written on one line
# ---------------------------------------------------------------------------

num_to_json <- function(x) {
  out <- character(length(x))
  for (i in seq_along(x)) {
    v <- x[i]
    if (is.na(v)) {
      out[i] <- "null"
    } else if (!is.finite(v)) {
      stop("cannot write a non-finite number to JSON")
    } else if (v == round(v) && abs(v) < 2^53) {
      out[i] <- sprintf("%.0f", v)
    } else {
      for (d in 15:17) {
        s <- sprintf(paste0("%.", d, "g"), v)
        if (as.numeric(s) == v) break
      }
      out[i] <- s
    }
  }
  out
}

atomic_to_json <- function(x) {
  if (is.factor(x)) x <- as.character(x)
  if (is.character(x)) {
    out <- vapply(x, function(s) {
      if (is.na(s)) "null" else as.character(toJSON(unbox(s)))
    }, "", USE.NAMES = FALSE)
  } else if (is.logical(x)) {
    out <- ifelse(is.na(x), "null", ifelse(x, "true", "false"))
  } else if (is.integer(x)) {
    out <- ifelse(is.na(x), "null", as.character(x))
  } else if (is.double(x)) {
    out <- num_to_json(x)
  } else {
    stop("cannot write class ", paste(class(x), collapse = "/"))
  }
  out
}

to_json <- function(x, indent = 0L) {
  if (inherits(x, "json_raw")) return(as.character(unclass(x)))
  pad <- strrep("  ", indent + 1L)
  end_pad <- strrep("  ", indent)
  if (is.null(x)) return("null")
  if (is.list(x)) {
    small_matrix <- is.null(names(x)) && length(x) > 0L &&
      all(vapply(x, function(e) is.atomic(e) && is.null(names(e)), TRUE)) &&
      sum(lengths(x)) <= 16L
    if (small_matrix) {
      # a small list of rows (a matrix): keep it on one line
      parts <- vapply(x, function(e) to_json(I(e)), "", USE.NAMES = FALSE)
      return(paste0("[", paste(parts, collapse = ", "), "]"))
    }
    parts <- vapply(x, to_json, "", indent = indent + 1L, USE.NAMES = FALSE)
    if (length(parts) == 0L) return(if (is.null(names(x))) "[]" else "{}")
    if (!is.null(names(x))) {
      keys <- atomic_to_json(names(x))
      parts <- paste0(keys, ": ", parts)
      return(paste0("{\n", paste0(pad, parts, collapse = ",\n"), "\n", end_pad, "}"))
    }
    return(paste0("[\n", paste0(pad, parts, collapse = ",\n"), "\n", end_pad, "]"))
  }
  as_array <- inherits(x, "AsIs")
  nms <- names(x)
  vals <- atomic_to_json(unclass(x))
  if (!is.null(nms)) {
    keys <- atomic_to_json(nms)
    return(paste0("{", paste0(keys, ": ", vals, collapse = ", "), "}"))
  }
  if (!as_array && length(vals) == 1L) return(vals)
  paste0("[", paste(vals, collapse = ", "), "]")
}

# a matrix as an unnamed list of rows (each an array)
matrix_rows <- function(m) {
  m <- unname(as.matrix(m))
  lapply(seq_len(nrow(m)), function(i) I(as.vector(m[i, ])))
}

# a data frame as an unnamed list of records, one JSON object per row, each
# written on one line: factors as their labels (strings), character columns
# as strings, integer columns as integers, double columns at full precision
# (an integral double is written without a decimal point, e.g. 3 for 3.0)
records <- function(df) {
  cols <- lapply(df, function(x) atomic_to_json(if (is.factor(x)) as.character(x) else x))
  keys <- atomic_to_json(names(df))
  lapply(seq_len(nrow(df)), function(i) {
    structure(paste0("{", paste0(keys, ": ", vapply(cols, `[`, "", i), collapse = ", "), "}"),
              class = "json_raw")
  })
}
