"""The project's own encoder presets: open_clip model-config JSON files in this folder.

Each `NAME.json` here is registered with open_clip (`add_model_config`) under its file stem, so
`tol-tiny` is built by `open_clip.create_model_and_transforms("tol-tiny")` like any built-in name.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parent
_REQUIRED_KEYS = ("embed_dim", "vision_cfg", "text_cfg")


@dataclass(frozen=True)
class EncoderConfig:
    """One preset: its name, where it lives, and the open_clip model config it holds."""

    name: str
    path: Path
    model_cfg: dict[str, Any]

    @property
    def embed_dim(self) -> int:
        return int(self.model_cfg["embed_dim"])

    @property
    def image_size(self) -> int:
        return int(self.model_cfg["vision_cfg"]["image_size"])


def list_configs() -> list[str]:
    """Names of the presets shipped in `embed/configs/`, sorted."""
    return sorted(path.stem for path in CONFIG_DIR.glob("*.json"))


def load_config(name: str) -> EncoderConfig:
    """Read a preset; the error names the presets that exist."""
    path = CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"unknown encoder preset {name!r}; expected one of {', '.join(list_configs())}")
    model_cfg = json.loads(path.read_text(encoding="utf-8"))
    missing = [key for key in _REQUIRED_KEYS if key not in model_cfg]
    if missing:
        raise ValueError(f"{path}: not an open_clip model config, missing {', '.join(missing)}")
    return EncoderConfig(name, path, model_cfg)
