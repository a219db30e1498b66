"""Where things live: a flag wins over the environment, the environment over the default (SPEC §7)."""
from __future__ import annotations

import re

from index.constants import DB_ACCEPTED, DB_URL_SCHEMES, SQLITE_PREFIX
from index.errors import CatalogError
from toolkit.settings import Settings, resolve_setting

__all__ = ["CatalogLocationError", "resolve_db_url", "resolve_setting"]

_URL_TYPO = re.compile(rf"^(?:[A-Za-z][A-Za-z0-9.-]*(?:\+\w+)?:|(?:{'|'.join(DB_URL_SCHEMES)})(?:\+\w+)?//)")


class CatalogLocationError(CatalogError, ValueError):
    """A catalog location that cannot be used; the message names the value and what is accepted."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"cannot open the catalog database {value!r}: {reason}; expected {DB_ACCEPTED}")
        self.value, self.reason = value, reason


def resolve_db_url(flag: str | None = None) -> str:
    """The catalog's SQLAlchemy URL from `--db`, `$TOL_DB` or `./var/catalog.db`.

    A value without `://` is taken as the path of an SQLite file.

    Raises:
        CatalogLocationError: a value that is no SQLAlchemy URL, names an unknown database, or looks like a
            URL without its `://` (rather than create an SQLite file by that name).
    """
    value = Settings.resolve(db=flag).db
    if "://" not in value:
        if _URL_TYPO.match(value):
            raise CatalogLocationError(value, f"a database URL needs '://' after its kind (./{value} names a file)")
        return f"{SQLITE_PREFIX}{value}"
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(value)
    except ArgumentError:
        raise CatalogLocationError(value, "not an SQLAlchemy URL") from None
    try:
        url.get_dialect()
    except NoSuchModuleError:
        raise CatalogLocationError(url.render_as_string(hide_password=True),
                           f"SQLAlchemy knows no database kind {url.drivername!r}") from None
    return value
