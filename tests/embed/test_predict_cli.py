"""`python -m embed predict` on a real built index (tol-tiny): pybioclip's columns and flags, candidate sets.

Reference taxa are written straight into a copy of the store with `upsert_taxa(..., sources=[("ncbi",)])`,
their vectors from the tiny model's `Encoder.encode_taxa`, as `embed taxa` writes them.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from embed.encoder import Encoder
from embed.predict import label_rows, pybioclip_columns, softmax, trust_columns
from embed.search_cli import add_search_parsers, run_predict, validate_predict
from index.collection.images import open_image
from index.store import open_store
from taxonomy import Lineage, Rank
from taxonomy.taxon import Taxon
from tests.built_index import BuiltIndex, tiny_model

# Reference species the demo collection does not hold, with every ancestor (as `embed taxa --ncbi` brings them).
REFERENCE = (
    Lineage.from_ranks(["Animalia", "Chordata", "Mammalia", "Carnivora", "Felidae", "Felis", "catus"], "domestic cat"),
    Lineage.from_ranks(["Animalia", "Chordata", "Mammalia", "Carnivora", "Felidae", "Lynx", "lynx"], "Eurasian lynx"),
    Lineage.from_ranks(["Plantae", "Tracheophyta", "Polypodiopsida", "Polypodiales", "Pteridaceae", "Adiantum",
                        "capillus-veneris"], "maidenhair fern"),
)


def reference_taxa() -> list[Taxon]:
    keys: dict[str, Taxon] = {}
    for lineage in REFERENCE:
        for rank in Rank:
            keys.setdefault(lineage.key(rank), Taxon(lineage.truncate(rank), rank))
    return list(keys.values())


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m embed")
    add_search_parsers(root.add_subparsers(dest="command", required=True))
    return root


def parse(argv: list[str]) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(argv)
    validate_predict(p, args)
    return args


@pytest.fixture(scope="module")
def store(built_index: BuiltIndex, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the built store plus the `ncbi` reference set (new species, and ancestors shared with the catalog)."""
    path = built_index.store_copy(tmp_path_factory.mktemp("predict") / "qdrant")
    taxa = reference_taxa()
    encoder = Encoder(tiny_model())
    with open_store(str(path)) as opened:
        opened.upsert_taxa(encoder.vector_name, taxa, [f"a photo of {t.name}." for t in taxa],
                           encoder.encode_taxa(taxa), sources=[("ncbi",)] * len(taxa))
    return path


@pytest.fixture(scope="module")
def images(built_index: BuiltIndex) -> list[Path]:
    return sorted(built_index.images.rglob("*.jpg"))


def predict(store: Path, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    args = parse(["predict", *argv, "--model", "tol-tiny", "--store", str(store)])
    return run_predict(args, out), out.getvalue()


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def image_vector(path: Path) -> np.ndarray:
    return Encoder(tiny_model()).encode_images([open_image(path.parent, path.name)])[0]


def logit_scale() -> float:
    return float(tiny_model().model.logit_scale.exp().item())


# --- files, folders, formats ----------------------------------------------------------------------------

def test_a_folder_is_walked_recursively_with_pybioclip_columns(store, built_index, images):
    status, out = predict(store, str(built_index.images), "--k", "2", "--format", "csv")
    assert status == 0
    assert out.splitlines()[0].split(",") == pybioclip_columns(Rank.SPECIES)
    rows = csv_rows(out)
    assert [r["file_name"] for r in rows] == [str(p) for p in images for _ in range(2)]
    status, out = predict(store, str(images[0]), "--rank", "order", "--k", "3", "--format", "csv")
    assert out.splitlines()[0] == "file_name,kingdom,phylum,class,order,score"
    scores = [float(r["score"]) for r in csv_rows(out)]
    assert scores == sorted(scores, reverse=True) and sum(scores) <= 1 + 1e-6


def test_json_output_file_and_a_failing_image_as_a_row(store, images, tmp_path, caplog):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a picture")
    output = tmp_path / "out.json"
    caplog.set_level(logging.ERROR)
    status, out = predict(store, str(images[0]), str(broken), str(tmp_path / "missing.jpg"), str(images[1]),
                          "--k", "1", "--format", "json", "--output", str(output))
    assert status == 1 and out == ""
    rows = json.loads(output.read_text())
    assert [r["file_name"] for r in rows] == [str(images[0]), str(broken), str(tmp_path / "missing.jpg"),
                                              str(images[1])]
    assert list(rows[0]) == pybioclip_columns(Rank.SPECIES) + ["error"]
    assert rows[0]["error"] == "" and rows[0]["species"] and rows[3]["species"]
    assert "not an image" in rows[1]["error"] and "no such file" in rows[2]["error"]
    assert "broken.jpg" in caplog.text


def test_batches_do_not_change_the_answer(store, images):
    files = [str(p) for p in images[:5]]
    _, one = predict(store, *files, "--batch-size", "1", "--format", "csv")
    _, many = predict(store, *files, "--batch-size", "4", "--format", "csv")
    first = [(r["file_name"], r["species"]) for r in csv_rows(one)]
    assert first == [(r["file_name"], r["species"]) for r in csv_rows(many)]
    assert np.allclose([float(r["score"]) for r in csv_rows(one)], [float(r["score"]) for r in csv_rows(many)],
                       atol=1e-5)


# --- candidate sets -------------------------------------------------------------------------------------

def test_taxa_chooses_the_candidate_sets(store, images):
    reference = {lin.binomial for lin in REFERENCE}
    _, out = predict(store, str(images[0]), "--taxa", "ncbi", "--k", "10", "--format", "csv")
    assert {r["species"] for r in csv_rows(out)} == reference
    _, out = predict(store, str(images[0]), "--taxa", "catalog", "--k", "50", "--format", "csv")
    catalog = {r["species"] for r in csv_rows(out)}
    assert catalog and not catalog & reference
    _, out = predict(store, str(images[0]), "--k", "50", "--format", "csv")
    assert {r["species"] for r in csv_rows(out)} == catalog | reference
    _, out = predict(store, str(images[0]), "--taxa", "catalog", "ncbi", "--k", "50", "--format", "csv")
    assert {r["species"] for r in csv_rows(out)} == catalog | reference


def test_no_candidates_says_how_to_add_a_reference_set(store, images, caplog):
    caplog.set_level(logging.ERROR)
    status, out = predict(store, str(images[0]), "--taxa", "checklist-fr")
    assert status == 1 and out == ""
    assert "no candidate set 'checklist-fr'" in caplog.text and "ncbi (3 species)" in caplog.text
    assert "python -m embed taxa --ncbi" in caplog.text
    caplog.clear()
    status, _ = predict(store, str(images[0]), "--taxa", "ncbi", "--within", "Fungi")
    assert status == 1 and "no candidate species" in caplog.text and "python -m embed taxa" in caplog.text


def test_subset_restricts_the_species(store, images, tmp_path, caplog):
    subset = tmp_path / "subset.csv"
    subset.write_text("Genus\nFelis\nAdiantum\n")
    _, out = predict(store, str(images[0]), "--subset", str(subset), "--k", "50", "--format", "csv")
    rows = csv_rows(out)
    assert {"Adiantum capillus-veneris", "Felis catus"} <= {r["species"] for r in rows}
    assert {r["genus"] for r in rows} == {"Felis", "Adiantum"} and sum(float(r["score"]) for r in rows) == \
        pytest.approx(1.0, abs=1e-4)
    subset.write_text("species\nFelis catus\n")
    _, out = predict(store, str(images[0]), "--subset", str(subset), "--format", "csv")
    rows = csv_rows(out)
    assert [r["species"] for r in rows] == ["Felis catus"] and float(rows[0]["score"]) == pytest.approx(1.0)
    caplog.set_level(logging.ERROR)
    subset.write_text("genus\nFelis\nUnicornus\n")
    assert predict(store, str(images[0]), "--subset", str(subset))[0] == 1
    assert "unknown genus received: Unicornus" in caplog.text
    subset.write_text("tribe\nFelini\n")
    assert predict(store, str(images[0]), "--subset", str(subset))[0] == 1
    assert "first column is named 'tribe' but must be one of kingdom,phylum" in caplog.text


# --- custom labels --------------------------------------------------------------------------------------

LABELS = ["a red fox", "a maidenhair fern", "a tabby cat"]


def expected_label_probs(path: Path) -> np.ndarray:
    labels = Encoder(tiny_model()).encode_labels(LABELS)
    return softmax(labels @ image_vector(path), logit_scale())


def test_cls_templates_averaged_as_pybioclip(store, images, tmp_path):
    probs = expected_label_probs(images[0])
    status, out = predict(store, str(images[0]), "--cls", ",".join(LABELS), "--format", "csv")
    assert status == 0 and out.splitlines()[0] == "file_name,classification,score"
    rows = csv_rows(out)
    order = np.argsort(-probs)
    assert [r["classification"] for r in rows] == [LABELS[i] for i in order]
    assert [float(r["score"]) for r in rows] == pytest.approx(probs[order].tolist(), abs=1e-5)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    _, from_file = predict(store, str(images[0]), "--cls", str(labels), "--k", "2", "--format", "csv")
    assert csv_rows(from_file) == rows[:2]


def test_bins_add_up_the_labels_of_each_bin(store, images, tmp_path):
    probs = expected_label_probs(images[0])
    bins = tmp_path / "bins.csv"
    bins.write_text("label,bin\na red fox,animal\na maidenhair fern,plant\na tabby cat,animal\n")
    status, out = predict(store, str(images[0]), "--bins", str(bins), "--format", "csv")
    assert status == 0 and out.splitlines()[0] == "file_name,classification,score"
    scores = {r["classification"]: float(r["score"]) for r in csv_rows(out)}
    assert scores == pytest.approx({"animal": probs[0] + probs[2], "plant": probs[1]}, abs=1e-5)
    bins.write_text("label,bin\na red fox,\n")
    assert predict(store, str(images[0]), "--bins", str(bins))[0] == 1


def test_label_rows_by_hand():
    logits = np.log(np.array([0.2, 0.45, 0.35]))
    rows = label_rows("x.jpg", logits, ["fox", "fern", "cat"], k=2)
    assert [(r["classification"], round(r["score"], 6)) for r in rows] == [("fern", 0.45), ("cat", 0.35)]
    rows = label_rows("x.jpg", logits, ["fox", "fern", "cat"], k=5, bins={"fox": "animal", "fern": "plant",
                                                                          "cat": "animal"})
    assert [(r["classification"], round(r["score"], 6)) for r in rows] == [("animal", 0.55), ("plant", 0.45)]


# --- --trust and --log ----------------------------------------------------------------------------------

def test_trust_gives_one_row_at_the_deepest_rank_that_reaches_p(store, images):
    from embed.search import SearchService

    files = [str(p) for p in images[:6]]
    status, out = predict(store, *files, "--trust", "0.3", "--format", "csv")
    assert status == 0 and out.splitlines()[0].split(",") == trust_columns()
    rows = csv_rows(out)
    assert [r["file_name"] for r in rows] == files
    with open_store(str(store)) as copy:  # the same candidates: the catalog and the ncbi set
        service = SearchService(copy, None, tiny_model())
        for path, row in zip(images, rows):
            found = service.identify(image_vector(path))
            expected = [p for p in found.path if p.score >= 0.3][-1]
            assert (row["rank"], float(row["score"])) == (expected.rank.label, pytest.approx(expected.score, abs=1e-5))
            below = [r.label for r in Rank if r > expected.rank]
            assert all(row[label] == "" for label in below)
            assert row[expected.rank.label]


def test_log_is_a_json_record_and_never_overwritten(store, images, tmp_path):
    log = tmp_path / "run.json"
    status, _ = predict(store, str(images[0]), "--taxa", "ncbi", "--log", str(log))
    assert status == 0
    record = json.loads(log.read_text())
    assert record["version"].startswith("tree-of-life-search")
    assert record["model"] == "tol-tiny" and record["device"] == "cpu" and record["store"] == str(store)
    assert record["candidate_sets"] == ["ncbi"] and record["images"] == [str(images[0])]
    assert record["start"] <= record["end"] and "command_line" in record
    with pytest.raises(SystemExit):
        parse(["predict", str(images[0]), "--log", str(log)])


@pytest.mark.parametrize("argv", [
    ["--cls", "a,b", "--rank", "genus"], ["--bins", "b.csv", "--subset", "s.csv"], ["--cls", "a", "--bins", "b.csv"],
    ["--cls", "a", "--trust", "0.5"], ["--taxa", "all", "catalog"], ["--trust", "0"], ["--trust", "1.5"],
])
def test_refused_combinations(argv):
    with pytest.raises(SystemExit):
        parse(["predict", "a.jpg", *argv])
