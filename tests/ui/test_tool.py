"""The UI as a tool, under AppTest: shareable URLs, exports, filters that can be undone, the detail view,
pages of results, the app's config file."""
from __future__ import annotations

import csv
import io
import json
import tomllib
from pathlib import Path

from streamlit.testing.v1 import AppTest

from index.catalog import Catalog
from taxonomy import Rank
from tests.ui.conftest import APP, APP_TIMEOUT_S
from tests.ui.clickable import block, block_html, buttons, click, send_click
from tests.ui.test_app import TEXT, click_card, click_crumb, keys, lineages, result_ids, run, search
from ui import state
from ui.components.detail import DETAIL_BREADCRUMB
from ui.components.results import CLOSEST_TAXA, RESULTS_CARDS
from ui.exports import EXPORT_COLUMNS, hit_rows, to_csv, to_json

CONFIG = Path(APP).parent / ".streamlit" / "config.toml"


def opened(query: dict[str, str]) -> AppTest:
    """The app opened from a link carrying `query`."""
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT_S)
    at.query_params = dict(query)
    return run(at)


def records(built):
    with Catalog(built.db) as catalog:
        return {record.id: record for record in catalog.images()}


# --- shareable searches ---------------------------------------------------------------------------------

def test_the_url_follows_the_search(app, ui_env):
    assert dict(app.query_params) == {"mode": "describe"}
    app.slider(key=state.K).set_value(6)
    app.selectbox(key=state.RANK).set_value("genus")
    search(app)
    first = result_ids(app)[0]
    family = lineages(ui_env)[first].key(Rank.FAMILY)
    click_crumb(app, first, family)
    assert dict(app.query_params) == {"mode": "describe", "q": TEXT, "within": family, "rank": "genus", "k": "6"}
    click_card(app, "alike", first)
    assert app.query_params["mode"] == "lookalikes" and app.query_params["image"] == first
    assert "q" not in app.query_params  # the text is describe's, not the look-alikes'


def test_opening_a_link_restores_the_search(app, ui_env):
    names = lineages(ui_env)
    family = next(iter(names.values())).key(Rank.FAMILY)
    link = {"mode": "describe", "q": TEXT, "within": family, "rank": "genus", "k": "6"}
    at = opened(link)
    assert at.text_input(key=state.TEXT).value == TEXT
    assert at.selectbox(key=state.clade_key(Rank.FAMILY)).value == family
    assert at.selectbox(key=state.RANK).value == "genus" and at.slider(key=state.K).value == 6
    ids = result_ids(at)
    assert ids and len(ids) <= 6 and all(family in names[i].keys() for i in ids)
    assert any(m.value == "##### Closest genus taxa" for m in at.markdown)
    assert dict(at.query_params) == link  # the same link, written back


def test_a_link_to_the_lookalikes_of_an_image(ui_env):
    target = sorted(records(ui_env))[3]
    at = opened({"mode": "lookalikes", "image": target, "k": "9"})
    assert at.segmented_control(key=state.MODE).value == state.LOOKALIKES
    assert at.selectbox(key=state.PICKED).value == target
    ids = result_ids(at)
    assert len(ids) == 9 and target not in ids


def test_a_link_with_a_name_for_a_clade_and_bad_values(ui_env):
    names = lineages(ui_env)
    genus = next(iter(names.values())).genus
    at = opened({"mode": "painting", "q": TEXT, "within": genus, "k": "lots", "rank": "tribe"})
    warned = " ".join(w.value for w in at.warning)
    assert "mode='painting'" in warned and "k='lots'" in warned and "rank='tribe'" in warned
    assert state.selected_clade(at.session_state).endswith("/" + genus)  # a unique name is taken as its key
    assert at.segmented_control(key=state.MODE).value == state.DESCRIBE and result_ids(at)


# --- export ---------------------------------------------------------------------------------------------

def test_results_export_as_csv_and_json(app, ui_env):
    search(app)
    buttons = {b.key: b for b in app.download_button}
    assert set(buttons) == {"export_csv", "export_json"}
    from ui.services import UiConfig, service_or_error

    service, _ = service_or_error(UiConfig.from_env())
    hits = service.describe(TEXT, state.DEFAULT_K).hits
    assert [h.id for h in hits] == result_ids(app)
    rows = list(csv.DictReader(io.StringIO(to_csv(hit_rows(hits), EXPORT_COLUMNS))))
    assert list(rows[0]) == ["id", "path", "lineage", "score", "split", "source", "license"]
    by_id = records(ui_env)
    for row in rows:
        record = by_id[row["id"]]
        assert (row["path"], row["lineage"], row["split"], row["source"], row["license"]) == (
            record.path, record.lineage.key(), record.split, record.source, record.license)
        assert record.license and record.source
    assert [r["id"] for r in json.loads(to_json(hit_rows(hits)))] == result_ids(app)


# --- filters that can be undone -------------------------------------------------------------------------

def test_every_filter_offers_any(app):
    split = app.selectbox(key=state.SPLIT)
    assert split.options[0] == "any split" and split.value == state.ANY
    assert app.selectbox(key=state.clade_key(Rank.KINGDOM)).options[0] == "any kingdom"
    split.set_value("val")
    app.slider(key=state.K).set_value(48)
    search(app)
    narrowed = len(result_ids(app))
    app.selectbox(key=state.SPLIT).set_value(state.ANY)
    run(app)
    assert len(result_ids(app)) > narrowed


def test_chips_undo_one_filter_one_rank_up_or_all(app, ui_env):
    search(app)
    first = result_ids(app)[0]
    lineage = lineages(ui_env)[first]
    click_crumb(app, first, lineage.key(Rank.GENUS))
    app.selectbox(key=state.SPLIT).set_value("train")
    run(app)
    chips = {b.key: b.label for b in app.main.button if b.key and b.key.startswith("chip:")}
    assert chips == {f"chip:{state.CLADE_PREFIX}": f"inside {lineage.genus}", f"chip:{state.SPLIT}": "split train"}
    app.button(key="rank_up").click()
    run(app)
    assert state.selected_clade(app.session_state) == lineage.key(Rank.FAMILY)
    app.button(key=f"chip:{state.SPLIT}").click()
    run(app)
    assert app.session_state[state.SPLIT] == state.ANY
    assert state.selected_clade(app.session_state) == lineage.key(Rank.FAMILY)
    app.button(key="clear_filters").click()
    run(app)
    assert state.selected_clade(app.session_state) is None and not keys(app, "chip:")
    assert len(result_ids(app)) == state.DEFAULT_K


def test_the_species_shortcut_narrows_to_the_species(app, ui_env):
    search(app)
    shortcut = buttons(app, CLOSEST_TAXA)[0]  # the closest species
    click(app, CLOSEST_TAXA, shortcut.action, shortcut.target)
    species = state.selected_clade(app.session_state)
    assert species.count("/") == Rank.SPECIES
    assert app.selectbox(key=state.clade_key(Rank.SPECIES)).value == species
    names = lineages(ui_env)
    ids = result_ids(app)
    assert ids and all(names[i].key() == species for i in ids)
    assert len(ids) == sum(lin.key() == species for lin in names.values())


# --- the detail view ------------------------------------------------------------------------------------

def test_the_detail_view_shows_the_record_and_the_lookalikes(app, ui_env):
    search(app)
    target = result_ids(app)[1]
    click_card(app, "detail", target)
    record = records(ui_env)[target]
    fields = app.table[0].value["value"].to_dict()
    assert fields["sha256"] == record.sha256 and fields["license"] == record.license
    assert fields["source"] == record.source and fields["path"] == record.path
    assert fields["width"] == str(record.width) and fields["species"] == record.lineage.binomial
    assert app.image[0].proto.imgs[0].caption == f"{record.path} · {record.width}×{record.height} px"
    alikes = result_ids(app)
    assert len(alikes) == 6 and target not in alikes
    assert not keys(app, "export_")  # the detail replaces the results
    app.button(key="detail_back").click()
    run(app)
    assert app.text_input(key=state.TEXT).value == TEXT  # the query survived the detour
    assert len(result_ids(app)) == state.DEFAULT_K


def test_the_detail_views_breadcrumb_narrows_the_filter_and_closes_it(app, ui_env):
    search(app)
    target = result_ids(app)[0]
    click_card(app, "detail", target)
    lineage = records(ui_env)[target].lineage
    assert [b.target for b in buttons(app, DETAIL_BREADCRUMB)] == [lineage.key(rank) for rank in Rank]
    click(app, DETAIL_BREADCRUMB, "narrow", lineage.key(Rank.FAMILY))
    assert state.selected_clade(app.session_state) == lineage.key(Rank.FAMILY)
    assert app.session_state[state.DETAIL] is None and target in result_ids(app)
    assert all(lineage.key(Rank.FAMILY) in records(ui_env)[i].lineage.keys() for i in result_ids(app))


# --- pages ----------------------------------------------------------------------------------------------

def test_load_more_adds_a_page_and_a_new_search_starts_again(app):
    app.slider(key=state.K).set_value(3)
    search(app)
    first = result_ids(app)
    assert len(first) == 3
    app.button(key="load_more").click()
    run(app)
    assert len(result_ids(app)) == 6 and result_ids(app)[:3] == first
    app.button(key="load_more").click()
    run(app)
    assert len(result_ids(app)) == 9
    search(app, "a photo of a plant.")
    assert len(result_ids(app)) == 3


def test_cards_show_names_and_scores_in_full_on_hover(app):
    search(app)
    cards = block_html(app, RESULTS_CARDS)
    assert 'class="tol-card-meta" title="similarity 0.' in cards and "text-overflow: ellipsis" not in cards


def test_the_cards_are_one_element_that_a_new_search_updates(app):
    """Twelve cards are one element of the page (not about a hundred widgets), kept under the same key."""
    search(app)
    first, element = result_ids(app), block(app, RESULTS_CARDS).proto.id
    assert not [b for b in app.button if b.key and b.key.startswith(("alike", "detail", "identify", "taxon"))]
    search(app, "a photo of a plant.")
    assert block(app, RESULTS_CARDS).proto.id == element
    assert result_ids(app) != first and len(result_ids(app)) == state.DEFAULT_K


def test_a_click_no_button_offered_changes_nothing(app):
    """An old tab or a forged message: an unknown action, a clade the store does not have."""
    search(app)
    before = dict(app.query_params)
    send_click(app, RESULTS_CARDS, "delete", "x")
    assert dict(app.query_params) == before and len(result_ids(app)) == state.DEFAULT_K
    send_click(app, RESULTS_CARDS, "narrow", "Nowhere/Nothing")
    assert state.selected_clade(app.session_state) is None and len(result_ids(app)) == state.DEFAULT_K


# --- configuration --------------------------------------------------------------------------------------

def test_the_config_file_hides_deploy_and_sets_the_theme():
    config = tomllib.loads(CONFIG.read_text())
    assert config["client"]["toolbarMode"] == "viewer"  # no Deploy button
    assert config["theme"]["primaryColor"] == "#2e7d4f" and config["theme"]["base"] == "light"


# --- the map --------------------------------------------------------------------------------------------

def map_points(at: AppTest) -> list[dict]:
    """The points of the map's chart (Streamlit sends the chart's data as Arrow beside its spec)."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    chart = at.get("vega_lite_chart")[0]
    assert '"pick"' in chart.proto.spec and chart.proto.selection_mode == ["pick"]  # a click selects a point
    return convert_arrow_bytes_to_pandas_df(chart.proto.data.data).to_dict("records")


def test_the_map_places_every_image_coloured_by_a_rank_inside_the_filter(app, ui_env):
    app.toggle(key=state.MAP).set_value(True)
    run(app)
    names = lineages(ui_env)
    points = map_points(app)
    assert {p["id"] for p in points} == set(names)
    assert {p["family"] for p in points} == {lin.family for lin in names.values()}
    app.selectbox(key=state.MAP_RANK).set_value("kingdom")
    app.selectbox(key=state.clade_key(Rank.KINGDOM)).set_value("Plantae")
    run(app)
    points = map_points(app)
    assert {p["id"] for p in points} == {i for i, lin in names.items() if lin.kingdom == "Plantae"}
    assert {p["kingdom"] for p in points} == {"Plantae"}
    assert not result_ids(app)  # the map replaces the results
    app.session_state[state.DETAIL] = points[0]["id"]  # what a click on a point does (ui.projection.picked_id)
    run(app)
    assert app.table[0].value["value"]["id"] == points[0]["id"]
    app.button(key="detail_back").click()
    run(app)
    assert len(map_points(app)) == len(points)  # back to the map


# --- batch identify -------------------------------------------------------------------------------------

def test_batch_identify_several_uploads_into_one_table(app, ui_env):
    from embed.predict import pybioclip_columns
    from tests.ui.test_app import png_bytes
    from ui.components.batch import BATCH_K

    app.segmented_control(key=state.MODE).set_value(state.IDENTIFY)
    app.selectbox(key=state.RANK).set_value("genus")
    run(app)
    uploader = app.file_uploader(key=state.BATCH_UPLOADS)
    uploader.set_value([("a.png", png_bytes(colour=(30, 120, 60)), "image/png"),
                        ("b.png", png_bytes(colour=(200, 40, 40)), "image/png"),
                        ("bad.png", b"not pixels", "image/png")])
    run(app)
    table = app.dataframe[-1].value
    assert list(table.columns) == pybioclip_columns(Rank.GENUS)
    per_file = min(BATCH_K, len({lin.key(Rank.GENUS) for lin in lineages(ui_env).values()}))
    assert list(table["file_name"]) == ["a.png"] * per_file + ["b.png"] * per_file
    assert (table["score"].diff().fillna(0)[table["file_name"] == "a.png"] <= 0).all()  # best first
    assert any("bad.png" in e.value for e in app.error)
    assert {b.key for b in app.download_button} >= {"batch_csv", "batch_json"}
