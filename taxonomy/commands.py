"""The work behind `python -m taxonomy`: results go to stdout, messages to stderr."""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path

from taxonomy.columns import CANONICAL_COLUMNS, COLUMN_ALIASES, HeaderMap
from taxonomy.constants import RANK_LABELS, Rank
from taxonomy.lineage import Lineage
from taxonomy.resolver import Resolution, resolve
from taxonomy.tree import TaxonTree, UnknownTaxonError
from taxonomy.validate import InconsistentLineageError, reconcile

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_NOT_FOUND = 1  # also: strict validation found inconsistent lineages
EXIT_USAGE = 2
TABLE_COLUMNS: tuple[str, ...] = ("query", "name", "rank", "lineage", "common_name")


def _taxon_name(lineage: Lineage) -> str:
    return lineage.binomial if lineage.deepest_rank == Rank.SPECIES else lineage.get(lineage.deepest_rank)


def _match_record(lineage: Lineage) -> dict[str, str]:
    return {
        "name": _taxon_name(lineage),
        "rank": lineage.deepest_rank.label,
        "taxon": lineage.key(),
        **lineage.as_dict(),
    }


def _write_table(rows: list[dict[str, str]]) -> None:
    widths = {column: max([len(column)] + [len(row[column]) for row in rows]) for column in TABLE_COLUMNS}
    for row in [{column: column for column in TABLE_COLUMNS}, *rows]:
        print("  ".join(row[column].ljust(widths[column]) for column in TABLE_COLUMNS).rstrip())


def _report_missing(resolution: Resolution) -> None:
    suggestions = ", ".join(resolution.close_matches) or "none"
    print(f"not found: {resolution.query!r} is neither a scientific nor a common name in NCBI; "
          f"close matches: {suggestions}", file=sys.stderr)


def resolve_names(args: argparse.Namespace) -> int:
    resolutions = [resolve(name, args.matches) for name in args.names]
    for resolution in resolutions:
        if not resolution.found:
            _report_missing(resolution)
    if args.format == "json":
        records = [
            {
                "query": resolution.query,
                "found": resolution.found,
                "kind": resolution.kind,
                "matches": [_match_record(lineage) for lineage in resolution.lineages],
                "close_matches": list(resolution.close_matches),
            }
            for resolution in resolutions
        ]
        print(json.dumps(records, indent=2))
    else:
        rows = [
            {
                "query": resolution.query,
                "name": _taxon_name(lineage),
                "rank": lineage.deepest_rank.label,
                "lineage": lineage.key(),
                "common_name": lineage.common_name,
            }
            for resolution in resolutions
            for lineage in resolution.lineages
        ]
        if rows:
            _write_table(rows)
    return EXIT_OK if any(resolution.found for resolution in resolutions) else EXIT_NOT_FOUND


def read_catalog_lineages(path: Path) -> list[tuple[str, Lineage]]:
    """(`file:line`, lineage) for every row of a SPEC §2 CSV catalog, aliases accepted."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        headers = HeaderMap.from_headers(list(reader.fieldnames or []))
        if not headers.has_taxonomy:
            accepted = ", ".join([*RANK_LABELS, *COLUMN_ALIASES, "scientificName"])
            raise ValueError(
                f"{path}: no rank columns in header {reader.fieldnames or []}; expected some of: {accepted}"
            )
        if headers.unknown:
            logger.info("%s: ignoring columns %s (known: %s)", path, ", ".join(headers.unknown),
                        ", ".join(CANONICAL_COLUMNS))
        return [(f"{path}:{reader.line_num}", headers.lineage(row)) for row in reader]


def draw_tree(args: argparse.Namespace) -> int:
    try:
        rows = read_catalog_lineages(args.catalog)
        fixed, _ = reconcile(rows, strict=args.strict)
    except InconsistentLineageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except (ValueError, UnicodeDecodeError, csv.Error) as error:
        print(f"error: cannot read catalog {args.catalog}: {error}", file=sys.stderr)
        return EXIT_USAGE
    tree = TaxonTree.from_lineages(lineage for _, lineage in fixed)
    if args.within:
        try:
            tree = tree.subtree(args.within)
        except UnknownTaxonError as error:
            print(f"error: --within: {error}", file=sys.stderr)
            return EXIT_USAGE
    print(tree.newick() if args.format == "newick" else tree.ascii())
    return EXIT_OK


def list_ranks(args: argparse.Namespace) -> int:
    print("\n".join(RANK_LABELS))
    return EXIT_OK


COMMANDS = {"resolve": resolve_names, "tree": draw_tree, "list-ranks": list_ranks}


def run(args: argparse.Namespace) -> int:
    """Run the subcommand `args.command`; returns the process exit status."""
    return COMMANDS[args.command](args)
