"""The subcommands behind `python -m embed`: plain functions taking parsed arguments.

`run(args)` dispatches on `args.command` through `COMMANDS`; a new subcommand adds one entry.
Results go to stdout, messages and progress bars to stderr.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from embed.build import BuildOptions, BuildSummary, parse_progress, run_build

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
_BAR_UNITS = ("img", "taxa")  # stages shown as bars; others are logged once
_MAX_LISTED_FAILURES = 20


class TqdmProgress:
    """Adapts the services' `progress(fraction, message)` to one tqdm bar per stage (rate, time left)."""

    def __init__(self, disable: bool = False) -> None:
        self.disable = disable
        self._bar = None
        self._stage = ""

    def __call__(self, fraction: float, message: str) -> None:
        from tqdm import tqdm

        step = parse_progress(message)
        if step is None:
            logger.info("%s", message)
            return
        stage, done, total, unit = step
        if stage != self._stage:
            self.close()
            self._stage = stage
            if unit in _BAR_UNITS:
                self._bar = tqdm(total=total, desc=stage, unit=unit, file=sys.stderr, disable=self.disable,
                                 dynamic_ncols=True)
            else:
                logger.info("%s ...", stage)
        if self._bar is not None:
            self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def format_summary(summary: BuildSummary) -> str:
    """What `build` prints when it ends."""
    lines = [
        f"model:  {summary.model} (vector {summary.vector_name!r})",
        f"store:  {summary.store}",
        f"images: {summary.images_embedded} embedded, {summary.images_skipped} already in the store, "
        f"{summary.images_failed} failed ({summary.rate:.1f} images/s over {summary.seconds:.1f} s)",
        f"taxa:   {summary.taxa_embedded} embedded ({summary.taxa_total} in the catalog)",
    ]
    if summary.images_removed or summary.images_relabelled or summary.taxa_removed or summary.taxa_relabelled:
        lines.append(f"synced: {summary.images_removed} images and {summary.taxa_removed} taxa that left the "
                     f"catalog removed; {summary.images_relabelled} images and {summary.taxa_relabelled} taxa "
                     "relabelled")
    if summary.ingested is not None:
        ing = summary.ingested
        lines.insert(0, f"ingest: {ing.added} added, {ing.updated} updated, {ing.unchanged} unchanged, "
                        f"{ing.gone} gone, {ing.skipped} skipped ({ing.root})")
    for problem in summary.failures[:_MAX_LISTED_FAILURES]:
        lines.append(f"  failed: {problem}")
    if len(summary.failures) > _MAX_LISTED_FAILURES:
        lines.append(f"  ... and {len(summary.failures) - _MAX_LISTED_FAILURES} more "
                     f"(python -m embed status lists the run's failures)")
    return "\n".join(lines)


def build_command(args: argparse.Namespace) -> int:
    from embed.models import ModelUnavailableError
    from index.catalog import CatalogError
    from index.store import StoreError

    options = BuildOptions(
        model=args.model, store=args.store, db=args.db, api_key=args.api_key, catalog=args.catalog,
        images=args.images, batch_size=args.batch_size, workers=args.workers, device=args.device,
        text_type=args.text_type,
    )
    progress = TqdmProgress()
    try:
        summary = run_build(options, progress=progress)
    except (ValueError, FileNotFoundError, StoreError, ModelUnavailableError, CatalogError) as e:
        progress.close()
        logger.error("build failed: %s", e)
        return EXIT_FAILED
    except KeyboardInterrupt:
        progress.close()
        logger.error("build interrupted: finished batches are kept; run the same command again to resume")
        return EXIT_INTERRUPTED
    progress.close()
    print(format_summary(summary))
    return EXIT_OK


def status_command(args: argparse.Namespace) -> int:
    from embed.models import model_vector_name
    from embed.status import collect_status, format_status
    from index.catalog import Catalog, CatalogError
    from index.schema import MEMORY_LOCATION
    from index.store import StoreError, canonical_location, open_store, resolve_store_location

    location = canonical_location(resolve_store_location(args.store))
    store, store_error = None, ""
    is_folder = "://" not in location and location != MEMORY_LOCATION
    if is_folder and not Path(location).expanduser().exists():
        store_error = "no store there yet (run `python -m embed build`)"
    else:
        try:
            store = open_store(location, args.api_key, read_only=True)
        except StoreError as e:
            store_error = str(e)
    model = model_vector_name(args.model) if args.model else None
    try:
        with Catalog(args.db) as catalog:
            report = collect_status(catalog, store, model=model, store_error=store_error, location=location)
    except CatalogError as e:
        logger.error("status failed: %s", e)
        return EXIT_FAILED
    finally:
        if store is not None:
            store.close()
    if not report.store:
        report = type(report)(**{**report.__dict__, "store": location})
    if args.format == "json":
        print(json.dumps(asdict(report), default=str, indent=2))
    else:
        print(format_status(report))
    return EXIT_OK


def search_command(args: argparse.Namespace) -> int:
    from embed.search_cli import run_search

    return run_search(args)


def predict_command(args: argparse.Namespace) -> int:
    from embed.search_cli import run_predict

    return run_predict(args)


def format_set_summary(summary) -> str:
    """What `taxa` prints after adding a set."""
    ranks = ", ".join(f"{rank} {n}" for rank, n in summary.per_rank.items() if n)
    lines = [
        f"set:     {summary.name} ({summary.kind}) -> vector {summary.vector_name!r} in {summary.store}",
        f"taxa:    {summary.taxa} ({ranks or 'none'}): {summary.new} new, {summary.joined} already in the store "
        f"(the set joined their sources), {summary.unchanged} already in the set",
        f"vectors: {summary.embedded} embedded, {summary.copied} copied as given ({summary.note}), "
        f"{summary.seconds:.1f} s",
    ]
    if summary.released or summary.removed:
        lines.append(f"left:    {summary.released + summary.removed} taxa left the set: {summary.removed} removed, "
                     f"{summary.released} kept for the catalog or another set")
    if summary.skipped:
        lines.append("skipped: " + ", ".join(f"{n} {reason}" for reason, n in summary.skipped.items()))
    for problem in summary.problems[:_MAX_LISTED_FAILURES]:
        lines.append(f"  skipped: {problem}")
    if len(summary.problems) > _MAX_LISTED_FAILURES:
        lines.append(f"  ... and {len(summary.problems) - _MAX_LISTED_FAILURES} more")
    return "\n".join(lines)


def format_set_list(listings) -> str:
    """`taxa --list` as a table: one row per set, taxa per rank."""
    from taxonomy import RANK_LABELS

    if not listings:
        return "no taxa in the store yet (python -m embed build, or python -m embed taxa --ncbi CLADE)"
    header = ["set", "kind", *RANK_LABELS, "total", "model", "from"]
    rows = [[item.name, item.kind or "?", *(str(item.per_rank.get(r, 0)) for r in RANK_LABELS), str(item.total),
             item.model, " ".join(item.arguments)] for item in listings]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in [header, *rows])


def taxa_command(args: argparse.Namespace) -> int:
    from embed import reference
    from embed.models import ModelUnavailableError
    from index.catalog import CatalogError
    from index.store import StoreError

    options = reference.TaxaOptions(
        model=args.model, store=args.store, db=args.db, api_key=args.api_key, name=args.name, ranks=args.ranks,
        device=args.device, text_type=args.text_type, templates=args.templates, higher_ranks=args.higher_ranks,
    )
    progress = TqdmProgress()
    try:
        if args.list:
            listings = reference.list_reference_sets(options)
            print(json.dumps([asdict(item) for item in listings], indent=2) if args.format == "json"
                  else format_set_list(listings))
            return EXIT_OK
        if args.remove:
            released, removed = reference.remove_set(args.remove, options)
            print(f"removed set {args.remove!r}: {removed} taxa deleted, {released} kept for the catalog or "
                  "another set")
            return EXIT_OK
        if args.rename:
            count = reference.rename_set(args.rename[0], args.rename[1], options)
            print(f"renamed set {args.rename[0]!r} to {args.rename[1]!r}: {count} taxa")
            return EXIT_OK
        if args.ncbi:
            summary = reference.add_ncbi(args.ncbi, options, progress)
        elif args.checklist:
            summary = reference.add_checklist(Path(args.checklist), options, progress)
        else:
            summary = reference.add_tol(Path(args.tol_embeddings), options, progress)
    except (ValueError, FileNotFoundError, StoreError, ModelUnavailableError, CatalogError) as e:
        progress.close()
        logger.error("taxa failed: %s", e)
        return EXIT_FAILED
    except KeyboardInterrupt:
        progress.close()
        logger.error("taxa interrupted: what was written stays; run the same command again to finish")
        return EXIT_INTERRUPTED
    progress.close()
    print(format_set_summary(summary))
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "build": build_command,
    "status": status_command,
    "search": search_command,
    "predict": predict_command,
    "taxa": taxa_command,
}


def run(args: argparse.Namespace) -> int:
    """Run the subcommand `args.command`; returns the exit status."""
    return COMMANDS[args.command](args)
