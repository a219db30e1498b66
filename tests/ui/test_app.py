"""The Streamlit app under AppTest, on the shared built index: each mode, the filters, uploads, an empty store."""
from __future__ import annotations

import html
import io
import re
import shutil

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from index.catalog import Catalog
from index.constants import GENERATIONS_DIR
from taxonomy import Rank, caption
from tests.built_index import BuiltIndex
from tests.ui.clickable import Card, block, buttons, cards, click
from tests.ui.conftest import APP, APP_TIMEOUT_S
from ui import state
from ui.components.detail import DETAIL_CARDS
from ui.components.results import CLOSEST_TAXA, RESULTS_CARDS
from ui.views import CARD_ACTIONS, NARROW

TEXT = "a photo of Felis catus with common name domestic cat."


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


def search(at: AppTest, text: str = TEXT) -> AppTest:
    at.text_input(key=state.TEXT).input(text)
    return run(at)


def keys(at: AppTest, prefix: str) -> list[str]:
    return [b.key for b in at.button if b.key and b.key.startswith(prefix)]


def cards_key(at: AppTest) -> str:
    """The key of the cards on the page: the results', or the detail view's look-alikes'."""
    return DETAIL_CARDS if block(at, DETAIL_CARDS) is not None else RESULTS_CARDS


def result_cards(at: AppTest) -> list[Card]:
    return cards(at, cards_key(at))


def result_ids(at: AppTest) -> list[str]:
    """The images of the result cards, in order (each card's HTML names its image)."""
    shown = result_cards(at)
    assert all([b.action for b in card.buttons if b.action != NARROW] == [a.action for a in CARD_ACTIONS]
               for card in shown), "every card has its actions"
    return [card.id for card in shown]


def click_card(at: AppTest, action: str, image_id: str) -> AppTest:
    """Click `action` (detail, alike, identify) on `image_id`'s card."""
    return click(at, cards_key(at), action, image_id)


def crumb_labels(at: AppTest, rank: Rank) -> list[str]:
    """The breadcrumb part at `rank` of every result (ranks above it all named)."""
    return [card.crumbs()[rank].label for card in result_cards(at)]


def click_crumb(at: AppTest, image_id: str, key: str) -> AppTest:
    """Click the part of a result's breadcrumb that narrows to clade `key`."""
    card = next(c for c in result_cards(at) if c.id == image_id)
    assert key in [b.target for b in card.crumbs()], (key, card.crumbs())
    return click(at, cards_key(at), NARROW, key)


def lineages(built: BuiltIndex):
    with Catalog(built.db) as catalog:
        return {record.id: record.lineage for record in catalog.images()}


# --- describe -------------------------------------------------------------------------------------------

def test_describe_shows_a_grid_of_result_images(app):
    assert app.segmented_control(key=state.MODE).value == state.DESCRIBE
    assert not result_ids(app) and any("Type a description" in c.value for c in app.main.caption)
    search(app)
    assert all(card.picture.startswith("data:image/jpeg;base64,/9j/") for card in result_cards(app))  # JPEGs
    ids = result_ids(app)
    assert len(set(ids)) == state.DEFAULT_K
    assert any("In these results" in m.value for m in app.markdown)
    assert len(buttons(app, CLOSEST_TAXA)) == 5  # closest taxa at the chosen rank
    assert any("12 images, most similar first" in c.value for c in app.caption)


def test_side_panel_shows_store_model_and_counts(app, ui_env):
    metrics = {m.label: m.value for m in app.sidebar.metric}
    with Catalog(ui_env.db) as catalog:
        assert metrics == {"Images": str(len(catalog.images())), "Species": str(len(catalog.taxa(Rank.SPECIES)))}
    captions = " ".join(c.value for c in app.sidebar.caption)
    assert "tol-tiny" in captions and "qdrant" in captions


def test_examples_come_from_the_taxa_and_fill_the_text(app, ui_env):
    pills = app.pills(key=state.EXAMPLE)
    with Catalog(ui_env.db) as catalog:
        species = {t.common_name: t for t in catalog.taxa(Rank.SPECIES)}
    label = next(option for option in pills.options if option in species)
    text = caption(species[label].lineage, "sci_com")
    pills.set_value(text)
    run(app)
    assert app.text_input(key=state.TEXT).value == text
    assert len(result_ids(app)) == state.DEFAULT_K


def test_k_and_grouping_by_species(app, ui_env):
    app.slider(key=state.K).set_value(6)
    app.slider(key=state.PER_SPECIES).set_value(1)
    search(app)
    ids = result_ids(app)
    names = lineages(ui_env)
    assert len(ids) == 6
    assert len({names[i].binomial for i in ids}) == 6  # one image per species


# --- filters --------------------------------------------------------------------------------------------

def test_clade_cascade_offers_only_taxa_inside_the_choice(app, ui_env):
    kingdom = app.selectbox(key=state.clade_key(Rank.KINGDOM))
    assert kingdom.options[0] == "any kingdom"  # a choice can be taken back
    assert [o.split(" · ")[0] for o in kingdom.options[1:]] == ["Plantae", "Animalia", "Fungi"]  # most images first
    assert state.clade_key(Rank.PHYLUM) not in {s.key for s in app.selectbox}
    kingdom.set_value("Animalia")
    search(app)
    phylum = app.selectbox(key=state.clade_key(Rank.PHYLUM))
    names = lineages(ui_env)
    animal_phyla = {lin.phylum for lin in names.values() if lin.kingdom == "Animalia"}
    assert {o.split(" · ")[0] for o in phylum.options[1:]} == animal_phyla
    assert sum(int(o.split(" · ")[1]) for o in phylum.options[1:]) == sum(
        lin.kingdom == "Animalia" for lin in names.values())
    ids = result_ids(app)
    assert ids and all(names[i].kingdom == "Animalia" for i in ids)
    assert set(crumb_labels(app, Rank.KINGDOM)) == {"Animalia ›"}


def test_breadcrumb_click_narrows_the_filter(app, ui_env):
    search(app)
    first = result_ids(app)[0]
    names = lineages(ui_env)
    family = names[first].key(Rank.FAMILY)
    click_crumb(app, first, family)
    assert app.session_state[state.clade_key(Rank.FAMILY)] == family
    assert app.session_state[state.clade_key(Rank.KINGDOM)] == names[first].kingdom
    assert app.selectbox(key=state.clade_key(Rank.FAMILY)).value == family
    ids = result_ids(app)
    assert ids and all(family in names[i].keys() for i in ids)
    assert len(ids) == sum(family in lin.keys() for lin in names.values())  # all of the family, k is larger
    clear = next(b for b in app.sidebar.button if b.label == "Clear the clade filter")
    clear.click()
    run(app)
    assert not app.session_state[state.clade_key(Rank.FAMILY)] and len(result_ids(app)) == state.DEFAULT_K


def test_excluding_the_chosen_clade(app, ui_env):
    app.selectbox(key=state.clade_key(Rank.KINGDOM)).set_value("Plantae")
    run(app)
    app.toggle(key=state.EXCLUDE).set_value(True)
    app.slider(key=state.K).set_value(48)
    search(app)
    names = lineages(ui_env)
    ids = result_ids(app)
    assert len(ids) == sum(lin.kingdom != "Plantae" for lin in names.values())
    assert not any(names[i].kingdom == "Plantae" for i in ids)


def test_split_filter(app, ui_env):
    app.selectbox(key=state.SPLIT).set_value("val")
    app.slider(key=state.K).set_value(48)
    search(app)
    with Catalog(ui_env.db) as catalog:
        val = {r.id for r in catalog.images() if r.split == "val"}
    assert set(result_ids(app)) == val


# --- look-alikes and identify ---------------------------------------------------------------------------

def test_lookalikes_of_a_collection_image(app, ui_env):
    app.segmented_control(key=state.MODE).set_value(state.LOOKALIKES)
    run(app)
    picker = app.selectbox(key=state.PICKED)
    with Catalog(ui_env.db) as catalog:
        record = catalog.images()[0]
    picker.set_value(record.id)
    run(app)
    ids = result_ids(app)
    assert len(ids) == state.DEFAULT_K and record.id not in ids
    assert len(app.image) == 1 and all(card.picture for card in result_cards(app))  # the query's preview


def test_lookalikes_button_under_a_result(app):
    search(app)
    target = result_ids(app)[2]
    click_card(app, "alike", target)
    assert app.session_state[state.MODE] == state.LOOKALIKES
    assert app.selectbox(key=state.PICKED).value == target
    assert target not in result_ids(app) and len(result_ids(app)) == state.DEFAULT_K


def test_identify_a_collection_image_shows_a_tree_at_every_rank(app, ui_env):
    search(app)
    target = result_ids(app)[0]
    app.selectbox(key=state.RANK).set_value("genus")
    click_card(app, "identify", target)
    assert app.session_state[state.MODE] == state.IDENTIFY
    tree = app.html[0].proto.body
    for rank in ("kingdom", "phylum", "class", "order", "family", "genus"):
        assert f'class="tol-rank">{rank}<' in tree
    assert 'class="tol-rank">species<' not in tree  # the tree stops at the chosen rank
    assert tree.count("tol-row tol-path") == 6  # the best guess, kingdom to genus, highlighted
    assert any(m.value == "##### Top genus taxa" for m in app.markdown)
    top = app.html[1].proto.body
    assert top.count('class="tol-row"') == len(set(lin.key(Rank.GENUS) for lin in lineages(ui_env).values()))
    app.radio(key=state.METHOD).set_value("taxa")
    run(app)
    assert "method `taxa`" in " ".join(c.value for c in app.caption)


def png_bytes(size: tuple[int, int] = (96, 80), colour: tuple[int, int, int] = (30, 120, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def test_identify_an_upload(app):
    app.segmented_control(key=state.MODE).set_value(state.IDENTIFY)
    run(app)
    app.radio(key=state.SOURCE).set_value(state.FROM_UPLOAD)
    run(app)
    app.file_uploader(key=state.UPLOAD).upload("leaf.png", png_bytes(), "image/png")
    run(app)
    assert not app.error
    assert "tol-rank" in app.html[0].proto.body
    assert app.image[0].captions == ["leaf.png"]


@pytest.mark.parametrize("name, data, message", [
    ("notes.png", b"these are not pixels", "not an image"),
    ("huge.png", None, "megapixels"),
])
def test_uploads_that_are_refused(app, name, data, message):
    if data is None:
        buffer = io.BytesIO()
        Image.new("1", (8000, 6000)).save(buffer, "PNG")  # 48 MP in a few kB
        data = buffer.getvalue()
    app.segmented_control(key=state.MODE).set_value(state.LOOKALIKES)
    run(app)
    app.radio(key=state.SOURCE).set_value(state.FROM_UPLOAD)
    run(app)
    app.file_uploader(key=state.UPLOAD).upload(name, data, "image/png")
    run(app)
    assert len(app.error) == 1 and message in app.error[0].value
    assert not result_ids(app)


# --- no store yet ---------------------------------------------------------------------------------------

def test_an_empty_store_shows_how_to_build_one(tmp_path, monkeypatch):
    monkeypatch.setenv("TOL_STORE", str(tmp_path / "qdrant"))
    monkeypatch.setenv("TOL_DB", f"sqlite:///{tmp_path / 'catalog.db'}")
    monkeypatch.setenv("TOL_MODEL", "tol-tiny")
    at = run(AppTest.from_file(APP, default_timeout=APP_TIMEOUT_S))
    assert not at.error
    assert "Nothing to search yet" in at.info[0].value
    text = " ".join(m.value for m in at.markdown)
    assert "python -m embed build" in text and "python -m demo" in text
    assert at.sidebar.metric[0].value == "0"
    assert not (tmp_path / "catalog.db").exists() and not (tmp_path / "qdrant").exists()  # nothing created


def test_a_shard_missing_an_index_costs_its_filter_not_the_app(built_index, tmp_path, monkeypatch):
    import qdrant_edge as qe

    store = built_index.store_copy(tmp_path / "qdrant")
    shard = qe.EdgeShard.load(str(store / "images"))
    shard.update(qe.UpdateOperation.delete_field_index("split"))  # as a build killed while creating them leaves it
    shard.close()
    shutil.rmtree(store / GENERATIONS_DIR)  # that killed build published nothing: the UI publishes what it left
    for name, value in built_index.env(store).items():
        monkeypatch.setenv(name, value)
    at = run(AppTest.from_file(APP, default_timeout=APP_TIMEOUT_S))
    assert state.SPLIT not in [box.key for box in at.selectbox]
    assert any("No split filter" in c.value and "no keyword index on 'split'" in c.value for c in at.sidebar.caption)
    search(at)
    assert len(result_ids(at)) == state.DEFAULT_K


def test_a_genus_name_is_searched_as_that_genus_with_one_click_to_its_images(app, ui_env):
    with Catalog(ui_env.db) as catalog:
        genus = max(catalog.taxa(Rank.GENUS), key=lambda t: (t.n_images, t.key))
    search(app, genus.name.lower())
    said = " ".join(m.value for m in app.markdown)
    assert f"Searching **genus *{genus.name}***" in said and "with its own vector" in said
    button = app.button(key="narrow_to_taxon")
    assert button.label == f"Only images inside {genus.name}"
    button.click()
    run(app)
    assert state.selected_clade(app.session_state) == genus.key
    shown = [lineage for image_id, lineage in lineages(ui_env).items() if image_id in set(result_ids(app))]
    assert shown and all(lineage.genus == genus.name for lineage in shown)


def test_text_that_names_nothing_and_matches_weakly_gets_a_note(app):
    search(app, "qwzxv")
    found_weak = any("names no taxon here" in w.value for w in app.warning)
    # The note follows the service's own verdict on the same text.
    from ui.services import UiConfig, service_or_error

    service, _ = service_or_error(UiConfig.from_env())
    assert found_weak == service.describe("qwzxv").weak


# --- identify: one answer, consistent -------------------------------------------------------------------

TREE_ROW = re.compile(r'<div class="tol-row( tol-path)?"><span class="tol-rank">(\w+)</span>'
                      r'<span class="tol-name" title="([^"]*)" style="padding-left:([\d.]+)rem">.*?'
                      r'<span class="tol-pct">([^<]*)</span>')


def tree_rows(at: AppTest) -> list[tuple[bool, str, str, float, float]]:
    """(on the best guess, rank, key, indent, percent) of each row of the drawn tree."""
    body = at.html[0].proto.body
    rows = [(bool(m[1]), m[2], html.unescape(m[3]), float(m[4]), m[5]) for m in TREE_ROW.finditer(body)]
    return [(on, rank, key, indent, 0.0 if pct.startswith("&lt;") else float(pct.rstrip("%")))
            for on, rank, key, indent, pct in rows]


def identify_picked(at: AppTest, image_id: str) -> AppTest:
    at.session_state[state.MODE] = state.IDENTIFY
    at.session_state[state.PICKED] = image_id
    return run(at)


@pytest.mark.parametrize("method", ["sum", "taxa"])
def test_identify_draws_the_headline_and_never_a_child_above_its_parent(app, ui_env, method):
    app.radio(key=state.METHOD).set_value(method)
    run(app)
    for image_id in list(lineages(ui_env))[::7]:
        identify_picked(app, image_id)
        rows = tree_rows(app)
        path = [key for on, _, key, _, _ in rows if on]
        assert [rank for on, rank, *_ in rows if on][-1] == "species"  # the headline species is drawn
        assert all(child.startswith(parent + "/") for parent, child in zip(path, path[1:]))
        headline = app.markdown[[m.value.startswith("#### ") for m in app.markdown].index(True)].value
        assert path[-1].rsplit("/", 2)[-2] in headline  # the drawn path ends at the headline's genus/species
        parents: dict[float, float] = {}
        for _, _, key, indent, pct in rows:
            above = [p for depth, p in parents.items() if depth < indent]
            if above:
                assert pct <= parents[max(d for d in parents if d < indent)] + 0.1, key  # rounding of 0.1 %
            parents = {d: p for d, p in parents.items() if d < indent}
            parents[indent] = pct
        assert any("Best guess chosen top-down" in c.value for c in app.caption)


def test_a_clade_filter_restricting_identify_is_shown_with_a_way_out(app, ui_env):
    app.selectbox(key=state.clade_key(Rank.KINGDOM)).set_value("Plantae")
    run(app)
    animal = next(i for i, lin in lineages(ui_env).items() if lin.kingdom == "Animalia")
    identify_picked(app, animal)
    assert any("Identifying only against taxa inside Plantae" in w.value for w in app.warning)
    assert {key.split("/")[0] for _, _, key, _, _ in tree_rows(app)} == {"Plantae"}
    species = {lin.key() for lin in lineages(ui_env).values()}
    plants = sum(key.startswith("Plantae/") for key in species)
    assert any(f"· {plants} candidates" in c.value for c in app.caption)
    app.button(key="identify-every-taxon").click()
    run(app)
    assert app.session_state[state.clade_key(Rank.KINGDOM)] == state.ANY and not app.warning
    assert any(f"· {len(species)} candidates" in c.value for c in app.caption)


def test_candidate_sets_are_chosen_in_the_sidebar_and_identify_an_upload(built_index, tmp_path, monkeypatch):
    from embed.encoder import Encoder
    from index.store import open_store
    from taxonomy import Lineage
    from taxonomy.taxon import Taxon
    from tests.built_index import tiny_model

    reference = Lineage.from_ranks(["Animalia", "Chordata", "Mammalia", "Carnivora", "Felidae", "Felis", "imaginaria"],
                                   "imaginary cat")  # a species no demo collection holds
    taxa = [Taxon(reference.truncate(rank), rank) for rank in Rank]
    store = built_index.store_copy(tmp_path / "qdrant")
    encoder = Encoder(tiny_model())
    with open_store(str(store)) as opened:
        opened.upsert_taxa(encoder.vector_name, taxa, [t.key for t in taxa], encoder.encode_taxa(taxa),
                           sources=[("ncbi",)] * len(taxa))
    for name, value in built_index.env(store).items():
        monkeypatch.setenv(name, value)
    at = run(AppTest.from_file(APP, default_timeout=APP_TIMEOUT_S))
    sets = at.multiselect(key=state.CANDIDATE_SETS)
    assert set(sets.options) >= {"catalog · 8 species", "ncbi · 1 species"}
    sets.set_value(["ncbi"])
    at.segmented_control(key=state.MODE).set_value(state.IDENTIFY)
    run(at)
    at.radio(key=state.SOURCE).set_value(state.FROM_UPLOAD)
    run(at)
    at.file_uploader(key=state.UPLOAD).upload("cat.png", png_bytes(colour=(200, 150, 90)), "image/png")
    run(at)
    assert not at.error
    assert any("of the set ncbi" in w.value for w in at.warning)
    rows = tree_rows(at)
    assert [key for on, _, key, _, _ in rows if on][-1] == reference.key()
    assert all(pct == pytest.approx(100.0) for *_, pct in rows)  # one candidate species: certain at every rank
    assert "imaginary cat" in " ".join(m.value for m in at.markdown)
