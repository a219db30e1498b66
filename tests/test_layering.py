"""Imports run one way: each package imports only the rows below it in LAYERS, and no modules import in a circle.

The scan reads every module's import statements with `ast`, those inside functions and under
`TYPE_CHECKING` included: the packages' lazy `__init__` files and deferred imports hide nothing from it.
A subprocess check adds what a scan cannot see: third-party packages pulled in at import time.

A new top-level package is one more row of LAYERS (a test fails until it has one); a new package
at the bottom that every package may use is one `foundation` row placed first. A `uses` entry is a
package (`index`) or a part of one (`index.collection.images`), so a row can allow one subpackage of a lower
package and not the rest: training reads collections (COLLECTION_READING) but not the stores.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "open_clip", "streamlit")

# What training may read of index: catalogs, image files and their entries.
COLLECTION_READING = ("index.collection",)


@dataclass(frozen=True)
class Layer:
    uses: tuple[str, ...] = ()  # project packages or modules below this one that it may import
    never: tuple[str, ...] = ()  # third-party packages it must not import, anywhere or at import time
    foundation: bool = False  # every row after this one may import it


# One row per top-level package, lowest first.
LAYERS: dict[str, Layer] = {
    "toolkit": Layer(never=HEAVY, foundation=True),
    "taxonomy": Layer(never=HEAVY, foundation=True),
    "index": Layer(never=HEAVY),
    "embed": Layer(uses=("index",), never=("streamlit",)),
    "training": Layer(uses=("embed", *COLLECTION_READING), never=("streamlit",)),
    "ui": Layer(uses=("index", "embed")),
    "demo": Layer(uses=("index", "embed", "training")),
    "bench": Layer(uses=("index", "embed", "training", "demo")),
}


def allowed(package: str, layers: dict[str, Layer] = LAYERS) -> tuple[str, ...]:
    """What `package` may import of the project besides itself: the foundations below it, and its `uses`."""
    below = list(layers)[:list(layers).index(package)]
    return (*(name for name in below if layers[name].foundation), *layers[package].uses)


# Import cycles that exist on purpose, as the edge that closes each one (importer, imported): both are lazy imports.
KNOWN_CYCLE_EDGES: dict[tuple[str, str], str] = {
}


@dataclass(frozen=True)
class Import:
    importer: str  # module name, e.g. "index.catalog"
    imported: str  # the module imported, or the package when the name is not a module of the tree
    line: int
    typing_only: bool  # under `if TYPE_CHECKING:`: never runs, but is still a dependency

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.imported}"


def modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Module name -> file, for every `.py` file under the packages' folders in `root`."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST, typing_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every Import/ImportFrom node anywhere in `tree`, with whether it sits under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, typing_only
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _import_nodes(ast.Module(body=[child], type_ignores=[]), True)
            for child in node.orelse:
                yield from _import_nodes(ast.Module(body=[child], type_ignores=[]), typing_only)
        else:
            yield from _import_nodes(node, typing_only)


def scan(root: Path, packages: Iterable[str]) -> list[Import]:
    """Every import statement of every module of the packages, resolved to module names where they are in the tree."""
    tree_modules = modules(root, packages)
    imports: list[Import] = []
    for name, path in tree_modules.items():
        is_package = path.name == "__init__.py"
        for node, typing_only in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: from its package, one level up per extra dot
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
                # `from a import b`: the module a.b when there is one, else a name defined in a.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in tree_modules else base
                           for alias in node.names]
            imports += [Import(name, target, node.lineno, typing_only) for target in targets]
    return imports


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_violations(imports: Iterable[Import], layers: dict[str, Layer]) -> list[str]:
    """Imports of a project package not in the importer's `uses` (upward or sideways), and of its `never`s."""
    problems = []
    for item in imports:
        package, target = item.importer.split(".")[0], item.imported.split(".")[0]
        layer = layers[package]
        if target in layer.never:
            problems.append(f"{item}: {package} never imports {target}")
        elif target in layers and target != package and not any(_within(item.imported, u)
                                                                 for u in allowed(package, layers)):
            problems.append(f"{item}: {package} may import only {', '.join(allowed(package, layers)) or 'itself'}")
    return problems


def cycles(imports: Iterable[Import], allowed: Iterable[tuple[str, str]] = ()) -> list[list[str]]:
    """The import cycles among the tree's modules (strongly connected sets, sorted), leaving out
    imports that never run (TYPE_CHECKING) and the `allowed` edges."""
    graph: dict[str, set[str]] = {}
    skip = set(allowed)
    for item in imports:
        graph.setdefault(item.importer, set())
        if not item.typing_only and item.importer != item.imported and (item.importer, item.imported) not in skip:
            graph[item.importer].add(item.imported)
    graph = {node: {n for n in edges if n in graph} for node, edges in graph.items()}
    # Tarjan's strongly connected components, iterative.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(found)


@pytest.fixture(scope="module")
def project_imports() -> list[Import]:
    return scan(ROOT, LAYERS)


def test_every_package_has_a_row():
    packages = {path.parent.name for path in ROOT.glob("*/*.py")} - {"tests"}
    assert packages == set(LAYERS), f"add a row to LAYERS for {sorted(packages - set(LAYERS))}; " \
                                    f"rows without a folder: {sorted(set(LAYERS) - packages)}"
    for package, layer in LAYERS.items():
        below = list(LAYERS)[:list(LAYERS).index(package)]
        assert all(use.split(".")[0] in below for use in layer.uses), f"{package} uses a package not below it"
    assert allowed("training") == ("toolkit", "taxonomy", "embed", *COLLECTION_READING)


def test_every_import_goes_down(project_imports):
    assert not layer_violations(project_imports, LAYERS)


def test_no_import_cycles(project_imports):
    assert not cycles(project_imports, KNOWN_CYCLE_EDGES)
    edges = {(item.importer, item.imported) for item in project_imports}
    gone = [edge for edge in KNOWN_CYCLE_EDGES if edge not in edges]
    assert not gone, f"remove {gone} from KNOWN_CYCLE_EDGES: those imports are gone"
    assert cycles(project_imports) == []


@pytest.mark.parametrize("package", sorted(name for name, layer in LAYERS.items() if layer.never))
def test_importing_every_module_leaves_heavy_packages_out(package):
    """What `never` forbids is not pulled in at import time by a third-party package either."""
    names = sorted(modules(ROOT, [package]))
    code = f"import importlib, json, sys\nfor name in {names!r}:\n    importlib.import_module(name)\n" \
           "print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    loaded = {name.split(".")[0] for name in json.loads(out)}
    assert not loaded & set(LAYERS[package].never), f"{package} pulls in {sorted(loaded & set(LAYERS[package].never))}"


def _copy_sources(packages: Iterable[str], into: Path) -> None:
    for name, path in modules(ROOT, packages).items():
        target = into / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")


def test_a_planted_upward_import_and_a_planted_cycle_are_reported(tmp_path):
    """The scan over a copy of the real packages with bad imports planted, inside functions."""
    _copy_sources(["taxonomy", "index", "training"], tmp_path)
    catalog = tmp_path / "index" / "catalog.py"
    catalog.write_text(catalog.read_text() + "\n\ndef _planted():\n    import ui.views\n    from torch import nn\n")
    lineage = tmp_path / "taxonomy" / "lineage.py"  # taxonomy.columns already imports taxonomy.lineage
    lineage.write_text(lineage.read_text() + "\n\ndef _planted():\n    from . import columns\n")
    shards = tmp_path / "training" / "shards.py"
    shards.write_text(shards.read_text() + "\n\ndef _planted():\n    from index.store import open_store\n")
    packages = ("taxonomy", "index", "training")
    imports = scan(tmp_path, packages)

    reported = layer_violations(imports, LAYERS)
    assert len(reported) == 3, reported
    assert reported[0].startswith("index.catalog:")
    assert "imports ui.views: index may import only toolkit, taxonomy" in reported[0]
    assert "imports torch: index never imports torch" in reported[1]
    assert "training.shards:" in reported[2] and "imports index.store: training may import only" in reported[2]
    assert cycles(imports, KNOWN_CYCLE_EDGES) == [["taxonomy.columns", "taxonomy.lineage"]]
    unplanted = scan(ROOT, packages)
    assert not layer_violations(unplanted, LAYERS) and not cycles(unplanted, KNOWN_CYCLE_EDGES)


def test_collection_reading_stands_below_the_rest_of_index(project_imports):
    """Training may read collections only because `index.collection` needs nothing else of `index`."""
    outside = [f"{item.importer}:{item.line} imports {item.imported}" for item in project_imports
               if item.importer.startswith("index.collection") and item.imported.startswith("index")
               and not item.imported.startswith("index.collection")]
    assert not outside
