"""`python -m embed search` and `python -m embed predict` (SPEC §7): argparse pieces and runners.

`add_search_parsers(subparsers)` registers both subcommands on `python -m embed`'s parser;
`run_search(args)` / `run_predict(args)` run them and return the exit status. Only argparse and
cheap modules load here; the model, the store and the catalog are imported inside the runners,
so `--help` stays fast. Results go to stdout (table, CSV or JSON), messages to stderr.

`predict` writes pybioclip's columns: at species rank
`file_name,kingdom,phylum,class,order,family,genus,species_epithet,species,common_name,score`,
at a higher rank `file_name,kingdom,...,<rank>,score`; with `--cls` or `--bins`
`file_name,classification,score`; with `--trust P` the species columns, blank below the trusted
rank, then `rank,score`. A file that cannot be read is a row with an `error` column (added only
then), and the exit status is 1; the other files are predicted.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from embed.predict import (
    ERROR_COLUMN, FILE_NAME_COLUMN, METHOD_SUM, METHODS, label_columns, label_rows, pybioclip_columns, trust_columns,
    trust_row,
)
from taxonomy import RANK_LABELS, Rank
from toolkit.cli import API_KEY_ARG, OUTPUT_FORMATS, chunks, format_table, positive_int, write_csv, write_rows
from toolkit.settings import DEFAULT_MODEL, MODEL_ENV, Settings

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
COLLECTION_CHOICES: tuple[str, ...] = ("images", "taxa")
SEARCH_FORMATS: tuple[str, ...] = OUTPUT_FORMATS
PREDICT_FORMATS: tuple[str, ...] = OUTPUT_FORMATS
DEFAULT_SEARCH_K = 10
DEFAULT_PREDICT_K = 5
DEFAULT_PREDICT_BATCH = 32  # images encoded, and identified by one matrix product, at a time
ALL_TAXA = "all"
PROJECT = "tree-of-life-search"

IMAGE_COLUMNS: tuple[str, ...] = ("score", "name", "common_name", "split", "path")
TAXON_COLUMNS: tuple[str, ...] = ("score", "rank", "name", "common_name", "n_images", "taxon")


def _add_common(parser: argparse.ArgumentParser) -> None:
    """--model, --store, --api-key, --db, --device: `toolkit.cli`'s, with what they mean for a search."""
    parser.add_argument("--model", metavar="SPEC",
                        help=f"open_clip model spec whose vectors are searched (default: ${MODEL_ENV}, "
                             f"else {DEFAULT_MODEL})")
    parser.add_argument("--store", metavar="PATH|URL",
                        help="Qdrant store: a folder or a server URL (default: $TOL_STORE, else ./var/qdrant)")
    parser.add_argument("--api-key", **API_KEY_ARG)
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
    search.add_argument("--per-species", type=positive_int, metavar="N",
                        help="images: group by species, K species with up to N images each")
    search.add_argument("--k", type=positive_int, default=DEFAULT_SEARCH_K, metavar="N",
                        help=f"results (default: {DEFAULT_SEARCH_K})")
    search.add_argument("--format", choices=SEARCH_FORMATS, default="table", help="output format")
    search.add_argument("--as-typed", action="store_true",
                        help="images: embed the text as typed, even when it names a taxon (by default a "
                             "taxon name, scientific or common, searches with that taxon's own vector)")
    search.add_argument("--taxon", metavar="KEY",
                        help="images: which taxon an ambiguous name means (the keys are listed when it is)")
    _add_common(search)

    predict = subparsers.add_parser(
        "predict", help="nearest taxa of images, as pybioclip predicts them",
        description="Top taxa of each image at a rank, with probabilities, in pybioclip's columns. Method `sum` "
                    "(pybioclip's): species probabilities summed per ancestor; `taxa`: each rank's own taxon "
                    "vectors, conditioned on the parent. Folders are walked recursively for images.",
    )
    predict.add_argument("images", nargs="+", metavar="IMAGE|DIR", help="image files or folders")
    predict.add_argument("--rank", choices=RANK_LABELS,
                         help="rank of the predictions (default: species); with --trust the deepest rank considered")
    predict.add_argument("--k", type=positive_int, default=DEFAULT_PREDICT_K, metavar="N",
                         help=f"predictions per image (default: {DEFAULT_PREDICT_K})")
    predict.add_argument("--method", choices=METHODS, default=METHOD_SUM,
                         help=f"how probabilities are made (default: {METHOD_SUM})")
    predict.add_argument("--taxa", nargs="+", default=[ALL_TAXA], metavar="all|catalog|SET",
                         help="candidate taxa: all (default: every taxon of the store), catalog (the collection's "
                              "own), or reference sets by name (any of them)")
    predict.add_argument("--within", metavar="KEY", action="append", default=[],
                         help="only taxa inside this clade (a taxon key; repeat for a union)")
    predict.add_argument("--subset", metavar="CSV",
                         help="pybioclip's subset: a CSV whose first column is named after a rank, with the names "
                              "of that rank to keep (e.g. the species of one country)")
    labels = predict.add_mutually_exclusive_group()
    labels.add_argument("--cls", metavar="LABELS|FILE",
                        help="custom labels instead of taxa: a comma-separated list or a file with one a line")
    labels.add_argument("--bins", metavar="CSV",
                        help="custom labels grouped in bins: a CSV with a header, then label,bin rows")
    predict.add_argument("--trust", type=_probability, metavar="P",
                         help="one row per image at the deepest rank whose probability reaches P (0 < P <= 1)")
    predict.add_argument("--format", choices=PREDICT_FORMATS, default="table", help="output format")
    predict.add_argument("--output", metavar="FILE", help="write the results to FILE (default: stdout)")
    predict.add_argument("--log", metavar="FILE",
                         help="write a JSON provenance record to FILE (refused when FILE exists)")
    predict.add_argument("--batch-size", type=positive_int, default=DEFAULT_PREDICT_BATCH, metavar="N",
                         help=f"images encoded at a time (default: {DEFAULT_PREDICT_BATCH})")
    _add_common(predict)


def _probability(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability 0 < P <= 1, got {value!r}") from None
    if not 0.0 < number <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability 0 < P <= 1, got {value!r}")
    return number


def validate_predict(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Combinations `predict` refuses (exit status 2), checked before anything loads."""
    custom = "--cls" if args.cls else "--bins" if args.bins else ""
    if custom:
        taken = [flag for flag, used in (("--rank", args.rank), ("--subset", args.subset), ("--trust", args.trust),
                                         ("--taxa", args.taxa != [ALL_TAXA]), ("--within", args.within),
                                         ("--method", args.method != METHOD_SUM)) if used]
        if taken:
            parser.error(f"predict: {custom} predicts its own labels, not taxa; it cannot be combined with "
                         f"{', '.join(taken)}")
    if ALL_TAXA in args.taxa and len(args.taxa) > 1:
        parser.error(f"predict: --taxa {' '.join(args.taxa)}: `all` already means every taxon; give it alone")
    if args.log and Path(args.log).expanduser().exists():
        parser.error(f"predict: --log {args.log}: the file exists; refused (choose another name)")
    if args.output and args.log and Path(args.output).expanduser().resolve() == Path(args.log).expanduser().resolve():
        parser.error("predict: --output and --log name the same file")


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
    from index.collection.images import open_image

    file = Path(path).expanduser()
    return open_image(file.parent if str(file.parent) else ".", file.name)


def _service(args: argparse.Namespace) -> Any:
    """The search service of a command's --store, --db, --model, --api-key and --device (a `with` block)."""
    from embed.service import search_service

    return search_service(Settings.resolve(args.store, args.db, args.model), args.api_key, args.device)


def _expected_errors() -> tuple[type[BaseException], ...]:
    from embed.models import ModelUnavailableError
    from index.store import StoreError

    return (ValueError, FileNotFoundError, KeyError, StoreError, ModelUnavailableError)


def run_search(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """`python -m embed search`: prints the hits; 1 with a message on stderr when it cannot search."""
    out = out or sys.stdout
    try:
        with _service(args) as service:
            service.check_built(args.collection)  # before the model loads
            _resolve_clades(service, args)
            image = _load_file(args.image) if args.image else None
            if args.collection == "images" and image is None and not args.as_typed:
                found = service.describe(args.text, args.k, _search_filter(args, args.rank), args.per_species,
                                         taxon=args.taxon)
                _say_what_was_understood(found)
                hits = found.hits
            else:
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
        write_csv(rows, list(rows[0]) if rows else ["id", "score"], out)
    else:
        out.write(format_table(rows, ("#", *columns)) + "\n")
    if not hits:
        logger.warning("no results%s", " inside the filter" if args.within or args.exclude else "")
    return EXIT_OK


def _say_what_was_understood(found: Any) -> None:
    """On stderr: the taxon a text was read as, the other meanings of an ambiguous name, a weak match."""
    reading, taxon = found.reading, found.taxon
    if taxon is not None:
        logger.info("searching %s (its own vector; --as-typed embeds the words instead)", taxon.describe())
        others = [t for t in reading.taxa if t.key != taxon.key]
        for other in others:
            logger.info("%r also names %s: --taxon %s", reading.text, other.describe(), other.key)
        logger.info("only images labelled inside it: add --within %s", taxon.key)
    elif found.weak:
        logger.warning("%r names no taxon of the store and its best match is weak (below what real names "
                       "reach here): these results are likely unrelated", reading.text)


def _search_row(hit: Any) -> dict[str, Any]:
    row = hit.row()
    if hit.is_image:
        row["file"] = str(Path(hit.root) / hit.path) if hit.root else ""
    return row


@dataclass(frozen=True)
class InputFile:
    """An image to predict: `name` as it is reported (the path given, or found under a folder given)."""

    name: str
    error: str = ""  # why it cannot be read, found before decoding (a missing file)


def expand_inputs(paths: Sequence[str]) -> list[InputFile]:
    """Files as given; folders walked recursively for image files (sorted); missing paths as errors."""
    from index.collection.constants import IMAGE_SUFFIXES

    out: list[InputFile] = []
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                logger.warning("%s: a folder with no image files (%s)", given, ", ".join(sorted(IMAGE_SUFFIXES)))
            out.extend(InputFile(str(p)) for p in found)
        elif path.is_file():
            out.append(InputFile(given))
        else:
            out.append(InputFile(given, f"{given}: no such file or folder"))
    return out


def _predict_rows(args: argparse.Namespace, service: Any, files: list[InputFile]) -> tuple[list[dict[str, Any]], int]:
    """The output rows of every file, and how many failed."""
    from embed.predict_inputs import read_bins, read_labels, read_subset
    from index.collection.images import ImageError

    rank = Rank.parse(args.rank) if args.rank else Rank.SPECIES
    bins = read_bins(args.bins) if args.bins else None
    labels = list(bins) if bins is not None else read_labels(args.cls) if args.cls else None
    if labels is not None:
        label_vectors = service.label_vectors(labels)
    else:
        subset = read_subset(args.subset) if args.subset else None
        search_filter = _search_filter(args) if args.within else None
        sets = [] if args.taxa == [ALL_TAXA] else args.taxa
        candidates = service.candidates(args.method, search_filter, sets, subset)  # before any image is read
    rows: list[dict[str, Any]] = []
    failed = 0
    for batch in chunks(files, args.batch_size):
        images, names = [], []
        for item in batch:
            try:
                if item.error:
                    raise FileNotFoundError(item.error)
                images.append(_load_file(item.name))
                names.append(item.name)
            except (ImageError, FileNotFoundError) as e:
                logger.error("skipped %s", e)
                rows.append({FILE_NAME_COLUMN: item.name, ERROR_COLUMN: str(e)})
                failed += 1
        if not images:
            continue
        vectors = service.encoder.encode_images(images)
        if labels is not None:
            logits = (vectors @ label_vectors.T) * service.logit_scale
            for name, row in zip(names, logits):
                rows.extend(label_rows(name, row, labels, args.k, bins))
            continue
        from embed.predict import identify_vectors

        for name, found in zip(names, identify_vectors(candidates, vectors, service.logit_scale, args.k)):
            if args.trust is not None:
                trusted = found.trusted(args.trust, rank)
                if trusted is None:
                    logger.warning("%s: no rank reaches probability %s (best kingdom %.3f)", name, args.trust,
                                   found.path[0].score if found.path else 0.0)
                rows.append(trust_row(name, trusted))
            else:
                rows.extend(p.pybioclip_row(name) for p in found.top(rank, args.k))
    order = {item.name: i for i, item in enumerate(files)}
    rows.sort(key=lambda row: order.get(row[FILE_NAME_COLUMN], 0))  # failures back in input order (stable)
    return rows, failed


def _predict_columns(args: argparse.Namespace) -> list[str]:
    if args.cls or args.bins:
        return label_columns()
    if args.trust is not None:
        return trust_columns()
    return pybioclip_columns(Rank.parse(args.rank) if args.rank else Rank.SPECIES)


def run_predict(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    """`python -m embed predict`: pybioclip's rows for each image; 1 when an image or the store failed."""
    from embed.predict_inputs import PredictInputError

    start = datetime.now().astimezone().isoformat(timespec="seconds")
    files = expand_inputs(args.images)
    try:
        with _service(args) as service:
            service.check_built("taxa")
            _resolve_clades(service, args)
            rows, failed = _predict_rows(args, service, files)
            provenance = {
                "model": service.spec, "vector": service.vector_name, "device": args.device,
                "store": service.store.location, "logit_scale": service.logit_scale,
            }
    except (*_expected_errors(), PredictInputError) as e:
        logger.error("predict failed: %s", e.args[0] if isinstance(e, KeyError) and e.args else e)
        return EXIT_FAILED
    columns = _predict_columns(args) + ([ERROR_COLUMN] if failed else [])
    try:
        write_rows(rows, columns, args.format, args.output, out or sys.stdout, log=logger)
        if args.log:
            write_log(args, provenance, start, files, failed)
    except OSError as e:
        logger.error("predict failed: %s", e)
        return EXIT_FAILED
    if not files:
        logger.error("no image files among %s", " ".join(args.images))
        return EXIT_FAILED
    return EXIT_FAILED if failed else EXIT_OK


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PROJECT)
    except PackageNotFoundError:
        return "unknown"


def write_log(args: argparse.Namespace, provenance: dict[str, Any], start: str, files: Sequence[InputFile],
              failed: int) -> None:
    """pybioclip-style provenance: version, command line, model, device, store, candidate sets, times."""
    record = {
        "version": f"{PROJECT} {_version()}",
        "start": start,
        "end": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command_line": " ".join(sys.argv),
        **provenance,
        "candidate_sets": args.taxa if not (args.cls or args.bins) else [],
        "settings": {
            "rank": args.rank or Rank.SPECIES.label, "k": args.k, "method": args.method, "within": args.within,
            "subset": args.subset, "cls": args.cls, "bins": args.bins, "trust": args.trust,
            "format": args.format, "output": args.output, "batch_size": args.batch_size,
        },
        "images": [item.name for item in files],
        "failed": failed,
    }
    target = Path(args.log).expanduser()
    with target.open("x", encoding="utf-8") as f:  # "x": never overwrite a record
        json.dump(record, f, indent=2)
        f.write("\n")
