"""The run report: one self-contained HTML page per committed run date, written next
to its manifest as ``<output>/_runs/<run_date>/report.html``.

Everything on the page is read through the manifest (``committed_files``), so the
report shows exactly the night a warehouse would load, and is compared with the
previous committed run date of the same output. The page fetches nothing: no
scripts, no external style sheets or fonts, and the plots are SVG drawn here (a
Content-Security-Policy of ``default-src 'none'`` makes a slip visible in the
browser). Every value taken from the data is HTML-escaped. Figures that a reader
might check carry ``data-metric`` / ``data-value`` attributes with the exact value.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hearth.batch.pipeline import STAGES
from hearth.io import fs
from hearth.io.contract import OUTPUT_SCHEMAS
from hearth.io.write import committed_files, manifest_path, read_manifest

REPORT_NAME = "report.html"
STATUS_ORDER = ("traded", "no_trade", "rejected", "infeasible", "error")
SOLVED = ("traded", "no_trade")  # households whose drift and turnover figures mean something
TOP_MESSAGES = 12  # message patterns listed per night; the rest are summed in one row
TOP_REVIEW = 5  # households listed per review reason, largest first
HIST_BINS = 12
COLORS = {"traded": "#2f7d4f", "no_trade": "#8a9bb0", "rejected": "#c98a1b",
          "infeasible": "#b5562f", "error": "#b02a37"}
BEFORE, AFTER, BAR = "#b9c3cf", "#2b6cb0", "#2b6cb0"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# a message's variable parts, masked so that one cause is one row however many hit it
_MASKS = ((re.compile(r"\[[^\]]*\]"), "[…]"), (re.compile(r"'[^']*'"), "'…'"),
          (re.compile(r"-?\$?-?\d[\d,]*(?:\.\d+)?(?:e-?\d+)?%?"), "#"))


@dataclass
class Night:
    """One committed run date: its manifest and its three output tables in DuckDB."""

    run_date: str
    manifest: dict[str, Any]
    con: duckdb.DuckDBPyConnection

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.con.execute(sql).fetchall()

    def one(self, sql: str) -> Any:
        row = self.con.execute(sql).fetchone()
        return row[0] if row else None


def _load(output: str, run_date: str) -> Night:
    manifest = read_manifest(output, run_date)
    files = committed_files(output, run_date)  # raises when the date is not committed
    assert manifest is not None
    con = duckdb.connect()
    for table, schema in OUTPUT_SCHEMAS.items():
        paths = files.get(table, [])
        if paths and not any(fs.is_remote(p) for p in paths):
            # a view over the files: DuckDB streams them for each figure, where loading a
            # night's trades whole (18.5 million rows at 20,000 households) took 3.5 GB of
            # the driver; no partition column is inferred from the run_date=... folder
            listed = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{listed}], "
                        "hive_partitioning = false)")
            continue
        # an object store's files are read through hearth.io.fs, file by file
        parts = [_read_parquet(p) for p in paths]
        data = pa.concat_tables(parts) if parts else schema.empty_table()
        con.register(table, data)
    return Night(run_date, manifest, con)


def _read_parquet(path: str) -> pa.Table:
    """One committed file, a local path or an object-store URI (read through
    ``hearth.io.fs``: the store's endpoint and credentials as the commit used them)."""
    if fs.is_remote(path):
        with fs.open_input(path) as f:
            return pq.ParquetFile(f).read()
    return pq.ParquetFile(path).read()


def _run_dates(output: str) -> list[str]:
    """The names under ``<output>/_runs`` (folders of a local OUTPUT, prefixes of a store)."""
    runs = os.path.join(output, "_runs")
    if fs.is_remote(output):
        return fs.listdir(runs)
    return os.listdir(runs) if os.path.isdir(runs) else []


def previous_run_date(output: str, run_date: str) -> str | None:
    """The latest run date before ``run_date`` in ``output`` with a committed manifest."""
    for name in sorted(_run_dates(output), reverse=True):
        if _DATE.match(name) and name < run_date:
            manifest = read_manifest(output, name)
            if manifest is not None and manifest.get("status") == "committed":
                return name
    return None


# -- formatting ---------------------------------------------------------------------------

def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, int | float) and math.isfinite(x)


def fmt_int(x: Any) -> str:
    return f"{int(x):,}" if _finite(x) else "–"


def fmt_money(x: Any) -> str:
    if not _finite(x):
        return "–"
    return f"{'−' if round(x) < 0 else ''}${abs(x):,.0f}"


def fmt_pct(x: Any, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%" if _finite(x) else "–"


def fmt_sec(x: Any) -> str:
    return f"{x:,.3f}" if _finite(x) else "–"


FORMATS: dict[str, Callable[[Any], str]] = {"int": fmt_int, "money": fmt_money, "pct": fmt_pct,
                                            "sec": fmt_sec}


@dataclass(frozen=True)
class Num:
    """A number in a table cell; ``metric`` names it for a reader checking the page."""

    value: Any
    kind: str = "int"
    metric: str | None = None

    def html(self) -> str:
        attrs = ""
        if self.metric is not None:
            raw = "" if not _finite(self.value) else (
                str(int(self.value)) if self.kind == "int" else repr(round(float(self.value), 6)))
            attrs = f' data-metric="{esc(self.metric)}" data-value="{esc(raw)}"'
        return f'<td class="num"{attrs}>{esc(FORMATS[self.kind](self.value))}</td>'


Cell = str | Num | None


def _table(headers: Sequence[str], rows: Iterable[Sequence[Cell]], cls: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(c.html() if isinstance(c, Num) else f"<td>{esc(c)}</td>" for c in row)
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}" class="none">none</td></tr>')
    return (f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _delta(now: Any, before: Any, kind: str) -> str:
    if not (_finite(now) and _finite(before)):
        return "–"
    d = now - before
    if kind == "pct":
        return f"{'+' if d >= 0 else '−'}{abs(100 * d):.1f} pts"
    sign = "+" if d > 0 else "−" if d < 0 else "±"
    text = FORMATS[kind](abs(d))
    if before:
        text += f" ({'+' if d >= 0 else '−'}{abs(d / before):.0%})"
    return sign + text


# -- plots --------------------------------------------------------------------------------

def _svg(width: int, height: int, title: str, body: str) -> str:
    return (f'<svg class="plot" role="img" aria-label="{esc(title)}" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}"><title>{esc(title)}</title>'
            f"{body}</svg>")


def _short(label: str, n: int = 24) -> str:
    return label if len(label) <= n else label[:n - 1] + "…"


def bars(items: Sequence[tuple[str, float]], fmt: Callable[[Any], str], title: str,
         colors: dict[str, str] | None = None) -> str:
    """Horizontal bars, one per (label, value), longest scaled to the plot's width."""
    if not items:
        return '<p class="none">nothing to plot</p>'
    label_w, bar_w, value_w, row_h = 160, 260, 100, 24
    top = max((abs(v) for _, v in items), default=0.0) or 1.0
    parts = []
    for i, (label, value) in enumerate(items):
        y = 4 + i * row_h
        w = max(1.0, bar_w * abs(value) / top) if value else 0.0
        color = (colors or {}).get(label, BAR)
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end">{esc(_short(label))}'
            f"<title>{esc(label)}</title></text>"
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" '
            f'fill="{esc(color)}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 16}">{esc(fmt(value))}</text>')
    return _svg(label_w + bar_w + value_w, 8 + len(items) * row_h, title, "".join(parts))


def nice_edges(lo: float, hi: float) -> np.ndarray:
    """Bin edges on round steps (1, 2, 2.5 or 5 times a power of ten) from ``lo`` to
    past ``hi``, about HIST_BINS of them."""
    span = hi - lo if hi > lo else max(abs(hi), 1e-6)
    raw = span / HIST_BINS
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw * (1 - 1e-9))
    start = math.floor(lo / step + 1e-9) * step
    n = max(1, math.ceil((hi - start) / step - 1e-9))  # np.histogram's last bin holds hi
    return start + step * np.arange(n + 1)


def histogram(series: Sequence[tuple[str, Sequence[float], str]], title: str,
              fmt_edge: Callable[[float], str], xlabel: str) -> str:
    """Counts per bin of each series, grouped side by side, on shared round bins from 0
    (or the smallest value, if negative) past the largest value."""
    values = [np.asarray(v, dtype=float) for _, v, _ in series]
    values = [v[np.isfinite(v)] for v in values]
    if not any(len(v) for v in values):
        return '<p class="none">nothing to plot</p>'
    lo = min(0.0, *(float(v.min()) for v in values if len(v)))
    hi = max(float(v.max()) for v in values if len(v))
    edges = nice_edges(lo, hi)
    n_bins = len(edges) - 1
    counts = [np.histogram(v, bins=edges)[0] for v in values]
    top = max(int(c.max()) for c in counts) or 1
    left, plot_w, plot_h, pad_top, bottom = 44, 480, 170, 28, 44
    bin_w = plot_w / n_bins
    group_w = bin_w * 0.84
    bar_w = group_w / len(series)
    parts = [f'<line x1="{left}" y1="{pad_top + plot_h}" x2="{left + plot_w}" '
             f'y2="{pad_top + plot_h}" class="axis"/>']
    for frac in (0.0, 0.5, 1.0):
        y = pad_top + plot_h * (1 - frac)
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
                     f"{round(top * frac):,}</text>")
        if frac:
            parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
                         'class="grid"/>')
    for s, (name, _, color) in enumerate(series):
        for b, n in enumerate(counts[s]):
            if not n:
                continue
            h = plot_h * n / top
            x = left + b * bin_w + (bin_w - group_w) / 2 + s * bar_w
            parts.append(f'<rect x="{x:.1f}" y="{pad_top + plot_h - h:.1f}" width="{bar_w:.1f}" '
                         f'height="{h:.1f}" fill="{esc(color)}"><title>{esc(name)} '
                         f"{esc(fmt_edge(edges[b]))}–{esc(fmt_edge(edges[b + 1]))}: {int(n):,}"
                         "</title></rect>")
    for b in range(0, n_bins + 1, 2 if n_bins > 8 else 1):
        x = left + b * bin_w
        parts.append(f'<text x="{x:.1f}" y="{pad_top + plot_h + 16}" text-anchor="middle" '
                     f'class="tick">{esc(fmt_edge(edges[b]))}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{pad_top + plot_h + 36}" '
                 f'text-anchor="middle" class="tick">{esc(xlabel)}</text>')
    x = left
    for name, _, color in series:
        parts.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{esc(color)}"/>'
                     f'<text x="{x + 17}" y="16">{esc(name)}</text>')
        x += 24 + 8 * len(name)
    return _svg(left + plot_w + 16, pad_top + plot_h + bottom, title, "".join(parts))


# -- the night's figures ------------------------------------------------------------------

def figures(night: Night) -> dict[str, Any]:
    """The headline numbers of a night, from its committed tables (the same figures
    for tonight and for the previous night, so their change compares like with like)."""
    r = night.rows("""
        SELECT count(*), count(*) FILTER (WHERE status = 'traded'),
               count(*) FILTER (WHERE status IN ('error', 'infeasible')),
               count(*) FILTER (WHERE needs_review),
               coalesce(sum(tax_savings_estimate), 0), coalesce(sum(tax_due_estimate), 0),
               coalesce(sum(tlh_losses), 0), coalesce(sum(realized_st_gain), 0),
               coalesce(sum(realized_lt_gain), 0), coalesce(sum(value), 0),
               median(drift_before) FILTER (WHERE status IN ('traded', 'no_trade')),
               median(drift_after) FILTER (WHERE status IN ('traded', 'no_trade')),
               median(turnover) FILTER (WHERE status = 'traded')
        FROM household_results""")[0]
    t = night.rows("SELECT count(*), coalesce(sum(notional), 0) FROM trades")[0]
    households = int(r[0])
    return {
        "households": households, "traded": int(r[1]), "failed": int(r[2]),
        "needs_review": int(r[3]), "review_share": r[3] / households if households else 0.0,
        "tax_savings_estimate": float(r[4]), "tax_due_estimate": float(r[5]),
        "tlh_losses": float(r[6]), "realized_st_gain": float(r[7]),
        "realized_lt_gain": float(r[8]), "value": float(r[9]),
        "median_drift_before": r[10], "median_drift_after": r[11], "median_turnover": r[12],
        "trades": int(t[0]), "traded_value": float(t[1]),
        "exceptions": int(night.one("SELECT count(*) FROM exceptions")),
    }


def message_pattern(message: str | None) -> str:
    """A message with its numbers, bracketed ids and quoted values masked."""
    if not message:
        return ""
    for pattern, mask in _MASKS:
        message = pattern.sub(mask, message)
    return message


def _ordered_statuses(counts: dict[str, int]) -> list[str]:
    return [s for s in STATUS_ORDER if s in counts] + sorted(set(counts) - set(STATUS_ORDER))


# -- sections -----------------------------------------------------------------------------

def _section(anchor: str, title: str, *body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{"".join(body)}</section>'


def _cards(f: dict[str, Any]) -> str:
    cards = [("households", Num(f["households"], "int", "households")),
             ("traded", Num(f["traded"], "int", "traded")),
             ("trades", Num(f["trades"], "int", "trades")),
             ("traded value", Num(f["traded_value"], "money", "traded_value")),
             ("tax savings estimate", Num(f["tax_savings_estimate"], "money",
                                          "tax_savings_estimate")),
             ("needs review", Num(f["review_share"], "pct", "review_share")),
             ("exceptions", Num(f["exceptions"], "int", "exceptions"))]
    out = []
    for label, num in cards:
        cell = num.html().replace("<td", "<div", 1).replace("</td>", "</div>")
        out.append(f'<div class="card">{cell}<div class="label">{esc(label)}</div></div>')
    return f'<div class="cards">{"".join(out)}</div>'


def _statuses(night: Night) -> str:
    rows = night.rows("SELECT status, count(*), sum(value) FROM household_results GROUP BY status")
    counts = {s: int(n) for s, n, _ in rows}
    value = {s: v for s, _, v in rows}
    total = sum(counts.values()) or 1
    order = _ordered_statuses(counts)
    table = _table(("status", "households", "share", "value before trading"),
                   [(s, Num(counts[s], "int", f"status.{s}"), Num(counts[s] / total, "pct"),
                     Num(value[s], "money", f"status_value.{s}")) for s in order])
    plot = bars([(s, counts[s]) for s in order], fmt_int, "households by status", COLORS)
    groups: dict[tuple[str, str], list[Any]] = {}
    for status, message in night.rows(
            "SELECT status, message FROM household_results WHERE status <> 'traded' "
            "ORDER BY status, household_id"):
        key = (status, message_pattern(message))
        entry = groups.setdefault(key, [0, message])
        entry[0] += 1
    ranked = sorted(groups.items(), key=lambda kv: (-kv[1][0], kv[0]))
    rows_out: list[Sequence[Cell]] = [(status, pattern or "(no message)", Num(n, "int"), example)
                                      for (status, pattern), (n, example) in ranked[:TOP_MESSAGES]]
    rest = sum(n for _, (n, _) in ranked[TOP_MESSAGES:])
    if rest:
        rows_out.append(("…", f"{len(ranked) - TOP_MESSAGES} other messages", Num(rest), ""))
    reasons = _table(("status", "message (numbers and ids masked)", "households", "example"),
                     rows_out, "messages")
    return _section("status", "Households by status",
                    f'<div class="row"><div>{table}</div><div>{plot}</div></div>',
                    "<h3>Why, for households that did not trade</h3>", reasons)


def _tax(night: Night, f: dict[str, Any]) -> str:
    summary = _table(("figure", "dollars"), [
        ("tax savings estimate (present value vs the naive baseline)",
         Num(f["tax_savings_estimate"], "money", "tax_savings_estimate")),
        ("tax due estimate (extra tax this year)", Num(f["tax_due_estimate"], "money",
                                                       "tax_due_estimate")),
        ("losses harvested", Num(f["tlh_losses"], "money", "tlh_losses")),
        ("realized short-term gain (net)", Num(f["realized_st_gain"], "money",
                                               "realized_st_gain")),
        ("realized long-term gain (net)", Num(f["realized_lt_gain"], "money",
                                              "realized_lt_gain")),
        ("traded value (buys + sells)", Num(f["traded_value"], "money", "traded_value")),
    ])
    terms = night.rows("""
        SELECT term, count(*), coalesce(sum(realized_gain) FILTER (WHERE realized_gain > 0), 0),
               coalesce(sum(realized_gain) FILTER (WHERE realized_gain < 0), 0),
               coalesce(sum(realized_gain), 0), count(*) FILTER (WHERE wash_sale),
               coalesce(sum(disallowed_loss), 0)
        FROM trades WHERE side = 'sell' AND term IS NOT NULL GROUP BY term ORDER BY term DESC""")
    by_term = _table(("term", "taxable sell lines", "gains", "losses", "net", "wash sales",
                      "disallowed loss"),
                     [(t, Num(n), Num(g, "money", f"gain.{t}"), Num(lo, "money", f"loss.{t}"),
                       Num(net, "money", f"net.{t}"), Num(w), Num(d, "money", f"disallowed.{t}"))
                      for t, n, g, lo, net, w, d in terms])
    reasons = night.rows("""
        SELECT reason, count(*), count(*) FILTER (WHERE side = 'buy'),
               count(*) FILTER (WHERE side = 'sell'), sum(notional),
               coalesce(sum(realized_gain), 0)
        FROM trades GROUP BY reason ORDER BY sum(notional) DESC, reason""")
    by_reason = _table(("reason", "lines", "buys", "sells", "notional", "realized gain"),
                       [(r, Num(n, "int", f"trades.{r}"), Num(b), Num(s),
                         Num(v, "money", f"notional.{r}"), Num(g, "money"))
                        for r, n, b, s, v, g in reasons])
    gains_plot = bars([(f"{t} gains", g) for t, _, g, *_ in terms]
                      + [(f"{t} losses", lo) for t, _, _, lo, *_ in terms],
                      fmt_money, "realized gains and losses by term")
    return _section("tax", "Tax savings and realized gains",
                    f'<div class="row"><div>{summary}</div><div>{gains_plot}</div></div>',
                    "<h3>Realized gains by term (taxable sells)</h3>", by_term,
                    "<h3>Trades by reason</h3>", by_reason)


def _quantiles(values: Sequence[float]) -> list[Num]:
    v = np.asarray([x for x in values if _finite(x)], dtype=float)
    if not len(v):
        return [Num(None, "pct")] * 4
    return [Num(float(q), "pct") for q in np.quantile(v, (0.5, 0.9, 0.99))] + \
        [Num(float(v.max()), "pct")]


def _drift_turnover(night: Night) -> str:
    solved = night.rows("SELECT drift_before, drift_after, max_drift_before, max_drift_after "
                        "FROM household_results WHERE status IN ('traded', 'no_trade')")
    cols = list(zip(*solved)) if solved else [(), (), (), ()]
    turnover = [t for (t,) in night.rows(
        "SELECT turnover FROM household_results WHERE status = 'traded'")]
    stats = _table(("measure", "households", "median", "p90", "p99", "max"), [
        ("total drift before", Num(len(cols[0])), *_quantiles(cols[0])),
        ("total drift after", Num(len(cols[1])), *_quantiles(cols[1])),
        ("largest class drift before", Num(len(cols[2])), *_quantiles(cols[2])),
        ("largest class drift after", Num(len(cols[3])), *_quantiles(cols[3])),
        ("turnover (traded households)", Num(len(turnover)), *_quantiles(turnover)),
    ])
    drift_plot = histogram([("before", cols[0], BEFORE), ("after", cols[1], AFTER)],
                           "total drift before and after, households per bin",
                           lambda x: fmt_pct(x, 1),
                           "total drift: sum over asset classes of |exposure − target| / value")
    turnover_plot = histogram([("turnover", turnover, AFTER)],
                              "turnover of traded households, households per bin",
                              lambda x: fmt_pct(x, 0), "turnover: (buys + sells) / 2 / value")
    return _section("drift", "Drift and turnover",
                    '<p class="note">Households that traded or needed no trade; errors, '
                    "infeasible and rejected households have no proposal to measure.</p>",
                    stats, f'<div class="row"><div>{drift_plot}</div><div>{turnover_plot}</div></div>')


def _review(night: Night, f: dict[str, Any]) -> str:
    reasons = night.rows("""
        SELECT reason, count(*) FROM (SELECT unnest(review_reasons) AS reason
                                      FROM household_results WHERE needs_review)
        GROUP BY reason ORDER BY count(*) DESC, reason""")
    rows = night.rows("""
        SELECT household_id, status, value, n_trades, turnover, tax_due_estimate, review_reasons
        FROM household_results WHERE needs_review
        ORDER BY value DESC NULLS LAST, household_id""")
    table = _table(("reason", "households"), [(r, Num(n, "int", f"review.{r}")) for r, n in reasons])
    plot = bars([(r, n) for r, n in reasons], fmt_int, "review queue by reason")
    parts = [f'<p>{esc(fmt_int(f["needs_review"]))} of {esc(fmt_int(f["households"]))} '
             f'households ({esc(fmt_pct(f["review_share"]))}) go to a person before execution; '
             'a household can have several reasons.</p>',
             f'<div class="row"><div>{table}</div><div>{plot}</div></div>']
    for reason, n in reasons:
        top = [row for row in rows if reason in (row[6] or [])][:TOP_REVIEW]
        parts.append(f"<h3>{esc(reason)}: the largest {len(top)} of {n:,}</h3>")
        parts.append(_table(("household", "status", "value", "trades", "turnover", "tax due",
                             "all reasons"),
                            [(h, s, Num(v, "money"), Num(k), Num(t, "pct"), Num(d, "money"),
                              ", ".join(rr or [])) for h, s, v, k, t, d, rr in top]))
    return _section("review", "Review queue", *parts)


def _exceptions(night: Night) -> str:
    rows = night.rows("""
        SELECT source_table, code, count(*), count(DISTINCT household_id),
               min(message) FROM exceptions GROUP BY source_table, code
        ORDER BY count(*) DESC, source_table, code""")
    table = _table(("source table", "code", "rows", "households", "example message"),
                   [(t, c, Num(n, "int", f"exceptions.{t}.{c}"), Num(h), m)
                    for t, c, n, h, m in rows])
    by_code: dict[str, int] = {}
    for _, c, n, _, _ in rows:
        by_code[c] = by_code.get(c, 0) + int(n)
    plot = bars(sorted(by_code.items(), key=lambda kv: (-kv[1], kv[0])), fmt_int,
                "exceptions by code")
    unkeyed = night.manifest.get("unkeyed_rows") or {}
    note = ""
    if unkeyed:
        note = ('<p class="note">Rows that belong to no household: '
                + esc(", ".join(f"{t} {n:,}" for t, n in sorted(unkeyed.items()))) + "</p>")
    return _section("exceptions", "Exceptions", table, plot, note)


def _stages(night: Night) -> str:
    m = night.manifest
    recorded = m.get("stage_seconds") or {}
    order = [k for k in ("prepare", *STAGES, "write") if k in recorded]
    wall = {k: recorded[k] for k in order + sorted(set(recorded) - set(order))}  # pipeline order
    cpu = m.get("stage_cpu_seconds") or {}
    total = sum(wall.values()) or 1.0
    headers = ["stage", "seconds (wall clock, summed over shards)", "share"]
    if cpu:
        headers.append("CPU seconds")
    rows = []
    for stage, sec in wall.items():
        row: list[Cell] = [stage, Num(sec, "sec", f"stage.{stage}"), Num(sec / total, "pct")]
        if cpu:
            row.append(Num(cpu.get(stage), "sec", f"stage_cpu.{stage}"))
        rows.append(row)
    note = ("Each stage's seconds are the wall-clock time the shards spent in it, added up over "
            "shards: with several workers in parallel they add up to more than the run took; "
            "<code>prepare</code> is the driver reading, validating and sharding the book. ")
    note += ("CPU seconds are the processes' own CPU time." if cpu else
             "This run's manifest records no CPU time per stage.")
    solve = night.rows("""
        SELECT count(*) FILTER (WHERE solve_ms > 0), coalesce(sum(solve_ms), 0) / 1000,
               median(solve_ms) FILTER (WHERE solve_ms > 0),
               quantile_cont(solve_ms, 0.95) FILTER (WHERE solve_ms > 0),
               coalesce(sum(iterations), 0), count(*) FILTER (WHERE warm_started)
        FROM household_results""")[0]
    facts = _table(("run", "value"), [
        ("executor", str(m.get("executor", "–"))),
        ("shards × shard size", f"{m.get('shards', '–')} × {m.get('shard_size', '–')}"),
        ("households solved", Num(m.get("households_solved"))),
        ("median model size (columns)", Num(m.get("median_model_cols"))),
        ("solver wall time, all households (s)", Num(solve[1], "sec")),
        ("solver ms per household: median / p95",
         f"{fmt_sec(solve[2])} / {fmt_sec(solve[3])}"),
        ("simplex iterations", Num(solve[4])),
        ("warm-started households", Num(solve[5])),
    ])
    plot = bars(list(wall.items()), lambda s: f"{s:,.3f} s", "seconds per stage")
    return _section("stages", "Stage times", f'<p class="note">{note}</p>',
                    f'<div class="row"><div>{_table(headers, rows)}</div><div>{plot}</div></div>',
                    "<h3>Solver</h3>", facts)


def _change(night: Night, f: dict[str, Any], prev: Night | None,
            pf: dict[str, Any] | None) -> str:
    if prev is None or pf is None:
        return _section("change", "Change since the previous night",
                        '<p class="none">No earlier committed run date in this output.</p>')
    lines = [("households", "households", "int"), ("traded households", "traded", "int"),
             ("error or infeasible", "failed", "int"), ("trades", "trades", "int"),
             ("traded value", "traded_value", "money"), ("exceptions", "exceptions", "int"),
             ("tax savings estimate", "tax_savings_estimate", "money"),
             ("tax due estimate", "tax_due_estimate", "money"),
             ("losses harvested", "tlh_losses", "money"),
             ("realized short-term gain", "realized_st_gain", "money"),
             ("realized long-term gain", "realized_lt_gain", "money"),
             ("needs review", "needs_review", "int"), ("review share", "review_share", "pct"),
             ("median drift after", "median_drift_after", "pct")]
    table = _table(("figure", prev.run_date, night.run_date, "change"),
                   [(label, Num(pf[key], kind, f"prev.{key}"), Num(f[key], kind),
                     _delta(f[key], pf[key], kind)) for label, key, kind in lines])
    before = dict(prev.rows("SELECT household_id, status FROM household_results"))
    now = dict(night.rows("SELECT household_id, status FROM household_results"))
    moves: dict[tuple[str, str], int] = {}
    for h in before.keys() & now.keys():
        if before[h] != now[h]:
            moves[(before[h], now[h])] = moves.get((before[h], now[h]), 0) + 1
    churn = _table(("households", "count"), [
        ("new tonight", Num(len(now.keys() - before.keys()), "int", "households_new")),
        ("gone since", Num(len(before.keys() - now.keys()), "int", "households_gone")),
        ("status changed", Num(sum(moves.values()), "int", "status_changed")),
    ])
    moved = _table(("status then", "status now", "households"),
                   [(a, b, Num(n)) for (a, b), n in sorted(moves.items(), key=lambda kv: -kv[1])])
    return _section("change", "Change since the previous night",
                    f'<p>Compared with <b>{esc(prev.run_date)}</b> (run '
                    f'<code>{esc(prev.manifest.get("run_id"))}</code>).</p>', table,
                    f'<div class="row"><div>{churn}</div><div>{moved}</div></div>')


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 color:#1d2733;background:#f6f7f9;margin:0}
main{max-width:1220px;margin:0 auto;padding:20px 28px 48px}
h1{font-size:24px;margin:4px 0 2px}h2{font-size:18px;margin:0 0 10px;border-bottom:2px solid #e1e5ea;
 padding-bottom:4px}h3{font-size:14px;margin:16px 0 6px;color:#3b4a5c}
.sub{color:#5b6878;margin:0 0 14px}nav a{margin-right:12px;color:#2b6cb0;text-decoration:none}
section{background:#fff;border:1px solid #e1e5ea;border-radius:8px;padding:14px 18px;margin:14px 0}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{background:#fff;border:1px solid #e1e5ea;border-radius:8px;padding:10px 14px;min-width:130px}
.card .num{font-size:20px;font-weight:600;text-align:left}.card .label{color:#5b6878;font-size:12px}
table{border-collapse:collapse;margin:4px 0 8px;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid #edf0f3;text-align:left;vertical-align:top}
th{background:#f0f3f6;font-weight:600;font-size:12px;color:#3b4a5c}
td.num{text-align:right;white-space:nowrap}tbody tr:nth-child(even){background:#fafbfc}
table.messages td:nth-child(2),table.messages td:nth-child(4){max-width:420px;font-size:12px}
.row{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
.none,.note{color:#6b7785;font-size:12px}code{font-size:12px}
svg.plot{font:12px system-ui,"DejaVu Sans",sans-serif;fill:#1d2733;overflow:visible}
svg .tick{fill:#5b6878;font-size:11px}svg .axis{stroke:#8a96a3}svg .grid{stroke:#edf0f3}
"""


def render(night: Night, prev: Night | None) -> str:
    """The report page of ``night``, compared with ``prev`` (None for the first night)."""
    f = figures(night)
    pf = figures(prev) if prev is not None else None
    m = night.manifest
    sections = [_statuses(night), _tax(night, f), _drift_turnover(night), _review(night, f),
                _exceptions(night), _stages(night), _change(night, f, prev, pf)]
    nav = "".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in (
        ("status", "statuses"), ("tax", "tax"), ("drift", "drift & turnover"),
        ("review", "review"), ("exceptions", "exceptions"), ("stages", "stage times"),
        ("change", "since last night")))
    sub = (f'run <code>{esc(m.get("run_id"))}</code> · commit <code>{esc(m.get("commit"))}</code>'
           f' · contract {esc(m.get("contract_version"))} · hearth {esc(m.get("hearth_version"))}'
           f' · read through <code>_runs/{esc(night.run_date)}/manifest.json</code>'
           + (f" · compared with {esc(prev.run_date)}" if prev is not None else ""))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>hearth run report {esc(night.run_date)}</title><style>{CSS}</style></head>"
            f"<body><main><h1>hearth run report · {esc(night.run_date)}</h1>"
            f'<p class="sub">{sub}</p><nav>{nav}</nav>{_cards(f)}{"".join(sections)}'
            "</main></body></html>\n")


def _write_atomic(path: str, text: str) -> None:
    if fs.is_remote(path):
        fs.write_bytes(path, text.encode("utf-8"))  # one PUT: the old page or the new one
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_report(output: str, run_date: str) -> str:
    """Write ``<output>/_runs/<run_date>/report.html`` for a committed run date, compared
    with the previous committed run date of the same output; returns its path (a URI
    for an object-store OUTPUT, written through ``hearth.io.fs``). Raises
    FileNotFoundError when ``run_date`` has not been committed."""
    night = _load(output, run_date)
    before = previous_run_date(output, run_date)
    prev = _load(output, before) if before is not None else None
    try:
        page = render(night, prev)
    finally:
        night.con.close()
        if prev is not None:
            prev.con.close()
    path = os.path.join(os.path.dirname(manifest_path(output, run_date)), REPORT_NAME)
    _write_atomic(path, page)
    return path

