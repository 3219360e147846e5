# Export the data sets bundled with mixedfx from R's lme4 and nlme packages.
#
# Usage, from the repository root:
#
#     Rscript tests/reference/export_datasets.R
#
# Writes, into src/mixedfx/datasets/data/:
#   - <name>.csv.gz  gzipped CSV, no row names, R's column names; factor
#                    columns written as their labels; numbers with
#                    write.csv's default 15 significant digits;
#   - levels.json    per data set: the row count and, per column in order, its
#                    R type ("double", "integer", "factor", "ordered") and, for
#                    factors, the levels in R's order.  The Python loader
#                    (mixedfx.datasets.load) and make_reference.R both rebuild
#                    the factors from it.
# Requires the R packages lme4, nlme and jsonlite.

suppressPackageStartupMessages({
  library(lme4)
  library(nlme)
  library(jsonlite)
})

out_dir <- file.path("src", "mixedfx", "datasets", "data")
if (!dir.exists(out_dir)) {
  stop("run from the repository root: ", out_dir, " not found")
}

orthodont <- as.data.frame(nlme::Orthodont)[, c("distance", "age", "Subject", "Sex")]
# drop groupedData's attributes (formula, labels, units, ...)
orthodont <- data.frame(
  distance = as.numeric(orthodont$distance),
  age = as.numeric(orthodont$age),
  Subject = orthodont$Subject,
  Sex = orthodont$Sex
)

datasets <- list(
  sleepstudy = lme4::sleepstudy,
  dyestuff = lme4::Dyestuff,
  dyestuff2 = lme4::Dyestuff2,
  penicillin = lme4::Penicillin,
  pastes = lme4::Pastes,
  insteval = lme4::InstEval,
  orthodont = orthodont,
  cbpp = lme4::cbpp,
  grouseticks = lme4::grouseticks
)

column_type <- function(x) {
  if (is.ordered(x)) return("ordered")
  if (is.factor(x)) return("factor")
  if (is.integer(x)) return("integer")
  if (is.double(x)) return("double")
  stop("unsupported column class: ", paste(class(x), collapse = "/"))
}

meta <- list()
for (name in names(datasets)) {
  df <- as.data.frame(datasets[[name]])
  if (anyNA(df)) stop(name, " has missing values")
  columns <- list()
  for (col in names(df)) {
    x <- df[[col]]
    entry <- list(name = col, type = column_type(x))
    if (is.factor(x)) {
      entry$levels <- I(levels(x))
      df[[col]] <- as.character(x)
    }
    columns[[length(columns) + 1]] <- entry
  }
  meta[[name]] <- list(nrow = nrow(df), columns = columns)

  path <- file.path(out_dir, paste0(name, ".csv.gz"))
  con <- gzfile(path, "w")
  write.csv(df, con, row.names = FALSE)
  close(con)
  cat(sprintf("%-12s %6d rows  -> %s\n", name, nrow(df), path))
}

meta_path <- file.path(out_dir, "levels.json")
write_json(meta, meta_path, auto_unbox = TRUE, pretty = TRUE)
cat("levels    ->", meta_path, "\n")
