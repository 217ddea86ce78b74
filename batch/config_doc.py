"""The configuration reference, generated from :class:`hearth.batch.config.RunConfig`.

``docs/configuration.md`` (every key: type, default, allowed values, meaning) and
``examples/run.toml`` (every key at its default, with its meaning as a comment)
are rendered from the pydantic model itself, so they cannot drift from it:

    python -m hearth.batch.config_doc           # rewrite both files
    python -m hearth.batch.config_doc --check   # exit 1 if either is out of date

A key's meaning is the docstring written under its declaration in
``batch/config.py``; its type, default and bounds come from the field.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import math
import sys
import textwrap
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import annotated_types
from pydantic.fields import FieldInfo

from hearth.batch.config import RunConfig
from hearth.io.contract import INPUT_TABLES

ROOT = Path(__file__).resolve().parents[1]  # the repository root is the package directory
MARKDOWN_PATH = ROOT / "docs" / "configuration.md"
TOML_PATH = ROOT / "examples" / "run.toml"
COMMAND = "python -m hearth.batch.config_doc"

# How the reference is sectioned. A key that no group names is listed under
# "Other settings", so a new key is documented even before it is placed here.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Drift and the objective", (
        "drift_threshold", "drift_weight_in", "drift_weight_out", "tax_weight",
        "location_weight", "cost_weight", "preference_per_dollar", "objective",
        "lexicographic_tolerance", "location_stage", "location_exposure_tolerance",
        "exposure_basis")),
    ("Concentration", ("max_position_share", "max_sector_share", "concentration_weight",
                       "concentration_wind_down", "concentration_scope")),
    ("Tax pricing and harvesting", (
        "horizon_years", "discount_rate", "carryforward_years", "harvest_min_benefit",
        "harvest_min_loss_share")),
    ("Wash sales", ("wash_sale_days", "wash_sale_method")),
    ("Cash needs", ("cash_need_lead_days", "cash_reserve_days")),
    ("Goals", ("drift_weight_goal", "goal_glide_years", "goal_glide_floor")),
    ("Orders and the no-trade rule", (
        "default_cost_bps", "min_trade_value", "whole_shares", "share_increment", "dust_shares",
        "min_benefit_dollars", "min_benefit_share", "always_solve")),
    ("Solver", ("time_limit", "presolve", "warm_start")),
    ("The run", ("duckdb_memory_limit", "shard_size", "failure_rate_limit", "delta_target",
                 "openlineage_url", "openlineage_namespace")),
    ("Review routing", ("review_turnover", "review_tax_due", "review_order_share")),
)
OTHER = "Other settings"
# Input columns that take the place of a key for their record, beyond the
# household columns that share the key's name (found in the contract).
FALLBACK_FOR = {"default_cost_bps": "securities.cost_bps"}


@dataclass(frozen=True)
class Key:
    name: str
    type: str
    default: Any
    toml: str  # the default as a TOML value
    allowed: str
    doc: str
    overridden_by: tuple[str, ...]


def field_docstrings(model: type) -> dict[str, str]:
    """The docstring under each annotated attribute of a class body."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(model)))
    body = next(n for n in tree.body if isinstance(n, ast.ClassDef)).body
    docs: dict[str, str] = {}
    for stmt, nxt in zip(body, body[1:]):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[stmt.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(f'`"{v}"`' if isinstance(v, str) else f"`{v}`"
                            for v in typing.get_args(annotation))
    names = {float: "float", int: "integer", bool: "boolean", str: "string"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _number(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _allowed(info: FieldInfo) -> str:
    """The field's bounds in interval notation ("[0, 1)", "> 0"), or ""."""
    low = high = None
    for m in info.metadata:
        if isinstance(m, annotated_types.Ge):
            low = f"[{_number(m.ge)}"
        elif isinstance(m, annotated_types.Gt):
            low = f"({_number(m.gt)}"
        elif isinstance(m, annotated_types.Le):
            high = f"{_number(m.le)}]"
        elif isinstance(m, annotated_types.Lt):
            high = f"{_number(m.lt)})"
    if low and high:
        return f"{low}, {high}"
    if low:
        return ("≥ " if low[0] == "[" else "> ") + low[1:]
    if high:
        return ("≤ " if high[-1] == "]" else "< ") + high[:-1]
    return ""


def toml_value(value: Any, annotation: Any) -> str:
    """A default written as TOML (the types RunConfig uses)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if annotation is float or isinstance(value, float):
        x = float(value)
        if not math.isfinite(x):
            raise ValueError(f"{value!r} has no TOML form a RunConfig default may take")
        return repr(x)  # repr is valid TOML: 0.03, 1e-06, 5000.0
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"no TOML rendering for {value!r}")


def _overrides(name: str) -> tuple[str, ...]:
    found = [f"households.{name}"] if any(c.name == name for c in
                                          INPUT_TABLES["households"].columns) else []
    if name in FALLBACK_FOR:
        found.append(FALLBACK_FOR[name])
    return tuple(found)


def keys(model: type[RunConfig] = RunConfig) -> list[tuple[str, list[Key]]]:
    """The model's keys, grouped as ``GROUPS`` says, in declaration order otherwise."""
    docs = field_docstrings(model)
    fields = model.model_fields
    missing = [n for n in fields if not docs.get(n)]
    if missing:
        raise ValueError(f"RunConfig keys without a docstring: {', '.join(missing)}; "
                         "write one under each declaration in batch/config.py")

    def key(name: str) -> Key:
        info = fields[name]
        return Key(name=name, type=_type_name(info.annotation), default=info.default,
                   toml=toml_value(info.default, info.annotation), allowed=_allowed(info),
                   doc=docs[name], overridden_by=_overrides(name))

    placed = {n for _, names in GROUPS for n in names}
    out = [(title, [key(n) for n in names if n in fields]) for title, names in GROUPS]
    rest = [key(n) for n in fields if n not in placed]
    if rest:
        out.append((OTHER, rest))
    return [(title, ks) for title, ks in out if ks]


def _markdown_text(doc: str) -> str:
    """A docstring as one Markdown table cell."""
    return " ".join(doc.split()).replace("``", "`").replace("|", "\\|")


def render_markdown() -> str:
    lines = [
        "# Configuration reference",
        "",
        f"<!-- Generated by `{COMMAND}` from `batch/config.py`; edit the docstrings there,",
        "     then run the command. tests/batch/test_docs.py fails when this file is stale. -->",
        "",
        "A run is configured by one TOML file, `hearth run BOOK OUTPUT --run-date D --config "
        "run.toml`.",
        "Every key has a default, so the file is optional and may hold only the keys you change.",
        "The file is validated once, when the run starts, by a frozen pydantic model",
        "(`hearth.batch.config.RunConfig`): an unknown key, a value of the wrong type or one "
        "outside",
        "its allowed range stops the run with exit code 2 and a message naming the key.",
        "The resolved configuration is written into the run's manifest (`config`), and it is "
        "part of",
        "the run id: the same inputs and configuration give the same run id and the same rows.",
        "",
        "`examples/run.toml` holds every key at its default. Keys are top-level (no TOML tables).",
        "Money is dollars; \"fraction of value\" is a share of the household's value (0.03 = 3%).",
        "",
        "Per-record overrides: where an input column is named under a key, a non-null value",
        "in that column replaces the key for its household (or security). The households",
        "columns `tax_budget`, `turnover_limit` and `tlh_enabled` have no configuration key:",
        "they are per household only (no cap, no cap, harvesting on when absent).",
        "",
    ]
    for title, ks in keys():
        lines += [f"## {title}", "", "| key | type | default | allowed | meaning |",
                  "|---|---|---|---|---|"]
        for k in ks:
            meaning = _markdown_text(k.doc)
            if k.overridden_by:
                meaning += " Per record: " + ", ".join(f"`{c}`" for c in k.overridden_by) + "."
            lines.append(f"| `{k.name}` | {k.type} | `{k.toml}` | {k.allowed} | {meaning} |")
        lines.append("")
    return "\n".join(lines)


def _comment(text: str, width: int = 88) -> list[str]:
    flat = " ".join(text.replace("``", "`").split())
    return ["# " + line for line in textwrap.wrap(flat, width - 2)]


def render_toml() -> str:
    lines = [
        "# hearth run configuration: every key at its default.",
        f"# Generated by `{COMMAND}` from batch/config.py;",
        "# docs/configuration.md is the same reference as a table. Use it with",
        "#     hearth run BOOK OUTPUT --run-date YYYY-MM-DD --config run.toml",
        "# and keep only the keys you change: a missing key takes its default, an unknown",
        "# key is an error.",
    ]
    for title, ks in keys():
        lines += ["", f"# ---- {title} " + "-" * max(0, 80 - len(title)), ""]
        for k in ks:
            doc = k.doc
            if k.allowed:
                doc += " Allowed: " + k.allowed.replace("≥", ">=").replace("≤", "<=") + "."
            if k.overridden_by:
                doc += " Per record: " + ", ".join(k.overridden_by) + "."
            lines += _comment(doc)
            lines.append(f"{k.name} = {k.toml}")
            lines.append("")
        lines.pop()
    return "\n".join(lines) + "\n"


def outputs() -> dict[Path, str]:
    return {MARKDOWN_PATH: render_markdown(), TOML_PATH: render_toml()}


def stale() -> list[Path]:
    """The generated files whose contents differ from what the model renders."""
    out = []
    for path, text in outputs().items():
        try:
            current = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != text:
            out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if a generated file is out of date")
    args = p.parse_args(argv)
    if args.check:
        bad = stale()
        for path in bad:
            print(f"{path.relative_to(ROOT)} is out of date; run `{COMMAND}`", file=sys.stderr)
        return 1 if bad else 0
    for path, text in outputs().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
