"""The subcommands behind `python -m embed`: plain functions taking parsed arguments.

`run(args)` dispatches on `args.command` through `COMMANDS`; a new subcommand adds one entry.
Results go to stdout, messages and progress bars to stderr.
"""
from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from embed.build import BuildOptions, BuildSummary, run_build
from toolkit.cli import Progress, ProgressBars, format_table
from toolkit.settings import Settings

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
_MAX_LISTED_FAILURES = 20


def _with_progress(command: str, interrupted: str, work: Callable[[Progress], str]) -> int:
    """Run `work(progress)` under progress bars, then print the text it returns; the errors a user can
    fix are one line on stderr (exit 1), an interrupt says what `interrupted` says (exit 130)."""
    from embed.models import ModelUnavailableError
    from index.catalog import CatalogError
    from index.store import StoreError

    progress = ProgressBars(log=logger)
    try:
        text = work(progress)
    except (ValueError, FileNotFoundError, StoreError, ModelUnavailableError, CatalogError) as e:
        progress.close()
        logger.error("%s failed: %s", command, e)
        return EXIT_FAILED
    except KeyboardInterrupt:
        progress.close()
        logger.error("%s interrupted: %s", command, interrupted)
        return EXIT_INTERRUPTED
    progress.close()
    print(text)
    return EXIT_OK


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
    return build(BuildOptions(
        model=args.model, store=args.store, db=args.db, api_key=args.api_key, catalog=args.catalog,
        images=args.images, shards=args.shards, batch_size=args.batch_size, workers=args.workers, device=args.device,
        text_type=args.text_type,
    ))


def build(options: BuildOptions) -> int:
    """`python -m embed build` for `options`: progress bars, then the summary on stdout; the exit status."""
    return _with_progress("build", "finished batches are kept; run the same command again to resume",
                          lambda progress: format_summary(run_build(options, progress=progress)))


def status_command(args: argparse.Namespace) -> int:
    from embed.models import model_vector_name
    from embed.service import open_store_for_status
    from embed.status import collect_status, format_status
    from index.catalog import Catalog, CatalogError

    settings = Settings.resolve(args.store, args.db)  # --model here picks a model to show, not a default
    store, store_error, location = open_store_for_status(settings, args.api_key)
    model = model_vector_name(args.model) if args.model else None
    try:
        with Catalog(settings.db) as catalog:
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
    rows = [dict(zip(header, [item.name, item.kind or "?", *(str(item.per_rank.get(r, 0)) for r in RANK_LABELS),
                              str(item.total), item.model, " ".join(item.arguments)])) for item in listings]
    return format_table(rows, header)


def taxa_command(args: argparse.Namespace) -> int:
    from embed import reference

    options = reference.TaxaOptions(
        model=args.model, store=args.store, db=args.db, api_key=args.api_key, name=args.name, ranks=args.ranks,
        device=args.device, text_type=args.text_type, templates=args.templates, higher_ranks=args.higher_ranks,
    )

    def work(progress: Progress) -> str:
        if args.list:
            listings = reference.list_reference_sets(options)
            return (json.dumps([asdict(item) for item in listings], indent=2) if args.format == "json"
                    else format_set_list(listings))
        if args.remove:
            released, removed = reference.remove_set(args.remove, options)
            return f"removed set {args.remove!r}: {removed} taxa deleted, {released} kept for the catalog or another set"
        if args.rename:
            count = reference.rename_set(args.rename[0], args.rename[1], options)
            return f"renamed set {args.rename[0]!r} to {args.rename[1]!r}: {count} taxa"
        if args.ncbi:
            summary = reference.add_ncbi(args.ncbi, options, progress)
        elif args.checklist:
            summary = reference.add_checklist(Path(args.checklist), options, progress)
        else:
            summary = reference.add_tol(Path(args.tol_embeddings), options, progress)
        return format_set_summary(summary)

    return _with_progress("taxa", "what was written stays; run the same command again to finish", work)


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
