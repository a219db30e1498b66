"""index.collection.readers: CSV catalogs with every alias, class folders, unlabelled folders, bad rows."""
from __future__ import annotations

import logging

import pytest

from index.collection.readers import normalise_path, parse_class_folder, read_collection
from taxonomy import Lineage
from tests.index.conftest import JAY, MAGPIE, lineage_row, make_image, write_csv


def test_csv_catalog_rows_become_entries_with_row_numbers(collection):
    catalog, root = collection
    read = read_collection(catalog, root)
    assert (read.kind, read.root, read.problems, read.unknown_columns) == ("csv", root.resolve(), [], ())
    assert [(e.path, e.lineage, e.split, e.row, e.origin) for e in read.entries] == [
        ("birds/magpie1.jpg", MAGPIE, "train", 2, str(catalog)),
        ("birds/magpie2.png", MAGPIE, "val", 3, str(catalog)),
        ("birds/jay.jpg", JAY, "train", 4, str(catalog)),
    ]


def test_every_column_alias_is_understood_and_unknown_columns_named(tmp_path, caplog):
    header = ["FilePath", "Kingdom", "phylum", "cls", "order", "family", "genus", "specificEpithet",
              "vernacularName", "Split", "source", "licence", "id", "camera", "notes"]
    rows = [["./a/x.jpg", "metazoa", "chordata", "aves", "passeriformes", "corvidae", "pica", "Pica hudsonia",
             " black-billed  magpie ", "train", "inat", "cc-by", "obs-1", "nikon", "nice"]]
    catalog = write_csv(tmp_path / "dwc.csv", rows, header)
    with caplog.at_level(logging.WARNING, logger="index.collection.readers"):
        read = read_collection(catalog, tmp_path)
    (entry,) = read.entries
    assert entry.lineage == MAGPIE and entry.path == "a/x.jpg"
    assert (entry.split, entry.source, entry.license, entry.id) == ("train", "inat", "cc-by", "obs-1")
    assert read.unknown_columns == ("camera", "notes")
    assert "camera, notes" in caplog.text and str(catalog) in caplog.text


def test_tree_of_life_common_and_scientific_name_columns(tmp_path):
    header = ["filepath", "kingdom", "phylum", "class", "order", "family", "scientificName", "common"]
    rows = [["m.jpg", "Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica hudsonia",
             "black-billed magpie"],
            ["g.jpg", "", "", "", "", "", "Pica", ""]]
    read = read_collection(write_csv(tmp_path / "tol.csv", rows, header), tmp_path)
    assert [e.lineage for e in read.entries] == [MAGPIE, Lineage(genus="Pica")]


def test_bad_rows_are_problems_with_file_and_row(tmp_path):
    rows = [lineage_row("ok.jpg", MAGPIE), ["unlabelled.jpg", "", "", "", "", "", "", "", "", ""],
            lineage_row("", JAY), lineage_row("ok.jpg", JAY), lineage_row("extra.jpg", JAY) + ["x", "y"],
            lineage_row("./sub/../second.jpg", JAY)]
    catalog = write_csv(tmp_path / "c.csv", rows)
    read = read_collection(catalog, tmp_path)
    assert [e.path for e in read.entries] == ["ok.jpg", "second.jpg"]
    assert [(p.origin, p.row, p.path) for p in read.problems] == [
        (str(catalog), 3, "unlabelled.jpg"), (str(catalog), 4, ""), (str(catalog), 5, "ok.jpg"),
        (str(catalog), 6, "extra.jpg")]
    reasons = [p.reason for p in read.problems]
    assert reasons[0].startswith("no rank given") and reasons[1] == "empty filepath"
    assert reasons[2] == "duplicate of row 2" and reasons[3] == "2 more fields than the header's 10"
    assert str(read.problems[0]) == f"{catalog}:3: unlabelled.jpg: {reasons[0]}"


def test_paths_leaving_the_root_are_kept_for_ingest_to_refuse():
    assert normalise_path("..\\..\\etc\\passwd") == "../../etc/passwd"
    assert normalise_path("/etc/passwd") == "/etc/passwd"
    assert normalise_path(" ./a//b.jpg ") == "a/b.jpg"


@pytest.mark.parametrize(("content", "message"), [
    ("", "empty catalog"),
    ("path,kingdom\nx.jpg,Animalia\n", "no 'filepath' column; found path, kingdom"),
    ("filepath,camera\nx.jpg,nikon\n", "no rank column"),
])
def test_unusable_catalogs_are_one_clear_error(tmp_path, content, message):
    catalog = tmp_path / "bad.csv"
    catalog.write_text(content)
    with pytest.raises(ValueError, match=message) as raised:
        read_collection(catalog, tmp_path)
    assert str(catalog) in str(raised.value)


def test_non_utf8_catalog(tmp_path):
    catalog = tmp_path / "latin1.csv"
    catalog.write_bytes("filepath,genus\nx.jpg,Pic\xe1\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        read_collection(catalog, tmp_path)


def test_missing_catalog_or_images_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="catalog .*nope.csv not found"):
        read_collection(tmp_path / "nope.csv", tmp_path)
    with pytest.raises(FileNotFoundError, match="images folder .*nowhere not found"):
        read_collection(None, tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        read_collection(None, tmp_path / "file")


@pytest.mark.parametrize(("name", "expected"), [
    ("00001_Animalia_Chordata_Aves_Passeriformes_Corvidae_Pica_hudsonia", MAGPIE.with_common_name("")),
    ("Animalia_Chordata_Aves_Passeriformes_Corvidae_Pica_hudsonia", MAGPIE.with_common_name("")),
    ("Animalia-Chordata-Aves-Passeriformes-Corvidae-Pica-hudsonia", MAGPIE.with_common_name("")),
    ("Plantae-Tracheophyta-Magnoliopsida-Asterales-Asteraceae-Symphyotrichum-novae-angliae",
     Lineage("Plantae", "Tracheophyta", "Magnoliopsida", "Asterales", "Asteraceae", "Symphyotrichum", "novae-angliae")),
    ("Animalia_Chordata_Actinopteri__Pomacentridae_Amphiprion_ocellaris",
     Lineage("Animalia", "Chordata", "Actinopteri", "", "Pomacentridae", "Amphiprion", "ocellaris")),
    ("Metazoa_Chordata_Aves_Passeriformes_Corvidae_Pica_hudsonia", MAGPIE.with_common_name("")),
    ("Animalia_Chordata_Aves", None),
    ("my_holiday_photos_from_the_lake_2019", None),
    ("Animalia_Chordata_Aves_Passeriformes_Corvidae_Pica_Hudsonia", None),
    ("12345", None),
])
def test_class_folder_names(name, expected):
    assert parse_class_folder(name) == expected


def test_class_folders_give_lineage_and_split(tmp_path):
    inat = "00042_Animalia_Chordata_Aves_Passeriformes_Corvidae_Pica_hudsonia"
    rare = "Animalia-Chordata-Aves-Passeriformes-Corvidae-Cyanocitta-cristata"
    make_image(tmp_path / "train" / inat / "1.jpg")
    make_image(tmp_path / "val" / inat / "2.png")
    make_image(tmp_path / rare / "nested" / "3.JPG")
    make_image(tmp_path / "misc" / "stray.jpg")
    (tmp_path / rare / "README.txt").write_text("not an image")
    make_image(tmp_path / rare / ".hidden.jpg")
    read = read_collection(None, tmp_path)
    assert read.kind == "class-folders"
    assert [(e.path, e.lineage.key(), e.split, e.row) for e in read.entries] == [
        (f"{rare}/nested/3.JPG", JAY.key(), "", None),
        (f"train/{inat}/1.jpg", MAGPIE.key(), "train", None),
        (f"val/{inat}/2.png", MAGPIE.key(), "val", None),
    ]
    (problem,) = read.problems
    assert (problem.origin, problem.path) == (str(tmp_path.resolve()), "misc/stray.jpg")
    assert problem.reason.startswith("not inside a class folder")


def test_an_unlabelled_folder_is_read_with_empty_lineages(tmp_path):
    make_image(tmp_path / "b.png")
    make_image(tmp_path / "trip" / "a.jpg")
    (tmp_path / "notes.md").write_text("no")
    read = read_collection(None, tmp_path)
    assert read.kind == "unlabelled" and read.problems == []
    assert [(e.path, e.lineage.is_empty) for e in read.entries] == [("b.png", True), ("trip/a.jpg", True)]
