"""The encoder and the embedding build: open_clip models -> vectors -> Qdrant (SPEC §4-§7).

Importing the package is cheap: torch, open_clip and the stores load on first use of a name
below (module `__getattr__`, as pybioclip does).
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "load_model": "embed.models",
    "LoadedModel": "embed.models",
    "model_vector_name": "embed.models",
    "resolve_spec": "embed.models",
    "save_model_folder": "embed.models",
    "ModelUnavailableError": "embed.models",
    "Encoder": "embed.encoder",
    "BuildOptions": "embed.build",
    "BuildSummary": "embed.build",
    "run_build": "embed.build",
    "list_configs": "embed.configs",
    "load_config": "embed.configs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'embed' has no attribute {name!r}")
    return getattr(import_module(module), name)
