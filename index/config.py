"""Where things live: a flag wins over the environment, the environment over the default (SPEC §7)."""
from __future__ import annotations

import os

from index.constants import DB_ENV, DEFAULT_DB_PATH, SQLITE_PREFIX


def resolve_setting(flag: str | None, env_var: str, default: str | None) -> str | None:
    """The first of `flag`, `$env_var` and `default` that is set and not blank."""
    for value in (flag, os.environ.get(env_var)):
        if value is not None and value.strip():
            return value.strip()
    return default


def resolve_db_url(flag: str | None = None) -> str:
    """The catalog's SQLAlchemy URL from `--db`, `$TOL_DB` or `./var/catalog.db`.

    A value without `://` is taken as the path of an SQLite file.
    """
    value = resolve_setting(flag, DB_ENV, f"{SQLITE_PREFIX}{DEFAULT_DB_PATH.as_posix()}")
    return value if "://" in value else f"{SQLITE_PREFIX}{value}"
