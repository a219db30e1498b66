"""What `python -m index` runs: results go to stdout, messages and the progress bar to stderr."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from index.constants import EXIT_NOTHING_READ, EXIT_OK, EXIT_USAGE, INGEST_WORKERS, NO_VALUE_LABEL
from index.records import CatalogStats, IngestSummary
from toolkit.cli import ProgressBars, setup_logging

logger = logging.getLogger(__name__)


def _error(message: str, code: int) -> int:
    print(f"index: error: {message}", file=sys.stderr)
    return code


def format_summary(summary: IngestSummary) -> list[str]:
    """The counts, then unknown columns, settled conflicts and every problem, one per line."""
    lines = [f"{name}: {getattr(summary, name)}" for name in ("added", "updated", "unchanged", "gone", "skipped")]
    if summary.unknown_columns:
        lines.append(f"unknown columns ignored: {', '.join(summary.unknown_columns)}")
    lines.extend(f"conflict: {conflict}" for conflict in summary.conflicts)
    lines.extend(str(problem) for problem in summary.problems)
    return lines


def _counts(title: str, counts: dict[str, int]) -> list[str]:
    return [f"{title}:"] + [f"  {name or NO_VALUE_LABEL}: {n}" for name, n in counts.items()]


def format_stats(stats: CatalogStats) -> list[str]:
    lines = [f"images present: {stats.images}", f"images gone: {stats.gone}"]
    lines += _counts("taxa per rank", stats.taxa_per_rank)
    lines += _counts("images per kingdom", stats.images_per_kingdom)
    lines += _counts("images per split", stats.images_per_split)
    lines += _counts("embedded per model", stats.embedded)
    if stats.last_ingest is None:
        lines.append("last ingest: none")
    else:
        when = stats.last_ingest.isoformat(timespec="seconds")
        lines.append(f"last ingest: {when} {stats.last_ingest_root}: {len(stats.problems)} problems")
        lines += [f"  {problem}" for problem in stats.problems]
    return lines


def ingest(args: argparse.Namespace) -> int:
    from index.catalog import Catalog, CatalogError
    from index.collection.readers import read_collection

    try:
        collection = read_collection(args.catalog, args.images)
    except FileNotFoundError as e:
        return _error(str(e), EXIT_USAGE)
    except ValueError as e:
        return _error(str(e), EXIT_NOTHING_READ)
    bar = ProgressBars("ingest", len(collection.entries), "img", disable=None)
    try:
        with Catalog(args.db) as catalog:
            summary = catalog.ingest(collection, strict=args.strict, progress=bar,
                                     workers=args.workers or INGEST_WORKERS)
    except CatalogError:
        raise  # an unusable --db: `run` reports it
    except ValueError as e:  # InconsistentLineageError is one: its text lists the conflicts and rows
        return _error(str(e), EXIT_NOTHING_READ)
    finally:
        bar.close()
    print("\n".join(format_summary(summary)))
    if summary.read == 0:
        return _error(f"no image of {args.images} could be read", EXIT_NOTHING_READ)
    return EXIT_OK


def stats(args: argparse.Namespace) -> int:
    from index.catalog import Catalog

    with Catalog(args.db) as catalog:
        print("\n".join(format_stats(catalog.stats())))
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"ingest": ingest, "stats": stats}


def run(args: argparse.Namespace) -> int:
    """Run the parsed command; an unusable `--db` is one line on stderr, exit 2."""
    from index.errors import CatalogError

    setup_logging(logging.INFO if args.verbose else logging.WARNING)  # warnings unless --verbose
    try:
        return COMMANDS[args.command](args)
    except CatalogError as e:
        return _error(str(e), EXIT_USAGE)
