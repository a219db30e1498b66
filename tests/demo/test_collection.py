"""The written collection: a SPEC §2 catalog of NCBI lineages, real JPEGs, sound splits, identical bytes per seed."""
import csv
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from demo.collection import make_collection
from demo.constants import SPLIT_TRAIN, SPLIT_UNSEEN, SPLIT_VAL
from taxonomy import Rank
from taxonomy.columns import CANONICAL_COLUMNS, HeaderMap
from taxonomy.resolver import resolve_scientific

from tests.demo.conftest import TINY


def _rows(catalog: Path) -> tuple[list[str], list[dict[str, str]]]:
    with catalog.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_catalog_has_the_spec_columns_and_ncbi_lineages(tiny_demo_collection):
    headers, rows = _rows(tiny_demo_collection.catalog)
    assert headers == list(CANONICAL_COLUMNS)
    columns = HeaderMap.from_headers(headers)
    assert columns.unknown == ()
    assert len(rows) == TINY["species"] * TINY["per_species"]
    for row in rows:
        lineage = columns.lineage(row)
        assert lineage == resolve_scientific(lineage.binomial)
        assert lineage.deepest_rank == Rank.SPECIES and lineage.common_name


def test_every_row_points_at_a_jpeg_of_the_asked_size(tiny_demo_collection):
    _, rows = _rows(tiny_demo_collection.catalog)
    for row in rows:
        with Image.open(tiny_demo_collection.images / row["filepath"]) as image:
            assert (image.format, image.size, image.mode) == ("JPEG", (TINY["size"],) * 2, "RGB")
    assert len({row["id"] for row in rows}) == len(rows)


def test_splits_hold_out_pictures_and_whole_species_of_seen_genera(tiny_demo_collection):
    _, rows = _rows(tiny_demo_collection.catalog)
    columns = HeaderMap.from_headers(list(rows[0]))
    splits: dict[str, set[str]] = defaultdict(set)
    genus_of: dict[str, str] = {}
    for row in rows:
        lineage = columns.lineage(row)
        splits[row["split"]].add(lineage.key())
        genus_of[lineage.key()] = lineage.key(Rank.GENUS)
    assert set(splits) == {SPLIT_TRAIN, SPLIT_VAL, SPLIT_UNSEEN}
    assert splits[SPLIT_VAL] <= splits[SPLIT_TRAIN]  # val: other pictures of species seen in training
    assert not splits[SPLIT_UNSEEN] & splits[SPLIT_TRAIN]
    assert 1 <= len(splits[SPLIT_UNSEEN]) <= max(1, round(0.15 * TINY["species"]))
    seen_genera = {genus_of[key] for key in splits[SPLIT_TRAIN]}
    assert all(genus_of[key] in seen_genera for key in splits[SPLIT_UNSEEN])
    val = sum(row["split"] == SPLIT_VAL for row in rows)
    seen = sum(row["split"] != SPLIT_UNSEEN for row in rows)
    assert 0.1 <= val / seen <= 0.3


def test_same_seed_same_bytes_other_seed_other_bytes(tiny_demo_collection, tmp_path):
    again = make_collection(tmp_path / "again", **TINY)
    assert again.catalog.read_bytes() == tiny_demo_collection.catalog.read_bytes()
    assert _files(again.images) == _files(tiny_demo_collection.images)
    other = make_collection(tmp_path / "other", **{**TINY, "seed": 7})
    mine, theirs = _files(tiny_demo_collection.images), _files(other.images)
    assert other.catalog.read_bytes() != tiny_demo_collection.catalog.read_bytes()
    assert all(mine[path] != theirs[path] for path in mine.keys() & theirs.keys())


def test_progress_reaches_one(tmp_path):
    seen: list[tuple[float, str]] = []
    make_collection(tmp_path, species=2, per_species=1, size=32, seed=0, progress=lambda f, m: seen.append((f, m)))
    assert [fraction for fraction, _ in seen] == [0.5, 1.0]
    assert all(" " in message for _, message in seen)  # the binomial drawn


@pytest.mark.parametrize("arguments, message", [
    (dict(species=0), "--species"), (dict(per_species=0), "--per-species"), (dict(size=8), "--size"),
    (dict(species=100_000), "between 1 and"),
])
def test_bad_arguments_name_the_allowed_range(tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        make_collection(tmp_path, **{**TINY, **arguments})
