"""The documentation in docs/ and examples/ stays true to the code: the generated
configuration reference is current, the example configuration loads as the
defaults, every output column and every exception code is documented, links
between the pages resolve, and nothing points outside the repository."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from hearth.batch import config_doc
from hearth.batch.config import RunConfig, load_config
from hearth.io import validate
from hearth.io.contract import INPUT_TABLES, OUTPUT_SCHEMAS

ROOT = config_doc.ROOT
DOCS = ROOT / "docs"
CONTRACT = DOCS / "data-contract.md"
FIX = "run `python -m hearth.batch.config_doc` and commit docs/configuration.md and examples/run.toml"


def _section(text: str, heading: str) -> str:
    """The text under the heading that starts with ``heading``, up to the next heading."""
    m = re.search(rf"^#{{2,4}} {re.escape(heading)}(?![\w-]).*$", text, re.M)
    assert m, f"{heading!r} has no section"
    rest = text[m.end():]
    nxt = re.search(r"^#+ ", rest, re.M)
    return rest[: nxt.start()] if nxt else rest


def _first_cells(section: str, *, first_table: bool = True) -> set[str]:
    """Names in the first cell of each row of the section's first table (of every
    table with ``first_table=False``); a cell ``a, b`` names two."""
    tables = re.findall(r"(?:^\|.*\n?)+", section, re.M)
    names: set[str] = set()
    for table in tables[:1] if first_table else tables:
        for cell in re.findall(r"^\| *([^|]+?) *\|", table, re.M)[2:]:  # after the header
            names.update(n.strip().strip("`") for n in cell.split(","))
    return names


# -- the configuration reference ---------------------------------------------------------

def test_configuration_reference_is_current():
    assert config_doc.stale() == [], FIX
    assert config_doc.main(["--check"]) == 0


def test_every_key_is_in_the_reference():
    text = config_doc.render_markdown()
    for name in RunConfig.model_fields:
        assert f"| `{name}` |" in text


def test_example_config_loads_as_the_defaults():
    path = ROOT / "examples" / "run.toml"
    with open(path, "rb") as f:
        keys = set(tomllib.load(f))
    assert keys == set(RunConfig.model_fields), "examples/run.toml must hold every key"
    assert load_config(str(path)) == RunConfig()


def test_rendered_toml_round_trips_non_default_values(tmp_path):
    """The TOML renderer writes values the loader reads back as they were."""
    changed = RunConfig(drift_threshold=0.045, share_increment=1e-4, objective="lexicographic",
                        whole_shares=True, duckdb_memory_limit="1GB", shard_size=64)
    lines = [f"{name} = {config_doc.toml_value(getattr(changed, name), f.annotation)}"
             for name, f in RunConfig.model_fields.items()]
    path = tmp_path / "run.toml"
    path.write_text("\n".join(lines) + "\n")
    assert load_config(str(path)) == changed


# -- the data contract ---------------------------------------------------------------------

def test_every_output_column_is_documented():
    text = CONTRACT.read_text(encoding="utf-8")
    for table, schema in OUTPUT_SCHEMAS.items():
        documented = _first_cells(_section(text, table))
        assert set(schema.names) <= documented, f"{table}: undocumented columns"
        assert documented <= set(schema.names), f"{table}: documented columns that do not exist"


def test_every_input_column_is_documented():
    text = CONTRACT.read_text(encoding="utf-8")
    for name, table in INPUT_TABLES.items():
        documented = _first_cells(_section(text, name))
        columns = {c.name for c in table.columns}
        assert columns <= documented, f"{name}: undocumented columns"
        assert documented <= columns, f"{name}: documented columns that do not exist"


def validator_codes() -> set[str]:
    """Every code ``io/validate.py`` can write into ``exceptions``."""
    codes = {code for _, code, _ in validate._checks("2026-01-02")}
    codes |= {rule[2] for rule in validate.NUMBER_RULES}
    codes |= set(re.findall(r"code := '(\w+)'", " ".join(sql for _, sql in
                                                             validate._number_checks())))
    codes |= set(re.findall(r'\(table, "(\w+)"', inspect.getsource(validate._type_checks)))
    return codes


def run_codes() -> set[str]:
    """The codes the run of a household writes (its status, or what failed)."""
    codes = {"infeasible", "rejected"}  # a household's status, written as its code
    for module in ("batch/pipeline.py", "io/households.py"):
        codes |= set(re.findall(r'code="(\w+)"', (ROOT / module).read_text(encoding="utf-8")))
    return codes


def test_every_exception_code_is_documented():
    found = validator_codes()
    assert {"non_finite_number", "invalid_type", "missing_price", "duplicate_lot_id"} <= found
    documented = _first_cells(_section(CONTRACT.read_text(encoding="utf-8"), "Exception codes"),
                              first_table=False)
    assert found <= documented, f"undocumented codes: {sorted(found - documented)}"
    assert run_codes() <= documented, f"undocumented codes: {sorted(run_codes() - documented)}"
    stale = documented - found - run_codes()
    assert not stale, f"documented codes nothing writes: {sorted(stale)}"


# -- links and references ------------------------------------------------------------------

def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {_anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")) + ["../README.md"])
def test_links_resolve(page):
    path = (DOCS / page).resolve()
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if "://" in target or target.startswith("mailto:"):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        assert dest.exists(), f"{page}: link to missing {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{page}: no heading for #{anchor} in {file or page}"


def _repository_files() -> list[Path]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard"], cwd=ROOT, capture_output=True,
                                check=True).stdout.decode().split("\0")
        return [ROOT / p for p in listed if p and (ROOT / p).is_file()]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: walk it
        skip = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache",
                ".hypothesis"}
        out = []
        for folder, dirs, files in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
            out += [Path(folder) / f for f in files]
        return out


def test_nothing_points_outside_the_repository():
    needle = ("shared" + "/spec").encode()  # spelled apart, so this file does not match
    files = _repository_files()
    assert any(f.name == "README.md" for f in files)
    hits = [str(f.relative_to(ROOT)) for f in files
            if ".venv" not in f.parts and ".git" not in f.parts and needle in f.read_bytes()]
    assert hits == [], f"point these at docs/ instead: {hits}"
