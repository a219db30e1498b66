import subprocess
import sys
import time

import pytest

from training.params import TrainConfig, list_configs, load_config, parse_args


def test_defaults_are_bioclips_recipe(training_collection):
    catalog, images = training_collection.catalog, training_collection.images
    config = parse_args(["--catalog", str(catalog), "--images", str(images), "--out", "x"])
    assert isinstance(config, TrainConfig)
    assert (config.lr, config.wd, config.warmup, config.text_type) == (1e-4, 0.2, 1000, "mixed")
    assert config.zeroshot_text_type == "taxon_com"
    assert config.split == "train" and config.val_split == "val"


def test_flags_win_over_the_run_config(training_collection):
    catalog, images = training_collection.catalog, training_collection.images
    config = parse_args(["--images", str(images), "--catalog", str(catalog), "--out", "x", "--config", "demo",
                         "--lr", "0.5", "--text-type", "scientific", "--batch-size", "3"])
    assert (config.lr, config.text_type, config.batch_size) == (0.5, "scientific", 3)
    assert config.model == load_config("demo")["model"]


@pytest.mark.parametrize("argv, message", [
    (["--out", "x"], "no training data"),
    (["--out", "x", "--shards", "a.tar", "--images", "."], "either --shards or a collection"),
    (["--out", "x", "--images", ".", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["--out", "x", "--images", "/no/such/folder"], "no such folder"),
    (["--out", "x", "--images", ".", "--config", "nope"], "unknown run config 'nope'"),
    (["--out", "x", "--images", ".", "--text-type", "latin"], "invalid choice: 'latin'"),
])
def test_bad_arguments_say_what_is_allowed(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(argv)
    assert message in capsys.readouterr().err


def test_run_configs_hold_only_known_keys():
    assert {"bioclip", "demo"} <= set(list_configs())
    for name in list_configs():
        assert set(load_config(name)) <= set(TrainConfig.__dataclass_fields__)


def test_help_is_fast_and_lists_both_commands():
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "training", "--help"], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    assert "train" in result.stdout and "shards" in result.stdout
    assert elapsed < 1.0, f"python -m training --help took {elapsed:.2f} s"


def test_train_help_lists_the_spec_flags():
    result = subprocess.run([sys.executable, "-m", "training", "train", "--help"], capture_output=True, text=True,
                            check=True)
    for flag in ("--catalog", "--images", "--shards", "--model", "--text-type", "--epochs", "--batch-size", "--lr",
                 "--precision", "--out", "--resume", "--save-every-steps", "--grad-checkpointing", "--compile"):
        assert flag in result.stdout
