"""The ``mixedfx`` command line: fit, predict, summary, plot, demo.

Every command is a thin layer over the public API; errors print one line
(``mixedfx: error: ...``) and exit with status 2, without a traceback. When
the reader of stdout goes away (``mixedfx summary m.mfx | head -1``) the
command stops quietly with status 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import pandas as pd

from .glmm_model import GeneralizedLinearMixedModel
from .model import LinearMixedModel

EXAMPLES = """examples:
  mixedfx fit sleep.csv --formula "Reaction ~ Days + (Days | Subject)" --out sleep.mfx
  mixedfx fit herds.csv --formula "prop ~ period + (1 | herd)" --family binomial \
      --weights size --out herds.mfx
  mixedfx predict herds.mfx new.csv --type link --interval confidence --out -
  mixedfx predict sleep.mfx new.csv --out preds.csv
  mixedfx predict sleep.mfx new.csv --given first_days.csv --interval prediction --level 0.9 \\
      --out -
  mixedfx predict sleep.mfx new.parquet --re "(1 | Subject)" --new-levels nan --out p.parquet
  mixedfx summary sleep.mfx
  mixedfx plot sleep.mfx --kind caterpillar --out caterpillar.png
  mixedfx demo
"""

PLOT_KINDS = ("caterpillar", "shrinkage", "groups", "observed", "calibration")


def read_table(path: str) -> pd.DataFrame:
    """A CSV or Parquet file (by extension) as a DataFrame; ``-`` reads CSV from stdin."""
    if path == "-":
        return pd.read_csv(sys.stdin)
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"data file {path!r} does not exist")
    if p.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(p)
    return pd.read_csv(p)


def write_table(frame: pd.DataFrame, path: str) -> None:
    """Write CSV or Parquet by extension; ``-`` writes CSV to stdout."""
    if path == "-":
        frame.to_csv(sys.stdout, index=False)
    elif Path(path).suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def _fit(args: argparse.Namespace) -> None:
    from .fit import lmm
    from .glmm import glmm

    data = read_table(args.data)
    model: LinearMixedModel | GeneralizedLinearMixedModel
    if args.family is None:
        for flag in ("link", "offset", "nagq"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag} is for GLMMs: give --family binomial or poisson")
        model = lmm(
            args.formula, data, reml=not args.ml, missing=args.missing, weights=args.weights
        )
    else:
        if args.ml:
            raise ValueError("--ml is for linear mixed models (GLMMs are fitted by ML)")
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
    model.save(args.out)
    print(model.summary())
    print(f"\nsaved {args.out}")


def _predict(args: argparse.Namespace) -> None:
    from .modelfile import load

    model = load(args.model)
    new = read_table(args.newdata)
    given = read_table(args.given) if args.given else None
    kw = {}
    if isinstance(model, GeneralizedLinearMixedModel):
        kw["type"] = args.type or "response"
    elif args.type is not None:
        raise ValueError("--type is for GLMMs (a linear mixed model predicts its response)")
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
    write_table(frame.reset_index(drop=True), args.out)


def _summary(args: argparse.Namespace) -> None:
    from .modelfile import load

    print(load(args.model).summary())


def _plot(args: argparse.Namespace) -> None:
    import dataclasses

    from . import plots
    from .modelfile import load

    model = load(args.model)
    if args.data:
        model = dataclasses.replace(model, data=read_table(args.data))
    kind = {"observed": "observed_vs_predicted"}.get(args.kind, args.kind)
    display = getattr(plots, kind)(model)
    display.figure_.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


def _demo(args: argparse.Namespace) -> None:
    from .demo import run

    run(args.out)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="mixedfx",
        description="Linear and generalized linear mixed models with lme4's numbers that "
        "predict with the random effects.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "fit",
        help="fit a model and save it",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", help="training data: CSV or Parquet")
    p.add_argument("--formula", required=True, help='lme4 formula, e.g. "y ~ x + (x | g)"')
    p.add_argument("--ml", action="store_true", help="maximum likelihood instead of REML")
    p.add_argument(
        "--missing",
        default="error",
        choices=["error", "drop"],
        help="rows with NaN, inf or missing labels in a used column: error (default) or "
        "drop them (the count is reported)",
    )
    p.add_argument(
        "--family",
        choices=["binomial", "poisson"],
        help="fit a GLMM: binomial (0/1, or proportions with --weights trials) or poisson",
    )
    p.add_argument("--link", choices=["logit", "probit", "cloglog", "log"], help="GLMM link")
    p.add_argument(
        "--weights",
        metavar="COL",
        help="prior-weights column (binomial: trials per row of a proportion response)",
    )
    p.add_argument("--offset", metavar="COL", help="GLMM offset column (e.g. log exposure)")
    p.add_argument(
        "--nagq", type=int, help="GLMM quadrature nodes: 1 Laplace (default), >1 one (1 | g) term"
    )
    p.add_argument("--out", required=True, help="model file to write (.mfx)")
    p.set_defaults(run=_fit)

    p = sub.add_parser(
        "predict",
        help="predict from a saved model",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="model file (.mfx)")
    p.add_argument("newdata", help="rows to predict: CSV or Parquet")
    p.add_argument("--given", help="observed rows (with the response) that update the groups")
    p.add_argument("--re", default="all", help='"all", "none" or terms such as "(1 | g)"')
    p.add_argument("--new-levels", default="population", choices=["population", "nan", "error"])
    p.add_argument("--interval", choices=["confidence", "prediction"])
    p.add_argument("--level", type=float, default=0.95)
    p.add_argument(
        "--type",
        choices=["response", "link"],
        help="GLMMs: means (default) or the linear predictor",
    )
    p.add_argument("--out", required=True, help="output CSV or Parquet, or - for stdout")
    p.set_defaults(run=_predict)

    p = sub.add_parser("summary", help="print a saved model's summary")
    p.add_argument("model")
    p.set_defaults(run=_summary)

    p = sub.add_parser("plot", help="draw a figure of a saved model")
    p.add_argument("model")
    p.add_argument("--kind", choices=PLOT_KINDS, default="caterpillar")
    p.add_argument(
        "--data",
        help="training data, for plots that need it (shrinkage, groups, observed, calibration)",
    )
    p.add_argument("--out", required=True, help="image file, e.g. fig.png")
    p.set_defaults(run=_plot)

    p = sub.add_parser("demo", help="run the demo on simulated store sales")
    p.add_argument("--out", default="demo.png", help="figure to write")
    p.set_defaults(run=_demo)
    return top


def _silence_stdout() -> None:
    """Point stdout at devnull, so that flushing it at exit does not fail again.

    The reader of a pipe closed it early (e.g. ``| head -1``): the rest of the
    output has nowhere to go, which is not an error (Python's documented
    recipe for SIGPIPE).
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    warnings.simplefilter("default")
    warnings.formatwarning = lambda msg, cat, *a, **k: f"mixedfx: warning: {msg}\n"
    try:
        args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except (ValueError, OSError, ImportError, KeyError) as exc:
        print(f"mixedfx: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
