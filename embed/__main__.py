"""`python -m embed build|status|search|predict`: the command line of the embedding job (SPEC §7).

Only argparse and the standard library are imported here; `commands` (torch, open_clip, Qdrant)
is imported by `main` after the arguments are checked, so `--help` answers at once.
To add a subcommand, write one `_add_NAME(subparsers)` function and list it in `SUBCOMMANDS`.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from embed.constants import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DEVICE,
    DEFAULT_HIGHER_RANK_VECTORS,
    DEVICES,
    HIGHER_RANK_VECTORS,
)
from embed.device import is_device
from embed.search_cli import add_search_parsers, validate_predict
from taxonomy import DEFAULT_TEST_TEXT_TYPE, RANK_LABELS, TEXT_TYPES, Rank
from taxonomy.text import TEMPLATE_COUNT
from toolkit.cli import API_KEY_ARG, DB_ARG, MODEL_ARG, STORE_ARG, setup_logging
from toolkit.settings import Settings

logger = logging.getLogger(__name__)

# Arguments shared by several subcommands (`toolkit.cli`: --store, --db, --model, --api-key).
DEVICE_ARG: dict[str, Any] = {
    "default": DEFAULT_DEVICE,
    "metavar": "|".join(DEVICES),
    "help": f"where the model runs (default: {DEFAULT_DEVICE}); cuda:N picks a GPU",
}


def _add_build(subparsers: argparse._SubParsersAction) -> None:
    build = subparsers.add_parser(
        "build",
        help="ingest a collection (optional) and embed its images and taxa into Qdrant",
        description="Embed every image of the catalog that has no vector for the model yet, and every taxon "
                    "at every rank. Safe to interrupt and rerun: finished batches are never embedded again.",
    )
    build.add_argument("--catalog", metavar="CSV", help="catalog CSV to ingest first (paths relative to --images)")
    build.add_argument("--images", metavar="DIR", help="images root to ingest first (class folders, or plain)")
    build.add_argument("--shards", metavar="SPEC",
                       help="webdataset shards in TreeOfLife-10M's layout to ingest first, brace-expanded as "
                            "webdataset does: 'dir/shard-{000000..000159}.tar' (quote it); each sample's .jpg "
                            "is an image (path shard-000042.tar/KEY.jpg under the shards' folder), its text keys "
                            "(taxonomic_name.txt, scientific_name.txt, common_name.txt, ...) its lineage; under "
                            "torchrun each process reads its own shards")
    build.add_argument("--model", **MODEL_ARG)
    build.add_argument("--store", **STORE_ARG)
    build.add_argument("--api-key", **API_KEY_ARG)
    build.add_argument("--db", **DB_ARG)
    build.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
                       help=f"images per batch (default: {DEFAULT_BATCH_SIZE})")
    build.add_argument("--workers", type=int, default=None, metavar="N",
                       help="DataLoader processes decoding images; 0 decodes in-process "
                            "(default: half the cores on cpu, all but two with cuda)")
    build.add_argument("--device", **DEVICE_ARG)
    build.add_argument("--text-type", choices=TEXT_TYPES, default=DEFAULT_TEST_TEXT_TYPE,
                       help=f"text type of the taxon embeddings (default: {DEFAULT_TEST_TEXT_TYPE})")


def _add_status(subparsers: argparse._SubParsersAction) -> None:
    status = subparsers.add_parser(
        "status", help="per model: images embedded and failed, taxa per rank, the last run and its rate"
    )
    status.add_argument("--db", **DB_ARG)
    status.add_argument("--store", **STORE_ARG)
    status.add_argument("--api-key", **API_KEY_ARG)
    status.add_argument("--model", metavar="SPEC", help="show only this model (spec or vector name)")
    status.add_argument("--format", choices=("table", "json"), default="table", help="output format")


def _add_taxa(subparsers: argparse._SubParsersAction) -> None:
    taxa = subparsers.add_parser(
        "taxa",
        help="add, list, rename or remove reference sets of taxa: identification candidates beyond the catalog",
        description="Reference taxa (SPEC §2): an NCBI clade, a checklist or BioCLIP's published species embeddings, "
                    "written into the store's taxa collection under a set name (each taxon's `sources`). "
                    "Adding a set again changes nothing; the catalog's own taxa are never removed.",
    )
    action = taxa.add_mutually_exclusive_group(required=True)
    action.add_argument("--ncbi", nargs="+", metavar="CLADE",
                        help="NCBI clades (names or taxids, offline): every taxon under them at the 7 ranks, "
                             "with common names; set `ncbi` (clades added to it accumulate)")
    action.add_argument("--checklist", metavar="CSV",
                        help="a species list: rank columns or Darwin Core scientificName; set named after the file")
    action.add_argument("--tol-embeddings", metavar="DIR",
                        help="a folder with txt_emb_species.npy (dim, N) + txt_emb_species.json, imported as "
                             "given; set `tol-10m`")
    action.add_argument("--list", action="store_true", help="the sets in the store, with taxa per rank")
    action.add_argument("--remove", metavar="SET", help="take a set out (taxa the catalog or another set holds stay)")
    action.add_argument("--rename", nargs=2, metavar=("OLD", "NEW"), help="rename a set")
    taxa.add_argument("--name", metavar="SET", help="name of the set added (default: ncbi, tol-10m, the CSV's stem)")
    taxa.add_argument("--ranks", metavar="R,...", help=f"ranks to add (default: all of {','.join(RANK_LABELS)})")
    taxa.add_argument("--model", **MODEL_ARG)
    taxa.add_argument("--templates", type=int, default=TEMPLATE_COUNT, metavar="N",
                      help=f"prompt templates averaged per taxon (default: {TEMPLATE_COUNT}, SPEC §4); "
                           "1 is ~80x faster, at some accuracy")
    taxa.add_argument("--text-type", choices=TEXT_TYPES, default=DEFAULT_TEST_TEXT_TYPE,
                      help=f"text type of the taxon embeddings (default: {DEFAULT_TEST_TEXT_TYPE})")
    taxa.add_argument("--higher-ranks", choices=HIGHER_RANK_VECTORS, default=DEFAULT_HIGHER_RANK_VECTORS,
                      help="--tol-embeddings: vectors of the derived genera, families, ...: the normalised mean "
                           "of their species' (default, no model needed) or the model's text tower")
    taxa.add_argument("--device", **DEVICE_ARG)
    taxa.add_argument("--store", **STORE_ARG)
    taxa.add_argument("--api-key", **API_KEY_ARG)
    taxa.add_argument("--db", **DB_ARG)
    taxa.add_argument("--format", choices=("table", "json"), default="table", help="output format of --list")


# `add_search_parsers` registers `search` and `predict` (embed/search_cli.py).
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_build, _add_status, add_search_parsers, _add_taxa,
]


def create_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m embed", description="Embed a collection's images and taxa into Qdrant, and inspect it."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def _validate_build(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.shards is not None:
        if args.images or args.catalog:
            parser.error("--shards and --images/--catalog are two collections: build one, then the other "
                         "(the catalog keeps both)")
        from index.collection.shards import expand_shards  # the standard library and braceexpand only

        try:
            expand_shards(args.shards)
        except (ValueError, FileNotFoundError) as e:
            parser.error(str(e))
    if args.catalog and not args.images:
        parser.error("--catalog needs --images DIR: the catalog's file paths are relative to it")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.workers is not None and args.workers < 0:
        parser.error(f"--workers must be 0 or more, got {args.workers}")
    _validate_device(parser, args)


def _validate_device(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not is_device(args.device):
        parser.error(f"--device must be cpu, cuda or cuda:N, got {args.device!r}")


def _validate_taxa(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    adding = bool(args.ncbi or args.checklist or args.tol_embeddings)
    if args.name is not None and not adding:
        parser.error("--name names a set being added (--ncbi, --checklist, --tol-embeddings); "
                     "to rename a set use --rename OLD NEW")
    if not 1 <= args.templates <= TEMPLATE_COUNT:
        parser.error(f"--templates must be from 1 to {TEMPLATE_COUNT}, got {args.templates}")
    _validate_device(parser, args)
    ranks = tuple(Rank)
    if args.ranks is not None:
        try:
            ranks = tuple(sorted({Rank.parse(r) for r in args.ranks.split(",") if r.strip()}))
        except ValueError as e:
            parser.error(f"--ranks: {e}")
        if not ranks:
            parser.error(f"--ranks: expected some of {','.join(RANK_LABELS)}")
    args.ranks = ranks


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and check; fills --model from $TOL_MODEL (flags > environment > defaults).

    --db and --store keep None when not given: `toolkit.settings.Settings` resolves them the same
    way for every tool where the store and the catalog are opened.
    """
    parser = create_parser()
    args = parser.parse_args(argv)
    if args.command == "build":
        args.model = Settings.resolve(model=args.model).model
        _validate_build(parser, args)
    elif args.command == "predict":
        validate_predict(parser, args)
    elif args.command == "taxa":
        args.model = Settings.resolve(model=args.model).model
        _validate_taxa(parser, args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO, quiet_libraries=not args.verbose)
    from embed import commands

    return commands.run(args)


if __name__ == "__main__":
    sys.exit(main())
