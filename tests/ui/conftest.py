"""Fixtures of the UI tests: the app under AppTest, on the shared built index (tests/built_index.py).

The app runs in this process under `streamlit.testing.v1.AppTest`, configured through the same
environment variables as in production (TOL_STORE, TOL_DB, TOL_MODEL). It opens its own copy of
the built store: an embedded store folder can be held once per process, and the app's service
stays cached (st.cache_resource) for the whole session.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.built_index import BuiltIndex

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")
APP_TIMEOUT_S = 120  # the first run imports torch and loads the model


@pytest.fixture(scope="session")
def ui_store(built_index: BuiltIndex, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_index.store_copy(tmp_path_factory.mktemp("ui") / "qdrant")


@pytest.fixture
def ui_env(built_index: BuiltIndex, ui_store: Path, monkeypatch: pytest.MonkeyPatch) -> BuiltIndex:
    for name, value in built_index.env(ui_store).items():
        monkeypatch.setenv(name, value)
    return built_index


@pytest.fixture
def app(ui_env: BuiltIndex) -> AppTest:
    """The app after its first run, on the built index."""
    at = AppTest.from_file(APP, default_timeout=APP_TIMEOUT_S)
    at.run()
    assert not at.exception, at.exception
    return at
