"""The ``mixedfx`` command line: fit, predict, summary, plot, demo.

Every command is a thin layer over the public API; errors print one line
(``mixedfx: error: ...``, in terms of the command's flags) and exit with
status 2, without a traceback. No command writes over one of its inputs,
nor over an existing file without ``--force``; outputs are checked before
any work starts and written atomically (:mod:`mixedfx.clifiles`). When the
reader of stdout goes away (``mixedfx summary m.mfx | head -1``) the command
stops quietly with status 0.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
import warnings
from typing import Any

import pandas as pd

from . import __version__
from .clifiles import (
    CommandError,
    check_output,
    check_table_output,
    kind,
    output,
    read_table,
    write_table,
)

EXAMPLES = """examples:
  mixedfx fit sleep.csv --formula "Reaction ~ Days + (Days | Subject)" --out sleep.mfx
  mixedfx fit herds.csv --formula "cbind(incidence, size - incidence) ~ period + (1 | herd)" \
      --family binomial --out herds.mfx
  mixedfx predict herds.mfx new.csv --type link --interval confidence
  mixedfx predict sleep.mfx new.csv --out preds.csv
  mixedfx predict sleep.mfx new.csv --given first_days.csv --interval prediction --level 0.9
  mixedfx predict sleep.mfx new.tsv --keep Subject,Days --float-format %.6g --out preds.tsv
  mixedfx predict sleep.mfx new.parquet --re "(1 | Subject)" --new-levels nan --out p.parquet
  mixedfx summary sleep.mfx
  mixedfx plot sleep.mfx --kind caterpillar --group Subject --term Days --out cat.png
  mixedfx plot sleep.mfx --kind shrinkage --data sleep.csv --out shrinkage.png
  mixedfx demo
"""

PLOT_OPTIONS = {  # the keywords of each plot function that the command line exposes
    "caterpillar": ("group", "term", "level"),
    "shrinkage": ("group", "term"),
    "groups": ("group", "x", "which"),
    "observed": (),
    "calibration": ("group",),
}
NEEDS_DATA = ("shrinkage", "groups", "observed", "calibration")
PREDICTION_COLUMNS = ("fit", "se", "lower", "upper")
# Python keyword arguments named in messages of the API, and the flags that set them
FLAGS = {"missing": "--missing", "new_levels": "--new-levels", "re": "--re", "level": "--level"}
FLAGS |= {"interval": "--interval", "x": "--x", "group": "--group", "term": "--term"}
FLAGS |= {"which": "--which", "weights": "--weights", "offset": "--offset", "nAGQ": "--nagq"}
PY_ARGUMENT = re.compile(
    r"(?<![\w.])(" + "|".join(FLAGS) + r")=('[^']*'(?: or '[^']*')*|[^\s,;)'\"]*)"
)


def cli_message(message: str) -> str:
    """An API message with Python arguments as flags: ``missing='drop'`` -> ``--missing drop``."""

    def flag(m: re.Match[str]) -> str:
        values = [v.strip("'") for v in m.group(2).split(" or ") if v]
        return " or ".join(f"{FLAGS[m.group(1)]} {v}" for v in values) or FLAGS[m.group(1)]

    return PY_ARGUMENT.sub(flag, message)


# -- commands ---------------------------------------------------------------------------------
def _groups(formula: str) -> list[str]:
    """The grouping columns of a formula's random terms (read from a CSV as labels)."""
    from .frame.formula import parse

    return [f for term in parse(formula).random for f in term.factors]


def _fit(args: argparse.Namespace) -> None:
    from .fit import lmm
    from .glmm import glmm
    from .modelfile import save

    if args.out == "-":
        raise CommandError("fit writes a model file: give --out a file name, e.g. model.mfx")
    check_output(args.out, [args.data], args.force)
    data = read_table(args.data, args.sep, labels=_groups(args.formula))
    model: Any
    if args.family is None:
        for flag in ("link", "nagq"):
            if getattr(args, flag) is not None:
                raise CommandError(f"--{flag} is for GLMMs: give --family binomial or poisson")
        model = lmm(
            args.formula,
            data,
            reml=not args.ml,
            missing=args.missing,
            offset=args.offset,
            weights=args.weights,
        )
    else:
        if args.ml:
            raise CommandError("--ml is for linear mixed models (GLMMs are fitted by ML)")
        family = args.family if args.link is None else f"{args.family}(link='{args.link}')"
        model = glmm(
            args.formula,
            data,
            family=family,
            weights=args.weights,
            offset=args.offset,
            nAGQ=1 if args.nagq is None else args.nagq,
            missing=args.missing,
        )
    save(model, args.out, overwrite=args.force)
    print(model.summary())
    print(f"\nsaved {args.out}")


def _keep(args: argparse.Namespace, columns: list[str]) -> list[str]:
    """The input columns to write before the predictions."""
    if args.keep is None:
        return columns
    wanted = [c.strip() for c in args.keep.split(",") if c.strip()]
    for name in wanted:
        if name not in columns:
            close = difflib.get_close_matches(name, columns, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; it has {columns[:20]}"
            raise CommandError(f"--keep: newdata has no column {name!r}{hint}")
    return wanted


def _predict(args: argparse.Namespace) -> None:
    from .glmm_model import GeneralizedLinearMixedModel
    from .modelfile import load

    check_output(
        args.out, [args.model, args.newdata, *([args.given] if args.given else [])], args.force
    )
    if args.float_format is not None:
        try:
            args.float_format % 1.5
        except (TypeError, ValueError) as exc:
            message = f"--float-format {args.float_format!r} is not a format: {exc}"
            raise CommandError(message) from None
    check_table_output(args.out, args.float_format)  # before the work it would waste
    model: Any = load(args.model)  # an LMM or a GLMM
    groups = _groups(model.spec.formula)
    new = read_table(args.newdata, args.sep, labels=groups)
    keep = _keep(args, [str(c) for c in new.columns])
    clash = [c for c in keep if c in PREDICTION_COLUMNS]
    if clash:
        raise CommandError(
            f"newdata has column(s) {clash}, named like the prediction columns; leave them "
            "out with --keep"
        )
    given = read_table(args.given, args.sep, labels=groups) if args.given else None
    kw: dict[str, str] = {}
    if isinstance(model, GeneralizedLinearMixedModel):
        kw["type"] = args.type or "response"
    elif args.type is not None:
        raise CommandError("--type is for GLMMs (a linear mixed model predicts its response)")
    out = model.predict(
        new,
        re=args.re,
        new_levels=args.new_levels,
        given=given,
        interval=args.interval,
        level=args.level,
        **kw,
    )
    frame = out if isinstance(out, pd.DataFrame) else pd.DataFrame({"fit": out})
    passthrough = new[keep]
    if keep and "parquet" not in (kind(args.newdata), kind(args.out)):
        passthrough = read_table(args.newdata, args.sep, text=True)[keep]  # the text, unchanged
    frame = pd.concat([passthrough.reset_index(drop=True), frame.reset_index(drop=True)], axis=1)
    write_table(frame, args.out, args.force, args.float_format)


def _summary(args: argparse.Namespace) -> None:
    from .modelfile import load

    print(load(args.model).summary())


def _which(value: str) -> int | list[str]:
    """``--which``: a number of groups, or comma-separated labels."""
    return int(value) if value.strip().isdigit() else [v.strip() for v in value.split(",")]


def _plot(args: argparse.Namespace) -> None:
    import dataclasses

    from . import plots
    from .modelfile import load

    plot = args.kind
    given = {k: getattr(args, k) for k in ("group", "term", "level", "x", "which")}
    given = {k: v for k, v in given.items() if v is not None}
    wrong = sorted(set(given) - set(PLOT_OPTIONS[plot]))
    if wrong:
        users = [k for k, opts in PLOT_OPTIONS.items() if wrong[0] in opts]
        raise CommandError(
            f"--{wrong[0]} does not apply to --kind {plot} (it applies to --kind "
            f"{' and '.join(users)})"
        )
    if plot in NEEDS_DATA and not args.data:
        raise CommandError(f"plot --kind {plot} needs the training data: add --data train.csv")
    inputs = [args.model, *([args.data] if args.data else [])]
    check_output(args.out, inputs, args.force)
    model: Any = load(args.model)  # an LMM or a GLMM
    if args.data:
        data = read_table(args.data, args.sep, labels=_groups(model.spec.formula))
        model = dataclasses.replace(model, data=data)
    if "which" in given:
        given["which"] = _which(given["which"])
    function = plots.observed_vs_predicted if plot == "observed" else getattr(plots, plot)
    figure = function(model, **given).figure_
    suffix = os.path.splitext(args.out)[1].lstrip(".").lower()
    with output(args.out, args.force) as f:
        figure.savefig(f, format=suffix or "png", dpi=110)
    print(f"wrote {args.out}", file=sys.stderr if args.out == "-" else sys.stdout)


def _demo(args: argparse.Namespace) -> None:
    from .demo import run

    check_output(args.out, [], args.force)
    run(args.out)


# -- the parser ---------------------------------------------------------------------------------
class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Examples kept as written; every option's help ends with its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.required and action.option_strings:
            return f"{text} (required)"
        if "default" in text or action.default in (None, argparse.SUPPRESS) or not text:
            return text
        return f"{text} (default: %(default)s)"


def _command(sub: Any, name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help,
        description=help,
        epilog=EXAMPLES,
        formatter_class=_Formatter,
        allow_abbrev=False,
    )


def _outputs(p: argparse.ArgumentParser, out_help: str, **out: Any) -> None:
    p.add_argument("--out", help=out_help, **out)
    p.add_argument(
        "--force", action="store_true", help="overwrite --out if it exists (never an input)"
    )


def _sep(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sep",
        help="field separator of CSV input (default: tab for .tsv and .tab files, else a comma)",
    )


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="mixedfx",
        description="Linear and generalized linear mixed models with lme4's numbers that "
        "predict with the random effects.",
        epilog=EXAMPLES,
        formatter_class=_Formatter,
        allow_abbrev=False,
    )
    top.add_argument("--version", action="version", version=f"mixedfx {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(sub, "fit", "fit a model and save it")
    p.add_argument("data", help="training data: CSV, TSV or Parquet (- reads CSV from stdin)")
    p.add_argument("--formula", required=True, help='lme4 formula, e.g. "y ~ x + (x | g)"')
    p.add_argument("--ml", action="store_true", help="maximum likelihood (default: REML)")
    p.add_argument(
        "--missing",
        default="error",
        choices=["error", "drop"],
        help="rows with NaN, inf or missing labels in a used column: an error, or drop "
        "them (the count is reported)",
    )
    p.add_argument(
        "--family",
        choices=["binomial", "poisson"],
        help="fit a GLMM: binomial (0/1, cbind(successes, failures), or proportions with "
        "--weights trials) or poisson (default: a linear mixed model)",
    )
    p.add_argument(
        "--link",
        choices=["logit", "probit", "cloglog", "log"],
        help="GLMM link (default: the family's, logit or log)",
    )
    p.add_argument(
        "--weights",
        metavar="COL",
        help="prior-weights column (binomial: trials per row of a proportion response) "
        "(default: none)",
    )
    p.add_argument(
        "--offset",
        metavar="COL",
        help="column added to the linear predictor, e.g. log exposure, besides offset() terms "
        "(default: none)",
    )
    p.add_argument(
        "--nagq", type=int, help="GLMM quadrature nodes: 1 Laplace (default), >1 one (1 | g) term"
    )
    _sep(p)
    _outputs(p, "model file to write (.mfx)", required=True)
    p.set_defaults(run=_fit)

    p = _command(sub, "predict", "predict from a saved model")
    p.add_argument("model", help="model file (.mfx)")
    p.add_argument("newdata", help="rows to predict: CSV, TSV or Parquet (- reads CSV from stdin)")
    p.add_argument(
        "--given",
        help="observed rows, with the response, that update their groups' random effects "
        "before predicting (default: none)",
    )
    p.add_argument(
        "--re", default="all", help='random effects: "all", "none" or terms such as "(1 | g)"'
    )
    p.add_argument(
        "--new-levels",
        default="population",
        choices=["population", "nan", "error"],
        help="groups not seen in training: population level, NaN, or an error",
    )
    p.add_argument(
        "--interval",
        choices=["confidence", "prediction"],
        help="add se, lower and upper columns for this interval (default: none, only fit)",
    )
    p.add_argument("--level", type=float, default=0.95, help="interval level")
    p.add_argument(
        "--type",
        choices=["response", "link"],
        help="GLMMs: means, e.g. probabilities (default), or the linear predictor",
    )
    p.add_argument(
        "--keep",
        help="newdata columns to write before the predictions, comma-separated; empty for "
        "none (default: all, as in the input file)",
    )
    p.add_argument(
        "--float-format",
        help="printf-style format of float columns in CSV output, e.g. %%.6g; columns of a "
        "CSV input are copied as written (default: the shortest text that reads back "
        "exactly)",
    )
    _sep(p)
    _outputs(p, "CSV, TSV or Parquet file to write, or - for stdout", default="-")
    p.set_defaults(run=_predict)

    p = _command(sub, "summary", "print a saved model's summary")
    p.add_argument("model", help="model file (.mfx)")
    p.set_defaults(run=_summary)

    p = _command(sub, "plot", "draw a figure of a saved model")
    p.add_argument("model", help="model file (.mfx)")
    p.add_argument("--kind", choices=list(PLOT_OPTIONS), default="caterpillar", help="which plot")
    p.add_argument(
        "--data",
        help="the training data, which shrinkage, groups, observed and calibration need (a "
        "model file holds no rows) (default: none)",
    )
    p.add_argument("--group", help="grouping factor (default: the model's first)")
    p.add_argument("--term", help="random-effects column, e.g. Days (default: the first)")
    p.add_argument("--level", type=float, help="caterpillar interval level (default: 0.95)")
    p.add_argument("--x", help="groups: the column on the x axis (default: the first numeric)")
    p.add_argument(
        "--which",
        help="groups: how many groups (the largest), or comma-separated labels (default: 6)",
    )
    _sep(p)
    _outputs(p, "image file, e.g. fig.png or fig.pdf", required=True)
    p.set_defaults(run=_plot)

    p = _command(sub, "demo", "run the demo on simulated store sales")
    _outputs(p, "figure to write", default="demo.png")
    p.set_defaults(run=_demo)
    return top


def unknown_option(top: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """An error naming the first ``--option`` the command does not know, and the closest one.

    Checked before argparse parses, so that ``--fromula`` is reported as
    unknown rather than ``--formula`` as missing.
    """
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    command = sub.choices.get(argv[0]) if argv else None
    parser = command or top
    known = parser._option_string_actions
    skip = False
    for token in argv[1:] if command else argv:
        if skip:
            skip = False
            continue
        if token == "--":
            break
        name = token.split("=", 1)[0]
        if name in known:
            skip = "=" not in token and known[name].nargs != 0
        elif token.startswith("--"):
            close = difflib.get_close_matches(name, [k for k in known if k.startswith("--")], n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            return f"{parser.prog}: error: unknown option {name}{hint}"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    top = parser()
    problem = unknown_option(top, argv)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    args = top.parse_args(argv)
    try:
        with warnings.catch_warnings():  # restored on return: main() may run in-process
            warnings.simplefilter("default")
            warnings.showwarning = show_warning
            args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except (ValueError, OSError, ImportError, KeyError) as exc:
        print(f"mixedfx: error: {cli_message(str(exc))}", file=sys.stderr)
        return 2
    return 0


def show_warning(message: Warning | str, *args: object, **kwargs: object) -> None:
    """Print a warning as ``mixedfx: warning: ...`` on stderr (no file or line)."""
    print(f"mixedfx: warning: {cli_message(str(message))}", file=sys.stderr)


def _silence_stdout() -> None:
    """Point stdout at devnull, so that flushing it at exit does not fail again.

    The reader of a pipe closed it early (e.g. ``| head -1``): the rest of the
    output has nowhere to go, which is not an error (Python's documented
    recipe for SIGPIPE).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
