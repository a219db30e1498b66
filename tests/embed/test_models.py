"""Model specs: presets, folders in open_clip's hub layout, built-ins, errors, vector names."""
from __future__ import annotations

import hashlib
import json
import logging

import pytest
import torch

from embed.configs import list_configs, load_config
from embed.constants import OPEN_CLIP_CONFIG_FILE, OPEN_CLIP_WEIGHTS_FILE
from embed.models import load_model, model_identity, model_vector_name, resolve_spec, save_model_folder


def test_tol_tiny_is_a_registered_preset():
    assert "tol-tiny" in list_configs()
    config = load_config("tol-tiny")
    assert config.embed_dim == 128 and config.image_size == 64
    with pytest.raises(ValueError, match="tol-tiny"):
        load_config("tol-huge")


def test_tol_tiny_loads_with_random_weight_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="embed.models"):
        loaded = load_model("tol-tiny")
    assert "random weights" in caplog.text
    assert loaded.vector_name == "tol-tiny" and loaded.dim == 128 and loaded.image_size == 64
    assert not loaded.model.training
    tokens = loaded.tokenizer(["a photo of Pica hudsonia."])
    assert tokens.shape == (1, loaded.model_cfg["text_cfg"]["context_length"])


def test_folder_round_trip(tiny, tmp_path):
    folder = save_model_folder(tiny.model, tiny.model_cfg, tmp_path / "demo")
    written = json.loads((folder / OPEN_CLIP_CONFIG_FILE).read_text())
    assert written["model_cfg"] == tiny.model_cfg
    assert written["preprocess_cfg"]["size"] == [64, 64]
    assert (folder / OPEN_CLIP_WEIGHTS_FILE).is_file()
    digest = hashlib.sha256((folder / OPEN_CLIP_WEIGHTS_FILE).read_bytes()).hexdigest()
    for spec in (str(folder), f"local-dir:{folder}"):
        again = load_model(spec)
        assert again.vector_name == f"demo-{digest[:8]}" and again.dim == tiny.dim
        for key, value in tiny.model.state_dict().items():
            assert torch.equal(value, again.model.state_dict()[key]), key
        pixels = torch.rand(2, 3, 64, 64)
        with torch.inference_mode():
            assert torch.allclose(tiny.model.encode_image(pixels), again.model.encode_image(pixels))


def test_preset_with_weights_file(tiny, tmp_path):
    folder = save_model_folder(tiny.model, tiny.model_cfg, tmp_path / "m")
    spec = f"tol-tiny:{folder / OPEN_CLIP_WEIGHTS_FILE}"
    assert resolve_spec(spec).pretrained == str(folder / OPEN_CLIP_WEIGHTS_FILE)
    again = load_model(spec)
    assert torch.equal(again.model.logit_scale, tiny.model.logit_scale)
    assert torch.equal(again.model.visual.conv1.weight, tiny.model.visual.conv1.weight)


def test_builtin_name_resolves_without_building():
    resolved = resolve_spec("ViT-B-16")
    assert resolved.kind == "builtin" and resolved.pretrained is None and not resolved.has_weights
    assert resolve_spec("ViT-B-16:openai").pretrained == "openai"
    assert resolve_spec("hf-hub:imageomics/bioclip").kind == "hf-hub"


@pytest.mark.parametrize("spec", ["nope", "bioclip", "./no/such/folder"])
def test_unknown_spec_names_accepted_forms(spec):
    with pytest.raises(ValueError) as info:
        load_model(spec)
    message = str(info.value)
    assert repr(spec) in message
    for form in ("hf-hub:", "open_clip_config.json", "tol-tiny", "ViT-B-16"):
        assert form in message


def test_bad_tag_and_bad_folder(tmp_path):
    with pytest.raises(ValueError, match="openai"):
        resolve_spec("ViT-B-16:not-a-tag")
    with pytest.raises(FileNotFoundError, match=OPEN_CLIP_CONFIG_FILE):
        resolve_spec(str(tmp_path))
    (tmp_path / OPEN_CLIP_CONFIG_FILE).write_text("{}")
    with pytest.raises(FileNotFoundError, match=OPEN_CLIP_WEIGHTS_FILE):
        resolve_spec(f"local-dir:{tmp_path}")
    with pytest.raises(ValueError, match="ORG/REPO"):
        resolve_spec("hf-hub:imageomics")


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        ("hf-hub:imageomics/bioclip", "bioclip"),
        ("hf-hub:imageomics/bioclip-2", "bioclip-2"),
        ("tol-tiny", "tol-tiny"),
        ("ViT-B-16", "vit-b-16"),
        ("ViT-B-16:openai", "vit-b-16-openai"),
    ],
)
def test_vector_names(spec, name):
    assert model_vector_name(spec) == name


def _fake_model_folder(folder, weights: bytes):
    folder.mkdir(parents=True)
    (folder / OPEN_CLIP_CONFIG_FILE).write_text("{}")
    (folder / OPEN_CLIP_WEIGHTS_FILE).write_bytes(weights)
    return folder


def test_vector_name_of_folder_follows_its_weights(tmp_path):
    folder = _fake_model_folder(tmp_path / "var" / "models" / "demo", b"weights A")
    digest = hashlib.sha256(b"weights A").hexdigest()
    assert model_vector_name(str(folder)) == f"demo-{digest[:8]}"
    assert model_vector_name(f"local-dir:{folder}/") == f"demo-{digest[:8]}"
    assert model_identity(str(folder)).fingerprint == f"sha256:{digest}"


def test_two_trained_runs_never_share_a_vector_name(tmp_path):
    """What training writes is `<run>/model`: `runs/a/model` and `runs/b/model` were both `model`."""
    a = _fake_model_folder(tmp_path / "runs" / "a" / "model", b"weights A")
    b = _fake_model_folder(tmp_path / "runs" / "b" / "model", b"weights B")
    same_name_other_weights = _fake_model_folder(tmp_path / "elsewhere" / "a" / "model", b"weights B")
    names = {model_vector_name(str(f)) for f in (a, b, same_name_other_weights)}
    assert len(names) == 3 and all(n.startswith(("a-", "b-")) for n in names)
    assert model_identity(str(b)).fingerprint == model_identity(str(same_name_other_weights)).fingerprint


def test_hub_models_with_one_repository_name_differ_in_fingerprint():
    ours, theirs = model_identity("hf-hub:imageomics/bioclip"), model_identity("hf-hub:someone/bioclip")
    assert ours.vector_name == theirs.vector_name == "bioclip"
    assert ours.fingerprint != theirs.fingerprint  # the catalog refuses the second under `bioclip`
