"""Where things live and which model: a flag wins over the environment, the environment over the default (SPEC §7).

The environment variables and the defaults are written here once; `Settings.resolve` applies the rule
once for the three of them. The packages turn the values into what they open: `index.config.resolve_db_url`
makes the catalog's SQLAlchemy URL, `index.store.open_store` the store, `embed.models` the model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

STORE_ENV = "TOL_STORE"
DB_ENV = "TOL_DB"
MODEL_ENV = "TOL_MODEL"

DEFAULT_STORE = "./var/qdrant"
DEFAULT_DB = "sqlite:///var/catalog.db"
DEFAULT_MODEL = "hf-hub:imageomics/bioclip"  # BioCLIP (embed.constants.BIOCLIP_MODEL)


def resolve_setting(flag: str | None, env_var: str, default: str | None) -> str | None:
    """The first of `flag`, `$env_var` and `default` that is set and not blank."""
    for value in (flag, os.environ.get(env_var)):
        if value is not None and value.strip():
            return value.strip()
    return default


@dataclass(frozen=True)
class Settings:
    """The store, the catalog and the model one command (or the UI) works with."""

    store: str  # a folder, `:memory:` or a server URL
    db: str  # an SQLAlchemy URL or an SQLite file path, as given
    model: str  # a model spec

    @classmethod
    def resolve(cls, store: str | None = None, db: str | None = None, model: str | None = None) -> "Settings":
        """The flags given (None: not given), else the environment, else the defaults; blank counts as unset."""
        return cls(resolve_setting(store, STORE_ENV, DEFAULT_STORE), resolve_setting(db, DB_ENV, DEFAULT_DB),
                   resolve_setting(model, MODEL_ENV, DEFAULT_MODEL))


@dataclass(frozen=True)
class StoreOptions:
    """The model, store, catalog and server key a job was asked for; `store`/`db` None = environment, then default.

    The base of the jobs' options (`embed.build.BuildOptions`, `embed.reference.TaxaOptions`).
    """

    model: str = DEFAULT_MODEL
    store: str | None = None
    db: str | None = None
    api_key: str | None = None
