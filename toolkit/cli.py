"""What every command line shares: logging, progress events and bars, row writers, common arguments.

Only the standard library loads here (tqdm inside `ProgressBars`), so each package's `--help` stays fast.

- Logging: `setup_logging` is the one place handlers are configured; messages go to stderr, results to stdout.
- Progress: a service takes `progress(fraction, message)`. `report` sends a `Step`, a message that is a
  plain string (`images: 128/480 img`) and also carries its counts, so `ProgressBars` draws one tqdm bar
  per stage without parsing the text back.
- Rows: `format_table`, `write_csv` and `write_rows` (table, CSV or JSON, to a file written whole then
  renamed into place, or to a stream).
- Arguments: `STORE_ARG`, `DB_ARG`, `MODEL_ARG`, ... as pybioclip's `device_arg`/`model_arg`, and `positive_int`.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from toolkit.settings import DB_ENV, DEFAULT_MODEL, MODEL_ENV, STORE_ENV

logger = logging.getLogger(__name__)

T = TypeVar("T")

# --- logging -------------------------------------------------------------------------------------

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
TIMESTAMP_FORMAT = "%(asctime)s " + LOG_FORMAT


class QuietLibraries(logging.Filter):
    """open_clip logs every step of model creation on the root logger at INFO: keep its warnings only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or "open_clip" not in record.pathname


def setup_logging(level: int = logging.INFO, *, rank: int = 0, timestamps: bool = False, replace: bool = False,
                  quiet_libraries: bool = False) -> None:
    """Messages to stderr at `level`; the one place a command configures logging.

    Leaves logging alone when the caller configured it already (`python -m demo` calls the packages'
    commands), unless `replace` (a training process owns its logging). Processes other than rank 0
    only report warnings and errors, their lines prefixed with the rank.
    """
    root = logging.getLogger()
    if root.handlers:
        if not replace:
            return
        for handler in list(root.handlers):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    prefix = f"[rank {rank}] " if rank else ""
    handler.setFormatter(logging.Formatter(prefix + (TIMESTAMP_FORMAT if timestamps else LOG_FORMAT)))
    if quiet_libraries:
        handler.addFilter(QuietLibraries())
    root.addHandler(handler)
    root.setLevel(level if rank == 0 else max(level, logging.WARNING))


# --- progress ------------------------------------------------------------------------------------

Progress = Callable[[float, str], None]  # progress(fraction done, message)


class Step(str):
    """A progress message with its counts: the text `images: 128/480 img`, and `stage`, `done`, `total`, `unit`."""

    stage: str
    done: int
    total: int
    unit: str

    def __new__(cls, stage: str, done: int, total: int, unit: str) -> "Step":
        step = super().__new__(cls, f"{stage}: {done}/{total} {unit}")
        step.stage, step.done, step.total, step.unit = stage, done, total, unit
        return step


def report(progress: Progress | None, stage: str, done: int, total: int, unit: str) -> None:
    """Call `progress` (when given) with the fraction done and a `Step`."""
    if progress is not None:
        progress(done / total if total else 1.0, Step(stage, done, total, unit))


class ProgressBars:
    """Draws `progress(fraction, message)` calls as tqdm bars on stderr; `close()` ends the last one.

    By stage (the default): one bar per stage of `Step` messages whose unit is in `bar_units` (rate,
    time left); other stages and plain messages are logged once on `log`. With `total`: one bar of
    `total` steps that follows the fraction, with the message beside it when `show_message`.
    """

    def __init__(self, description: str = "", total: int | None = None, unit: str = "it", *,
                 bar_units: Sequence[str] = ("img", "taxa"), show_message: bool = False,
                 disable: bool | None = False, log: logging.Logger | None = None, **bar_options: Any) -> None:
        self.bar_units, self.show_message, self.disable = tuple(bar_units), show_message, disable
        self.log = log or logger
        self._bar: Any = None
        self._stage = ""
        self._total = total
        if total is not None:
            self._bar = self._new_bar(total, description, unit, **bar_options)

    def _new_bar(self, total: int, description: str, unit: str, **options: Any) -> Any:
        from tqdm import tqdm

        return tqdm(total=total, desc=description, unit=unit, file=sys.stderr, disable=self.disable, **options)

    def __call__(self, fraction: float, message: str) -> None:
        if self._total is not None:
            self._bar.update(round(fraction * self._total) - self._bar.n)
            if self.show_message:
                self._bar.set_postfix_str(message, refresh=False)
            return
        if not isinstance(message, Step):
            self.log.info("%s", message)
            return
        if message.stage != self._stage:
            self.close()
            self._stage = message.stage
            if message.unit in self.bar_units:
                self._bar = self._new_bar(message.total, message.stage, message.unit, dynamic_ncols=True)
            else:
                self.log.info("%s ...", message.stage)
        if self._bar is not None:
            self._bar.update(message.done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "ProgressBars":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in slices of `size` (the last one shorter)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --- rows ----------------------------------------------------------------------------------------

OUTPUT_FORMATS: tuple[str, ...] = ("table", "csv", "json")
SCORE_DIGITS = 4


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.{SCORE_DIGITS}f}"
    return "" if value is None else str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as an aligned text table; column `#` numbers them from 1."""
    cells = [[str(i) if c == "#" else _cell(row.get(c)) for c in columns] for i, row in enumerate(rows, 1)]
    widths = [max([len(c)] + [len(r[j]) for r in cells]) for j, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def write_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str], out: IO[str]) -> None:
    """A header, then the rows' values of `columns` (other keys left out)."""
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def format_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], format: str, out: IO[str]) -> None:
    """The rows to `out` as a table, CSV or JSON (a list of objects with `columns`)."""
    if format == "csv":
        write_csv(rows, columns, out)
    elif format == "json":
        json.dump([{c: row.get(c, "") for c in columns} for row in rows], out, indent=2)
        out.write("\n")
    else:
        out.write(format_table(rows, columns) + "\n")


def write_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], format: str, output: str | None,
               out: IO[str], log: logging.Logger | None = None) -> None:
    """The rows in `format` to `output` (written whole, then renamed into place) or to `out`."""
    if not output:
        format_rows(rows, columns, format, out)
        return
    target = Path(output).expanduser()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent if str(target.parent) else ".")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            format_rows(rows, columns, format, f)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    (log or logger).info("%d rows written to %s", len(rows), output)


# --- arguments -----------------------------------------------------------------------------------

STORE_ARG: dict[str, Any] = {
    "metavar": "PATH|URL",
    "help": f"Qdrant store: a folder for the embedded engine, or a server URL (default: ${STORE_ENV}, "
            "else ./var/qdrant)",
}
API_KEY_ARG: dict[str, Any] = {"metavar": "KEY", "help": "API key of a Qdrant server"}
DB_ARG: dict[str, Any] = {
    "metavar": "URL",
    "help": f"catalog SQLAlchemy URL or SQLite file (default: ${DB_ENV}, else ./var/catalog.db)",
}
MODEL_ARG: dict[str, Any] = {
    "metavar": "SPEC",
    "help": f"open_clip model spec: hf-hub:ORG/REPO, a model folder, tol-tiny, or a built-in name "
            f"(default: ${MODEL_ENV}, else {DEFAULT_MODEL})",
}


def positive_int(value: str) -> int:
    """argparse `type=`: an integer of at least 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number
