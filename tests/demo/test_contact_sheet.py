"""The contact sheet: a row per family, spread over classes, written as a small PNG."""
from PIL import Image

from demo.constants import SHEET_FAMILIES_PER_CLASS, SHEET_LABEL_WIDTH, SHEET_MARGIN, SHEET_THUMB
from demo.contact_sheet import make_contact_sheet, pick_families, read_samples
from taxonomy import Rank


def test_one_sample_per_species_from_training_when_possible(tiny_demo_collection):
    samples = read_samples(tiny_demo_collection.catalog)
    assert len(samples) == 12 == len({sample.lineage.key() for sample in samples})
    assert all((tiny_demo_collection.images / sample.path).is_file() for sample in samples)


def test_rows_are_families_spread_over_classes_and_kingdoms(tiny_demo_collection):
    rows = pick_families(read_samples(tiny_demo_collection.catalog), families=5)
    assert len(rows) == 5
    for row in rows:
        assert len({sample.lineage.key(Rank.FAMILY) for sample in row}) == 1
    classes = [row[0].lineage.key(Rank.CLASS) for row in rows]
    assert max(classes.count(key) for key in classes) <= SHEET_FAMILIES_PER_CLASS
    assert {row[0].lineage.kingdom for row in rows} == {"Animalia", "Plantae", "Fungi"}
    assert [row[0].lineage.key(Rank.FAMILY) for row in rows] == sorted(row[0].lineage.key(Rank.FAMILY) for row in rows)


def test_the_sheet_is_a_palettised_png_of_the_expected_width(tiny_demo_collection, tmp_path):
    out = make_contact_sheet(tiny_demo_collection.catalog, tiny_demo_collection.images, tmp_path / "sheet.png",
                             families=4, per_row=3)
    with Image.open(out) as sheet:
        assert sheet.format == "PNG" and sheet.mode == "P"
        assert sheet.width == 2 * SHEET_MARGIN + SHEET_LABEL_WIDTH + 3 * (SHEET_THUMB + SHEET_MARGIN)
        assert sheet.height > 4 * SHEET_THUMB
