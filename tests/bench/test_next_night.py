"""bench/next_night.py on a hand-made book and hand-made night-1 outputs, where every
number of the next night's book is known: sells reduce or close their lots, buys
become lots, cash moves by the notional and its cost, washed losses move into the
replacement shares' basis, and every trade is appended to the transactions."""

from __future__ import annotations

import datetime
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
from next_night import carryforward, main, next_night  # noqa: E402

from hearth.io.contract import HOUSEHOLD_RESULTS_SCHEMA, TRADES_SCHEMA  # noqa: E402
from hearth.io.write import manifest_path  # noqa: E402

D = "2026-11-20"
DEFAULT_BPS = 20.0  # the manifest's default_cost_bps, for a security without cost_bps


def _day(s: str) -> datetime.date:
    return datetime.date.fromisoformat(s)


def _write_book(book: str, lots_as_parts: bool = False) -> None:
    os.makedirs(book)

    def write(name, rows):
        pq.write_table(pa.Table.from_pylist(rows), os.path.join(book, f"{name}.parquet"))

    hh = dict(model_id="M", st_rate=0.4, lt_rate=0.2, loss_carryforward_st=0.0,
              loss_carryforward_lt=0.0, filing_status="single")
    write("households", [
        dict(hh, household_id="H1", ytd_st_gain=0.0, ytd_lt_gain=1000.0, tax_budget=500.0),
        dict(hh, household_id="H2", ytd_st_gain=10.0, ytd_lt_gain=0.0, tax_budget=None),
        dict(hh, household_id="H3", ytd_st_gain=0.0, ytd_lt_gain=0.0, tax_budget=None),
    ])
    acct = dict(min_cash=0.0, tradable=True, contribution=0.0, withdrawal=0.0)
    write("accounts", [
        dict(acct, account_id="H1-T", household_id="H1", account_type="taxable", cash=1000.0,
             contribution=500.0, withdrawal=100.0),
        dict(acct, account_id="H1-R", household_id="H1", account_type="roth", cash=0.0),
        dict(acct, account_id="H2-T", household_id="H2", account_type="taxable", cash=200.0,
             contribution=50.0),
        dict(acct, account_id="H3-T", household_id="H3", account_type="taxable", cash=5000.0),
        dict(acct, account_id="H3-R", household_id="H3", account_type="roth", cash=1000.0),
    ])
    write("securities", [
        dict(security_id="VTI", asset_class="us", price=100.0, wash_group="total_us",
             cost_bps=10.0, income_yield=0.0),
        dict(security_id="ITOT", asset_class="us", price=50.0, wash_group="total_us",
             cost_bps=None, income_yield=0.0),
        # 3.65% a year: 0.01% of the value a day
        dict(security_id="BND", asset_class="bonds", price=80.0, wash_group=None,
             cost_bps=0.0, income_yield=0.0365),
    ])
    lots = [
        ("L1", "H1-T", "VTI", 10.0, 1500.0, "2020-01-02"),  # 4 sold
        ("L2", "H1-T", "VTI", 5.0, 400.0, "2021-03-04"),  # sold out
        ("L3", "H1-T", "ITOT", 8.0, 300.0, "2026-11-10"),  # bought 10 days ago: replaces L4
        ("L4", "H1-T", "VTI", 3.0, 450.0, "2025-06-01"),  # sold out at a washed loss
        ("L5", "H1-R", "BND", 20.0, 1600.0, "2022-05-06"),  # 5 sold in a Roth
        ("L6", "H2-T", "VTI", 1.0, 90.0, "2023-01-01"),
        ("L7", "H3-T", "VTI", 4.0, 600.0, "2024-01-02"),  # sold out at a washed loss
        ("H3-T-N20261120-VTI", "H3-T", "BND", 1.0, 80.0, "2026-01-05"),  # takes a new lot's id
    ]
    lot_t = pa.table({
        "lot_id": [r[0] for r in lots], "account_id": [r[1] for r in lots],
        "security_id": [r[2] for r in lots], "quantity": [r[3] for r in lots],
        "cost_basis": [r[4] for r in lots], "acquired_date": [_day(r[5]) for r in lots],
    })
    if lots_as_parts:  # a folder of Hive-partitioned parts
        for part, rows in (("a", lot_t.slice(0, 3)), ("b", lot_t.slice(3))):
            os.makedirs(os.path.join(book, "lots", f"part={part}"))
            pq.write_table(rows, os.path.join(book, "lots", f"part={part}", "0.parquet"))
    else:
        pq.write_table(lot_t, os.path.join(book, "lots.parquet"))
    write("transactions", [dict(account_id="H1-T", security_id="VTI", trade_date=_day("2026-10-01"),
                                side="buy", quantity=1.0, realized_gain=None)])
    write("targets", [dict(model_id="M", asset_class="us", weight=0.6),
                      dict(model_id="M", asset_class="bonds", weight=0.4)])
    write("model_securities", [dict(model_id="M", asset_class="us", security_id="VTI", rank=1),
                               dict(model_id="M", asset_class="bonds", security_id="BND", rank=1)])


def _sell(hh, account, security, lot, quantity, price, gain, wash=False, disallowed=None):
    return dict(run_id="r", household_id=hh, account_id=account, security_id=security, side="sell",
                lot_id=lot, quantity=quantity, price=price, notional=quantity * price,
                realized_gain=gain, wash_sale=wash, disallowed_loss=disallowed, reason="rebalance")


def _buy(hh, account, security, quantity, price):
    return dict(run_id="r", household_id=hh, account_id=account, security_id=security, side="buy",
                lot_id=None, quantity=quantity, price=price, notional=quantity * price,
                realized_gain=None, wash_sale=False, disallowed_loss=None, reason="rebalance")


TRADES = [
    _sell("H1", "H1-T", "VTI", "L1", 4.0, 100.0, -200.0),
    _sell("H1", "H1-T", "VTI", "L2", 5.0, 100.0, 100.0),
    _sell("H1", "H1-T", "VTI", "L4", 3.0, 100.0, -150.0, wash=True, disallowed=150.0),
    _sell("H1", "H1-R", "BND", "L5", 5.0, 80.0, None),  # a Roth realizes nothing
    _buy("H1", "H1-R", "ITOT", 2.0, 50.0),
    _buy("H1", "H1-T", "BND", 10.0, 80.0),
    _sell("H3", "H3-T", "VTI", "L7", 4.0, 100.0, -200.0, wash=True, disallowed=200.0),
    _buy("H3", "H3-R", "ITOT", 1.0, 50.0),  # replacement in a Roth: its share of the loss is lost
    _buy("H3", "H3-T", "VTI", 10.0, 100.0),  # takes the other 3 shares' loss
]


def _write_output(output: str, trades=TRADES, run_date=D) -> None:
    files = {}
    for table, schema, rows in (
            ("trades", TRADES_SCHEMA, trades),
            ("household_results", HOUSEHOLD_RESULTS_SCHEMA, [
                dict(run_id="r", household_id="H1", status="traded", realized_st_gain=0.0,
                     realized_lt_gain=-250.0, tax_due_estimate=100.0),
                dict(run_id="r", household_id="H2", status="error"),  # its flows are owed tomorrow
                dict(run_id="r", household_id="H3", status="traded", realized_st_gain=0.0,
                     realized_lt_gain=-200.0, tax_due_estimate=-40.0),
            ])):
        rel = os.path.join(table, f"run_date={run_date}", "part-0000.parquet")
        os.makedirs(os.path.dirname(os.path.join(output, rel)))
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), os.path.join(output, rel))
        files[table] = [dict(path=rel, rows=len(rows))]
    path = manifest_path(output, run_date)
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        json.dump(dict(files=files, config=dict(default_cost_bps=DEFAULT_BPS)), f)


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    root = tmp_path_factory.mktemp("next_night")
    book, output, out = str(root / "book"), str(root / "out"), str(root / "book2")
    _write_book(book)
    _write_output(output)
    # no price moves and no contributions: every number below is known
    summary = next_night(book, output, D, out, daily_vol=0.0, contribution_share=0.0)
    return book, out, summary


def _rows(path: str, name: str, key: str) -> dict:
    return {r[key]: r for r in pq.read_table(os.path.join(path, f"{name}.parquet")).to_pylist()}


def test_sells_reduce_their_lots_pro_rata_or_close_them(night):
    _, out, s = night
    lots = _rows(out, "lots", "lot_id")
    assert lots["L1"]["quantity"] == 6.0 and lots["L1"]["cost_basis"] == pytest.approx(900.0, rel=1e-12)
    assert lots["L5"]["quantity"] == 15.0 and lots["L5"]["cost_basis"] == pytest.approx(1200.0, rel=1e-12)
    assert "L2" not in lots and "L4" not in lots and "L7" not in lots
    assert lots["L6"]["quantity"] == 1.0 and lots["L6"]["cost_basis"] == 90.0  # untouched
    assert (s.sells, s.buys, s.lots_closed, s.lots_opened) == (5, 4, 3, 4)


def test_buys_become_lots_bought_on_the_run_date(night):
    _, out, _ = night
    lots = _rows(out, "lots", "lot_id")
    new = {k: v for k, v in lots.items() if "-N20261120-" in k and v["acquired_date"] == _day(D)}
    assert sorted(new) == ["H1-R-N20261120-ITOT", "H1-T-N20261120-BND", "H3-R-N20261120-ITOT",
                           "H3-T-N20261120-VTI-2"]  # the plain id is a lot of the book already
    bnd = new["H1-T-N20261120-BND"]
    assert (bnd["account_id"], bnd["security_id"], bnd["quantity"]) == ("H1-T", "BND", 10.0)
    assert bnd["cost_basis"] == pytest.approx(800.0, rel=1e-12)
    assert new["H1-R-N20261120-ITOT"]["cost_basis"] == pytest.approx(100.0, rel=1e-12)
    assert lots["H3-T-N20261120-VTI"]["security_id"] == "BND"  # the book's lot, as it was
    assert len(lots) == 8 - 3 + 4


def test_a_washed_loss_moves_into_the_replacement_shares(night):
    _, out, s = night
    lots = _rows(out, "lots", "lot_id")
    assert s.wash_sales == 2
    # H1: L3 (same wash group, bought in the window) replaces L4's 3 shares: $50 a share;
    # tonight's ITOT buy in H1's Roth comes after it and takes nothing
    assert lots["L3"]["cost_basis"] == pytest.approx(300.0 + 150.0, rel=1e-12)
    assert lots["L3"]["quantity"] == 8.0
    assert lots["H1-R-N20261120-ITOT"]["cost_basis"] == pytest.approx(100.0, rel=1e-12)
    # H3: tonight's buys in trade order; the Roth's share of the loss is lost
    assert lots["H3-R-N20261120-ITOT"]["cost_basis"] == pytest.approx(50.0, rel=1e-12)
    assert lots["H3-T-N20261120-VTI-2"]["cost_basis"] == pytest.approx(1000.0 + 3 * 50.0, rel=1e-12)
    assert lots["H3-T-N20261120-VTI-2"]["acquired_date"] == _day(D)  # no tacked holding period


def test_cash_moves_by_the_flows_the_trades_their_costs_and_income(night):
    _, out, s = night
    acc = _rows(out, "accounts", "account_id")
    # settled flows 1000 + 500 - 100; sells less VTI's 10 bps; the BND buy (0 bps);
    # income on the 10 new BND at 80: 800 x 0.01%
    assert acc["H1-T"]["cash"] == pytest.approx(
        1400.0 + (400.0 + 500.0 + 300.0) * (1 - 0.001) - 800.0 + 0.08, rel=1e-12)
    assert (acc["H1-T"]["contribution"], acc["H1-T"]["withdrawal"]) == (0.0, 0.0)
    # the Roth: a BND sell (0 bps), an ITOT buy at the manifest's default cost, income on 15 BND
    assert acc["H1-R"]["cash"] == pytest.approx(400.0 - 100.0 * (1 + DEFAULT_BPS / 1e4) + 0.12, rel=1e-12)
    # H2's night failed: nothing settled, the flows are still owed
    assert (acc["H2-T"]["cash"], acc["H2-T"]["contribution"]) == (200.0, 50.0)
    assert acc["H3-T"]["cash"] == pytest.approx(5000.0 + 400.0 * (1 - 0.001) - 1000.0 * 1.001
                                                + 0.01, rel=1e-12)  # + income on the old BND lot
    assert acc["H3-R"]["cash"] == pytest.approx(1000.0 - 50.0 * (1 + DEFAULT_BPS / 1e4), rel=1e-12)
    assert s.income == pytest.approx(0.08 + 0.12 + 0.01, abs=1e-9)
    assert s.contributions == 0.0


def test_every_trade_is_appended_to_the_transactions(night):
    book, out, _ = night
    tx = pq.read_table(os.path.join(out, "transactions.parquet")).to_pylist()
    assert tx[0] == pq.read_table(os.path.join(book, "transactions.parquet")).to_pylist()[0]
    today = tx[1:]
    assert [(r["account_id"], r["security_id"], r["side"], r["quantity"]) for r in today] == [
        (t["account_id"], t["security_id"], t["side"], t["quantity"]) for t in TRADES]
    assert all(r["trade_date"] == _day(D) for r in today)
    assert [r["realized_gain"] for r in today] == [-200.0, 100.0, -150.0, 0.0, None, None, -200.0,
                                                   None, None]


def test_households_take_the_nights_gains_and_spent_budget(night):
    _, out, _ = night
    hh = _rows(out, "households", "household_id")
    assert (hh["H1"]["ytd_st_gain"], hh["H1"]["ytd_lt_gain"], hh["H1"]["tax_budget"]) == (
        0.0, 750.0, 400.0)
    assert (hh["H2"]["ytd_st_gain"], hh["H2"]["tax_budget"]) == (10.0, None)
    assert hh["H3"]["ytd_lt_gain"] == -200.0


def test_prices_stay_without_volatility_and_move_with_it(night, tmp_path):
    book, out, _ = night
    prices = {k: v["price"] for k, v in _rows(out, "securities", "security_id").items()}
    assert prices == {"VTI": 100.0, "ITOT": 50.0, "BND": 80.0}
    _write_output(str(tmp_path / "o"))
    moved = next_night(book, str(tmp_path / "o"), D, str(tmp_path / "b"), seed=1)
    p = {k: v["price"] for k, v in _rows(moved.path, "securities", "security_id").items()}
    assert p != prices and all(abs(p[k] / prices[k] - 1) < 0.1 for k in p)


def test_a_folder_of_parts_gives_the_same_lots(night, tmp_path):
    _, out, _ = night
    book = str(tmp_path / "book")
    _write_book(book, lots_as_parts=True)
    _write_output(str(tmp_path / "o"))
    parts = next_night(book, str(tmp_path / "o"), D, str(tmp_path / "b"), daily_vol=0.0,
                       contribution_share=0.0)
    cols = ["lot_id", "account_id", "security_id", "quantity", "cost_basis", "acquired_date"]
    got = pq.read_table(os.path.join(parts.path, "lots.parquet"))
    assert got.select(cols).equals(pq.read_table(os.path.join(out, "lots.parquet")).select(cols))
    assert got.column("part").to_pylist() == ["a", "a", "b", "b", "b", None, None, None, None]


def test_a_year_end_nets_the_year_into_carryforwards(tmp_path):
    book, output = str(tmp_path / "book"), str(tmp_path / "out")
    _write_book(book)
    _write_output(output, run_date="2026-12-31")
    s = next_night(book, output, "2026-12-31", str(tmp_path / "b"), days=3, daily_vol=0.0,
                   contribution_share=0.0)
    assert s.run_date == "2027-01-03"
    hh = _rows(s.path, "households", "household_id")
    assert all(r["ytd_st_gain"] == 0.0 and r["ytd_lt_gain"] == 0.0 for r in hh.values())
    # H3 lost 200 long-term: within the ordinary-income offset, nothing is carried
    assert (hh["H3"]["loss_carryforward_st"], hh["H3"]["loss_carryforward_lt"]) == (0.0, 0.0)
    assert carryforward(-5000.0, 1000.0, 0.0, 0.0, "single") == (1000.0, 0.0)
    assert carryforward(0.0, -2000.0, 0.0, 500.0, "married_separate") == (0.0, 1000.0)


def test_a_sell_of_a_lot_the_book_does_not_have_is_refused(tmp_path, capsys):
    book, output = str(tmp_path / "book"), str(tmp_path / "out")
    _write_book(book)
    _write_output(output, trades=TRADES + [_sell("H1", "H1-T", "VTI", "L99", 1.0, 100.0, 0.0)])
    with pytest.raises(ValueError, match="sell of lot L99 on 2026-11-20: no such lot"):
        next_night(book, output, D, str(tmp_path / "b"))
    oversold = [dict(TRADES[0], quantity=11.0, notional=1100.0)] + TRADES[1:]
    _write_output(str(tmp_path / "o2"), trades=oversold)
    with pytest.raises(ValueError, match="lot L1: 11 shares sold of 10"):
        next_night(book, str(tmp_path / "o2"), D, str(tmp_path / "b"))
    args = [book, output, "--run-date", D, "--out", str(tmp_path / "c")]
    assert main(args) == 2
    assert "no such lot" in capsys.readouterr().err


def test_main_prints_and_writes_the_summary(tmp_path, capsys):
    book, output = str(tmp_path / "book"), str(tmp_path / "out")
    _write_book(book)
    _write_output(output)
    out = str(tmp_path / "b")
    assert main([book, output, "--run-date", D, "--out", out, "--seed", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    with open(os.path.join(out, "_next_night.json")) as f:
        assert json.load(f) == printed
    assert (printed["run_date"], printed["sells"], printed["wash_sales"]) == ("2026-11-21", 5, 2)
    assert main([book, output, "--run-date", D, "--out", out]) == 2  # not empty without --force
