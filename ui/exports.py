"""Results and identifications as files (pure: no streamlit; the components offer them for download).

Image results: one row per image with `EXPORT_COLUMNS` (the lineage is the taxon key, homonym-safe,
`Animalia/Chordata/.../Felis/catus`). Identifications: pybioclip's own columns (`embed.predict`).
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

from embed.predict import Identification
from embed.search import SearchHit
from taxonomy import Rank

EXPORT_COLUMNS: tuple[str, ...] = ("id", "path", "lineage", "score", "split", "source", "license")
CSV_MIME = "text/csv"
JSON_MIME = "application/json"


def hit_rows(hits: Iterable[SearchHit]) -> list[dict[str, Any]]:
    """One flat row per image result, `EXPORT_COLUMNS` in that order."""
    return [{"id": h.id, "path": h.path, "lineage": h.taxon, "score": h.score, "split": h.split,
             "source": h.source, "license": h.license} for h in hits]


def identification_rows(file_name: str, found: Identification, rank: Rank, k: int) -> list[dict[str, Any]]:
    """The `k` most probable taxa at `rank` as rows of `pybioclip predict --format csv`."""
    return [p.pybioclip_row(file_name) for p in found.top(rank, k)]


def to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as CSV with a header, in `columns` order ("" for a missing value)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="", extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as a JSON array of objects."""
    return json.dumps(list(rows), indent=1, ensure_ascii=False)
