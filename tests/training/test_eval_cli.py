"""`python -m training eval`: flag validation, the report formats, and end-to-end runs on a tiny demo collection."""
from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taxonomy import TEXT_TYPES
from training.eval_cli import add_eval_parser, config_from_args, create_parser, parse_args, read_classes, run_eval
from training.evaluate import FewShotAccuracy, MistakeDepth, ModelEvaluation, RankAccuracy, ZeroShotEvaluation
from training.report import CSV_COLUMNS, format_report, metric_rows, plot_evaluations

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _restore_logging():
    """`run_eval` sets up logging as an entry point does; leave the root logger as the test found it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
FELIS_CHAUS = "Animalia,Chordata,Mammalia,Carnivora,Felidae,Felis,chaus,jungle cat"
AMANITA = "Fungi,Basidiomycota,Agaricomycetes,Agaricales,Amanitaceae,Amanita,muscaria,fly agaric"


# --- flags ----------------------------------------------------------------------------------------


def test_parse_args_defaults_and_lists(tmp_path):
    config = parse_args(["--model", "tol-tiny", "--model", "ViT-B-16", "--images", str(tmp_path)])
    assert config.models == ("tol-tiny", "ViT-B-16")
    assert config.text_types == ("taxon_com",) and config.shots == (0, 1, 5) and config.folds == 5
    assert config.format == "table" and config.split is None
    config = parse_args(["--model", "m", "--images", str(tmp_path), "--text-type", "all", "--shots", "5,1"])
    assert config.text_types == TEXT_TYPES and config.shots == (1, 5)
    config = parse_args(["--model", "m", "--images", str(tmp_path), "--text-type", "common, taxonomic,common",
                         "--ranks", "species,genus"])
    assert config.text_types == ("common", "taxonomic")
    assert [rank.label for rank in config.ranks] == ["genus", "species"]


@pytest.mark.parametrize("extra, message", [
    (["--text-type", "latin"], "unknown text type 'latin'; expected one of taxonomic"),
    (["--shots", "1,x"], "expected comma-separated whole numbers"),
    (["--ranks", "tribe"], "unknown rank 'tribe'; expected one of kingdom, phylum"),
    (["--catalog", "missing.csv"], "--catalog 'missing.csv': no such file"),
    (["--plot", "out.jpg"], "expected a .png file name"),
    (["--folds", "0"], "--folds must be at least 1"),
    (["--split", "val", "--support-split", "val"], "--support-split must differ from --split"),
    (["--format", "json"], "invalid choice: 'json'"),
])
def test_parse_args_rejects_bad_flags_naming_what_is_allowed(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--model", "tol-tiny", "--images", str(tmp_path), *extra])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_images_folder_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--model", "tol-tiny", "--images", str(tmp_path / "nowhere")])
    assert "no such folder" in capsys.readouterr().err


def test_add_eval_parser_registers_the_subcommand(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="python -m training")
    commands = parser.add_subparsers(dest="command", required=True)
    add_eval_parser(commands)
    args = parser.parse_args(["eval", "--model", "tol-tiny", "--images", str(tmp_path), "--split", "unseen"])
    assert args.command == "eval"
    assert config_from_args(args).split == "unseen"
    bad = parser.parse_args(["eval", "--model", "tol-tiny", "--images", str(tmp_path), "--shots", "-1"])
    with pytest.raises(SystemExit):
        config_from_args(bad)
    assert "python -m training eval: error:" in capsys.readouterr().err


def test_read_classes_accepts_rank_columns_or_scientific_names(tmp_path):
    ranks = tmp_path / "ranks.csv"
    ranks.write_text("kingdom,phylum,class,order,family,genus,species,common_name\n"
                     f"{AMANITA}\n{AMANITA}\n", encoding="utf-8")
    [amanita] = read_classes(ranks)  # duplicates collapse
    assert amanita.binomial == "Amanita muscaria" and amanita.common_name == "fly agaric"
    names = tmp_path / "names.csv"
    names.write_text("scientificName\nPica hudsonia\nCorvus corax\n", encoding="utf-8")
    assert [lineage.key() for lineage in read_classes(names)] == ["/////Pica/hudsonia", "/////Corvus/corax"]
    empty = tmp_path / "empty.csv"
    empty.write_text("colour\nred\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no rank column"):
        read_classes(empty)


# --- report formats -------------------------------------------------------------------------------


def _evaluation(name: str, species_top1: float) -> ModelEvaluation:
    ranks = (RankAccuracy("kingdom", 1.0, 1.0, 2, 4), RankAccuracy("species", species_top1, 1.0, 4, 4))
    wrong = round((1 - species_top1) * 4)
    mistakes = tuple(MistakeDepth(level, wrong if level == "genus" else 0, 1.0 if level == "genus" and wrong else 0.0)
                     for level in ("genus", "family", "order", "class", "phylum", "kingdom", "life"))
    return ModelEvaluation(name, "tol-tiny", "unseen", 4, (ZeroShotEvaluation("taxon_com", ranks, mistakes),),
                           (FewShotAccuracy(1, 0.5, 0.1, 5, 4, 8),))


def test_report_formats():
    evaluations = [_evaluation("a", 0.5), _evaluation("b", 0.25)]
    rows = list(csv.DictReader(io.StringIO(format_report(evaluations, "csv"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(metric_rows(evaluations)) == 2 * (2 * 2 + 7 + 1)
    species = [r for r in rows if r["metric"] == "zero_shot" and r["rank"] == "species" and r["k"] == "1"]
    assert [(r["model"], float(r["value"])) for r in species] == [("a", 0.5), ("b", 0.25)]
    few = next(r for r in rows if r["metric"] == "few_shot")
    assert (few["k"], float(few["value"]), float(few["std"]), few["images"]) == ("1", 0.5, 0.1, "8")

    table = format_report(evaluations, "table")
    assert "50.0 / 100.0" in table and "25.0 / 100.0" in table and "50.0 ± 10.0" in table
    assert "a (taxon_com): 2 wrong species predictions" in table
    assert "genus   ############################## 3 (100.0 %)" in table  # b's 3 mistakes, all in the genus
    markdown = format_report(evaluations, "markdown")
    assert "### Zero-shot accuracy" in markdown and "| a | taxon_com | 100.0 / 100.0 | - |" in markdown
    with pytest.raises(ValueError, match="table, csv, markdown"):
        format_report(evaluations, "json")


def test_plot_is_a_png(tmp_path):
    evaluations = [_evaluation("a", 0.5), _evaluation("b", 0.25)]
    # The plain two-panel figure is drawn by the end-to-end test; this one adds the heatmap panel.
    path = plot_evaluations(evaluations, tmp_path / "matrix.png", title="two models",
                            matrix=(["a", "b"], ["x", "y"], [[0.1, 0.2], [0.3, 0.4]]), matrix_title="m")
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000


# --- end to end -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_collection(tmp_path_factory):
    """4 species (2 genera) x 6 pictures of 32 px; one species is `unseen`."""
    from demo.collection import make_collection

    out = tmp_path_factory.mktemp("demo")
    paths = make_collection(out, species=4, per_species=6, size=32, seed=0)
    return paths.catalog, paths.images


def test_help_is_cheap_and_imports_no_torch():
    code = ("import sys; from training.eval_cli import create_parser; create_parser().format_help(); "
            "print('torch' in sys.modules, 'open_clip' in sys.modules, 'matplotlib' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.split() == ["False", "False", "False"], done.stderr
    help_text = subprocess.run([sys.executable, "-m", "training.eval_cli", "--help"], capture_output=True, text=True,
                               env=env, timeout=60).stdout
    assert "--support-split" in help_text and "table,csv,markdown" in help_text


@pytest.mark.slow
def test_eval_end_to_end(demo_collection, tmp_path, capsys):
    catalog, images = demo_collection
    with catalog.open(newline="", encoding="utf-8") as handle:
        collection_rows = list(csv.DictReader(handle))
    columns = ("kingdom", "phylum", "class", "order", "family", "genus", "species", "common_name")
    species = {(r["genus"], r["species"]): ",".join(r[c] for c in columns) for r in collection_rows}
    classes = tmp_path / "classes.csv"
    classes.write_text("\n".join([",".join(columns), *species.values(), FELIS_CHAUS]) + "\n", encoding="utf-8")
    assert ("Felis", "chaus") not in species and ("Felis", "catus") in species
    plot = tmp_path / "eval.png"
    parser = create_parser()
    args = parser.parse_args(["--model", "tol-tiny", "--catalog", str(catalog), "--images", str(images),
                              "--classes", str(classes), "--text-type", "common,taxonomic", "--shots", "0,1,5",
                              "--format", "csv", "--plot", str(plot), "--device", "cpu"])
    run_eval(args)
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    zero = {(r["text_type"], r["rank"], int(r["k"])): r for r in rows if r["metric"] == "zero_shot"}
    assert len(zero) == 2 * 7 * 2
    n_images = len(collection_rows)
    for (text_type, rank, k), row in zero.items():
        assert int(row["images"]) == n_images
        assert 0.0 <= float(row["value"]) <= float(zero[(text_type, rank, 5)]["value"]) <= 1.0
    # The candidates come from --classes: the collection's 4 species plus the jungle cat.
    assert int(zero[("common", "species", 1)]["classes"]) == len(species) + 1 == 5
    assert int(zero[("common", "kingdom", 1)]["classes"]) == 2
    assert float(zero[("common", "kingdom", 5)]["value"]) == 1.0  # 2 classes: always in the top 5
    # Above species both text types embed the same taxonomic strings, so they score the same.
    for rank in ("kingdom", "phylum", "class", "order", "family", "genus"):
        assert zero[("common", rank, 1)]["value"] == zero[("taxonomic", rank, 1)]["value"]
    for text_type in ("common", "taxonomic"):
        mistakes = [r for r in rows if r["metric"] == "mistake" and r["text_type"] == text_type]
        wrong = sum(int(r["images"]) for r in mistakes)
        assert wrong == round((1 - float(zero[(text_type, "species", 1)]["value"])) * n_images)
    few = {int(r["k"]): r for r in rows if r["metric"] == "few_shot"}
    assert set(few) == {1, 5}
    assert (int(few[1]["classes"]), int(few[1]["images"])) == (4, 4 * 5)  # 1 support + 5 queries per species
    assert (int(few[5]["classes"]), int(few[5]["images"])) == (4, 4 * 1)
    assert all(0.0 <= float(r["value"]) <= 1.0 and float(r["std"]) >= 0.0 for r in few.values())
    assert plot.read_bytes()[:8] == PNG_MAGIC
    assert "random weights" in captured.err  # the floor model says what it is


@pytest.mark.slow
def test_run_eval_with_a_support_split(demo_collection, capsys):
    catalog, images = demo_collection
    args = argparse.Namespace(models=["tol-tiny"], catalog=str(catalog), images=str(images), split="val",
                              support_split="train", classes=None, text_type="taxon_com", shots="1", folds=3,
                              seed=0, format="table", plot=None, device="cpu", batch_size=8, workers=0)
    [result] = run_eval(args)
    assert result.zero_shot == () and result.split == "val"
    one = result.few_shot_for(1)
    # val holds 1 picture of each of the 3 seen species; the unseen species has none there.
    assert (one.classes, one.queries, one.folds) == (3, 3, 3)
    out = capsys.readouterr().out
    assert "Few-shot (SimpleShot, species), mean ± std over 3 folds" in out and "Zero-shot" not in out


def test_run_eval_reports_a_missing_split(demo_collection, capsys):
    catalog, images = demo_collection
    args = argparse.Namespace(models=["tol-tiny"], catalog=str(catalog), images=str(images), split="test",
                              support_split=None, classes=None, text_type="taxon_com", shots="0", folds=5,
                              seed=0, format="table", plot=None, device="cpu", batch_size=8, workers=0)
    with pytest.raises(SystemExit) as exit_info:
        run_eval(args)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "no labelled images in split 'test'" in err and "splits present: train, unseen, val" in err
