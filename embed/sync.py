"""Bring a store in line with the catalog before a build embeds anything new (SPEC §5).

After a re-ingest the catalog is the truth: images that left it lose their points, relabelled
images get their payload rewritten (their vectors stay), taxa that left it lose their point
unless a reference set also brought them (then only `catalog` leaves their `sources`). And the
catalog's marks are checked against the store: a wiped or replaced store holds fewer vectors than
the catalog marked, so the marks it lacks are dropped and those images embedded again.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from index.convert import taxon_payload, taxon_point_id, with_sources
from index.schema import CATALOG_SOURCE, IMAGES, TAXA
from taxonomy.taxon import Taxon

if TYPE_CHECKING:
    from index.catalog import Catalog
    from index.store import VectorStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageSync:
    """What `sync_images` changed."""

    removed: int  # points of images no longer in the catalog
    forgotten: int  # catalog marks of vectors the store does not hold (a wiped store)
    relabelled: int  # payloads rewritten from the catalog


@dataclass
class TaxaPlan:
    """What the taxa stage of a build does, point by point."""

    encode: list[Taxon] = field(default_factory=list)  # no vector of this model, or other text
    relabel: list[Taxon] = field(default_factory=list)  # vector current, payload not
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict)  # key -> sources to write
    remove: list[str] = field(default_factory=list)  # point ids of taxa only the catalog brought
    release: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (id, payload without `catalog`)

    def sources_of(self, taxa: Sequence[Taxon]) -> list[tuple[str, ...]]:
        return [self.sources[t.key] for t in taxa]


def sync_images(store: VectorStore, catalog: Catalog, vector: str) -> ImageSync:
    """Remove points of gone images, drop marks the store cannot back, rewrite stale payloads."""
    location = store.location
    gone = catalog.gone_in_store(location)
    store.delete(IMAGES, gone)
    catalog.forget_embeddings(location, gone)
    removed = len(gone)
    if store.count(IMAGES) > catalog.image_count():
        # Points the catalog never marked here (another catalog's, or marks lost): every id is read.
        present = catalog.present_ids()
        extra = [hit.id for hit in store.scroll(IMAGES) if hit.id not in present]
        store.delete(IMAGES, extra)
        removed += len(extra)
    forgotten = 0
    if store.count(IMAGES, vector=vector) < catalog.embedded_count(vector, location):
        marked = catalog.embedded_ids(vector, location)
        missing = marked - store.ids_with_vector(IMAGES, vector, sorted(marked))
        catalog.forget_embeddings(location, sorted(missing), model=vector)
        forgotten = len(missing)
        logger.warning("the store %s lacks %d vectors %r the catalog marked: they are embedded again",
                       location, forgotten, vector)
    stale = catalog.stale_payloads(vector, location)
    if stale:
        store.set_image_payloads(stale)
        catalog.mark_embedded(vector, location, stale)
    if removed or stale:
        logger.info("store follows the catalog: %d image points removed, %d payloads rewritten",
                    removed, len(stale))
    return ImageSync(removed=removed, forgotten=forgotten, relabelled=len(stale))


def plan_taxa(store: VectorStore, taxa: Sequence[Taxon], vector: str, text_type: str) -> TaxaPlan:
    """Compare every taxon point with the catalog's taxa: what to encode, relabel, remove or release."""
    stored = {hit.taxon: hit for hit in store.scroll(TAXA)}
    with_vector = store.ids_with_vector(TAXA, vector, [taxon_point_id(t) for t in taxa]) if taxa else set()
    plan = TaxaPlan()
    for taxon in taxa:
        hit = stored.get(taxon.key)
        others = [s for s in (hit.sources or ()) if s != CATALOG_SOURCE] if hit else []
        sources = tuple(sorted({CATALOG_SOURCE, *others}))
        plan.sources[taxon.key] = sources
        text = taxon.text(text_type)
        if hit is None or hit.id not in with_vector or hit.text != text:
            plan.encode.append(taxon)
        elif hit.payload != taxon_payload(taxon, text, sources):
            plan.relabel.append(taxon)
    keys = {t.key for t in taxa}
    for key, hit in stored.items():
        sources = hit.sources
        if key in keys or (sources is not None and CATALOG_SOURCE not in sources):
            continue
        others = [s for s in sources or [] if s != CATALOG_SOURCE]
        if others:  # a reference set brought it too: it stays, as a taxon without images
            plan.release.append((hit.id, with_sources(hit, others, n_images=0)))
        else:  # no `sources` at all: written before reference sets existed, by the catalog
            plan.remove.append(hit.id)
    return plan


def apply_taxa_removals(store: VectorStore, plan: TaxaPlan) -> None:
    """Remove and release what the plan says; logged, since predictions change."""
    store.delete(TAXA, plan.remove)
    if plan.release:
        store.overwrite_payloads(TAXA, [i for i, _ in plan.release], [p for _, p in plan.release])
    if plan.remove or plan.release:
        logger.info("taxa no longer in the catalog: %d removed, %d kept for their reference sets",
                    len(plan.remove), len(plan.release))
