"""Ingest semantics: idempotent, updates, gone rows, every bad input reported with file and row."""
from __future__ import annotations

import csv
import os

import pytest
from PIL import Image

from index.catalog import Catalog
from index.collection.readers import read_collection
from index.collection.entries import image_point_id
from taxonomy import Lineage, Rank
from taxonomy.validate import InconsistentLineageError
from index.collection.constants import ACCEPTED_IMAGE_FORMATS, MAX_ASPECT_RATIO
from tests.index.conftest import (
    EPS, GANNET, HEADER, JAY, MAGPIE, fake_ghostscript, lineage_row, make_image, make_noisy_jpeg, make_png_bomb,
    make_strip, truncate, write_csv,
)


def _counts(summary) -> tuple[int, int, int, int, int]:
    return summary.added, summary.updated, summary.unchanged, summary.gone, summary.skipped


def test_ingest_adds_then_changes_nothing(catalog, collection):
    csv_file, root = collection
    first = catalog.ingest(read_collection(csv_file, root))
    assert _counts(first) == (3, 0, 0, 0, 0) and first.problems == [] and first.root == str(root.resolve())
    again = catalog.ingest(read_collection(csv_file, root))
    assert _counts(again) == (0, 0, 3, 0, 0)
    images = catalog.images()
    assert [(i.path, i.split, i.lineage, i.status) for i in images] == [
        ("birds/jay.jpg", "train", JAY, "present"), ("birds/magpie1.jpg", "train", MAGPIE, "present"),
        ("birds/magpie2.png", "val", MAGPIE, "present")]
    assert images[0].id == image_point_id("birds/jay.jpg") and images[0].root == str(root.resolve())
    assert (images[0].width, images[0].height) == (32, 24) and len(images[0].sha256) == 64
    assert [i.path for i in catalog.images(split="val")] == ["birds/magpie2.png"]
    assert catalog.image(images[0].id) == images[0] and catalog.image("no-such-id") is None


def test_a_changed_file_is_updated(catalog, collection):
    csv_file, root = collection
    catalog.ingest(read_collection(csv_file, root))
    jay = root / "birds" / "jay.jpg"
    before = catalog.image(image_point_id("birds/jay.jpg"))
    make_image(jay, size=(50, 20), colour=(0, 200, 0))
    os.utime(jay, ns=(jay.stat().st_atime_ns, jay.stat().st_mtime_ns + 10**9))
    summary = catalog.ingest(read_collection(csv_file, root))
    assert _counts(summary) == (0, 1, 2, 0, 0)
    after = catalog.image(before.id)
    assert after.sha256 != before.sha256 and (after.width, after.height) == (50, 20)


def test_a_touched_but_identical_file_is_unchanged(catalog, collection):
    csv_file, root = collection
    catalog.ingest(read_collection(csv_file, root))
    os.utime(root / "birds" / "jay.jpg", ns=(0, 10**18))
    assert _counts(catalog.ingest(read_collection(csv_file, root))) == (0, 0, 3, 0, 0)


def test_new_labels_are_an_update(catalog, collection, tmp_path):
    csv_file, root = collection
    catalog.ingest(read_collection(csv_file, root))
    relabelled = write_csv(tmp_path / "v2.csv", [
        lineage_row("birds/magpie1.jpg", MAGPIE, "train"), lineage_row("birds/magpie2.png", MAGPIE, "test"),
        lineage_row("birds/jay.jpg", JAY.with_common_name("jay"), "train")])
    assert _counts(catalog.ingest(read_collection(relabelled, root))) == (0, 2, 1, 0, 0)
    assert catalog.image(image_point_id("birds/magpie2.png")).split == "test"
    assert catalog.image(image_point_id("birds/jay.jpg")).lineage.common_name == "jay"


def test_a_removed_row_is_gone_and_comes_back(catalog, collection, tmp_path):
    csv_file, root = collection
    catalog.ingest(read_collection(csv_file, root))
    fewer = write_csv(tmp_path / "fewer.csv", [lineage_row("birds/magpie1.jpg", MAGPIE, "train"),
                                               lineage_row("birds/magpie2.png", MAGPIE, "val")])
    assert _counts(catalog.ingest(read_collection(fewer, root))) == (0, 0, 2, 1, 0)
    jay_id = image_point_id("birds/jay.jpg")
    assert catalog.image(jay_id).status == "gone"
    assert jay_id not in {i.id for i in catalog.images()}
    assert jay_id in {i.id for i in catalog.images(include_gone=True)}
    assert [t.key for t in catalog.taxa(Rank.GENUS)] == [MAGPIE.key(Rank.GENUS)]  # rebuilt from present images
    assert catalog.stats().gone == 1
    assert _counts(catalog.ingest(read_collection(csv_file, root))) == (1, 0, 2, 0, 0)
    assert catalog.image(jay_id).status == "present"


def test_another_collection_does_not_make_the_first_gone(catalog, collection, tmp_path):
    csv_file, root = collection
    catalog.ingest(read_collection(csv_file, root))
    other = tmp_path / "other"
    make_image(other / "Animalia_Chordata_Aves_Suliformes_Sulidae_Morus_bassanus" / "g.jpg")
    summary = catalog.ingest(read_collection(None, other))
    assert _counts(summary) == (1, 0, 0, 0, 0)
    assert len(catalog.images()) == 4
    assert {t.key for t in catalog.taxa(Rank.GENUS)} == {MAGPIE.key(Rank.GENUS), JAY.key(Rank.GENUS),
                                                          GANNET.key(Rank.GENUS)}


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_every_bad_input_is_reported_with_file_and_row_and_the_rest_ingested(catalog, tmp_path, monkeypatch):
    root = tmp_path / "images"
    make_image(root / "good.jpg")
    make_image(root / "good2.png")
    (root / "empty.jpg").write_bytes(b"")
    truncate(make_noisy_jpeg(root / "cut.jpg", size=(80, 64)))  # under the lowered pixel limit below
    (root / "text.jpg").write_text("not a picture")
    outside = make_image(tmp_path / "outside.jpg")
    (root / "link.jpg").symlink_to(outside)
    make_png_bomb(root / "bomb.png")
    make_image(root / "warned.png", size=(100, 100))
    bad = ["missing.jpg", "empty.jpg", "cut.jpg", "text.jpg", "../../etc/passwd", "/etc/passwd", "link.jpg",
           "bomb.png", "warned.png"]
    rows = [lineage_row("good.jpg", MAGPIE)] + [lineage_row(path, JAY) for path in bad]
    rows += [["good2.png", "", "", "", "", "", "", "", "", ""]]
    csv_file = write_csv(tmp_path / "catalog.csv", rows, HEADER + ["camera"])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 9000)  # warned.png: 10 000 pixels, under twice the limit
    summary = catalog.ingest(read_collection(csv_file, root))
    assert _counts(summary) == (1, 0, 0, 0, 10)
    assert summary.unknown_columns == ("camera",)
    assert [(p.origin, p.row, p.path) for p in summary.problems] == (
        [(str(csv_file), 12, "good2.png")] + [(str(csv_file), row, path) for row, path in enumerate(bad, start=3)])
    reasons = {p.path: p.reason for p in summary.problems}
    assert reasons["good2.png"].startswith("no rank given")
    assert reasons["missing.jpg"].startswith("file not found")
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["cut.jpg"] == "truncated image"
    assert reasons["text.jpg"] == "not an image file (unrecognised format)"
    assert reasons["../../etc/passwd"].startswith("path leading outside the images root")
    assert reasons["/etc/passwd"].startswith("absolute path")
    assert reasons["link.jpg"].startswith("symlink pointing outside the images root")
    assert reasons["bomb.png"].startswith("decompression bomb")
    assert reasons["warned.png"].startswith("decompression bomb")
    assert [i.path for i in catalog.images()] == ["good.jpg"]
    stats = catalog.stats()
    assert [str(p) for p in stats.problems] == [str(p) for p in summary.problems]


def _good_and_bad(tmp_path, bad: list[str]):
    """A catalog of good.jpg (row 2), the `bad` rows (JAY), then good2.png; the images root."""
    root = tmp_path / "images"
    make_image(root / "good.jpg")
    make_image(root / "good2.png")
    rows = [lineage_row("good.jpg", MAGPIE), *(lineage_row(path, JAY) for path in bad), lineage_row("good2.png", JAY)]
    return write_csv(tmp_path / "catalog.csv", rows), root


def test_a_file_of_a_refused_format_is_named_and_ghostscript_never_runs(catalog, tmp_path, monkeypatch):
    ran = fake_ghostscript(tmp_path / "bin", monkeypatch)
    csv_file, root = _good_and_bad(tmp_path, ["photo.jpg", "figure.eps"])
    (root / "photo.jpg").write_bytes(EPS)  # a catalog may name any file; the content decides
    (root / "figure.eps").write_bytes(EPS)
    summary = catalog.ingest(read_collection(csv_file, root))
    assert _counts(summary) == (2, 0, 0, 0, 2)
    refused = f"EPS is not an accepted image format (accepted: {', '.join(ACCEPTED_IMAGE_FORMATS)})"
    assert [str(p) for p in summary.problems] == [f"{csv_file}:3: photo.jpg: {refused}",
                                                   f"{csv_file}:4: figure.eps: {refused}"]
    assert not ran.exists()
    assert [i.path for i in catalog.images()] == ["good.jpg", "good2.png"]


def test_an_extreme_strip_is_reported_and_the_rest_ingested(catalog, tmp_path):
    csv_file, root = _good_and_bad(tmp_path, ["strip.png", "tower.png"])
    make_strip(root / "strip.png", (40_000, 2))
    make_strip(root / "tower.png", (3, 3 * MAX_ASPECT_RATIO + 1))
    summary = catalog.ingest(read_collection(csv_file, root))
    assert _counts(summary) == (2, 0, 0, 0, 2)
    assert [(p.row, p.path, p.reason) for p in summary.problems] == [
        (3, "strip.png", f"aspect ratio 20000:1 (40000x2 pixels) is over the limit of {MAX_ASPECT_RATIO}:1"),
        (4, "tower.png", f"aspect ratio {MAX_ASPECT_RATIO}.3:1 (3x{3 * MAX_ASPECT_RATIO + 1} pixels) is over the "
                         f"limit of {MAX_ASPECT_RATIO}:1")]
    assert [i.path for i in catalog.images()] == ["good.jpg", "good2.png"]


def _with_nul_path(row: list[str]) -> list[str]:
    return ["bad\0.jpg", *row[1:]]


def _with_huge_field(row: list[str]) -> list[str]:
    return [row[0], *row[1:-2], "x" * (csv.field_size_limit() + 1), row[-1]]  # an oversized common_name


def _with_slash_in_genus(row: list[str]) -> list[str]:
    return [*row[:6], "Cyano/citta", *row[7:]]


@pytest.mark.parametrize(("spoil", "path", "reason"), [
    (_with_nul_path, "bad\\0.jpg", "NUL byte in column 'filepath'"),
    (_with_huge_field, "", f"unreadable row: field larger than field limit ({csv.field_size_limit()})"),
    (_with_slash_in_genus, "bad.jpg", "'/' in the genus name 'Cyano/citta' (it separates the ranks of taxon keys)"),
])
def test_a_bad_row_is_reported_with_its_row_and_the_rest_ingested(catalog, tmp_path, spoil, path, reason):
    csv_file, root = _good_and_bad(tmp_path, ["bad.jpg", "more.jpg"])
    make_image(root / "bad.jpg")
    make_image(root / "more.jpg")
    with csv_file.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    rows[2] = spoil(rows[2])  # row 3 of the file: bad.jpg
    write_csv(csv_file, rows[1:], rows[0])
    summary = catalog.ingest(read_collection(csv_file, root))
    assert _counts(summary) == (3, 0, 0, 0, 1)
    assert [(p.origin, p.row, p.path, p.reason) for p in summary.problems] == [(str(csv_file), 3, path, reason)]
    assert [i.path for i in catalog.images()] == ["good.jpg", "good2.png", "more.jpg"]
    assert [str(p) for p in catalog.stats().problems] == [str(p) for p in summary.problems]


def test_an_image_that_went_bad_is_reported_and_gone(catalog, collection):
    csv_file, root = collection
    catalog.ingest(read_collection(csv_file, root))
    (root / "birds" / "jay.jpg").write_bytes(b"")
    summary = catalog.ingest(read_collection(csv_file, root))
    assert _counts(summary) == (0, 0, 2, 1, 1)
    assert catalog.image(image_point_id("birds/jay.jpg")).status == "gone"


def test_unlabelled_images_are_ingested_not_rejected(catalog, tmp_path):
    make_image(tmp_path / "pics" / "a.jpg")
    make_image(tmp_path / "pics" / "b.png")
    summary = catalog.ingest(read_collection(None, tmp_path / "pics"))
    assert _counts(summary) == (2, 0, 0, 0, 0)
    assert all(i.lineage.is_empty and i.taxon == "" for i in catalog.images())
    assert catalog.taxa() == [] and catalog.stats().images_per_kingdom == {"": 2}


CORVID_ORDER = ["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae"]


def _conflicting_collection(tmp_path):
    root = tmp_path / "images"
    rows = []
    for i, family in enumerate(["Corvidae", "Corvidae", "Laniidae"]):
        make_image(root / f"{i}.jpg", colour=(i, i, i))
        rows.append([f"{i}.jpg", "Animalia", "Chordata", "Aves", "Passeriformes", family, "Pica", "hudsonia", "", ""])
    return write_csv(tmp_path / "conflict.csv", rows), root


def test_inconsistent_lineages_majority_wins_when_lenient(catalog, tmp_path):
    csv_file, root = _conflicting_collection(tmp_path)
    summary = catalog.ingest(read_collection(csv_file, root))
    assert summary.added == 3 and len(summary.conflicts) == 1
    assert "'Pica'" in summary.conflicts[0] and f"{csv_file}:4" in summary.conflicts[0]
    assert {i.lineage for i in catalog.images()} == {Lineage.from_ranks(CORVID_ORDER + ["Pica", "hudsonia"])}


def test_inconsistent_lineages_are_an_error_when_strict_and_nothing_is_written(catalog, tmp_path):
    csv_file, root = _conflicting_collection(tmp_path)
    with pytest.raises(InconsistentLineageError, match=f"{csv_file}:4") as raised:
        catalog.ingest(read_collection(csv_file, root), strict=True)
    assert isinstance(raised.value, ValueError)
    assert catalog.images(include_gone=True) == [] and catalog.stats().last_ingest is None


def test_batches_already_committed_survive_a_crash(tmp_path, collection):
    csv_file, root = collection
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    seen: list[tuple[float, str]] = []

    def crash_after_first_batch(fraction: float, message: str) -> None:
        seen.append((fraction, message))
        raise KeyboardInterrupt

    with Catalog(url) as catalog, pytest.raises(KeyboardInterrupt):
        catalog.ingest(read_collection(csv_file, root), progress=crash_after_first_batch, batch_size=2)
    assert seen == [(2 / 3, "2/3 images")]
    with Catalog(url) as reopened:
        assert [i.path for i in reopened.images()] == ["birds/magpie1.jpg", "birds/magpie2.png"]
        assert _counts(reopened.ingest(read_collection(csv_file, root), batch_size=2)) == (1, 0, 2, 0, 0)


def test_progress_reaches_one(catalog, collection):
    csv_file, root = collection
    seen: list[float] = []
    catalog.ingest(read_collection(csv_file, root), progress=lambda fraction, _: seen.append(fraction), batch_size=1)
    assert seen == [1 / 3, 2 / 3, 1.0]


def test_bad_arguments_are_refused(catalog, collection):
    csv_file, root = collection
    with pytest.raises(ValueError, match="at least 1"):
        catalog.ingest(read_collection(csv_file, root), batch_size=0)
