"""Files of the command line: tables in (CSV, TSV, Parquet), tables and figures out, no clobbering.

Outputs are written atomically (:mod:`mixedfx.atomicfile`). Before a
command does any work, :func:`check_output` refuses an output that is one
of the command's inputs (even with ``--force``), an existing file (unless
``--force``), and a directory that does not exist.
"""

from __future__ import annotations

import functools
import importlib
import io
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from .atomicfile import replacing
from .frame.levels import spell

COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")
PARQUET = (".parquet", ".pq")
TABBED = (".tsv", ".tab")
STDIO = "-"


class CommandError(ValueError):
    """A problem with the command line itself: one line, exit status 2."""


def kind(path: str) -> str:
    """``"parquet"``, ``"tsv"`` or ``"csv"``, from the extension (after any compression one)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    return "parquet" if last in PARQUET else "tsv" if last in TABBED else "csv"


@functools.cache
def _stdin() -> str:
    """Standard input, read once (a table from stdin may be parsed twice)."""
    return sys.stdin.read()


def read_table(
    path: str, sep: str | None = None, text: bool = False, labels: Sequence[str] = ()
) -> pd.DataFrame:
    """A CSV, TSV or Parquet file as a DataFrame; ``-`` reads CSV from standard input.

    Parameters
    ----------
    path : str
    sep : str, optional
        Field separator of a CSV; default tab for ``.tsv``/``.tab``, else comma.
    text : bool
        Every column as the text in the file (no type inference, no missing
        values), to pass columns through unchanged.
    labels : sequence of str
        Grouping columns: read from a CSV as their text (empty fields and
        ``NA`` stay missing), so that ``007`` and ``7`` stay two groups, as
        the label policy keeps them in a frame (:mod:`mixedfx.frame.levels`);
        type inference would read both as the number 7. Columns the file
        lacks are ignored here. A Parquet file keeps its own types.
    """
    dtype: Any = str if text else dict.fromkeys(labels, str) or None
    data = _read(path, sep, dtype, text)
    if text or (path != STDIO and kind(path) == "parquet"):
        return data
    return _numbers_where_exact(data, labels)


def _numbers_where_exact(data: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    """Label columns read as text turned into numbers where every label spells its number.

    ``1, 2, 10`` become numbers (sorted as numbers, as R reads them); one
    label such as ``007``, ``7.0`` or an id beyond double precision keeps the
    column as text, whose labels the numbers would merge.
    """
    for name in labels:
        if name not in data.columns or not pd.api.types.is_string_dtype(data[name].dtype):
            continue
        texts = pd.Series(data[name].dropna().unique(), dtype=object)
        numbers = pd.to_numeric(texts, errors="coerce")  # NaN where not a number: no spelling
        if len(texts) and all(spell(v) == t for t, v in zip(texts, numbers, strict=True)):
            data[name] = pd.to_numeric(data[name])
    return data


def _read(path: str, sep: str | None, dtype: Any, text: bool) -> pd.DataFrame:
    """The table at ``path`` (see :func:`read_table`), with ``dtype`` for a CSV."""
    if path == STDIO:
        return pd.read_csv(
            io.StringIO(_stdin()), sep=sep or ",", dtype=dtype, keep_default_na=not text
        )
    if not Path(path).is_file():
        raise CommandError(f"data file {path!r} does not exist")
    fmt = kind(path)
    if fmt == "parquet":
        try:
            return pd.read_parquet(path)
        except ImportError as exc:
            raise CommandError(
                f"reading Parquet ({path}) needs pyarrow: pip install 'mixedfx[parquet]'"
            ) from exc
    sep = sep or ("\t" if fmt == "tsv" else ",")
    return pd.read_csv(path, sep=sep, dtype=dtype, keep_default_na=not text)


def check_output(out: str, inputs: list[str], force: bool, what: str = "--out") -> None:
    """Refuse an output that would clobber an input or, without ``force``, any file.

    Raises
    ------
    CommandError
        When ``out`` is one of ``inputs`` (the same file, by any path), an
        existing file without ``force``, a directory, or in a directory
        that does not exist.
    """
    if out == STDIO:
        return
    target = Path(out)
    for name in inputs:
        if name != STDIO and target.exists() and os.path.samefile(target, name):
            raise CommandError(
                f"refusing to write {what} {out!r} over {name!r}, an input of this command; "
                f"choose another {what}"
            )
    if target.is_dir():
        raise CommandError(f"{what} {out!r} is a directory; give a file name")
    if target.exists() and not force:
        raise CommandError(f"{what} {out!r} exists; add --force to overwrite it")
    parent = target.parent
    if not parent.is_dir():
        raise CommandError(f"the directory of {what} {out!r} ({str(parent)!r}) does not exist")


@contextmanager
def output(out: str, force: bool) -> Iterator[BinaryIO]:
    """A binary stream to write ``out`` to: standard output for ``-``, else atomically."""
    if out == STDIO:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    try:
        with replacing(out, overwrite=force) as f:
            yield f
    except FileExistsError as exc:  # created by someone else while we worked
        raise CommandError(
            f"--out {out!r} appeared while writing; add --force to overwrite"
        ) from exc


def check_table_output(out: str, float_format: str | None = None) -> None:
    """Refuse, before any work, an output table :func:`write_table` could not write.

    Raises
    ------
    CommandError
        For ``--float-format`` with Parquet output, and for Parquet output
        without a Parquet engine (pyarrow or fastparquet).
    """
    if out == STDIO or kind(out) != "parquet":
        return
    if float_format is not None:
        raise CommandError("--float-format applies to CSV output, not Parquet")
    for engine in ("pyarrow", "fastparquet"):
        try:
            importlib.import_module(engine)
            return
        except ImportError:
            continue
    raise CommandError(f"writing Parquet ({out}) needs pyarrow: pip install 'mixedfx[parquet]'")


def write_table(
    frame: pd.DataFrame, out: str, force: bool, float_format: str | None = None
) -> None:
    """Write CSV (TSV for ``.tsv``), or Parquet by extension; ``-`` writes CSV to stdout."""
    check_table_output(out, float_format)
    fmt = "csv" if out == STDIO else kind(out)
    writer: Callable[[BinaryIO], None]
    if fmt == "parquet":
        writer = functools.partial(_parquet, frame, out)
    else:
        sep = "\t" if fmt == "tsv" else ","
        writer = functools.partial(_csv, frame, sep, float_format, out)
    with output(out, force) as f:
        writer(f)


def _csv(frame: pd.DataFrame, sep: str, float_format: str | None, out: str, f: BinaryIO) -> None:
    suffix = Path(out).suffix.lower() if out != STDIO else ""
    compression: dict[str, Any] = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd"}
    compression[".zip"] = "zip"
    frame.to_csv(
        f,
        sep=sep,
        index=False,
        float_format=float_format,
        compression=compression.get(suffix),
        encoding="utf-8",
    )


def _parquet(frame: pd.DataFrame, out: str, f: BinaryIO) -> None:
    try:
        frame.to_parquet(f, index=False)
    except ImportError as exc:
        raise CommandError(
            f"writing Parquet ({out}) needs pyarrow: pip install 'mixedfx[parquet]'"
        ) from exc
