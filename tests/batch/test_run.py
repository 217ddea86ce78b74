"""The nightly job end to end on a generated book: the outputs follow the contract,
every household has a row, the proposals hold the hard rules, a re-run gives the
same rows, and a crashed run resumes."""

from __future__ import annotations

import dataclasses
import json
import os

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from hearth.batch.config import RunConfig
from hearth.batch.generate import DEFAULT_AS_OF, generate
from hearth.batch.run import PieceOutput, ShardTask, run_book, run_task
from hearth.cluster.local import LocalExecutor
from hearth.errors import ExecutionError
from hearth.io.contract import OUTPUT_SCHEMAS

N = 400
CONFIG = RunConfig(shard_size=64)


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    root = tmp_path_factory.mktemp("book")
    generate(str(root), N, seed=7, profile="small")
    return str(root)


@pytest.fixture(scope="module")
def run(book, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("out"))
    summary = run_book(book, out, DEFAULT_AS_OF, CONFIG, LocalExecutor(workers=1), progress=False)
    return out, summary


def read(out, table):
    return pq.read_table(os.path.join(out, table, f"run_date={DEFAULT_AS_OF}"))


def test_outputs_follow_the_contract(run):
    out, summary = run
    for name, schema in OUTPUT_SCHEMAS.items():
        t = read(out, name)
        assert t.schema.remove_metadata().equals(schema), name
    manifest = json.load(open(os.path.join(out, "_runs", DEFAULT_AS_OF, "manifest.json")))
    assert manifest["status"] == "committed" and manifest["contract_version"] == 2
    assert set(manifest["inputs"]) >= {"households", "lots", "securities"}
    assert manifest["households"] == N and summary.exit_code == 0
    assert not os.path.exists(os.path.join(out, "_staging", DEFAULT_AS_OF))


def test_one_result_row_per_input_household(run, book):
    out, _ = run
    res = read(out, "household_results").to_pydict()
    ids = pq.read_table(os.path.join(book, "households.parquet")).column("household_id").to_pylist()
    assert sorted(res["household_id"]) == sorted(ids)
    assert set(res["status"]) <= {"traded", "no_trade", "infeasible", "rejected", "error"}
    assert res["status"].count("traded") > N / 2
    # the generator's bad-on-purpose households are errors, with their exceptions
    exc = read(out, "exceptions").to_pydict()
    errors = [h for h, s in zip(res["household_id"], res["status"]) if s == "error"]
    assert set(errors) <= set(h for h in exc["household_id"] if h)


def test_invariants_over_every_household(run, book):
    out, _ = run
    con = duckdb.connect()
    t = f"'{out}/trades/run_date={DEFAULT_AS_OF}/*.parquet'"
    # no lot oversold
    over = con.execute(f"""
        SELECT t.lot_id FROM read_parquet({t}) t JOIN '{book}/lots.parquet' l USING (lot_id)
        WHERE t.side = 'sell' GROUP BY t.lot_id, l.quantity
        HAVING sum(t.quantity) > l.quantity * (1 + 1e-9)""").fetchall()
    assert over == []
    # no restricted buy (security-level no_buy / no_trade / no_hold, household-wide)
    restricted = con.execute(f"""
        SELECT t.household_id, t.security_id FROM read_parquet({t}) t
        JOIN '{book}/restrictions.parquet' r USING (household_id)
        WHERE t.side = 'buy' AND r.rule IN ('no_buy', 'no_trade', 'no_hold')
          AND r.account_id IS NULL AND r.security_id = t.security_id""").fetchall()
    assert restricted == []
    # cash never below minimum: recompute each traded account's cash from the trades
    low = con.execute(f"""
        WITH flows AS (
            SELECT t.account_id, sum(CASE WHEN side = 'sell' THEN notional * (1 - coalesce(s.cost_bps, 5) / 1e4)
                                     ELSE -notional * (1 + coalesce(s.cost_bps, 5) / 1e4) END) AS net
            FROM read_parquet({t}) t JOIN '{book}/securities.parquet' s USING (security_id)
            GROUP BY t.account_id)
        SELECT a.account_id, a.cash + a.contribution - a.withdrawal + f.net AS final, a.min_cash
        FROM flows f JOIN '{book}/accounts.parquet' a USING (account_id)
        WHERE a.cash + a.contribution - a.withdrawal + f.net < a.min_cash - 0.01""").fetchall()
    assert low == []
    # n_trades counts the household's trade rows
    n_trades = con.execute(f"""
        SELECT r.household_id, r.n_trades, count(t.household_id)
        FROM read_parquet('{out}/household_results/run_date={DEFAULT_AS_OF}/*.parquet') r
        LEFT JOIN read_parquet({t}) t USING (household_id)
        GROUP BY r.household_id, r.n_trades HAVING r.n_trades <> count(t.household_id)""").fetchall()
    assert n_trades == []


def test_exposure_identity_reported_drift_matches_the_trades(run, book):
    """Recompute every traded household's post-trade exposure per class in SQL from
    the input book and the trades alone, and compare with the reported drift."""
    out, _ = run
    t = f"read_parquet('{out}/trades/run_date={DEFAULT_AS_OF}/*.parquet')"
    r = f"read_parquet('{out}/household_results/run_date={DEFAULT_AS_OF}/*.parquet')"
    con = duckdb.connect()
    rows = con.execute(f"""
        WITH sec AS (SELECT security_id, asset_class, price, coalesce(cost_bps, 5) / 1e4 AS cost
                     FROM '{book}/securities.parquet'),
        acct AS (SELECT * FROM '{book}/accounts.parquet'),
        hold AS (SELECT a.household_id, s.asset_class, sum(l.quantity * s.price) AS v
                 FROM '{book}/lots.parquet' l JOIN acct a USING (account_id) JOIN sec s USING (security_id)
                 GROUP BY ALL),
        trade AS (SELECT t.household_id, s.asset_class,
                         sum(CASE WHEN side = 'buy' THEN notional ELSE -notional END) AS v,
                         sum(CASE WHEN side = 'buy' THEN -notional * (1 + s.cost)
                                  ELSE notional * (1 - s.cost) END) AS cash
                  FROM {t} t JOIN sec s USING (security_id) GROUP BY ALL),
        cash AS (SELECT household_id, sum(cash + contribution - withdrawal) AS c,
                        sum(contribution - withdrawal) AS flow FROM acct GROUP BY ALL),
        away AS (SELECT household_id, asset_class, sum(value) AS v
                 FROM '{book}/held_away.parquet' GROUP BY ALL),
        tgt AS (SELECT h.household_id, coalesce(ht.asset_class, tg.asset_class) AS asset_class,
                       coalesce(ht.weight, tg.weight) AS w
                FROM '{book}/households.parquet' h
                LEFT JOIN (SELECT DISTINCT household_id FROM '{book}/household_targets.parquet') c
                  USING (household_id)
                LEFT JOIN '{book}/targets.parquet' tg ON tg.model_id = h.model_id AND c.household_id IS NULL
                LEFT JOIN '{book}/household_targets.parquet' ht ON ht.household_id = h.household_id),
        classes AS (SELECT household_id, asset_class FROM hold UNION SELECT household_id, asset_class FROM tgt
                    UNION SELECT household_id, asset_class FROM trade
                    UNION SELECT household_id, asset_class FROM away
                    UNION SELECT household_id, 'cash' FROM cash),
        expo AS (
            SELECT k.household_id, k.asset_class,
                   coalesce(h.v, 0) + coalesce(tr.v, 0) + coalesce(aw.v, 0)
                   + CASE WHEN k.asset_class = 'cash'
                          THEN c.c + (SELECT coalesce(sum(cash), 0) FROM trade x
                                      WHERE x.household_id = k.household_id) ELSE 0 END AS e,
                   coalesce(tg.w, 0) AS w
            FROM classes k JOIN cash c USING (household_id)
            LEFT JOIN hold h USING (household_id, asset_class)
            LEFT JOIN trade tr USING (household_id, asset_class)
            LEFT JOIN away aw USING (household_id, asset_class)
            LEFT JOIN tgt tg USING (household_id, asset_class)),
        base AS (SELECT r.household_id, r.value + c.flow + coalesce((SELECT sum(v) FROM away a
                        WHERE a.household_id = r.household_id), 0) AS vt
                 FROM {r} r JOIN cash c USING (household_id))
        SELECT r.household_id, r.drift_after, r.max_drift_after,
               sum(abs(e.e - e.w * b.vt)) / b.vt, max(abs(e.e - e.w * b.vt)) / b.vt
        FROM {r} r JOIN base b USING (household_id) JOIN expo e USING (household_id)
        WHERE r.status = 'traded' GROUP BY r.household_id, r.drift_after, r.max_drift_after, b.vt
    """).fetchall()
    assert len(rows) > N / 2
    for hid, drift, max_drift, want, want_max in rows:
        assert drift == pytest.approx(want, abs=1e-6), hid
        assert max_drift == pytest.approx(want_max, abs=1e-6), hid


def test_traded_households_end_inside_their_bands(run):
    # Inside the band drift is cheap (location and taxes may use it); outside it is
    # expensive, so nearly every traded household ends within tolerance. The rest
    # are held back by restrictions, menus, untradable accounts or budgets.
    out, _ = run
    r = read(out, "household_results").to_pydict()
    traded = [i for i, s in enumerate(r["status"]) if s == "traded"]
    inside = [r["max_drift_after"][i] <= CONFIG.drift_threshold + 1e-6 for i in traded]
    assert np.mean(inside) >= 0.8
    before = np.mean([r["max_drift_before"][i] for i in traded])
    after = np.mean([r["max_drift_after"][i] for i in traded])
    assert after < 0.6 * before


def test_rerun_gives_the_same_rows(run, book, tmp_path):
    out, first = run
    again = run_book(book, str(tmp_path), DEFAULT_AS_OF, CONFIG, LocalExecutor(workers=1),
                     progress=False)
    assert again.run_id == first.run_id
    for name in ("trades", "exceptions"):
        assert read(out, name).equals(pq.read_table(
            os.path.join(tmp_path, name, f"run_date={DEFAULT_AS_OF}")))
    a = read(out, "household_results").drop_columns(["solve_ms"])
    b = pq.read_table(os.path.join(tmp_path, "household_results",
                                   f"run_date={DEFAULT_AS_OF}")).drop_columns(["solve_ms"])
    assert a.equals(b)


def test_shard_size_does_not_change_results(run, book, tmp_path):
    out, _ = run
    run_book(book, str(tmp_path), DEFAULT_AS_OF, RunConfig(shard_size=150),
             LocalExecutor(workers=1), progress=False)
    for name in ("trades", "household_results"):
        a = read(out, name).drop_columns(["run_id"] + (["solve_ms"] if name != "trades" else []))
        b = pq.read_table(os.path.join(tmp_path, name, f"run_date={DEFAULT_AS_OF}")).drop_columns(
            ["run_id"] + (["solve_ms"] if name != "trades" else []))
        assert a.equals(b), name


class _Recorded:
    """An executor's results as the driver receives them."""

    def __init__(self, inner):
        self.inner, self.name, self.got = inner, inner.name, []

    def run(self, tasks, config, on_result, **kw):
        def keep(out):
            if not isinstance(out, PieceOutput):
                self.got.append(out)
            on_result(out)
        self.inner.run(tasks, config, keep, **kw)


class _TablesBack:
    """An executor whose tasks hand their tables back for the driver to write."""
    name = "tables-back"

    def run(self, tasks, config, on_result, **kw):
        for t in tasks:
            on_result(run_task(dataclasses.replace(t, staging=None)
                               if isinstance(t, ShardTask) else t, config))


def test_workers_write_their_shards_to_staging_and_the_night_is_the_same(run, book, tmp_path):
    out, _ = run
    pool = _Recorded(LocalExecutor(workers=2))
    summary = run_book(book, str(tmp_path / "w"), DEFAULT_AS_OF, CONFIG, pool, progress=False)
    manifest = json.load(open(summary.manifest))
    assert sorted(g.shard for g in pool.got) == list(range(manifest["shards"]))
    for got in pool.got:  # only the file list crossed back to the driver
        assert got.tables == {} and got.files, got.shard
        assert got.files["household_results"]["rows"] == got.n_households
        assert got.seconds["write"] > 0
    back = run_book(book, str(tmp_path / "d"), DEFAULT_AS_OF, CONFIG, _TablesBack(),
                    progress=False)
    assert summary.trades == back.trades > 0
    for name in ("trades", "household_results", "exceptions"):
        a, b = (pq.read_table(os.path.join(tmp_path, k, name, f"run_date={DEFAULT_AS_OF}"))
                for k in ("w", "d"))
        if name == "household_results":
            a, b = a.drop_columns(["solve_ms"]), b.drop_columns(["solve_ms"])
        assert a.equals(b), name
        assert a.equals(read(out, name).drop_columns(
            ["solve_ms"] if name == "household_results" else [])), name


def test_crashed_run_resumes_without_recomputing_finished_shards(book, tmp_path):
    out = str(tmp_path)

    def half(tasks):
        return tasks[: len(tasks) // 2]

    with pytest.raises(ExecutionError, match="did not finish"):
        run_book(book, out, DEFAULT_AS_OF, CONFIG, LocalExecutor(workers=1), progress=False,
                 shard_filter=half)
    assert not os.path.exists(os.path.join(out, "trades"))  # nothing visible before commit
    summary = run_book(book, out, DEFAULT_AS_OF, CONFIG, LocalExecutor(workers=1), progress=False)
    assert summary.resumed_shards == int(np.ceil(N / CONFIG.shard_size)) // 2
    assert summary.households == N


def test_next_night_warm_starts_from_the_saved_bases_and_gets_the_same_answer(book, tmp_path):
    """Night one saves each household's basis; night two (same book, next day) starts
    from them where the structure still matches, and its rows equal a cold run's."""
    warm_out, cold_out = str(tmp_path / "warm"), str(tmp_path / "cold")
    night1, night2 = DEFAULT_AS_OF, "2026-11-21"
    run_book(book, warm_out, night1, CONFIG, LocalExecutor(workers=1), progress=False)
    assert os.path.isdir(os.path.join(warm_out, "_state", "warm", f"run_date={night1}"))
    run_book(book, warm_out, night2, CONFIG, LocalExecutor(workers=1), progress=False)
    run_book(book, cold_out, night2, CONFIG.model_copy(update={"warm_start": False}),
             LocalExecutor(workers=1), progress=False)
    warm = pq.read_table(os.path.join(warm_out, "household_results", f"run_date={night2}"))
    cold = pq.read_table(os.path.join(cold_out, "household_results", f"run_date={night2}"))
    assert sum(warm.column("warm_started").to_pylist()) > N / 2
    assert not any(cold.column("warm_started").to_pylist())
    wt = pq.read_table(os.path.join(warm_out, "trades", f"run_date={night2}"))
    ct = pq.read_table(os.path.join(cold_out, "trades", f"run_date={night2}"))
    for col in ("household_id", "lot_id", "side", "security_id", "account_id"):
        assert wt.column(col).equals(ct.column(col))
    assert np.allclose(wt.column("quantity").to_numpy(), ct.column("quantity").to_numpy(),
                       rtol=1e-6, atol=1e-6)
    it_warm = np.array(warm.column("iterations").to_pylist())
    it_cold = np.array(cold.column("iterations").to_pylist())
    assert it_warm.sum() < it_cold.sum()


def test_a_crash_while_reporting_costs_only_that_household(book, tmp_path, monkeypatch):
    import hearth.batch.pipeline as pipeline

    real = pipeline.estimate

    def flaky(hh, *args, **kwargs):
        if hh.household_id == "H0000005":
            raise ValueError("boom")
        return real(hh, *args, **kwargs)

    monkeypatch.setattr(pipeline, "estimate", flaky)
    run_book(book, str(tmp_path), DEFAULT_AS_OF, CONFIG, LocalExecutor(workers=1), progress=False)
    res = pq.read_table(os.path.join(tmp_path, "household_results",
                                     f"run_date={DEFAULT_AS_OF}")).to_pydict()
    assert len(res["household_id"]) == N
    row = res["household_id"].index("H0000005")
    assert res["status"][row] == "error" and "boom" in res["message"][row]
    assert res["status"].count("traded") > N / 2
    trades = pq.read_table(os.path.join(tmp_path, "trades", f"run_date={DEFAULT_AS_OF}"))
    assert "H0000005" not in set(trades.column("household_id").to_pylist())
    exc = pq.read_table(os.path.join(tmp_path, "exceptions", f"run_date={DEFAULT_AS_OF}")).to_pydict()
    assert ("H0000005", "internal_error") in set(zip(exc["household_id"], exc["code"]))


def test_dollar_totals_in_the_manifest_and_summary_are_the_rows_sums(run):
    out, summary = run
    with open(summary.manifest) as f:
        totals = json.load(f)["totals"]
    results, trades = read(out, "household_results"), read(out, "trades")
    for name in ("tax_savings_estimate", "tax_due_estimate", "tlh_losses", "realized_st_gain",
                 "realized_lt_gain"):
        assert totals[name] == pytest.approx(
            sum(x for x in results.column(name).to_pylist() if x is not None), abs=0.02)
    assert totals["traded_value"] == pytest.approx(sum(trades.column("notional").to_pylist()),
                                                   abs=0.02)
    no_trade = [r for r in results.to_pylist() if r["status"] != "traded"]
    assert all(not r["tax_savings_estimate"] for r in no_trade)  # 0 (or null for errors)
    assert f"tax savings estimate ${totals['tax_savings_estimate']:,.0f}" in summary.text()


def test_the_lots_ranges_and_the_shards_run_on_the_same_workers(run, book, tmp_path, monkeypatch):
    # the lots file in row groups of 300 rows and ranges of at least one row group:
    # the pool partitions the lots, then runs the shards, without starting again
    from hearth.io import shards

    small = tmp_path / "book"
    small.mkdir()
    for name in os.listdir(book):
        t = pq.read_table(os.path.join(book, name))
        pq.write_table(t, small / name, row_group_size=300 if name == "lots.parquet" else None)
    monkeypatch.setattr(shards, "LOT_PIECE_MIN_ROWS", 1)
    pool = LocalExecutor(workers=2)
    calls = []
    inner = pool.run

    def spy(tasks, config, on_result, **kw):
        calls.append((type(tasks[0]).__name__, kw.get("more", False), sorted(pool.worker_pids())))
        inner(tasks, config, on_result, **kw)

    pool.run = spy
    summary = run_book(str(small), str(tmp_path / "out"), DEFAULT_AS_OF, CONFIG, pool,
                       progress=False)
    assert summary.households == N and summary.run_id == run[1].run_id
    assert read(str(tmp_path / "out"), "trades").equals(read(run[0], "trades"))
    assert [c[:2] for c in calls] == [("LotPieceTask", True), ("ShardTask", False)]
    assert len(calls[0][2]) == 2 and calls[1][2] == calls[0][2]  # the same two processes
    assert pool.worker_pids() == []  # ended after the shards
