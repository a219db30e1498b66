"""`--within`: a key the store lacks is named with the closest keys; a bare name of one taxon resolves to its key.

A real build of the small collection (homonym genus Morus in Animalia and Plantae) into the
embedded store, searched through the service and through `python -m embed search`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from embed.search import SearchService, UnknownTaxonError
from index.edge_replica import copy_tree
from index.store import open_store

REPO = Path(__file__).resolve().parents[2]
AVES = "Animalia/Chordata/Aves"
GANNETS = "Animalia/Chordata/Aves/Suliformes/Sulidae/Morus"
MULBERRIES = "Plantae/Tracheophyta/Magnoliopsida/Rosales/Moraceae/Morus"


@pytest.fixture(scope="module")
def built(small_collection, tiny, tmp_path_factory) -> tuple[Path, str]:
    """The small collection built with tol-tiny: (store folder, catalog URL); open copies of the folder."""
    from embed.build import BuildOptions, run_build

    root = tmp_path_factory.mktemp("within")
    store, db = root / "qdrant", f"sqlite:///{root / 'catalog.db'}"
    run_build(BuildOptions(model="tol-tiny", store=str(store), db=db, catalog=str(small_collection.catalog),
                           images=str(small_collection.images), workers=0, batch_size=32), loaded=tiny)
    return store, db


@pytest.fixture(scope="module")
def service(built, tiny, tmp_path_factory):
    copy = tmp_path_factory.mktemp("within-service") / "qdrant"
    copy_tree(built[0], copy)
    with open_store(str(copy)) as store:
        yield SearchService(store, None, tiny)


def test_a_key_of_the_store_is_kept_and_a_unique_name_resolves(service):
    assert service.resolve_clade(AVES) == AVES
    assert service.resolve_clade("Aves") == AVES
    assert service.resolve_clade("Pica hudsonia") == "Animalia/Chordata/Aves/Passeriformes/Corvidae/Pica/hudsonia"
    assert service.resolve_clade("sulidae") == "Animalia/Chordata/Aves/Suliformes/Sulidae"


def test_an_ambiguous_name_lists_its_taxa(service):
    with pytest.raises(UnknownTaxonError, match=f"^'Morus' names 2 taxa: {GANNETS}, {MULBERRIES}; give one of"):
        service.resolve_clade("Morus")


def test_an_unknown_key_suggests_the_closest(service):
    with pytest.raises(UnknownTaxonError, match=rf"^'Animalia/Chordata/Avse': no such taxon in the store .*; "
                                                rf"closest: {AVES}"):
        service.resolve_clade("Animalia/Chordata/Avse")
    with pytest.raises(UnknownTaxonError) as misspelt:
        service.resolve_clade("Moruss")
    assert set(str(misspelt.value).split("closest: ")[1].split(", ")[:2]) == {GANNETS, MULBERRIES}
    with pytest.raises(UnknownTaxonError, match="expected a taxon key such as Animalia/Chordata/Aves"):
        service.resolve_clade("Fungi/Basidiomycota/Agaricomycetes")


def _search(built: tuple[Path, str], tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    store = tmp_path / "qdrant"
    copy_tree(built[0], store)
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TOL_")}
    environment.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "embed", "search", "--text", "a photo of a bird.", "--model",
                           "tol-tiny", "--store", str(store), "--db", built[1], "--format", "json", *argv],
                          cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)


def test_cli_an_unknown_within_is_one_line_with_suggestions(built, tmp_path):
    result = _search(built, tmp_path, "--within", "Animalia/Chordata/Avse")
    assert result.returncode == 1 and result.stdout == "" and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("ERROR embed.search_cli: search failed: --within 'Animalia/Chordata/Avse': no such taxon")
    assert f"closest: {AVES}, " in line
    ambiguous = _search(built, tmp_path / "again", "--within", "Morus")
    assert ambiguous.returncode == 1
    assert f"--within 'Morus' names 2 taxa: {GANNETS}, {MULBERRIES}" in ambiguous.stderr


def test_cli_a_bare_name_searches_inside_its_clade_and_says_so(built, tmp_path):
    result = _search(built, tmp_path, "--within", "Aves", "--k", "20")
    assert result.returncode == 0, result.stderr
    assert f"--within 'Aves' is the taxon {AVES}" in result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 10 and all(row["class"] == "Aves" for row in rows)  # magpies and gannets, 5 each
