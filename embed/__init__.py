"""The encoder and the embedding build: open_clip models -> vectors -> Qdrant (SPEC §4-§7).

Importing the package is cheap: torch, open_clip and the stores load on first use of a name
below (module `__getattr__`, as pybioclip does).
"""
from __future__ import annotations

from toolkit.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "embed.models": ("load_model", "LoadedModel", "model_vector_name", "resolve_spec", "save_model_folder",
                     "ModelUnavailableError"),
    "embed.encoder": ("Encoder",),
    "embed.build": ("BuildOptions", "BuildSummary", "run_build"),
    "embed.configs": ("list_configs", "load_config"),
})
