"""`python -m embed status`: per model, what the catalog and the store hold, and the last run."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from index.records import BuildRun
from taxonomy import RANK_LABELS, Rank

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelStatus:
    """One model (named vector): images and taxa embedded, failures, its last build."""

    model: str  # the vector name
    spec: str  # the spec of its last run, "" when it never ran here
    images: int  # present images in the catalog
    embedded: int  # present images this model embedded at their current content
    failed: int  # images the last run could not read
    store_images: int | None  # points of `images` carrying this vector; None when the store was not read
    store_taxa: dict[str, int] | None  # rank label -> taxa points carrying this vector
    last_run: BuildRun | None

    @property
    def pending(self) -> int:
        return self.images - self.embedded


@dataclass(frozen=True)
class StatusReport:
    db: str
    store: str
    store_error: str  # why the store could not be read, "" when it was
    images: int
    taxa_per_rank: dict[str, int]  # in the catalog
    models: tuple[ModelStatus, ...] = field(default_factory=tuple)


def _store_counts(store, vector: str) -> tuple[int, dict[str, int]]:
    from index.filters import SearchFilter
    from index.schema import IMAGES, TAXA

    have = store.vector_names(IMAGES)
    images = store.count(IMAGES, vector=vector) if vector in have else 0
    taxa_vectors = store.vector_names(TAXA)
    taxa = {
        rank.label: store.count(TAXA, SearchFilter(rank=rank), vector=vector) if vector in taxa_vectors else 0
        for rank in Rank
    }
    return images, taxa


def collect_status(catalog, store=None, model: str | None = None, store_error: str = "",
                   location: str = "") -> StatusReport:
    """Status of every model the catalog or the store knows (or only `model`, a vector name).

    `store` may be None (not opened, or unreachable: say why in `store_error`); `location` is then
    the store it stands for. "Embedded" counts the catalog's marks for that store only. Runs whose
    process is gone are marked interrupted first.
    """
    from index.schema import IMAGES

    location = store.location if store is not None else location
    catalog.interrupt_dead_runs()
    stats = catalog.stats()
    runs = catalog.runs()
    names = {run.model for run in runs}
    if store is not None:
        names |= set(store.vector_names(IMAGES))
    if model is not None:
        names = {model}
    models = []
    for name in sorted(names):
        last = next((run for run in runs if run.model == name), None)
        store_images, store_taxa = _store_counts(store, name) if store is not None else (None, None)
        models.append(ModelStatus(
            model=name,
            spec=last.spec if last else "",
            images=stats.images,
            embedded=catalog.embedded_count(name, location),
            failed=last.failed if last else 0,
            store_images=store_images,
            store_taxa=store_taxa,
            last_run=last,
        ))
    return StatusReport(
        db=repr(catalog), store=location, store_error=store_error,
        images=stats.images, taxa_per_rank={label: stats.taxa_per_rank.get(label, 0) for label in RANK_LABELS},
        models=tuple(models),
    )


def format_status(report: StatusReport) -> str:
    """The table `python -m embed status` prints."""
    ranks = " ".join(f"{label}={report.taxa_per_rank[label]}" for label in RANK_LABELS)
    lines = [
        f"catalog: {report.db}",
        f"store:   {report.store or '(not read)'}{' - ' + report.store_error if report.store_error else ''}",
        f"images in the catalog: {report.images}",
        f"taxa in the catalog:   {ranks}",
    ]
    if not report.models:
        lines.append("no model has been built yet: run `python -m embed build`")
    for status in report.models:
        lines.append("")
        lines.append(f"model {status.model}" + (f" ({status.spec})" if status.spec and status.spec != status.model else ""))
        lines.append(f"  images: {status.embedded}/{status.images} embedded, {status.pending} pending, "
                     f"{status.failed} failed in the last run")
        if status.store_images is not None and status.store_taxa is not None:
            taxa = " ".join(f"{label}={n}" for label, n in status.store_taxa.items())
            lines.append(f"  store:  {status.store_images} image points, taxa {taxa}")
        run = status.last_run
        if run is None:
            lines.append("  last run: none")
        else:
            finished = run.finished.isoformat(timespec="seconds") if run.finished else "-"
            lines.append(
                f"  last run #{run.id}: {run.status}, started {run.started.isoformat(timespec='seconds')}, "
                f"finished {finished}; {run.done} embedded, {run.skipped} skipped, {run.failed} failed, "
                f"{run.rate:.1f} images/s, store {run.store}"
            )
            for problem in run.failures[:10]:
                lines.append(f"    failed: {problem}")
            if len(run.failures) > 10:
                lines.append(f"    ... and {len(run.failures) - 10} more")
    return "\n".join(lines)
