"""Overrides (docs/data-contract.md, overrides): a person's explicit decisions about one
household, applied on the nights they are in force and echoed in
``household_results.overrides_applied``; and the manifest's ``rules_version``.

Hand-solved households on a Parquet book written here, run through ``run_book``
(real DuckDB validation and sharding, real HiGHS). Every security costs nothing to
trade (``cost_bps`` 0), so the trades are exactly the ones a person would work out:

- the base household, a taxable account holding S1 40 x $100 (model rank 1) and
  S2 40 x $100 (rank 2, an acceptable equivalent), both long-term at a basis of $80,
  and B 20 x $100 against a 50/50 model with a band of 0, sells $3,000 of equity for
  B. It sells the rank-2 S2 (holding it costs the preference, selling S1 would not
  save it), and never swaps S2 for S1 (the tax on $20 a share beats the preference):
  sell 30 S2 (a long-term gain of $600), buy 30 B;
- holding S2 (``hold_security``) moves the sale to S1: sell 30 S1, buy 30 B;
- a ``no_hold`` screen on the sector of S1 and S2 with S2 held sells all of S1
  (40 shares) and keeps S2: equity can end at $4,000 only, so buy 40 B;
- a taxable household with S1 80 x $100 at a basis of $62.50 and a tax budget of 0
  cannot sell a share; with ``no_tax_budget`` it sells 30 S1 (a long-term gain of
  30 x $37.50 = $1,125) and buys 30 B (its band is 0, so it goes to 50/50)."""

from __future__ import annotations

import json
import os

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hearth.batch.config import RunConfig
from hearth.batch.run import rules_version, run_book
from hearth.cluster.local import LocalExecutor
from hearth.io.households import households, reference
from hearth.io.read import open_book
from hearth.io.shards import prepare, read_shard
from hearth.io.validate import unkeyed_rows, validate

DAY = "2026-11-20"
LONG_AGO = np.datetime64("2024-01-02", "D")

SECURITIES = {"security_id": ["S1", "S2", "B"], "asset_class": ["eq", "eq", "bond"],
              "price": [100.0, 100.0, 100.0], "sector": ["tech", "tech", None],
              "cost_bps": [0.0, 0.0, 0.0]}
MODEL = {"targets": {"model_id": ["m", "m"], "asset_class": ["eq", "bond"], "weight": [0.5, 0.5]},
         "model_securities": {"model_id": ["m"] * 3, "asset_class": ["eq", "eq", "bond"],
                              "security_id": ["S1", "S2", "B"],
                              "rank": pa.array([1, 2, 1], pa.int64())}}
PLAIN = ("BASE", "SKIP", "HOLD", "HOLD_SCREENED", "EXPIRED", "BAD_ACTION", "BAD_HOLD",
        "BAD_AUTHOR", "BAD_ACCOUNT")
TAXED = ("BUDGET", "BUDGET_OFF")
HARVESTABLE = ("HARVEST", "NO_HARVEST")


def _table(cols: dict) -> pa.Table:
    return pa.table(cols)


def write_book(root: str, overrides: list[dict], restrictions: list[dict] | None = None) -> str:
    os.makedirs(root, exist_ok=True)
    ids = [*PLAIN, *TAXED, *HARVESTABLE]
    lots: list[tuple] = []
    for h in PLAIN:
        lots += [(f"{h}-1", f"A-{h}", "S1", 40.0, 3200.0), (f"{h}-2", f"A-{h}", "S2", 40.0, 3200.0),
                 (f"{h}-3", f"A-{h}", "B", 20.0, 2000.0)]
    for h in TAXED:
        lots += [(f"{h}-1", f"A-{h}", "S1", 80.0, 5000.0), (f"{h}-3", f"A-{h}", "B", 20.0, 2000.0)]
    for h in HARVESTABLE:  # S1 at a loss of $30 a share, on target
        lots += [(f"{h}-1", f"A-{h}", "S1", 50.0, 6500.0), (f"{h}-3", f"A-{h}", "B", 50.0, 5000.0)]
    tables = {
        "households": {"household_id": ids, "model_id": ["m"] * len(ids),
                       "st_rate": [0.35] * len(ids), "lt_rate": [0.15] * len(ids),
                       "tax_budget": [None] * len(PLAIN) + [0.0] * len(TAXED)
                       + [None] * len(HARVESTABLE),
                       "drift_threshold": [0.0] * len(ids)},
        "accounts": {"account_id": [f"A-{h}" for h in ids], "household_id": ids,
                     "account_type": ["taxable"] * len(ids),
                     "cash": [0.0] * len(ids)},
        "lots": {"lot_id": [x[0] for x in lots], "account_id": [x[1] for x in lots],
                 "security_id": [x[2] for x in lots], "quantity": [x[3] for x in lots],
                 "cost_basis": [x[4] for x in lots],
                 "acquired_date": pa.array([LONG_AGO.item()] * len(lots), pa.date32())},
        "securities": SECURITIES, **MODEL,
        "overrides": {c: pa.array([o.get(c) for o in overrides],
                                  pa.date32() if c == "expires_on" else pa.string())
                      for c in ("override_id", "household_id", "action", "security_id",
                                "account_id", "reason", "author", "expires_on")},
    }
    if restrictions:
        tables["restrictions"] = {c: pa.array([r.get(c) for r in restrictions], pa.string())
                                  for c in ("household_id", "account_id", "rule", "security_id",
                                            "sector", "tag")}
    for name, cols in tables.items():
        pq.write_table(_table(cols), os.path.join(root, f"{name}.parquet"))
    return root


def ov(oid: str, hid: str, action: str, **kw) -> dict:
    return {"override_id": oid, "household_id": hid, "action": action,
            "reason": kw.pop("reason", "client instruction"), "author": kw.pop("author", "ana"),
            **kw}


OVERRIDES = [
    ov("O-SKIP", "SKIP", "skip", reason="client asked to wait until January"),
    ov("O-HOLD", "HOLD", "hold_security", security_id="S2", reason="gift to charity pending"),
    # in force through its expiry date: the run date is its last day
    ov("O-NOHARV", "HOLD", "no_harvest", expires_on=np.datetime64(DAY, "D").item()),
    ov("O-HOLD2", "HOLD_SCREENED", "hold_security", security_id="S2", account_id="A-HOLD_SCREENED"),
    ov("O-OLD", "EXPIRED", "hold_security", security_id="S2", author="bo",
       reason="until the estate settled", expires_on=np.datetime64("2026-11-19", "D").item()),
    ov("O-BUDGET", "BUDGET_OFF", "no_tax_budget", reason="advisor approved the gains"),
    ov("O-KEEPLOSS", "NO_HARVEST", "no_harvest", reason="carryforward already large"),
    ov("O-BAD1", "BAD_ACTION", "pause"),
    ov("O-BAD2", "BAD_HOLD", "hold_security"),
    ov("O-BAD3", "BAD_AUTHOR", "skip", author="  "),
    ov("O-BAD4", "BAD_ACCOUNT", "hold_security", security_id="S1", account_id="A-BASE"),
    ov("O-GHOST", "GHOST", "skip"),
    # an expired row is ignored whatever it says: it is not judged
    ov("O-OLDBAD", "BASE", "pause", author="", expires_on=np.datetime64("2026-01-01", "D").item()),
]
SCREEN = [{"household_id": "HOLD_SCREENED", "rule": "no_hold", "sector": "tech"}]


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    base = tmp_path_factory.mktemp("overrides")
    book = write_book(str(base / "book"), OVERRIDES, SCREEN)
    out = str(base / "out")
    summary = run_book(book, out, DAY, RunConfig(), LocalExecutor(workers=1), progress=False)
    results = pq.read_table(os.path.join(out, "household_results", f"run_date={DAY}")).to_pylist()
    trades = pq.read_table(os.path.join(out, "trades", f"run_date={DAY}")).to_pylist()
    exceptions = pq.read_table(os.path.join(out, "exceptions", f"run_date={DAY}")).to_pylist()
    return {"book": book, "out": out, "summary": summary,
            "results": {r["household_id"]: r for r in results}, "trades": trades,
            "exceptions": exceptions}


def trades_of(night, hid: str) -> list[tuple[str, str, float]]:
    return sorted((t["side"], t["security_id"], round(t["quantity"], 6))
                  for t in night["trades"] if t["household_id"] == hid)


def test_the_base_household_sells_its_equivalent(night):
    assert trades_of(night, "BASE") == [("buy", "B", 30.0), ("sell", "S2", 30.0)]
    r = night["results"]["BASE"]
    assert r["status"] == "traded" and r["overrides_applied"] == []
    assert r["drift_after"] == pytest.approx(0.0, abs=1e-6)
    assert r["realized_lt_gain"] == pytest.approx(600.0, abs=0.01)


def test_skip_leaves_the_household_untraded_and_says_who_and_why(night):
    r = night["results"]["SKIP"]
    assert r["status"] == "no_trade" and r["n_trades"] == 0
    assert trades_of(night, "SKIP") == []
    assert r["message"] == ("not traded tonight by override O-SKIP (skip, by ana: client asked "
                            "to wait until January)")
    assert r["overrides_applied"] == ["O-SKIP"]
    # its figures are those of trading nothing: 80/20 against 50/50 stays
    assert r["value"] == pytest.approx(10_000.0)
    assert r["drift_before"] == r["drift_after"] == pytest.approx(0.6)


def test_hold_security_keeps_the_position_and_the_rest_rebalances(night):
    assert trades_of(night, "HOLD") == [("buy", "B", 30.0), ("sell", "S1", 30.0)]
    r = night["results"]["HOLD"]
    assert r["status"] == "traded" and r["drift_after"] == pytest.approx(0.0, abs=1e-6)
    # the no_harvest override expires on the run date: still in force tonight
    assert r["overrides_applied"] == ["O-HOLD", "O-NOHARV"]


def test_a_held_security_outranks_a_no_hold_screen(night):
    # the tech screen forces S1 out whole; S2, held by a person's decision, stays
    assert trades_of(night, "HOLD_SCREENED") == [("buy", "B", 40.0), ("sell", "S1", 40.0)]
    r = night["results"]["HOLD_SCREENED"]
    assert r["status"] == "traded" and r["overrides_applied"] == ["O-HOLD2"]
    # equity ends at $4,000 of $10,000: 10% off on each side
    assert r["drift_after"] == pytest.approx(0.2, abs=1e-6)


def test_no_tax_budget_lets_the_budget_blocked_rebalance_through(night):
    blocked, freed = night["results"]["BUDGET"], night["results"]["BUDGET_OFF"]
    assert blocked["status"] == "no_trade" and trades_of(night, "BUDGET") == []
    assert blocked["realized_lt_gain"] == 0.0 and blocked["overrides_applied"] == []
    assert trades_of(night, "BUDGET_OFF") == [("buy", "B", 30.0), ("sell", "S1", 30.0)]
    assert freed["status"] == "traded" and freed["overrides_applied"] == ["O-BUDGET"]
    assert freed["realized_lt_gain"] == pytest.approx(1125.0, abs=0.01)
    assert freed["tax_due_estimate"] == pytest.approx(1125.0 * 0.15, abs=0.01)


def test_no_harvest_turns_tax_loss_harvesting_off_for_the_night(night):
    # S1 (50 x $100, basis $130) is at a $1,500 long-term loss: harvested, it is sold
    # and its exposure bought back in S2 (another wash group, the model's rank 2);
    # the loss is worth 1,500 x (0.15 - 0.15 x 1.05^-10) = $86.86 against $25 needed
    harvested, kept = night["results"]["HARVEST"], night["results"]["NO_HARVEST"]
    assert trades_of(night, "HARVEST") == [("buy", "S2", 50.0), ("sell", "S1", 50.0)]
    assert harvested["realized_lt_gain"] == pytest.approx(-1500.0, abs=0.01)
    assert harvested["tlh_losses"] == pytest.approx(1500.0, abs=0.01)
    assert trades_of(night, "NO_HARVEST") == []
    assert kept["status"] == "no_trade" and kept["overrides_applied"] == ["O-KEEPLOSS"]


def test_an_expired_override_is_ignored_and_noted(night):
    assert trades_of(night, "EXPIRED") == trades_of(night, "BASE")
    r = night["results"]["EXPIRED"]
    assert r["status"] == "traded" and r["overrides_applied"] == []
    notes = [e for e in night["exceptions"] if e["code"] == "override_expired"]
    assert sorted((e["household_id"], e["record_id"]) for e in notes) == [
        ("BASE", "O-OLDBAD"), ("EXPIRED", "O-OLD")]
    old = next(e for e in notes if e["record_id"] == "O-OLD")
    assert old["source_table"] == "overrides"
    assert old["message"] == ("override O-OLD (hold_security, by bo: until the estate settled) "
                              "expired on 2026-11-19, before the run date 2026-11-20: ignored; "
                              "drop the row or extend expires_on")
    assert night["results"]["BASE"]["status"] == "traded"  # its expired bad row costs nothing


def test_bad_overrides_cost_only_their_household(night):
    res = night["results"]
    bad = {"BAD_ACTION", "BAD_HOLD", "BAD_AUTHOR", "BAD_ACCOUNT"}
    assert {h for h, r in res.items() if r["status"] == "error"} == bad
    for h in bad:
        assert res[h]["overrides_applied"] == [] and trades_of(night, h) == []
    found = sorted((e["code"], e["household_id"], e["account_id"], e["record_id"])
                   for e in night["exceptions"] if e["source_table"] == "overrides"
                   and e["code"] != "override_expired")
    assert found == [("invalid_override", "BAD_ACTION", None, "O-BAD1"),
                     ("invalid_override", "BAD_AUTHOR", None, "O-BAD3"),
                     ("invalid_override", "BAD_HOLD", None, "O-BAD2"),
                     ("unknown_account", "BAD_ACCOUNT", "A-BASE", "O-BAD4"),
                     ("unknown_household", None, None, "O-GHOST")]
    msg = {e["record_id"]: e["message"] for e in night["exceptions"]}
    assert msg["O-BAD1"].startswith(
        "action 'pause' is not one of skip, hold_security, no_tax_budget, no_harvest")
    assert msg["O-BAD2"].startswith("hold_security needs the security_id to hold")
    assert msg["O-BAD3"].startswith("author is empty")
    assert "invalid_override [O-BAD1]" in res["BAD_ACTION"]["message"]
    # the ghost's row belongs to no household
    assert night["summary"].extra["unkeyed_rows"] == {"overrides": 1}
    assert len(res) == len(PLAIN) + len(TAXED) + len(HARVESTABLE)


def test_every_result_row_carries_the_list(night):
    res = night["results"]
    applied = {h: r["overrides_applied"] for h, r in res.items() if r["overrides_applied"]}
    assert applied == {"SKIP": ["O-SKIP"], "HOLD": ["O-HOLD", "O-NOHARV"],
                       "HOLD_SCREENED": ["O-HOLD2"], "BUDGET_OFF": ["O-BUDGET"],
                       "NO_HARVEST": ["O-KEEPLOSS"]}
    assert all(r["overrides_applied"] == [] for h, r in res.items() if h not in applied)


def test_the_household_as_assembled(night, tmp_path):
    """Household fields the overrides set: the model sees only plain data."""
    con = open_book(night["book"])
    validate(con, DAY)
    assert unkeyed_rows(con) == {"overrides": 1}
    plan = prepare(con, str(tmp_path / "prep"), shard_size=100)

    def assembled(day: str) -> dict:
        out = {}
        for shard in plan.shards:
            data = read_shard(plan.root, shard, duckdb.connect())
            for item in households(data, np.datetime64(day, "D"), reference(data.tables, 5.0)):
                out[item.household_id] = item
        return out

    got = assembled(DAY)
    hold = got["HOLD"].household
    assert hold is not None and hold.tlh_enabled is False  # no_harvest
    assert [(r.rule, r.account, r.security) for r in hold.restrictions] == [("no_trade", -1, "S2")]
    screened = got["HOLD_SCREENED"].household
    assert screened is not None
    # the sector screen now names S1 alone, in the household's one account
    assert [(r.rule, r.account, r.security, r.sector) for r in screened.restrictions] == [
        ("no_hold", 0, "S1", None), ("no_trade", 0, "S2", None)]
    assert got["BUDGET"].household.tax_budget == 0.0  # type: ignore[union-attr]
    assert got["BUDGET_OFF"].household.tax_budget is None  # type: ignore[union-attr]
    assert got["SKIP"].overrides.skip is not None and got["BASE"].overrides.skip is None
    assert [n.record_id for n in got["EXPIRED"].overrides.expired] == ["O-OLD"]
    # a day before O-OLD expired it holds S2 again; after the run date O-NOHARV is over
    earlier = assembled("2026-11-19")
    assert earlier["EXPIRED"].overrides.applied == ("O-OLD",)
    assert earlier["EXPIRED"].overrides.expired == ()
    later = assembled("2026-11-21")
    assert later["HOLD"].overrides.applied == ("O-HOLD",)
    assert later["HOLD"].household.tlh_enabled is True  # type: ignore[union-attr]


def test_without_a_run_date_validation_judges_every_row(night):
    con = open_book(night["book"])
    validate(con)  # hearth validate without --run-date: expiry unknown
    codes = con.execute("""SELECT record_id, code FROM exceptions_found
                           WHERE "table" = 'overrides' ORDER BY record_id""").fetchall()
    assert ("O-OLDBAD", "invalid_override") in codes


# -- the rules version ------------------------------------------------------------------------

def test_the_manifest_records_the_rules_version(night, tmp_path):
    manifest = json.load(open(os.path.join(night["out"], "_runs", DAY, "manifest.json")))
    fingerprint = RunConfig().fingerprint()
    assert manifest["rules_version"] == f"2:{fingerprint[:12]}" == rules_version(RunConfig())
    # a configuration key changes it; the same configuration on other inputs does not
    assert rules_version(RunConfig(min_trade_value=20.0)) != manifest["rules_version"]
    assert rules_version(RunConfig(drift_threshold=0.03)) == manifest["rules_version"]  # default
    other = write_book(str(tmp_path / "book"), OVERRIDES[:1])
    run_book(other, str(tmp_path / "out"), DAY, RunConfig(), LocalExecutor(workers=1),
             progress=False)
    again = json.load(open(tmp_path / "out" / "_runs" / DAY / "manifest.json"))
    assert again["inputs"] != manifest["inputs"] and again["run_id"] != manifest["run_id"]
    assert again["rules_version"] == manifest["rules_version"]


# -- the generated book -----------------------------------------------------------------------

def test_the_realistic_book_has_overrides_and_preferences_at_plausible_rates():
    from hearth.batch import generate as g

    n = 20_000
    ids = [f"H{i:07d}" for i in range(n)]
    make = lambda seed: g._overrides_and_preferences(  # noqa: E731
        np.random.default_rng(seed), ids, [f"{h}-A0" for h in ids], ["VTI"] * n,
        np.datetime64(DAY, "D"))
    overrides, preferences = make(1)
    assert overrides.equals(make(1)[0]) and preferences.equals(make(1)[1])  # deterministic
    assert not overrides.equals(make(2)[0])
    per_thousand = overrides.num_rows / n * 1000
    assert 3 <= per_thousand <= 9  # a few per 1,000 households
    rows = overrides.to_pylist()
    expired = [r for r in rows if r["expires_on"] is not None
               and np.datetime64(r["expires_on"], "D") < np.datetime64(DAY, "D")]
    assert 0.1 < len(expired) / len(rows) < 0.4
    assert {r["action"] for r in rows} == {"skip", "hold_security", "no_tax_budget", "no_harvest"}
    assert all((r["security_id"] is not None) == (r["action"] == "hold_security") for r in rows)
    assert 0.05 <= preferences.num_rows / n <= 0.10
    assert len(set(preferences.column("household_id").to_pylist())) == preferences.num_rows


def test_generated_overrides_and_preferences_validate_and_apply(tmp_path, monkeypatch):
    """A realistic book where half the households have an override and half a
    preference: every row is valid (expired ones are not judged), and the households
    assemble with them."""
    from hearth.batch import generate as g

    monkeypatch.setattr(g, "OVERRIDE_SHARE", 0.5)
    monkeypatch.setattr(g, "PREFERENCE_SHARE", 0.5)
    book = str(tmp_path / "book")
    g.generate(book, 24, seed=8, bad_fraction=0.0, as_of=DAY)
    ov_rows = pq.read_table(os.path.join(book, "overrides.parquet")).to_pylist()
    pp_rows = pq.read_table(os.path.join(book, "product_preferences.parquet")).to_pylist()
    assert len(ov_rows) >= 6 and len(pp_rows) >= 6
    con = open_book(book)
    validate(con, DAY)
    assert con.execute("SELECT count(*) FROM exceptions_found").fetchone() == (0,)
    plan = prepare(con, str(tmp_path / "prep"), shard_size=100)
    items = {}
    for shard in plan.shards:
        data = read_shard(plan.root, shard, duckdb.connect())
        for item in households(data, np.datetime64(DAY, "D"), reference(data.tables, 5.0)):
            items[item.household_id] = item
    today = np.datetime64(DAY, "D")
    for r in ov_rows:
        item = items[r["household_id"]]
        assert item.household is not None, item.error
        live = r["expires_on"] is None or np.datetime64(r["expires_on"], "D") >= today
        assert item.overrides.applied == ((r["override_id"],) if live else ())
        assert [n.record_id for n in item.overrides.expired] == ([] if live else [r["override_id"]])
    for r in pp_rows:
        hh = items[r["household_id"]].household
        assert hh is not None
        rank = dict(zip(hh.security_ids, hh.rank.tolist()))
        if r["vehicle"] == "mutual_fund":  # FXAIX, the model's 4th US equity fund, first
            assert rank["FXAIX"] == 1 and rank["VTI"] == 2
        elif r["vehicle"] == "etf":  # FTIHX, a mutual fund, falls behind the ETFs
            assert rank["VXUS"] == 1 and rank["IXUS"] == 2 and rank["FTIHX"] == 3
        else:
            assert rank["VTSAX"] == 1 and rank["VTI"] == 2
