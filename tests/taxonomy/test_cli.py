"""`python -m taxonomy`: argument checks, help speed, and one real run of each subcommand."""
import json
import subprocess
import sys
import time

import pytest

from taxonomy.__main__ import main, parse_args

CATALOG = """filepath,Kingdom,phylum,cls,order,family,genus,species,common,licence
a.jpg,Animalia,Chordata,Aves,Passeriformes,Corvidae,Pica,hudsonia,black-billed magpie,cc0
b.jpg,Metazoa,Chordata,Aves,Passeriformes,Corvidae,Pica,Pica pica,Eurasian magpie,cc0
c.jpg,Animalia,Chordata,Aves,Passeriformes,Laniidae,Pica,nuttalli,,cc0
d.jpg,Plantae,Streptophyta,Magnoliopsida,Rosales,Moraceae,Morus,alba,white mulberry,cc0
e.jpg,Animalia,Chordata,Aves,Suliformes,Sulidae,Morus,bassanus,northern gannet,cc0
"""
BIRDS = "Animalia/Chordata/Aves"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "taxonomy", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture()
def catalog(tmp_path):
    path = tmp_path / "catalog.csv"
    path.write_text(CATALOG)
    return path


def test_help_is_fast():
    _run("--help")  # warm the file cache so that only the import is timed
    start = time.perf_counter()
    result = _run("--help")
    assert result.returncode == 0 and "resolve" in result.stdout and "tree" in result.stdout
    assert time.perf_counter() - start < 1.0


def test_importing_taxonomy_loads_neither_ete3_nor_taxoniq():
    code = "import sys, taxonomy, taxonomy.__main__; print(sorted(m for m in sys.modules if m in ('ete3', 'taxoniq')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_lazy_exports_are_the_real_objects():
    import taxonomy
    from taxonomy.resolver import resolve_scientific
    from taxonomy.tree import TaxonTree
    from taxonomy.validate import reconcile

    assert (taxonomy.TaxonTree, taxonomy.resolve_scientific, taxonomy.reconcile) == (
        TaxonTree, resolve_scientific, reconcile,
    )
    with pytest.raises(AttributeError, match="no attribute 'Tree'"):
        taxonomy.Tree


def test_parse_args_normalises_and_defaults(catalog):
    args = parse_args(["resolve", "  Pica   hudsonia ", "black-billed magpie"])
    assert args.names == ["Pica hudsonia", "black-billed magpie"] and args.format == "table" and args.matches == 5
    args = parse_args(["tree", "--catalog", str(catalog), "--within", f"/{BIRDS}/"])
    assert args.catalog == catalog and args.within == BIRDS and args.format == "ascii" and not args.strict


@pytest.mark.parametrize("argv, message", [
    (["tree", "--catalog", "no/such/catalog.csv"], "catalog file not found: no/such/catalog.csv"),
    (["resolve", "   "], "a NAME is empty"),
    (["resolve", "Pica", "--matches", "0"], "--matches must be at least 1, got 0"),
    (["tree", "--catalog", "x.csv", "--format", "png"], "invalid choice: 'png'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_arguments_exit_2_naming_the_problem(argv, message, capsys):
    with pytest.raises(SystemExit) as raised:
        parse_args(argv)
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_resolve_prints_both_lineages():
    result = _run("resolve", "Pica hudsonia", "black-billed magpie")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["query", "name", "rank", "lineage", "common_name"]
    assert [row.split("  ")[0] for row in rows] == ["Pica hudsonia", "black-billed magpie"]
    for row in rows:
        assert "Animalia/Chordata/Aves/Passeriformes/Corvidae/Pica/hudsonia" in row and "Black-billed magpie" in row


def test_resolve_json_and_a_partial_miss():
    result = _run("resolve", "Morus", "Pica hudsoni", "--format", "json")
    assert result.returncode == 0
    morus, missing = json.loads(result.stdout)
    assert sorted(match["kingdom"] for match in morus["matches"]) == ["Animalia", "Plantae"]
    assert missing["found"] is False and missing["close_matches"][0] == "Pica hudsonia"
    assert "not found: 'Pica hudsoni'" in result.stderr and "close matches: Pica hudsonia" in result.stderr


def test_resolve_of_nothing_known_exits_1():
    result = _run("resolve", "Pika hudsonia")
    assert result.returncode == 1 and result.stdout == ""
    assert "not found: 'Pika hudsonia'" in result.stderr and "Pica hudsonia" in result.stderr


def test_tree_ascii_warns_and_keeps_the_majority(catalog):
    result = _run("tree", "--catalog", str(catalog))
    assert result.returncode == 0, result.stderr
    assert "-Life [5]" in result.stdout and "-Corvidae [3]-Pica [3]" in result.stdout
    assert "Laniidae" not in result.stdout
    assert "Morus alba (white mulberry) [1]" in result.stdout
    assert "genus 'Pica' in Animalia" in result.stderr and f"1 row: {catalog}:4" in result.stderr


def test_tree_newick_within_a_clade(catalog):
    result = _run("tree", "--catalog", str(catalog), "--format", "newick", "--within", BIRDS)
    assert result.returncode == 0
    newick = result.stdout.strip()
    assert newick.endswith(f'"{BIRDS}":1;') and '"Animalia/Chordata/Aves/Suliformes/Sulidae/Morus"' in newick
    assert "Plantae" not in newick


def test_tree_strict_fails_with_rows(catalog):
    result = _run("tree", "--catalog", str(catalog), "--strict")
    assert result.returncode == 1 and result.stdout == ""
    assert "1 inconsistent lineage" in result.stderr and f"{catalog}:2, {catalog}:3" in result.stderr


def test_tree_errors_name_the_file_and_the_key(catalog, tmp_path, capsys):
    missing = tmp_path / "missing.csv"
    result = _run("tree", "--catalog", str(missing))
    assert result.returncode == 2 and f"catalog file not found: {missing}" in result.stderr
    assert main(["tree", "--catalog", str(catalog), "--within", "Animalia/Chordata/Ave"]) == 2
    assert "unknown taxon key 'Animalia/Chordata/Ave'" in capsys.readouterr().err
    no_ranks = tmp_path / "paths.csv"
    no_ranks.write_text("filepath,split\na.jpg,train\n")
    assert main(["tree", "--catalog", str(no_ranks)]) == 2
    assert "no rank columns" in capsys.readouterr().err


def test_list_ranks(capsys):
    assert main(["list-ranks"]) == 0
    assert capsys.readouterr().out.split() == ["kingdom", "phylum", "class", "order", "family", "genus", "species"]
