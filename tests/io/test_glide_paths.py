"""Glide paths (docs/data-contract.md, glide_paths): target weights by effective date,
interpolated linearly to the run date, per model or per household.

The expected weights come from ``np.interp`` per asset class (a class a date does not
list weighs 0 there), written independently of ``glide_targets``. Real Parquet books,
real DuckDB validation and sharding, real ``run_book`` nights with HiGHS."""

from __future__ import annotations

import os
import re

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hearth.batch.config import RunConfig
from hearth.batch.generate import MODELS, generate
from hearth.batch.run import run_book
from hearth.cluster.local import LocalExecutor
from hearth.io.households import glide_targets, households, reference
from hearth.io.read import open_book
from hearth.io.shards import prepare, read_shard
from hearth.io.validate import unkeyed_rows, validate

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AS_OF = "2026-12-01"  # before the first effective date of the model path
GLIDE_MODEL = "moderate"
# the model from 80/20 to 60/40 over 2027
MODEL_PATH = {"2027-01-01": {"us_equity": 0.8, "us_bond": 0.2},
              "2027-12-31": {"us_equity": 0.6, "us_bond": 0.4}}
# H0000001's own path: starts in March, adds cash for a while, ends in November
OWN_PATH = {"2027-03-01": {"us_equity": 0.5, "us_bond": 0.5},
            "2027-09-01": {"us_equity": 0.4, "us_bond": 0.4, "cash": 0.2},
            "2027-11-01": {"us_equity": 0.4, "us_bond": 0.6}}
CUSTOM = {"H0000002": {"us_equity": 0.5, "us_bond": 0.5},
          "H0000003": {"us_equity": 0.3, "us_bond": 0.7}}
# H0000003 has custom targets AND a path of its own: the custom targets win
SHADOWED_PATH = {"2027-01-01": {"us_equity": 1.0}, "2027-12-31": {"us_bond": 1.0}}
MODEL_OF = {"H0000000": GLIDE_MODEL, "H0000001": GLIDE_MODEL, "H0000002": GLIDE_MODEL,
            "H0000003": GLIDE_MODEL, "H0000004": "growth", "H0000005": "conservative"}


def interpolated(path: dict[str, dict[str, float]], day: str) -> dict[str, float]:
    """The oracle: per class, np.interp over the effective dates (flat outside them)."""
    dates = np.array(sorted(path), dtype="datetime64[D]").astype(np.int64)
    t = np.datetime64(day, "D").astype(np.int64)
    classes = sorted({k for w in path.values() for k in w})
    return {k: float(np.interp(t, dates, [path[d].get(k, 0.0) for d in sorted(path)]))
            for k in classes}


def path_rows(owner_column: str, owner: str, path: dict[str, dict[str, float]]) -> list[dict]:
    return [{owner_column: owner, "effective_date": np.datetime64(d, "D"), "asset_class": k,
             "weight": w} for d, ws in path.items() for k, w in ws.items()]


def glide_table(rows: list[dict]) -> pa.Table:
    return pa.table({
        "model_id": pa.array([r.get("model_id") for r in rows], pa.string()),
        "household_id": pa.array([r.get("household_id") for r in rows], pa.string()),
        "effective_date": pa.array([None if r.get("effective_date") is None
                                    else r["effective_date"].item() for r in rows], pa.date32()),
        "asset_class": pa.array([r.get("asset_class") for r in rows], pa.string()),
        "weight": pa.array([r.get("weight") for r in rows], pa.float64())})


def days_of_2027(step: str = "1st and 15th") -> list[str]:
    months = [f"2027-{m:02d}" for m in range(1, 13)]
    return [f"{m}-{d}" for m in months for d in (("01", "15") if step == "1st and 15th" else ("01",))]


# -- glide_targets, on arrays ---------------------------------------------------------------

def test_glide_targets_is_the_linear_interpolation_for_every_owner_at_once():
    paths = {"A": MODEL_PATH, "B": OWN_PATH,
             "C": {"2027-06-01": {"x": 0.25, "y": 0.75}},  # one date: flat for ever
             "D": {"2026-01-01": {"x": 1.0}, "2026-01-03": {"y": 1.0},  # a two-day step
                   "2028-01-01": {"x": 0.5, "z": 0.5}}}
    rows = [r for owner, p in paths.items() for r in path_rows("model_id", owner, p)]
    table = glide_table(rows[::-1])  # row order does not matter
    days = np.arange(np.datetime64("2025-12-25"), np.datetime64("2028-02-10"), 3)
    for day in [*days, np.datetime64("2026-01-02"), np.datetime64("2027-09-01")]:
        got = glide_targets(table, "model_id", day)
        assert set(got) == set(paths)
        for owner, path in paths.items():
            classes, weights = got[owner]
            want = interpolated(path, str(day))
            resolved = dict(zip(classes, weights.tolist()))
            for k, w in want.items():
                assert resolved.get(k, 0.0) == pytest.approx(w, abs=1e-12), (owner, str(day), k)
            assert set(resolved) <= set(want)
            assert weights.sum() == pytest.approx(1.0, abs=1e-12)


def test_glide_targets_known_values():
    table = glide_table(path_rows("model_id", "M", MODEL_PATH))
    at = {d: dict(zip(*glide_targets(table, "model_id", np.datetime64(d))["M"]))
          for d in ("2026-06-01", "2027-01-01", "2027-07-02", "2027-12-31", "2029-01-01")}
    assert at["2026-06-01"] == {"us_bond": 0.2, "us_equity": 0.8}  # before the first date
    assert at["2027-01-01"] == {"us_bond": 0.2, "us_equity": 0.8}
    # 2027-07-02 is day 182 of 364: halfway
    assert at["2027-07-02"]["us_equity"] == pytest.approx(0.7, abs=1e-15)
    assert at["2027-07-02"]["us_bond"] == pytest.approx(0.3, abs=1e-15)
    assert at["2027-12-31"] == {"us_bond": 0.4, "us_equity": 0.6}
    assert at["2029-01-01"] == {"us_bond": 0.4, "us_equity": 0.6}  # after the last date


def test_glide_targets_skips_rows_it_cannot_read():
    rows = path_rows("household_id", "H", MODEL_PATH) + [
        {"household_id": None, "effective_date": np.datetime64("2027-01-01"),
         "asset_class": "x", "weight": 1.0},
        {"household_id": "H", "effective_date": None, "asset_class": "x", "weight": 1.0},
        {"household_id": "H", "effective_date": np.datetime64("2027-06-01"),
         "asset_class": None, "weight": 1.0},
        {"household_id": "H", "effective_date": np.datetime64("2027-06-01"),
         "asset_class": "x", "weight": None},
        {"household_id": "H", "effective_date": np.datetime64("2027-06-01"),
         "asset_class": "x", "weight": float("nan")}]
    got = glide_targets(glide_table(rows), "household_id", np.datetime64("2027-07-02"))
    assert set(got) == {"H"}
    assert dict(zip(got["H"][0], got["H"][1].round(12).tolist())) == \
        {"us_bond": 0.3, "us_equity": 0.7}
    assert glide_targets(glide_table([]), "household_id", np.datetime64("2027-07-02")) == {}


# -- a tiny generated book with glide paths ---------------------------------------------------

def write_glide_book(root: str, glide_rows: list[dict] | None = None) -> str:
    """Six small households as of 2026-12-01: H0000000-3 on the glide model (H1 with
    its own path, H2 custom targets, H3 custom targets and a path of its own), H4 and
    H5 on models without a path. H0000000 (a Roth and a 529: no tax) gets no turnover
    cap and no held-away assets, so every night it can trade all the way to that night's
    target."""
    generate(root, 6, seed=11, as_of=AS_OF, bad_fraction=0.0, profile="small")
    hh = pq.read_table(os.path.join(root, "households.parquet"))
    ids = hh.column("household_id").to_pylist()
    assert ids == sorted(MODEL_OF)
    hh = hh.set_column(hh.schema.get_field_index("model_id"), "model_id",
                       pa.array([MODEL_OF[h] for h in ids], pa.string()))
    limit = hh.column("turnover_limit").to_pylist()
    hh = hh.set_column(hh.schema.get_field_index("turnover_limit"), "turnover_limit",
                       pa.array([None, *limit[1:]], pa.float64()))
    held_away = pq.read_table(os.path.join(root, "held_away.parquet"))
    keep = pa.array([h != "H0000000" for h in held_away.column("household_id").to_pylist()])
    pq.write_table(held_away.filter(keep), os.path.join(root, "held_away.parquet"))
    pq.write_table(hh, os.path.join(root, "households.parquet"))
    custom = [(h, k, w) for h, ws in CUSTOM.items() for k, w in ws.items()]
    pq.write_table(pa.table({"household_id": [c[0] for c in custom],
                             "asset_class": [c[1] for c in custom],
                             "weight": [c[2] for c in custom]}),
                   os.path.join(root, "household_targets.parquet"))
    if glide_rows is None:
        glide_rows = (path_rows("model_id", GLIDE_MODEL, MODEL_PATH)
                      + path_rows("household_id", "H0000001", OWN_PATH)
                      + path_rows("household_id", "H0000003", SHADOWED_PATH))
    pq.write_table(glide_table(glide_rows), os.path.join(root, "glide_paths.parquet"))
    return root


def expected_target(hid: str, day: str) -> dict[str, float]:
    """The precedence: custom targets, own path, the model's path, the model's targets."""
    if hid in CUSTOM:
        return CUSTOM[hid]
    if hid == "H0000001":
        return interpolated(OWN_PATH, day)
    if MODEL_OF[hid] == GLIDE_MODEL:
        return interpolated(MODEL_PATH, day)
    return MODELS[MODEL_OF[hid]]


def resolved_targets(book: str, days: list[str], prep: str
                     ) -> dict[str, dict[str, dict[str, float]]]:
    """day -> household -> Household.target by class, as the run assembles it: open,
    validate, shard (2 households a shard) once, then read each shard back and build
    its households on each day (the run date matters only there)."""
    con = open_book(book)
    validate(con, AS_OF)
    assert con.execute("SELECT count(*) FROM exceptions_found").fetchone() == (0,)
    plan = prepare(con, prep, shard_size=2)
    assert len(plan.shards) > 1
    out: dict[str, dict[str, dict[str, float]]] = {day: {} for day in days}
    for shard in plan.shards:
        data = read_shard(plan.root, shard, duckdb.connect())
        ref = reference(data.tables, 5.0)
        for day in days:
            for item in households(data, np.datetime64(day, "D"), ref):
                assert item.household is not None, item.error
                hh = item.household
                out[day][item.household_id] = dict(zip(hh.classes, hh.target.tolist()))
    return out


@pytest.fixture(scope="module")
def glide_book(tmp_path_factory) -> str:
    return write_glide_book(str(tmp_path_factory.mktemp("glide") / "book"))


def test_each_household_target_through_2027_follows_the_precedence(glide_book, tmp_path):
    assert len(days_of_2027()) == 24
    days = ["2026-12-15", *days_of_2027(), "2027-07-02", "2028-02-01"]
    nights = resolved_targets(glide_book, days, str(tmp_path / "prep"))
    for day, got in nights.items():
        assert set(got) == set(MODEL_OF)
        for hid, target in got.items():
            want = expected_target(hid, day)
            for k, w in target.items():
                assert w == pytest.approx(want.get(k, 0.0), abs=1e-12), (hid, day, k)
            assert {k for k, w in want.items() if w > 0} <= set(target), (hid, day)
            assert sum(target.values()) == pytest.approx(1.0, abs=1e-12)
    # the path really moves: mid-year the glide model asks for 70/30, not its targets
    mid = nights["2027-07-02"]
    assert mid["H0000000"]["us_equity"] == pytest.approx(0.7, abs=1e-12)
    assert mid["H0000000"]["intl_equity"] == 0.0 != MODELS[GLIDE_MODEL]["intl_equity"]
    # H1's cash: 0 on 2027-03-01, 0.2 on 2027-09-01: on 2027-07-02 it is 0.2 * 123/184
    assert mid["H0000001"]["cash"] == pytest.approx(0.2 * 123 / 184, abs=1e-12)


# -- real nights --------------------------------------------------------------------------

def _exposure(book: str) -> dict[str, tuple[dict[str, float], float, dict[str, float]]]:
    """Per household, from the input files (docs/data-contract.md, drift_before): dollars
    per class before trading (cash after today's flows, held-away included), V, and
    the asset class of every security."""
    con = duckdb.connect()
    f = {t: f"read_parquet('{os.path.join(book, t + '.parquet')}')" for t in
         ("accounts", "lots", "securities", "held_away")}
    rows = con.execute(f"""
        SELECT a.household_id, s.asset_class, sum(l.quantity * s.price)
        FROM {f['lots']} l JOIN {f['accounts']} a USING (account_id)
        JOIN {f['securities']} s USING (security_id) GROUP BY ALL
        UNION ALL
        SELECT household_id, 'cash', sum(cash + contribution - withdrawal)
        FROM {f['accounts']} GROUP BY ALL
        UNION ALL
        SELECT household_id, asset_class, sum(value) FROM {f['held_away']} GROUP BY ALL
        """).fetchall()
    classes = dict(con.execute(f"SELECT security_id, asset_class FROM {f['securities']}").fetchall())
    out: dict[str, tuple[dict[str, float], float, dict[str, float]]] = {}
    for hid, k, v in rows:
        exp = out.setdefault(hid, ({}, 0.0, classes))[0]
        exp[k] = exp.get(k, 0.0) + v
    return {hid: (e, sum(e.values()), c) for hid, (e, _, c) in out.items()}


def _drift(exposure: dict[str, float], v: float, target: dict[str, float]) -> float:
    classes = set(exposure) | set(target)
    return sum(abs(exposure.get(k, 0.0) - target.get(k, 0.0) * v) for k in classes) / v


def _night(out: str, day: str) -> tuple[dict[str, dict], list[dict]]:
    results = pq.read_table(os.path.join(out, "household_results", f"run_date={day}")).to_pylist()
    trades = pq.read_table(os.path.join(out, "trades", f"run_date={day}")).to_pylist()
    return {r["household_id"]: r for r in results}, trades


@pytest.mark.slow
def test_a_year_of_nights_trades_toward_the_interpolated_target(glide_book, tmp_path):
    """One run_book on the 1st of every month of 2027 over the same book: what each
    household's model measured its drift against (drift_before, recomputed here from
    the input files) is the interpolated target of that night, and what it traded
    moved the household toward it."""
    out = str(tmp_path / "out")
    exposure = _exposure(glide_book)
    moved = {"H0000000": 0, "H0000001": 0}
    net_equity_buys = []
    for day in days_of_2027("monthly"):
        run_book(glide_book, out, day, RunConfig(shard_size=4), LocalExecutor(workers=1),
                 progress=False)
        results, trades = _night(out, day)
        for hid in MODEL_OF:
            r = results[hid]
            assert r["status"] in ("traded", "no_trade"), (day, hid, r["message"])
            before, v, _ = exposure[hid]
            want = expected_target(hid, day)
            assert r["drift_before"] == pytest.approx(_drift(before, v, want), rel=1e-9, abs=1e-9), \
                (day, hid)
        for hid in moved:
            before, v, sec_class = exposure[hid]
            want = expected_target(hid, day)
            # the static targets would measure another drift: the path is what was used
            assert abs(_drift(before, v, MODELS[GLIDE_MODEL]) - results[hid]["drift_before"]) > 0.05
            if results[hid]["status"] != "traded":
                continue
            after = dict(before)
            for t in trades:
                if t["household_id"] == hid:
                    k = sec_class[t["security_id"]]
                    after[k] = after.get(k, 0.0) + (t["notional"] if t["side"] == "buy"
                                                    else -t["notional"])
            invested = [k for k in set(after) | set(want) if k != "cash"]
            gap_before = sum(abs(before.get(k, 0.0) - want.get(k, 0.0) * v) for k in invested)
            gap_after = sum(abs(after.get(k, 0.0) - want.get(k, 0.0) * v) for k in invested)
            assert gap_after < gap_before, (day, hid)
            moved[hid] += 1
            if hid == "H0000000":  # nothing holds it back: it lands inside the band
                for k in invested:
                    assert abs(after.get(k, 0.0) / v - want.get(k, 0.0)) <= 0.03, (day, k)
        net_equity_buys.append(sum(
            (t["notional"] if t["side"] == "buy" else -t["notional"]) for t in trades
            if t["household_id"] == "H0000000" and exposure["H0000000"][2][t["security_id"]]
            == "us_equity"))
    assert moved["H0000000"] >= 10 and moved["H0000001"] >= 10, moved
    # the same holdings every night and a target falling from 80% to 60% US equity:
    # the household buys less US equity as the year goes on
    assert all(a > b for a, b in zip(net_equity_buys, net_equity_buys[1:])), net_equity_buys
    # by about the target's fall over the 11 months: 0.2 * 334 / 364 of V
    v = exposure["H0000000"][1]
    assert net_equity_buys[0] - net_equity_buys[-1] == pytest.approx(0.2 * 334 / 364 * v,
                                                                      rel=0.05)


def test_a_path_equal_to_the_targets_changes_nothing(tmp_path):
    """A one-date path holding the model's targets is the model's targets: the same
    trades and results, byte for byte in every column but run_id and solve_ms."""
    same = [{"model_id": m, "effective_date": np.datetime64("2027-06-01"), "asset_class": k,
             "weight": w} for m in (GLIDE_MODEL, "growth") for k, w in MODELS[m].items()]
    with_path = write_glide_book(str(tmp_path / "with"), same)
    without = write_glide_book(str(tmp_path / "without"), [])
    os.remove(os.path.join(without, "glide_paths.parquet"))  # absent, not just empty
    nights = {}
    for name, book in (("with", with_path), ("without", without)):
        out = str(tmp_path / f"out_{name}")
        run_book(book, out, "2027-02-01", RunConfig(), LocalExecutor(workers=1), progress=False)
        results, trades = _night(out, "2027-02-01")
        nights[name] = ({h: {k: v for k, v in r.items() if k not in ("run_id", "solve_ms")}
                         for h, r in results.items()},
                        [{k: v for k, v in t.items() if k != "run_id"} for t in trades])
    assert nights["with"] == nights["without"]
    assert any(r["status"] == "traded" for r in nights["with"][0].values())


def test_a_bad_model_path_costs_the_households_on_the_model_only(tmp_path):
    rows = (path_rows("model_id", GLIDE_MODEL, MODEL_PATH)
            + path_rows("household_id", "H0000004", {"2027-01-01": {"us_equity": 1.0}}))
    rows[0]["weight"] = 0.7  # 2027-01-01: 0.7 + 0.2
    book = write_glide_book(str(tmp_path / "book"), rows)
    out = str(tmp_path / "out")
    run_book(book, out, "2027-02-01", RunConfig(), LocalExecutor(workers=1), progress=False)
    results, _ = _night(out, "2027-02-01")
    on_model = {h for h, m in MODEL_OF.items() if m == GLIDE_MODEL}
    assert {h for h, r in results.items() if r["status"] == "error"} == on_model
    for h in on_model:
        assert f"model {GLIDE_MODEL} has a data problem (weights_not_one)" in results[h]["message"]
    exc = pq.read_table(os.path.join(out, "exceptions", "run_date=2027-02-01")).to_pylist()
    glide = [e for e in exc if e["source_table"] == "glide_paths"]
    assert [(e["code"], e["household_id"], e["record_id"]) for e in glide] == \
        [("weights_not_one", None, f"{GLIDE_MODEL}/null/2027-01-01")]
    assert "sum to 0.9, not 1" in glide[0]["message"] and "fix" in glide[0]["message"]
    # H0000004's own path (all US equity) was used: it ran and bought US equity only
    assert results["H0000004"]["status"] == "traded"


# -- validation -----------------------------------------------------------------------------

def small_book(root, glide_rows: list[dict]) -> str:
    """Three households: H1 and H2 on model m, H3 on model n."""
    tables = {
        "households": {"household_id": ["H1", "H2", "H3"], "model_id": ["m", "m", "n"],
                       "st_rate": [0.37, 0.3, 0.3], "lt_rate": [0.2, 0.15, 0.15]},
        "accounts": {"account_id": ["A1", "A2", "A3"], "household_id": ["H1", "H2", "H3"],
                     "account_type": ["taxable", "roth", "roth"], "cash": [100.0, 50.0, 10.0]},
        "lots": {"lot_id": ["L1", "L2", "L3"], "account_id": ["A1", "A2", "A3"],
                 "security_id": ["S", "B", "S"], "quantity": [10.0, 5.0, 1.0],
                 "cost_basis": [900.0, 500.0, 90.0],
                 "acquired_date": pa.array([19000, 19500, 19500], pa.date32())},
        "securities": {"security_id": ["S", "B"], "asset_class": ["eq", "bond"],
                       "price": [100.0, 100.0]},
        "targets": {"model_id": ["m", "m", "n"], "asset_class": ["eq", "bond", "eq"],
                    "weight": [0.6, 0.4, 1.0]},
        "model_securities": {"model_id": ["m", "m", "n"], "asset_class": ["eq", "bond", "eq"],
                             "security_id": ["S", "B", "S"], "rank": pa.array([1, 1, 1], pa.int64())},
    }
    os.makedirs(root, exist_ok=True)
    for name, cols in tables.items():
        pq.write_table(pa.table(cols), os.path.join(root, f"{name}.parquet"))
    pq.write_table(glide_table(glide_rows), os.path.join(root, "glide_paths.parquet"))
    return str(root)


def D(day: str) -> np.datetime64:
    return np.datetime64(day, "D")


GOOD = [{"model_id": "m", "effective_date": D("2027-01-01"), "asset_class": "eq", "weight": 0.8},
        {"model_id": "m", "effective_date": D("2027-01-01"), "asset_class": "bond", "weight": 0.2},
        {"model_id": "m", "effective_date": D("2027-12-31"), "asset_class": "eq", "weight": 0.6},
        {"model_id": "m", "effective_date": D("2027-12-31"), "asset_class": "bond", "weight": 0.4},
        {"household_id": "H3", "effective_date": D("2027-01-01"), "asset_class": "eq",
         "weight": 1.0}]


def checked(root: str) -> tuple[list[tuple], set[str], dict[str, int]]:
    con = open_book(root)
    validate(con, "2027-02-01")
    found = con.execute('SELECT "table", code, household_id, record_id, message '
                        "FROM exceptions_found ORDER BY ALL").fetchall()
    bad = {r[0] for r in con.execute("SELECT household_id FROM bad_households").fetchall()}
    return found, bad, unkeyed_rows(con)


def test_a_good_path_has_no_exceptions(tmp_path):
    assert checked(small_book(tmp_path, GOOD)) == ([], set(), {})


def _with(index: int | None = None, extra: list[dict] | None = None, **change) -> list[dict]:
    rows = [dict(r) for r in GOOD]
    if index is not None:
        rows[index].update(change)
    return rows + (extra or [])


NO_SUM = {"weights_not_one"}  # the row's date no longer sums to 1 either


@pytest.mark.parametrize("rows, code, household, record, costs, unkeyed, says, others", [
    # a model's date whose weights do not sum to 1: every household on the model
    (_with(0, weight=0.7), "weights_not_one", None, "m/null/2027-01-01", {"H1", "H2"}, {},
     "weights of model m on 2027-01-01 sum to 0.9, not 1", set()),
    # a household's own date: that household only
    (_with(4, weight=0.5), "weights_not_one", "H3", "null/H3/2027-01-01", {"H3"}, {},
     "weights of household H3 on 2027-01-01 sum to 0.5, not 1", set()),
    (_with(extra=[{"model_id": "m", "effective_date": D("2027-12-31"), "asset_class": "eq",
                   "weight": 0.0}]),
     "duplicate_target", None, "m/null/2027-12-31/eq", {"H1", "H2"}, {},
     "listed 2 times on the same effective date of model m", set()),
    # both owners set: the household named and the model's households
    (_with(4, model_id="n"), "invalid_glide_path_owner", "H3", "n/H3/2027-01-01/eq",
     {"H3"}, {}, "both model_id 'n' and household_id 'H3' are set", set()),
    (_with(0, household_id="H3"), "invalid_glide_path_owner", "H3", "m/H3/2027-01-01/eq",
     {"H1", "H2", "H3"}, {}, "set one and clear the other", NO_SUM),
    # no owner: nobody to cost, a row that belongs to no household
    (_with(4, household_id=None), "invalid_glide_path_owner", None, "null/null/2027-01-01/eq",
     set(), {"glide_paths": 1}, "neither model_id nor household_id is set", set()),
    (_with(extra=[{"model_id": "nope", "effective_date": D("2027-01-01"), "asset_class": "eq",
                   "weight": 1.0}]),
     "unknown_model", None, "nope/null", set(), {},
     "model_id 'nope' has 1 glide-path row(s) but no rows in targets", set()),
    (_with(extra=[{"household_id": "H9", "effective_date": D("2027-01-01"), "asset_class": "eq",
                   "weight": 1.0}]),
     "unknown_household", None, "null/H9", set(), {"glide_paths": 1},
     "household_id 'H9' has 1 glide-path row(s) but is not in households", set()),
    (_with(1, effective_date=None), "invalid_glide_path", None, "m/null/null/bond",
     {"H1", "H2"}, {}, "effective_date missing", NO_SUM),
    (_with(4, asset_class=None), "invalid_glide_path", "H3", "null/H3/2027-01-01/null", {"H3"},
     {}, "asset_class missing", set()),
    (_with(2, weight=1.5), "invalid_weight", None, "m/null/2027-12-31/eq", {"H1", "H2"}, {},
     "weight 1.5 must be in [0, 1]", NO_SUM),
    # a date with a NaN is not summed (the NaN is the problem)
    (_with(2, weight=float("nan")), "non_finite_number", None, "m/null/2027-12-31/eq",
     {"H1", "H2"}, {}, "weight=nan", set()),
])
def test_bad_paths_are_exceptions_of_their_record(tmp_path, rows, code, household, record,
                                                  costs, unkeyed, says, others):
    found, bad, unkeyed_found = checked(small_book(tmp_path, rows))
    mine = [f for f in found if f[1] == code]
    assert [(t, h, r) for t, _, h, r, _ in mine] == [("glide_paths", household, record)], found
    assert says in mine[0][4], mine[0][4]
    assert {f[1] for f in found if f is not mine[0]} == others, found
    assert all(f[0] == "glide_paths" for f in found)
    assert bad == costs
    assert unkeyed_found == unkeyed


def test_codes_are_documented():
    text = open(os.path.join(ROOT, "docs", "data-contract.md"), encoding="utf-8").read()
    codes = text[text.index("#### Exception codes"):]
    for code in ("invalid_glide_path_owner", "invalid_glide_path", "weights_not_one",
                 "duplicate_target", "unknown_model", "unknown_household", "invalid_weight"):
        row = re.search(rf"^\| `{code}` \|([^|]*)\|", codes, re.M)
        assert row and "glide_paths" in row.group(1), code
