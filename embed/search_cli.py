"""`python -m embed search` and `python -m embed predict` (SPEC §7): argparse pieces and runners.

`add_search_parsers(subparsers)` registers both subcommands on `python -m embed`'s parser;
`run_search(args)` / `run_predict(args)` run them and return the exit status. Only argparse and
cheap modules load here; the model, the store and the catalog are imported inside the runners,
so `--help` stays fast. Results go to stdout (table, CSV or JSON), messages to stderr.

`predict --format csv` writes pybioclip's columns: at species rank
`file_name,kingdom,phylum,class,order,family,genus,species_epithet,species,common_name,score`,
at a higher rank `file_name,kingdom,...,<rank>,score` (as pybioclip does).
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from embed.constants import DEFAULT_MODEL, ENV_MODEL
from embed.predict import METHOD_SUM, METHODS, pybioclip_columns
from taxonomy import RANK_LABELS, Rank

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
COLLECTION_CHOICES: tuple[str, ...] = ("images", "taxa")
SEARCH_FORMATS: tuple[str, ...] = ("table", "csv", "json")
PREDICT_FORMATS: tuple[str, ...] = ("table", "csv")
DEFAULT_SEARCH_K = 10
DEFAULT_PREDICT_K = 5
DEFAULT_SCORE_DIGITS = 4

IMAGE_COLUMNS: tuple[str, ...] = ("score", "name", "common_name", "split", "path")
TAXON_COLUMNS: tuple[str, ...] = ("score", "rank", "name", "common_name", "n_images", "taxon")


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="SPEC",
                        help=f"open_clip model spec whose vectors are searched (default: ${ENV_MODEL}, "
                             f"else {DEFAULT_MODEL})")
    parser.add_argument("--store", metavar="PATH|URL",
                        help="Qdrant store: a folder or a server URL (default: $TOL_STORE, else ./var/qdrant)")
    parser.add_argument("--api-key", metavar="KEY", help="API key of a Qdrant server")
    parser.add_argument("--db", metavar="URL",
                        help="catalog SQLAlchemy URL or SQLite file, for the images' folders "
                             "(default: $TOL_DB, else ./var/catalog.db; not created when missing)")
    parser.add_argument("--device", default="cpu", metavar="cpu|cuda[:N]",
                        help="where the model runs (default: cpu)")


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--within", metavar="KEY", action="append", default=[],
                        help="only inside this clade, a taxon key such as Animalia/Chordata/Aves (repeat for a union)")
    parser.add_argument("--exclude", metavar="KEY", action="append", default=[],
                        help="leave out this clade (a taxon key; repeatable)")
    parser.add_argument("--split", help="only images of this split (train, val, ...)")
    parser.add_argument("--source", help="only images of this source")


def add_search_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register `search` and `predict` on `python -m embed`'s subparsers."""
    search = subparsers.add_parser(
        "search", help="search the images or taxa by a text or an image",
        description="Text or image in; the nearest images (or taxa) of the store out, best first.",
    )
    query = search.add_mutually_exclusive_group(required=True)
    query.add_argument("--text", metavar="TEXT", help="a name or description, e.g. 'a photo of Pica hudsonia.'")
    query.add_argument("--image", metavar="FILE", help="an image file")
    search.add_argument("--in", dest="collection", choices=COLLECTION_CHOICES, default="images",
                        help="search the images (default) or the taxa")
    search.add_argument("--rank", choices=RANK_LABELS,
                        help="taxa: only this rank; images: only images labelled down to this rank")
    _add_filters(search)
    search.add_argument("--per-species", type=_positive_int, metavar="N",
                        help="images: group by species, K species with up to N images each")
    search.add_argument("--k", type=_positive_int, default=DEFAULT_SEARCH_K, metavar="N",
                        help=f"results (default: {DEFAULT_SEARCH_K})")
    search.add_argument("--format", choices=SEARCH_FORMATS, default="table", help="output format")
    _add_common(search)

    predict = subparsers.add_parser(
        "predict", help="nearest taxa of images, as pybioclip predicts them",
        description="Top taxa of each image at a rank, with probabilities. `--format csv` writes pybioclip's "
                    "columns. Method `sum` (pybioclip's): species probabilities summed per ancestor; "
                    "`taxa`: each rank's own taxon vectors.",
    )
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    predict.add_argument("--rank", choices=RANK_LABELS, default=Rank.SPECIES.label,
                         help="rank of the predictions (default: species)")
    predict.add_argument("--k", type=_positive_int, default=DEFAULT_PREDICT_K, metavar="N",
                         help=f"predictions per image (default: {DEFAULT_PREDICT_K})")
    predict.add_argument("--method", choices=METHODS, default=METHOD_SUM,
                         help=f"how probabilities are made (default: {METHOD_SUM})")
    predict.add_argument("--within", metavar="KEY", action="append", default=[],
                         help="only taxa inside this clade (a taxon key; repeat for a union)")
    predict.add_argument("--format", choices=PREDICT_FORMATS, default="table", help="output format")
    _add_common(predict)


# --- running ------------------------------------------------------------------------------------

def _search_filter(args: argparse.Namespace, rank: str | None = None) -> Any:
    from index.store import SearchFilter

    return SearchFilter(within=tuple(args.within), exclude=tuple(getattr(args, "exclude", ())),
                        rank=Rank.parse(rank) if rank else None, split=getattr(args, "split", None),
                        source=getattr(args, "source", None))


def _resolve_clades(service: Any, args: argparse.Namespace) -> None:
    """Turn each --within/--exclude value into a taxon key of the store (a bare name of one taxon too)."""
    from embed.search import UnknownTaxonError

    for flag in ("within", "exclude"):
        keys = []
        for value in getattr(args, flag, []):
            try:
                key = service.resolve_clade(value)
            except UnknownTaxonError as e:
                raise UnknownTaxonError(f"--{flag} {e}") from None
            if key != value:
                logger.info("--%s %r is the taxon %s", flag, value, key)
            keys.append(key)
        setattr(args, flag, keys)


def _load_file(path: str) -> Any:
    """A query image file, decoded like the collection's (EXIF orientation, RGB, bomb check)."""
    from index.images import open_image

    file = Path(path).expanduser()
    return open_image(file.parent if str(file.parent) else ".", file.name)


class _Service:
    """Opens store, catalog and the search service for a command, and closes them."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def __enter__(self) -> Any:
        from embed.device import check_device
        from embed.search import SearchService, open_catalog_if_exists
        from index.config import resolve_setting
        from index.store import open_store

        spec = resolve_setting(self.args.model, ENV_MODEL, DEFAULT_MODEL)
        check_device(self.args.device)  # before the store is opened or the model loads
        self.store = open_store(self.args.store, self.args.api_key, read_only=True)
        try:
            self.catalog = open_catalog_if_exists(self.args.db)
            return SearchService(self.store, self.catalog, spec, device=self.args.device)
        except BaseException:
            self.store.close()
            raise

    def __exit__(self, *exc: object) -> None:
        try:
            if self.catalog is not None:
                self.catalog.close()
        finally:
            self.store.close()


def _expected_errors() -> tuple[type[BaseException], ...]:
    from embed.models import ModelUnavailableError
    from index.store import StoreError

    return (ValueError, FileNotFoundError, KeyError, StoreError, ModelUnavailableError)


def run_search(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """`python -m embed search`: prints the hits; 1 with a message on stderr when it cannot search."""
    out = out or sys.stdout
    try:
        with _Service(args) as service:
            service.check_built(args.collection)  # before the model loads
            _resolve_clades(service, args)
            image = _load_file(args.image) if args.image else None
            vector = service.text_vector(args.text) if image is None else service.image_vector(image)
            if args.collection == "taxa":
                hits = service.search_taxa(vector, args.k, args.rank, _search_filter(args))
            else:
                hits = service.search_images(vector, args.k, _search_filter(args, args.rank), args.per_species)
    except _expected_errors() as e:
        logger.error("search failed: %s", e.args[0] if isinstance(e, KeyError) and e.args else e)
        return EXIT_FAILED
    rows = [_search_row(hit) for hit in hits]
    columns = IMAGE_COLUMNS if args.collection == "images" else TAXON_COLUMNS
    if args.format == "json":
        json.dump(rows, out, indent=2)
        out.write("\n")
    elif args.format == "csv":
        _write_csv(rows, list(rows[0]) if rows else ["id", "score"], out)
    else:
        out.write(format_table(rows, ("#", *columns)) + "\n")
    if not hits:
        logger.warning("no results%s", " inside the filter" if args.within or args.exclude else "")
    return EXIT_OK


def _search_row(hit: Any) -> dict[str, Any]:
    row = hit.row()
    if hit.is_image:
        row["file"] = str(Path(hit.root) / hit.path) if hit.root else ""
    return row


def run_predict(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """`python -m embed predict`: the top taxa of each image; 1 when an image or the store failed."""
    from index.images import ImageError

    out = out or sys.stdout
    rank = Rank.parse(args.rank)
    rows: list[dict[str, Any]] = []
    failed = 0
    try:
        with _Service(args) as service:
            service.check_built("taxa")
            _resolve_clades(service, args)
            search_filter = _search_filter(args) if args.within else None
            for file_name in args.images:
                try:
                    image = _load_file(file_name)
                except ImageError as e:
                    logger.error("skipped %s", e)
                    failed += 1
                    continue
                found = service.identify(image, k=args.k, method=args.method, filter=search_filter)
                rows.extend(p.pybioclip_row(file_name) for p in found.top(rank, args.k))
    except _expected_errors() as e:
        logger.error("predict failed: %s", e.args[0] if isinstance(e, KeyError) and e.args else e)
        return EXIT_FAILED
    columns = pybioclip_columns(rank)
    if args.format == "csv":
        _write_csv(rows, columns, out)
    else:
        out.write(format_table(rows, columns) + "\n")
    return EXIT_FAILED if failed else EXIT_OK


# --- output -------------------------------------------------------------------------------------

def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.{DEFAULT_SCORE_DIGITS}f}"
    return "" if value is None else str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as an aligned text table; column `#` numbers them from 1."""
    cells = [[str(i) if c == "#" else _cell(row.get(c)) for c in columns] for i, row in enumerate(rows, 1)]
    widths = [max([len(c)] + [len(r[j]) for r in cells]) for j, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def _write_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str], out: IO[str]) -> None:
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
