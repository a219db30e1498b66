"""toolkit: the settings rule (flag > environment > default), progress steps, rows, lazy exports."""
import io
import logging

import pytest

from toolkit.cli import ProgressBars, Step, chunks, format_table, report, write_rows
from toolkit.lazy import lazy_exports
from toolkit.settings import DEFAULT_DB, DEFAULT_MODEL, DEFAULT_STORE, Settings


def test_flag_wins_over_environment_over_default(monkeypatch):
    for name in ("TOL_STORE", "TOL_DB", "TOL_MODEL"):
        monkeypatch.delenv(name, raising=False)
    assert Settings.resolve() == Settings(DEFAULT_STORE, DEFAULT_DB, DEFAULT_MODEL)
    monkeypatch.setenv("TOL_STORE", " env-store ")
    monkeypatch.setenv("TOL_MODEL", "   ")  # blank counts as unset
    assert Settings.resolve() == Settings("env-store", DEFAULT_DB, DEFAULT_MODEL)
    assert Settings.resolve(store="flag", db="x.db", model="tol-tiny") == Settings("flag", "x.db", "tol-tiny")


def test_a_step_is_its_message_and_carries_its_counts():
    seen = []
    report(lambda fraction, message: seen.append((fraction, message)), "images", 3, 4, "img")
    (fraction, step), = seen
    assert fraction == 0.75 and step == "images: 3/4 img" and isinstance(step, str)
    assert (step.stage, step.done, step.total, step.unit) == ("images", 3, 4, "img")
    report(lambda f, m: seen.append((f, m)), "sync", 0, 0, "store")
    assert seen[-1][0] == 1.0
    report(None, "images", 1, 2, "img")  # no callback: nothing happens


def test_bars_log_plain_messages_and_stages_without_a_bar(caplog):
    caplog.set_level(logging.INFO)
    log = logging.getLogger("toolkit-test")
    with ProgressBars(log=log, disable=True) as bars:
        bars(0.0, "plain message")
        bars(0.0, Step("sync", 0, 1, "store"))
        bars(0.5, Step("images", 1, 2, "img"))
        bars(1.0, Step("images", 2, 2, "img"))
    assert "plain message" in caplog.text and "sync ..." in caplog.text and "images ..." not in caplog.text


def test_rows_as_a_table_csv_and_json(tmp_path):
    rows = [{"name": "Pica", "score": 0.5}, {"name": "Corvus corax", "score": None}]
    assert format_table(rows, ("#", "name", "score")).splitlines() == [
        "#  name          score", "1  Pica          0.5000", "2  Corvus corax"]
    out = io.StringIO()
    write_rows(rows, ["name"], "csv", None, out)
    assert out.getvalue() == "name\nPica\nCorvus corax\n"
    target = tmp_path / "rows.json"
    write_rows(rows, ["name"], "json", str(target), io.StringIO())
    assert target.read_text().startswith("[") and list(tmp_path.iterdir()) == [target]


def test_chunks_and_lazy_exports():
    assert [list(c) for c in chunks([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]
    names, getattr_, dir_ = lazy_exports("toolkit", {"toolkit.settings": ("Settings",)})
    assert names == ["Settings"] and getattr_("Settings") is Settings and "Settings" in dir_()
    with pytest.raises(AttributeError, match="module 'toolkit' has no attribute 'nope'"):
        getattr_("nope")
