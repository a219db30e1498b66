"""Imports run one way: toolkit <- taxonomy <- index <- embed <- ui; training uses taxonomy and embed."""
import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "open_clip", "streamlit")
FORBIDDEN = {
    "toolkit": ("torch", "open_clip", "streamlit", "tqdm", "taxonomy", "index", "embed", "training", "ui", "demo"),
    "taxonomy": ("torch", "open_clip", "streamlit", "index", "embed", "training", "ui", "demo"),
    "index": ("torch", "open_clip", "streamlit", "embed", "training", "ui", "demo"),
    "embed": ("streamlit", "training", "ui", "demo"),
    "training": ("streamlit", "ui", "demo"),
}


def _modules_after_import(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in json.loads(out)}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_lies_below(package):
    loaded = _modules_after_import(f"import {package}")
    assert not loaded & set(FORBIDDEN[package]), f"{package} pulls in {sorted(loaded & set(FORBIDDEN[package]))}"
