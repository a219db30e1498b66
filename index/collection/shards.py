"""Webdataset shards in TreeOfLife-10M's layout as a collection (SPEC §2): `--shards 'dir/shard-{000000..000159}.tar'`.

A shard is a tar of samples; a sample is the members sharing a key (`KEY.jpg`, `KEY.taxonomic_name.txt`,
`KEY.common_name.txt`, ...), as webdataset groups them. Each sample becomes one catalog entry:

- its collection root is the folder holding the shards (their common folder when the spec spans several),
- its path is the shard's path under that root, then the image member's name:
  `shard-000042.tar/KEY.jpg`; so its point id is UUIDv5 of `image/shard-000042.tar/KEY.jpg` (SPEC §3),
  the same on every run, and unique even where two shards reuse a key;
- its lineage comes from its text keys (`sample_lineage`).

`index.collection.images` reads such a path from inside the tar (`tar_member`), so ingest, the build,
the UI and training open a shard's image as they open a file, with the same checks.
Reading the shards lists only tar headers and the small text members: the images are read (once, to
hash and check them) by ingest.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from index.collection.entries import CatalogEntry, Problem
from index.collection.readers import Collection, _lineage_problem
from taxonomy.constants import Rank
from taxonomy.lineage import Lineage

logger = logging.getLogger(__name__)

SHARD_SUFFIX = ".tar"
# The members of a sample that may hold its image, by preference (TreeOfLife-10M: `jpg`).
IMAGE_MEMBER_KEYS: tuple[str, ...] = ("jpg", "jpeg", "png", "webp")
# Text keys read for the lineage (SPEC §2), in the order they are tried.
TAXONOMIC_NAME_KEY = "taxonomic_name.txt"  # `Animalia Chordata Aves Passeriformes Corvidae Pica hudsonia`
TAXON_CAPTION_KEYS: tuple[str, ...] = ("taxon.txt", "taxonTag.txt")  # `a photo of Animalia ... hudsonia.`
SCIENTIFIC_NAME_KEYS: tuple[str, ...] = ("scientific_name.txt", "sci.txt")  # `Pica hudsonia`
COMMON_NAME_KEYS: tuple[str, ...] = ("common_name.txt", "com.txt")
# Zoological and botanical family endings: where a family stands when ranks above the genus are left out.
FAMILY_SUFFIXES: tuple[str, ...] = ("idae", "aceae")
_CAPTION = re.compile(r"^\s*a photo of\s+(.*?)\.?\s*$", re.IGNORECASE)
_TEXT_LIMIT = 64 * 1024  # a text member larger than this is not a name


class ShardError(ValueError):
    """A shard that cannot be read at all (not a tar, truncated headers)."""


def expand_shards(spec: str) -> list[Path]:
    """`dir/shard-{000000..000159}.tar` -> the shard files, as webdataset expands them (braceexpand;
    `::` separates several specs).

    Raises:
        ValueError: an empty spec, unbalanced braces, or a file not ending in `.tar`.
        FileNotFoundError: a shard that does not exist (the first one missing, and how many are).
    """
    import braceexpand

    if not spec or not spec.strip():
        raise ValueError("--shards: empty spec; expected e.g. 'dir/shard-{000000..000159}.tar'")
    try:
        paths = [Path(p) for part in spec.split("::") for p in braceexpand.braceexpand(part)]
    except braceexpand.UnbalancedBracesError as e:
        raise ValueError(f"--shards {spec!r}: bad brace pattern ({e}); expected e.g. "
                         "'dir/shard-{000000..000159}.tar'") from None
    not_tar = [p for p in paths if p.suffix != SHARD_SUFFIX or "{" in str(p) or "}" in str(p)]
    if not_tar:
        raise ValueError(f"--shards {spec!r}: {str(not_tar[0])!r} is not a .tar shard name; expected e.g. "
                         "'dir/shard-{000000..000159}.tar'")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"--shards {spec!r}: shard {str(missing[0])!r} not found "
                                f"({len(missing)} of {len(paths)} missing)")
    return paths


def shards_root(paths: list[Path]) -> Path:
    """The collection root of the shards: the folder holding them all."""
    folders = [str(p.resolve().parent) for p in paths]
    return Path(os.path.commonpath(folders))


def _first_text(texts: dict[str, str], keys: tuple[str, ...]) -> str:
    return next((texts[k] for k in keys if texts.get(k)), "")


def sample_lineage(texts: dict[str, str]) -> Lineage:
    """The lineage a sample's text keys give (SPEC §2); an empty one when they give none.

    `taxonomic_name.txt` (else the `taxon.txt` caption, `a photo of ...`) holds the names from kingdom down,
    space-separated, as TreeOfLife-10M writes them: missing ranks are left out, not left empty. Seven names
    fill the seven ranks. Fewer fill the ranks from kingdom down, except when they end in the sample's binomial
    (`scientific_name.txt`, else `sci.txt`): then those two are the genus and the epithet, a name with a
    family ending (`-idae`, `-aceae`) before them is the family, and the names before that fill the ranks from
    kingdom down (`Animalia Chordata Actinopteri Pomacentridae Amphiprion ocellaris`: no order). The common name comes from `common_name.txt` (else `com.txt`).

    Raises:
        ValueError: more than seven names.
    """
    taxonomic = texts.get(TAXONOMIC_NAME_KEY, "").strip()
    if not taxonomic:
        caption = _first_text(texts, TAXON_CAPTION_KEYS)
        match = _CAPTION.match(caption)
        taxonomic = match.group(1) if match else caption.strip()
    names = taxonomic.split()
    if len(names) > len(Rank):
        raise ValueError(f"{len(names)} names in the taxonomic name {taxonomic!r}; a lineage has at most {len(Rank)}")
    binomial = _first_text(texts, SCIENTIFIC_NAME_KEYS).split()
    if len(binomial) == 2 and 2 <= len(names) < len(Rank) and names[-2:] == binomial:
        names = _place_above_genus(names[:-2]) + names[-2:]
    common = _first_text(texts, COMMON_NAME_KEYS).strip()
    return Lineage.from_ranks(names, common_name=common)


def _place_above_genus(head: list[str]) -> list[str]:
    """The five ranks kingdom..family from fewer names: a family-shaped name (`-idae`, `-aceae`) at family,
    the names before it from kingdom down, the ranks left over empty."""
    ranks = [""] * Rank.GENUS
    family = next((i for i, name in enumerate(head) if name.endswith(FAMILY_SUFFIXES)), None)
    if family is not None and family < Rank.FAMILY:
        ranks[Rank.FAMILY] = head[family]
        head = head[:family]
    ranks[:len(head)] = head
    return ranks


@dataclass(frozen=True)
class _Member:
    offset: int  # of the data in the tar
    size: int


@functools.lru_cache(maxsize=64)
def _member_index(path: str, mtime_ns: int, size: int) -> dict[str, _Member]:
    """Name -> where its data lies, for every regular member of the tar at `path` (as of its mtime and size).

    Cached per process: a DataLoader worker reading a shard's samples lists its headers once.
    """
    try:
        with tarfile.open(path, mode="r:") as tar:
            return {m.name: _Member(m.offset_data, m.size) for m in tar if m.isfile()}
    except (tarfile.TarError, EOFError) as e:
        raise ShardError(f"{path}: not a readable tar ({e})") from e


def _index_of(tar: Path) -> dict[str, _Member]:
    st = tar.stat()
    return _member_index(str(tar), st.st_mtime_ns, st.st_size)


def split_member(target: Path, base: Path) -> tuple[Path, str] | None:
    """(the shard, the member name) when `target` lies inside a `.tar` file under `base`, else None."""
    for parent in target.parents:
        if parent == base or not parent.is_relative_to(base):
            return None
        if parent.suffix == SHARD_SUFFIX and parent.is_file():
            return parent, target.relative_to(parent).as_posix()
    return None


def member_size(tar: Path, member: str) -> int:
    """The size of `member` of the shard `tar`. Raises KeyError when there is none, ShardError on a bad tar."""
    return _index_of(tar)[member].size


def read_member(tar: Path, member: str) -> bytes:
    """The bytes of `member` of the shard `tar`. Raises KeyError when there is none, ShardError on a bad tar."""
    where = _index_of(tar)[member]
    with tar.open("rb") as handle:
        handle.seek(where.offset)
        data = handle.read(where.size)
    if len(data) != where.size:
        raise ShardError(f"{tar}: {member} is cut short ({len(data)} of {where.size} bytes)")
    return data


def _samples(tar: Path) -> Iterator[tuple[str, dict[str, str], list[str], str]]:
    """(key, text members, image member names, problem) of each sample, in tar order; webdataset's grouping:
    the key is the member name up to the first dot of its base name."""
    current: str | None = None
    texts: dict[str, str] = {}
    images: list[str] = []
    problem = ""
    with tarfile.open(tar, mode="r:") as handle:
        for member in handle:
            if not member.isfile():
                continue
            folder, _, base = member.name.rpartition("/")
            stem, dot, suffix = base.partition(".")
            key = f"{folder}/{stem}" if folder else stem
            if key != current:
                if current is not None:
                    yield current, texts, images, problem
                current, texts, images, problem = key, {}, [], ""
            if not dot:
                continue
            if suffix.lower() in IMAGE_MEMBER_KEYS:
                images.append(member.name)
            elif suffix.endswith(".txt") and member.size <= _TEXT_LIMIT:
                raw = handle.extractfile(member)
                try:
                    texts[suffix] = raw.read().decode("utf-8").strip() if raw is not None else ""
                except UnicodeDecodeError:
                    problem = f"{suffix} is not UTF-8 text"
    if current is not None:
        yield current, texts, images, problem


def read_shards(spec: str) -> Collection:
    """Every sample of the shards of `spec` as a catalog entry (see the module docstring); a sample without an
    image member or with an unusable lineage is a Problem naming its shard and key, and reading goes on.

    Raises:
        ValueError, FileNotFoundError: as `expand_shards`.
    """
    paths = expand_shards(spec)
    root = shards_root(paths)
    entries: list[CatalogEntry] = []
    problems: list[Problem] = []
    for shard in paths:
        relative = shard.resolve().relative_to(root).as_posix()
        origin = str(shard)
        try:
            for key, texts, images, problem in _samples(shard):
                if not problem and not images:
                    problem = f"no image member (expected one of .{', .'.join(IMAGE_MEMBER_KEYS)})"
                lineage = Lineage()
                if not problem:
                    try:
                        lineage = sample_lineage(texts)
                    except ValueError as e:
                        problem = str(e)
                if not problem and not lineage.is_empty:
                    problem = _lineage_problem(lineage)
                if problem:
                    problems.append(Problem(origin, None, key, problem))
                    continue
                image = sorted(images, key=lambda n: IMAGE_MEMBER_KEYS.index(n.rpartition(".")[2].lower()))[0]
                entries.append(CatalogEntry(f"{relative}/{image}", lineage, origin))
        except (tarfile.TarError, EOFError, OSError) as e:
            problems.append(Problem(origin, None, "", f"not a readable tar ({e}); samples after the error skipped"))
    logger.info("%d shards under %s: %d samples, %d with problems", len(paths), root, len(entries), len(problems))
    return Collection(root, entries, problems, (), "shards")


def shard_order(spec: str) -> Callable[[str], int | None]:
    """The index in `spec` of the shard a catalog path lies in (`shard-000042.tar/KEY.jpg` -> 42 for
    `shard-{000000..000159}.tar`), None for a path outside these shards: how torchrun ranks share them."""
    paths = expand_shards(spec)
    root = shards_root(paths)
    order = {p.resolve().relative_to(root).as_posix(): i for i, p in enumerate(paths)}

    def index(path: str) -> int | None:
        shard, sep, _ = path.rpartition(SHARD_SUFFIX + "/")
        return order.get(shard + SHARD_SUFFIX) if sep else None

    return index
