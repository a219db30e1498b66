"""Collections as read from disk (SPEC §2): a CSV catalog, class folders, or an unlabelled folder.

Readers only parse; whether each file is a usable image is checked at ingest. A row that cannot be
used becomes a `Problem` naming its file and row, and reading goes on.
"""
from __future__ import annotations

import csv
import logging
import os
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from index.collection.constants import CLASS_FOLDER_SEPARATORS, IMAGE_SUFFIXES, SPLIT_FOLDERS
from index.collection.entries import CatalogEntry, Problem
from taxonomy.columns import OPTIONAL_COLUMNS, PATH_COLUMN, HeaderMap
from taxonomy.constants import KEY_SEPARATOR, RANK_LABELS, Rank
from taxonomy.lineage import Lineage

logger = logging.getLogger(__name__)

_FIRST_CSV_ROW = 2  # line 1 is the header
_RANK_WORD = re.compile(r"[A-Z][A-Za-z]*")  # kingdom..genus as folder names write them
_EPITHET = re.compile(r"[a-z][a-z.\-]*")
_LEADING_NUMBER = re.compile(r"\d+_")
_NUL = "\0"


@dataclass(frozen=True)
class Collection:
    """The entries of one collection, and what could not be read."""

    root: Path  # absolute images root
    entries: list[CatalogEntry]
    problems: list[Problem] = field(default_factory=list)
    unknown_columns: tuple[str, ...] = ()
    kind: str = ""  # "csv", "class-folders" or "unlabelled"


def read_collection(catalog: Path | None, images: Path) -> Collection:
    """Read a CSV catalog of `images`, or, without one, the class folders or plain images in it.

    Raises:
        FileNotFoundError: the catalog file or the images folder does not exist.
        ValueError: the catalog has no `filepath` or no rank column, or is not UTF-8 text.
    """
    images = Path(images)
    if not images.is_dir():
        what = "is not a folder" if images.exists() else "not found"
        raise FileNotFoundError(f"images folder {images} {what}")
    root = images.resolve()
    if catalog is None:
        return read_folders(root)
    catalog = Path(catalog)
    if not catalog.is_file():
        what = "is not a file" if catalog.exists() else "not found"
        raise FileNotFoundError(f"catalog {catalog} {what}")
    return read_csv(catalog, root)


def normalise_path(path: str) -> str:
    """POSIX separators, no `./` or `a/../`; a path leaving the root stays visible as `../`."""
    path = path.strip().replace("\\", "/")
    return posixpath.normpath(path) if path else ""


def read_csv(catalog: Path, root: Path) -> Collection:
    """Every row of a CSV catalog, with the column aliases of SPEC §2."""
    origin = str(catalog)
    try:
        with catalog.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            headers = list(reader.fieldnames or [])
            columns = _check_headers(catalog, headers)
            entries, problems = _csv_rows(reader, columns, origin)
    except UnicodeDecodeError as e:
        raise ValueError(f"{catalog}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except csv.Error as e:
        raise ValueError(f"{catalog}: not a readable CSV file ({e})") from e
    if columns.unknown:
        logger.warning("%s: unknown columns ignored: %s", catalog, ", ".join(columns.unknown))
    logger.info("%s: %d rows read, %d with problems", catalog, len(entries), len(problems))
    return Collection(root, entries, problems, columns.unknown, "csv")


def _check_headers(catalog: Path, headers: list[str]) -> HeaderMap:
    if not headers:
        raise ValueError(f"{catalog}: empty catalog, expected a header line with {PATH_COLUMN!r} and the ranks")
    columns = HeaderMap.from_headers(headers)
    if PATH_COLUMN not in columns.columns:
        raise ValueError(f"{catalog}: no {PATH_COLUMN!r} column; found {', '.join(headers)}")
    if not columns.has_taxonomy:
        raise ValueError(
            f"{catalog}: no rank column; expected some of {', '.join(RANK_LABELS)} or scientificName "
            "(for images without labels, pass --images alone)")
    return columns


def _csv_records(reader: csv.DictReader, origin: str, problems: list[Problem]) -> Iterator[tuple[int, dict]]:
    """The rows with their numbers; a row the csv module refuses (a field over `csv.field_size_limit()`)
    becomes a problem, and reading goes on at the next line."""
    row_number = _FIRST_CSV_ROW
    while True:
        line = reader.reader.line_num  # DictReader.line_num only moves on a row that was read
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            if reader.reader.line_num == line:  # no line was consumed: reading on would not get further
                raise
            problems.append(Problem(origin, row_number, "", f"unreadable row: {e}"))
        else:
            yield row_number, row
        row_number += 1


def _csv_rows(reader: csv.DictReader, columns: HeaderMap, origin: str) -> tuple[list[CatalogEntry], list[Problem]]:
    entries: list[CatalogEntry] = []
    problems: list[Problem] = []
    first_row: dict[str, int] = {}
    for row_number, row in _csv_records(reader, origin, problems):
        raw_path = columns.value(row, PATH_COLUMN)
        path = normalise_path(raw_path)
        lineage = columns.lineage(row)
        reason = _row_problem(row, path, lineage, first_row, len(reader.fieldnames or []))
        if reason:
            problems.append(Problem(origin, row_number, raw_path.replace(_NUL, "\\0"), reason))
            continue
        first_row[path] = row_number
        entries.append(CatalogEntry(
            path=path, lineage=lineage, origin=origin, row=row_number,
            **{name: columns.value(row, name) for name in OPTIONAL_COLUMNS},
        ))
    return entries, problems


def _row_problem(row: dict[str | None, object], path: str, lineage: Lineage, first_row: dict[str, int],
                 n_columns: int) -> str:
    """Why a CSV row cannot be used, or "" when it can."""
    if None in row:  # csv.DictReader files surplus fields under the key None
        return f"{len(row[None])} more fields than the header's {n_columns}"  # type: ignore[arg-type]
    with_nul = [column for column, value in row.items() if isinstance(value, str) and _NUL in value]
    if with_nul:
        return f"NUL byte in column {with_nul[0]!r}"
    if not path:
        return f"empty {PATH_COLUMN}"
    if path in first_row:
        return f"duplicate of row {first_row[path]}"
    return _lineage_problem(lineage)


def _lineage_problem(lineage: Lineage) -> str:
    if lineage.is_empty:
        return f"no rank given (none of {', '.join(RANK_LABELS)}, scientificName)"
    slashed = [rank for rank in Rank if KEY_SEPARATOR in lineage.get(rank)]
    if slashed:
        rank = slashed[0]
        return (f"{KEY_SEPARATOR!r} in the {rank.label} name {lineage.get(rank)!r} "
                "(it separates the ranks of taxon keys)")
    return ""


@dataclass(frozen=True)
class Checklist:
    """A species list (SPEC §2 reference taxa): one lineage per usable row, and the rows that were not."""

    path: Path
    lineages: list[Lineage]
    problems: list[Problem] = field(default_factory=list)
    unknown_columns: tuple[str, ...] = ()


def read_checklist(path: Path) -> Checklist:
    """A checklist CSV: the catalog's rank columns (or Darwin Core `scientificName` + ranks), no `filepath`.

    A row repeating an earlier row's taxon is reported and skipped, as is a row without any rank.

    Raises:
        FileNotFoundError: no such file. ValueError: no rank column, or not UTF-8 CSV text.
    """
    path = Path(path)
    if not path.is_file():
        what = "is not a file" if path.exists() else "not found"
        raise FileNotFoundError(f"checklist {path} {what}")
    origin = str(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            headers = list(reader.fieldnames or [])
            columns = HeaderMap.from_headers(headers)
            if not columns.has_taxonomy:
                found = ", ".join(headers) or "no header line"
                raise ValueError(f"{path}: no rank column; expected some of {', '.join(RANK_LABELS)} or "
                                 f"scientificName, found {found}")
            lineages, problems = _checklist_rows(reader, columns, origin)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except csv.Error as e:
        raise ValueError(f"{path}: not a readable CSV file ({e})") from e
    unknown = tuple(h for h in columns.unknown)
    if unknown:
        logger.warning("%s: unknown columns ignored: %s", path, ", ".join(unknown))
    logger.info("%s: %d taxa read, %d rows with problems", path, len(lineages), len(problems))
    return Checklist(path, lineages, problems, unknown)


def _checklist_rows(reader: csv.DictReader, columns: HeaderMap, origin: str) -> tuple[list[Lineage], list[Problem]]:
    lineages: list[Lineage] = []
    problems: list[Problem] = []
    first_row: dict[str, int] = {}
    n_columns = len(reader.fieldnames or [])
    for row_number, row in _csv_records(reader, origin, problems):
        lineage = columns.lineage(row)
        if None in row:
            reason = f"{len(row[None])} more fields than the header's {n_columns}"  # type: ignore[arg-type]
        elif any(isinstance(value, str) and _NUL in value for value in row.values()):
            reason = "NUL byte in a field"
        else:
            reason = _lineage_problem(lineage)
        key = lineage.key()
        if not reason and key in first_row:
            reason = f"{key} repeats row {first_row[key]}"
        if reason:
            problems.append(Problem(origin, row_number, "", reason))
            continue
        first_row[key] = row_number
        lineages.append(lineage)
    return lineages, problems


def parse_class_folder(name: str) -> Lineage | None:
    """The lineage a class folder names, or None when the name is not rank-shaped.

    `00001_Animalia_Chordata_Aves_Passeriformes_Corvidae_Pica_hudsonia` (iNat21, number optional)
    and `Animalia-Chordata-Aves-Passeriformes-Corvidae-Pica-hudsonia` (Rare Species). Ranks between
    kingdom and genus may be empty; the epithet keeps any separator it contains (`novae-angliae`).
    """
    for separator in CLASS_FOLDER_SEPARATORS:
        text = _LEADING_NUMBER.sub("", name, count=1) if separator == "_" else name
        parts = text.split(separator, len(Rank) - 1)
        if len(parts) != len(Rank):
            continue
        ranks, epithet = parts[:-1], parts[-1]
        if not ranks[Rank.KINGDOM] or not epithet or not _EPITHET.fullmatch(epithet):
            continue
        if all(not part or _RANK_WORD.fullmatch(part) for part in ranks):
            return Lineage.from_ranks([*ranks, epithet])
    return None


def _image_files(root: Path) -> list[str]:
    """Image files under `root` as sorted relative POSIX paths; hidden files and folders skipped."""
    found: list[str] = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        base = Path(folder).relative_to(root)
        found.extend(
            (base / name).as_posix() for name in files
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
        )
    return sorted(found)


def _split_of(parts: tuple[str, ...]) -> str:
    return next((part.lower() for part in parts if part.lower() in SPLIT_FOLDERS), "")


def _class_of(path: str) -> Lineage | None:
    """The lineage of the nearest rank-shaped folder above the image, if any."""
    for folder in reversed(Path(path).parts[:-1]):
        lineage = parse_class_folder(folder)
        if lineage is not None:
            return lineage
    return None


def read_folders(root: Path) -> Collection:
    """Class folders when any folder name is rank-shaped, otherwise an unlabelled collection.

    In a class-folder collection, an image outside a rank-shaped folder is reported, not guessed.
    Images in `train/`, `val/` or `test/` folders get that split.
    """
    files = _image_files(root)
    labelled = [(path, _class_of(path)) for path in files]
    if all(lineage is None for _, lineage in labelled):
        entries = [CatalogEntry(path, Lineage(), str(root), split=_split_of(Path(path).parts[:-1]))
                   for path in files]
        logger.info("%s: no class folders, %d unlabelled images", root, len(entries))
        return Collection(root, entries, [], (), "unlabelled")
    entries: list[CatalogEntry] = []
    problems: list[Problem] = []
    for path, lineage in labelled:
        split = _split_of(Path(path).parts[:-1])
        if lineage is None:
            problems.append(Problem(str(root), None, path, "not inside a class folder "
                                    "(expected names like Kingdom_Phylum_Class_Order_Family_Genus_epithet "
                                    "or Kingdom-Phylum-Class-Order-Family-Genus-epithet)"))
            continue
        entries.append(CatalogEntry(path, lineage, str(root), split=split))
    logger.info("%s: %d images in class folders, %d outside them", root, len(entries), len(problems))
    return Collection(root, entries, problems, (), "class-folders")
