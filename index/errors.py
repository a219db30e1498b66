"""Errors of the catalog that every command line prints as one line (no traceback)."""
from __future__ import annotations


class CatalogError(RuntimeError):
    """The catalog refuses what was asked; the message says why and what to do."""
