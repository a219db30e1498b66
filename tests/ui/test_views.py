"""The app's pure parts: session-state transitions, uploads, breadcrumbs, summaries, thumbnails (no streamlit)."""
from __future__ import annotations

import html
import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embed.predict import ScoredTaxon, prediction_tree, sum_species
from embed.search import SearchHit
from taxonomy import Lineage, Rank
from ui import links, state
from ui.uploads import MAX_UPLOAD_BYTES, UploadError, load_upload
from ui.views import (CARD_ACTIONS, NARROW, breadcrumb, card_html, prediction_tree_html, summary_html,
                      summary_tree, taxa_html, thumbnail_bytes)

BUTTON = re.compile(r'<button type="button" data-action="([^"]*)" data-target="([^"]*)"')

CAT = Lineage.from_ranks(["Animalia", "Chordata", "Mammalia", "Carnivora", "Felidae", "Felis", "catus"],
                         "domestic cat")
SANDCAT = Lineage.from_ranks(["Animalia", "Chordata", "Mammalia", "Carnivora", "Felidae", "Felis", "margarita"])
LYNX = Lineage.from_ranks(["Animalia", "Chordata", "Mammalia", "Carnivora", "Felidae", "Lynx", "lynx"])
CLOWNFISH = Lineage.from_ranks(["Animalia", "Chordata", "Actinopteri", "", "Pomacentridae", "Amphiprion",
                                "ocellaris"])


def hit(lineage: Lineage, n: int = 0) -> SearchHit:
    rank = lineage.deepest_rank
    return SearchHit(id=f"id{n}", score=0.5, collection="images", taxon=lineage.key(), rank=rank, lineage=lineage,
                     path=f"x/{n}.jpg", root="/nowhere")


# --- state ----------------------------------------------------------------------------------------------

def test_breadcrumb_click_sets_the_cascade_and_clears_below():
    session: dict = {}
    state.init(session)
    assert state.selected_clade(session) is None and session[state.MODE] == state.DESCRIBE
    state.set_clade(session, CAT.key(Rank.GENUS))
    assert [session[state.clade_key(r)] for r in state.CLADE_RANKS] == [
        CAT.key(r) if r <= Rank.GENUS else state.ANY for r in state.CLADE_RANKS]
    state.set_clade(session, CAT.key(Rank.ORDER))
    assert state.selected_clade(session) == CAT.key(Rank.ORDER)
    assert session[state.clade_key(Rank.FAMILY)] == state.ANY and session[state.clade_key(Rank.GENUS)] == state.ANY
    state.set_clade(session, CLOWNFISH.key(Rank.FAMILY))  # no order: that selector stays at "any"
    assert session[state.clade_key(Rank.ORDER)] == state.ANY
    assert state.selected_clade(session) == "Animalia/Chordata/Actinopteri//Pomacentridae"
    state.set_clade(session, CAT.key(Rank.SPECIES))  # the species shortcut narrows to the species itself
    assert state.selected_clade(session) == CAT.key(Rank.SPECIES)
    state.clear_below(session, Rank.CLASS)
    assert state.selected_clade(session) == CAT.key(Rank.CLASS)
    state.set_clade(session, None)
    assert state.selected_clade(session) is None


def test_result_buttons_switch_mode_and_query():
    session: dict = {}
    state.init(session)
    state.look_alikes_of(session, "abc")
    assert (session[state.MODE], session[state.SOURCE], session[state.PICKED]) == (
        state.LOOKALIKES, state.FROM_COLLECTION, "abc")
    session[state.SOURCE] = state.FROM_UPLOAD
    state.identify_this(session, "def")
    assert (session[state.MODE], session[state.SOURCE], session[state.PICKED]) == (
        state.IDENTIFY, state.FROM_COLLECTION, "def")
    state.use_example(session, "a photo of Felis catus.")
    assert session[state.TEXT] == "a photo of Felis catus."
    state.use_example(session, None)
    assert session[state.TEXT] == "a photo of Felis catus."


def test_page_state_changes_with_what_the_page_around_describe_shows_not_with_the_query():
    """The describe part reruns alone on a new text; a click in it that changes anything else redraws the page."""
    session: dict = {}
    state.init(session)
    drawn = state.page_state(session)
    session[state.TEXT] = "a photo of a fern."
    state.load_more(session)
    state.use_example(session, "a photo of Felis catus.")
    assert state.page_state(session) == drawn
    for change in (lambda s: state.set_clade(s, CAT.key(Rank.FAMILY)), lambda s: state.look_alikes_of(s, "abc"),
                   lambda s: state.identify_this(s, "abc"), lambda s: state.open_detail(s, "abc")):
        changed = dict(session)
        change(changed)
        assert state.page_state(changed) != drawn


# --- uploads --------------------------------------------------------------------------------------------

def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def test_upload_is_decoded_upright_in_rgb():
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 0))
    image = load_upload("a.png", encoded(rgba, "PNG"))
    assert image.mode == "RGB" and image.size == (40, 30)
    assert image.getpixel((0, 0)) == (255, 255, 255)  # transparent on white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: displayed 30 x 40
    image = load_upload("b.jpg", encoded(Image.new("RGB", (40, 30)), "JPEG", exif=exif))
    assert image.size == (30, 40)


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"%PDF-1.4 not a picture", "not an image"),
    (b"\0" * (MAX_UPLOAD_BYTES + 1), "over the 10 MB limit"),
])
def test_uploads_refused_with_a_reason(data, message):
    with pytest.raises(UploadError, match=message):
        load_upload("file", data)


def test_hostile_uploads_are_refused_by_name_and_ghostscript_never_runs(tmp_path, monkeypatch):
    from tests.index.conftest import EPS, fake_ghostscript

    ran = fake_ghostscript(tmp_path, monkeypatch)
    with pytest.raises(UploadError, match=r"^photo\.jpg: EPS is not an accepted image format \(accepted: JPEG"):
        load_upload("photo.jpg", EPS)
    strip = encoded(Image.new("1", (40_000, 2)), "PNG")  # 89 bytes; 4 GB once resized to 224 px
    with pytest.raises(UploadError, match=r"^strip\.png: aspect ratio 20000:1 \(40000x2 pixels\) is over the limit"):
        load_upload("strip.png", strip)
    assert not ran.exists()


def test_too_many_pixels_and_truncated_files_are_refused():
    with pytest.raises(UploadError, match="megapixels"):
        load_upload("big.png", encoded(Image.new("1", (9000, 5000)), "PNG"))
    noisy = Image.frombytes("RGB", (200, 150), os.urandom(200 * 150 * 3))
    data = encoded(noisy, "JPEG", quality=95)
    with pytest.raises(UploadError, match="truncated"):
        load_upload("cut.jpg", data[: len(data) // 2])


# --- thumbnails never leave the collection root ----------------------------------------------------------

def test_thumbnails_come_only_from_inside_the_root(tmp_path: Path):
    root = tmp_path / "collection"
    (root / "cats").mkdir(parents=True)
    Image.new("RGB", (300, 200), (10, 200, 10)).save(root / "cats" / "a.jpg")
    secret = tmp_path / "secret.png"
    Image.new("RGB", (50, 50), (200, 0, 0)).save(secret)
    (root / "cats" / "link.png").symlink_to(secret)
    thumb = thumbnail_bytes(str(root), "cats/a.jpg", 64)
    assert thumb is not None and Image.open(io.BytesIO(thumb)).size == (64, 64)
    for escape in ("../secret.png", str(secret), "cats/link.png", "cats/../../secret.png"):
        assert thumbnail_bytes(str(root), escape) is None, escape
    assert thumbnail_bytes("", "cats/a.jpg") is None


# --- what the page shows ----------------------------------------------------------------------------------

def test_breadcrumb_lists_named_ranks_down_to_genus():
    crumbs = breadcrumb(CLOWNFISH)
    assert [c.name for c in crumbs] == ["Animalia", "Chordata", "Actinopteri", "Pomacentridae", "Amphiprion"]
    assert crumbs[3].key == "Animalia/Chordata/Actinopteri//Pomacentridae" and crumbs[3].rank == Rank.FAMILY


def test_summary_counts_results_per_family_and_genus():
    hits = [hit(CAT, 0), hit(CAT, 1), hit(SANDCAT, 2), hit(LYNX, 3), hit(CLOWNFISH, 4), hit(Lineage(), 5)]
    nodes = summary_tree(hits)
    assert [(n.name, n.count) for n in nodes] == [("Felidae", 4), ("(unlabelled)", 1), ("Pomacentridae", 1)]
    assert [(g.name, g.count) for g in nodes[0].children] == [("Felis", 3), ("Lynx", 1)]
    markup = summary_html(nodes)
    assert markup.index("Felidae") < markup.index("Felis") < markup.index("Lynx") < markup.index("(unlabelled)")
    assert '<span>Felidae</span><b>4</b>' in markup and '<i>Felis</i><span>3</span>' in markup
    assert "<b>x</b>" not in summary_html(summary_tree([hit(Lineage.from_ranks(["A", "B", "C", "D", "<b>x</b>"]))]))


def test_prediction_tree_html_escapes_names_and_marks_the_path():
    # no '/' in the name: ingest refuses it (the key's separator), the tree is built from keys
    odd = Lineage.from_ranks(["Animalia", "<img src=x onerror=alert(1)>", "Aves", "Order", "Family", "Genus", "x"],
                             "a & b")
    found = sum_species([ScoredTaxon(odd, Rank.SPECIES, 0.9), ScoredTaxon(CAT, Rank.SPECIES, 0.1)], 10.0, k=2)
    markup = prediction_tree_html(prediction_tree(found, Rank.SPECIES, 2))
    assert "<img src=x" not in markup and "&lt;img src=x onerror=alert(1)&gt;" in markup
    assert "&lt;0.1%" in markup  # the cat's share, too small to print
    assert "a &amp; b" in markup
    assert markup.count("tol-row tol-path") == 7
    assert "<i>Felis catus</i>" in markup


def test_a_card_escapes_what_it_shows_and_names_its_image_and_its_buttons():
    odd = Lineage.from_ranks(["Animalia", "<img src=x onerror=alert(1)>", "Aves", "Order", "Family", "Genus", "x"],
                             'a "b" & c')
    card = hit(odd, 7)
    markup = card_html(card, b"\xff\xd8jpeg")
    assert "<img src=x" not in markup and "&lt;img src=x onerror=alert(1)&gt;" in markup
    assert 'title="a &quot;b&quot; &amp; c"' in markup and 'data-id="id7"' in markup
    assert markup.count('<img src="data:image/jpeg;base64,') == 1
    crumbs = [key for action, key in BUTTON.findall(markup) if action == NARROW]
    assert [html.unescape(k) for k in crumbs] == [odd.key(rank) for rank in Rank]  # kingdom to species
    assert [action for action, key in BUTTON.findall(markup) if key == "id7"] == [a.action for a in CARD_ACTIONS]
    assert "image unavailable" in card_html(card, None) and "<img" not in card_html(card, None)


def test_closest_taxa_narrow_to_their_own_key():
    taxa = [SearchHit(id="t1", score=0.25, collection="taxa", taxon=CAT.key(Rank.GENUS), rank=Rank.GENUS,
                      lineage=CAT, n_images=3)]
    markup = taxa_html(taxa, "genus")
    assert BUTTON.findall(markup) == [(NARROW, CAT.key(Rank.GENUS))]
    assert "· 0.250" in markup and "(3 images)" in markup


# --- the map's projection -------------------------------------------------------------------------------

def test_pca_separates_two_clusters_along_its_first_axis_and_is_stable():
    from ui.projection import pca_2d

    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.05, (10, 16)) + np.eye(16)[0]
    b = rng.normal(0, 0.05, (10, 16)) - np.eye(16)[0]
    xy = pca_2d(np.vstack([a, b]))
    assert xy.shape == (20, 2)
    assert len(set(np.sign(xy[:10, 0]))) == 1 and (np.sign(xy[:10, 0]) == -np.sign(xy[10:, 0])).all()
    assert abs(xy[:, 0]).min() > abs(xy[:, 1]).max() * 0.5  # the clusters lie apart along the first axis
    assert np.allclose(pca_2d(np.vstack([a, b])), xy)
    assert np.allclose(pca_2d(np.vstack([a, b])[::-1]), xy[::-1])  # the order of the points does not matter
    assert pca_2d(a[:1]).tolist() == [[0.0, 0.0]]


def test_a_click_on_the_map_names_one_image():
    from ui.projection import picked_id

    assert picked_id({"selection": {"pick": [{"id": "abc", "x": 1.0}]}}, "pick") == "abc"
    assert picked_id({"selection": {"pick": []}}, "pick") is None
    assert picked_id(None, "pick") is None


# --- export ---------------------------------------------------------------------------------------------

def test_exports_write_the_columns_in_order():
    import csv
    import json

    from ui.exports import EXPORT_COLUMNS, hit_rows, to_csv, to_json

    rows = hit_rows([hit(CAT, 1), hit(CLOWNFISH, 2)])
    text = to_csv(rows, EXPORT_COLUMNS)
    assert text.splitlines()[0] == "id,path,lineage,score,split,source,license"
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert parsed[1]["lineage"] == CLOWNFISH.key() and parsed[0]["score"] == "0.5"
    assert json.loads(to_json(rows))[0]["lineage"] == CAT.key()


def test_full_image_is_uncropped_where_the_thumbnail_is_square(tmp_path):
    from ui.views import full_image_bytes

    Image.new("RGB", (300, 120), (10, 200, 30)).save(tmp_path / "wide.png")
    full = Image.open(io.BytesIO(full_image_bytes(str(tmp_path), "wide.png")))
    thumb = Image.open(io.BytesIO(thumbnail_bytes(str(tmp_path), "wide.png")))
    assert full.size == (300, 120) and thumb.size == (120, 120)  # square, never upscaled
    assert full_image_bytes(str(tmp_path), "../outside.png") is None


def test_url_parameters_round_trip_through_the_state():
    session: dict = {}
    state.init(session)
    link = {"mode": "lookalikes", "within": CAT.key(Rank.FAMILY), "rank": "genus", "k": "9", "image": "id7"}
    assert links.from_query(session, link) == []
    assert links.to_query(session) == link
    assert session[state.SOURCE] == state.FROM_COLLECTION and session[state.K] == 9
    session[state.EXCLUDE] = True
    assert "within" not in links.to_query(session)  # an excluded clade is not "within"
    problems = links.from_query(session, {"k": "100", "mode": "x"})
    assert session[state.K] == state.MAX_K and len(problems) == 1
