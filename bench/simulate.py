"""Years of monthly hearth runs on a simulated multi-account book, against a naive
per-account rebalancer on the same markets: the judge of hearth's decisions.

    python bench/simulate.py --households 150 --years 5 --paths flat,bear,bull --seed 1 \\
        [--workers 1] [--jobs 2] [--config run.toml] [--out DIR] [--dividends reinvest|cash]
    python bench/simulate.py --quick        # 20 households, 1 year, a smoke run
    python bench/simulate.py --cash-need 500000 --cash-need-days 60   # one household's
        # $500k need known at month 6, due 60 days later: hearth (cash_needs) vs the naive
        # selling on the day; tax and funding of that household in the report

Each month (run on the 15th) and each market path, for hearth: the book state
(households with year-to-date gains and carryforwards from the simulator's own
tax accounting, accounts with cash / contribution / withdrawal, lots, today's
prices, targets, model securities, the last 65 days of the simulator's trade
log) is written as Parquet in the input contract, ``run_book`` runs on it
in-process, the committed ``trades`` partition is read back and executed into
lots and cash (sells reduce the named lots, buys become new lots), and the trade
log grows. The naive rebalancer (``sim_naive.py``) trades its own copy of the
same starting book on the same prices. Dividends are paid on the 1st (reinvested
as new lots by default, as a custodian's dividend reinvestment does), the
simulator applies IRC 1091 wash sales to both strategies, and each year is
settled in January before that month's run (after the 30-day window of December's
sales has closed); a tax larger than the taxable account's cash is a withdrawal
that run must raise. ``sim_ledger.py`` has the accounting rules.

Figures per path, hearth | naive: after-tax value difference in bps/yr (median,
p10, p90 over households; terminal after-tax value: taxable at market less the
liquidation tax net of carryforwards, traditional after retirement_rate,
Roth/HSA as is), mean absolute class-weight error vs the model (household
level, mean over the seven classes, post-trade, time-averaged, points), equity
tilt (equities + REITs vs model, points), idle cash above the model's cash
target (% of value), turnover ((buys + sells) / 2 / value, %/yr; dividend
reinvestment excluded), taxes paid (bps/yr of mean value), losses realized and
used by netting, wash sales and disallowed losses, share of household-months
with trades, and hearth's statuses. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import glob
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sim_book import (  # noqa: E402
    ACCOUNT_TYPES,
    CASH,
    CLASSES,
    EQUITY,
    PATHS,
    RISKY,
    TAXABLE,
    Book,
    build_book,
    dividend_dates,
    market_prices,
    run_dates,
)
from sim_ledger import WASH_DAYS, Ledger, day  # noqa: E402
from sim_naive import naive_orders  # noqa: E402

from hearth.batch.config import RunConfig, load_config  # noqa: E402
from hearth.batch.run import run_book  # noqa: E402
from hearth.cluster.local import LocalExecutor  # noqa: E402

TX_DAYS = 2 * WASH_DAYS + 5  # trade history handed to hearth (the contract asks for 30+ days)
FAILED = ("error", "infeasible", "rejected")


@dataclass
class Series:
    """Post-trade figures per month and household for one strategy."""

    value: np.ndarray
    class_error: np.ndarray  # mean abs class-weight error, points
    tilt: np.ndarray  # equity share minus model equity share, points
    idle: np.ndarray  # cash above the model's cash target, % of value
    turnover: np.ndarray  # (buys + sells) / 2 / value of the month
    traded: np.ndarray

    @classmethod
    def empty(cls, months: int, n_hh: int) -> Series:
        return cls(*(np.zeros((months, n_hh)) for _ in range(5)), np.zeros((months, n_hh), bool))

    def record(self, m: int, book: Book, ledger: Ledger, prices: np.ndarray) -> None:
        pos = ledger.positions(prices)
        value = pos.sum(axis=1)
        w = pos / np.where(value > 0, value, 1.0)[:, None]
        t = book.targets[book.model]
        self.value[m] = value
        self.class_error[m] = np.abs(w - t).mean(axis=1) * 100
        self.tilt[m] = (w[:, EQUITY].sum(axis=1) - t[:, EQUITY].sum(axis=1)) * 100
        self.idle[m] = np.maximum(w[:, CASH] - t[:, CASH], 0.0) * 100
        self.turnover[m] = (ledger.buy_notional + ledger.sell_notional) / 2 / np.maximum(value, 1.0)
        self.traded[m] = (ledger.buy_notional + ledger.sell_notional) > 0
        ledger.buy_notional[:] = 0.0
        ledger.sell_notional[:] = 0.0


# -- the input contract ----------------------------------------------------------------------
def _date_array(days: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(days, dtype=np.int64).astype("datetime64[D]"), pa.date32())


def write_static(book: Book, folder: str) -> None:
    """Targets and model securities: the same every month."""
    os.makedirs(folder, exist_ok=True)
    rows = [(m, c, float(book.targets[i, k])) for i, m in enumerate(book.model_names)
            for k, c in enumerate(CLASSES)]
    pq.write_table(pa.table({"model_id": [r[0] for r in rows], "asset_class": [r[1] for r in rows],
                             "weight": [r[2] for r in rows]}), os.path.join(folder, "targets.parquet"))
    ms = [(m, RISKY[int(book.sec_class[s])], str(book.sec_ids[s]), int(book.sec_rank[s]))
          for m in book.model_names for s in range(len(book.sec_ids))]
    pq.write_table(pa.table({"model_id": [r[0] for r in ms], "asset_class": [r[1] for r in ms],
                             "security_id": [r[2] for r in ms],
                             "rank": pa.array([r[3] for r in ms], pa.int64())}),
                   os.path.join(folder, "model_securities.parquet"))


def write_book(book: Book, ledger: Ledger, folder: str, today: int, prices: np.ndarray,
               contribution: np.ndarray, withdrawal: np.ndarray, static: str,
               needs: list[tuple[str, int, float]] | None = None) -> None:
    """The ledger's state on ``today`` as an input book (tables the contract names);
    ``needs`` are household-level cash needs (household id, due day, amount)."""
    os.makedirs(folder, exist_ok=True)
    for name in ("targets", "model_securities"):
        dst = os.path.join(folder, f"{name}.parquet")
        if not os.path.exists(dst):
            shutil.copyfile(os.path.join(static, f"{name}.parquet"), dst)
    year = int(str(np.datetime64(today, "D"))[:4])
    yt = ledger.year(year)
    write = lambda name, cols: pq.write_table(pa.table(cols), os.path.join(folder, f"{name}.parquet"))  # noqa: E731
    write("households", {
        "household_id": book.hh_ids.tolist(), "model_id": [book.model_names[m] for m in book.model],
        "st_rate": book.st_rate, "lt_rate": book.lt_rate, "ordinary_rate": book.ordinary_rate,
        "qualified_div_rate": book.qualified_div_rate, "retirement_rate": book.retirement_rate,
        "ytd_st_gain": np.round(yt.st, 2), "ytd_lt_gain": np.round(yt.lt, 2),
        "loss_carryforward_st": np.round(ledger.carry_st, 2),
        "loss_carryforward_lt": np.round(ledger.carry_lt, 2),
        "filing_status": book.filing.tolist(),
    })
    write("accounts", {
        "account_id": book.acct_ids.tolist(), "household_id": book.hh_ids[book.acct_hh].tolist(),
        "account_type": [ACCOUNT_TYPES[t] for t in book.acct_type],
        "cash": np.round(ledger.cash, 2), "contribution": np.round(contribution, 2),
        "withdrawal": np.round(withdrawal, 2),
    })
    write("lots", {
        "lot_id": ledger.lot_ids.tolist(), "account_id": book.acct_ids[ledger.lot_acct].tolist(),
        "security_id": book.sec_ids[ledger.lot_sec].tolist(), "quantity": ledger.lot_qty,
        "cost_basis": np.round(ledger.lot_basis, 2), "acquired_date": _date_array(ledger.lot_acquired),
    })
    write("securities", {
        "security_id": book.sec_ids.tolist(), "asset_class": [RISKY[k] for k in book.sec_class],
        "price": prices, "wash_group": book.sec_ids.tolist(), "income_yield": book.income_yield,
        "qualified_fraction": book.qualified, "tax_exempt_fraction": book.exempt,
        "foreign_tax_fraction": book.foreign, "cg_distribution": book.cg_dist,
        "expected_return": book.expected_return, "cost_bps": book.cost_bps,
    })
    tx = [t for t in ledger.txlog if today - TX_DAYS <= t[2] < today]
    write("transactions", {
        "account_id": [str(book.acct_ids[t[0]]) for t in tx],
        "security_id": [str(book.sec_ids[t[1]]) for t in tx],
        "trade_date": _date_array(np.array([t[2] for t in tx], dtype=np.int64)),
        "side": [t[3] for t in tx], "quantity": pa.array([t[4] for t in tx], pa.float64()),
        "realized_gain": pa.array([None if t[3] == "buy" else round(t[5], 2) for t in tx], pa.float64()),
    })
    if needs:
        write("cash_needs", {
            "need_id": [f"need-{h}" for h, _, _ in needs], "household_id": [h for h, _, _ in needs],
            "account_id": pa.array([None] * len(needs), pa.string()),
            "due_date": _date_array(np.array([d for _, d, _ in needs], dtype=np.int64)),
            "amount": [float(a) for _, _, a in needs],
        })


def _committed(out: str, table: str, run_date: str) -> pa.Table:
    """A committed partition, through the contract's path ``<table>/run_date=D/part-*.parquet``."""
    files = sorted(glob.glob(os.path.join(out, table, f"run_date={run_date}", "part-*.parquet")))
    if not files:
        raise RuntimeError(f"hearth committed no {table} partition for {run_date} under {out}")
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


@dataclass
class Proposals:
    sells: list[tuple[int, float]]
    buys: list[tuple[int, int, float]]
    status: dict[str, str]
    messages: dict[str, str]
    hearth_wash_sales: int
    unknown_lots: int
    notional_by_reason: dict[str, np.ndarray]  # per household, buys + sells of the run


def read_proposals(book: Book, ledger: Ledger, out: str, run_date: str, acct_index: dict[str, int],
                   sec_index: dict[str, int]) -> Proposals:
    trades = _committed(out, "trades", run_date)
    results = _committed(out, "household_results", run_date).to_pydict()
    status = dict(zip(results["household_id"], results["status"]))
    messages = {h: m for h, s, m in zip(results["household_id"], results["status"], results["message"])
                if s in FAILED}
    t = trades.to_pydict()
    lot_index = {lid: i for i, lid in enumerate(ledger.lot_ids.tolist())}
    sells, buys, unknown = [], [], 0
    by_reason: dict[str, np.ndarray] = {}
    hh_index = {h: i for i, h in enumerate(book.hh_ids.tolist())}
    for hid, reason, notional in zip(t["household_id"], t["reason"], t["notional"]):
        row = by_reason.setdefault(reason or "none", np.zeros(book.n_hh))
        row[hh_index[hid]] += abs(float(notional))
    for side, lot, acct, sec, q in zip(t["side"], t["lot_id"], t["account_id"], t["security_id"],
                                       t["quantity"]):
        if side == "sell":
            if lot not in lot_index:
                unknown += 1
                continue
            sells.append((lot_index[lot], float(q)))
        else:
            buys.append((acct_index[acct], sec_index[sec], float(q)))
    washes = int(np.sum(t["wash_sale"])) if "wash_sale" in t else 0
    return Proposals(sorted(sells), sorted(buys), status, messages, washes, unknown, by_reason)


# -- a large cash need ------------------------------------------------------------------------
@dataclass(frozen=True)
class NeedPlan:
    """One household's large cash need: known at run ``month``, due ``days`` later. hearth
    gets it as a ``cash_needs`` row every month until it is due (with its lead window
    widened to a month, since the simulator runs monthly); the naive sells for it on the
    day, as a withdrawal in its last run before the due date. Both pay it out of the
    taxable account after that run."""

    amount: float
    days: int
    month: int = 6


def need_household(book: Book, ledger: Ledger, prices: np.ndarray, amount: float) -> tuple[int, int]:
    """(household, taxable account) of the largest taxable account, which must hold at
    least 1.2x the amount."""
    values = np.where(book.acct_type == TAXABLE, ledger.account_values(prices), -np.inf)
    a = int(np.argmax(values))
    if values[a] < 1.2 * amount:
        raise SystemExit(f"--cash-need {amount:,.0f}: the largest taxable account holds "
                         f"${values[a]:,.0f}; use more households or a smaller amount")
    return int(book.acct_hh[a]), a


def _need_result(led: Ledger, h: int, year: int, before: tuple[float, float], short: float,
                 book: Book) -> dict:
    yt = led.year(year)
    st, lt = float(yt.st[h]) - before[0], float(yt.lt[h]) - before[1]
    return {"funded_on_time": short <= 0.01, "short": round(short, 2),
            "realized_st_gain": round(st, 2), "realized_lt_gain": round(lt, 2),
            "tax_at_rates": round(st * float(book.st_rate[h]) + lt * float(book.lt_rate[h]), 2)}


# -- one market path -------------------------------------------------------------------------
def _cap_withdrawal(ledger: Ledger, wanted: np.ndarray, prices: np.ndarray) -> np.ndarray:
    """A scheduled withdrawal never exceeds 95% of what the account holds."""
    cap = 0.95 * ledger.account_values(prices)
    paid = np.minimum(wanted, np.maximum(cap, 0.0))
    ledger.counters.unfunded_withdrawal_dollars += float((wanted - paid).sum())
    return paid


def simulate_path(book: Book, path: str, years: int, seed: int, config: RunConfig, workers: int,
                  out: str, reinvest: bool, band: float, keep_books: bool, *,
                  months: int | None = None, state: dict | None = None, log=sys.stderr,
                  need: NeedPlan | None = None) -> dict:
    """Simulate one market path for hearth and the naive; return its figures. ``months``
    cuts the run short (tests); ``state`` receives the two ledgers at the end; ``need``
    adds one household's large cash need (``result["cash_need"]``)."""
    t0 = time.perf_counter()
    months = 12 * years if months is None else min(months, 12 * years)
    run_prices, div_prices = market_prices(book, path, years, seed)
    dates = run_dates(book.start, months)
    div_dates = dividend_dates(book.start, months)
    ledgers = {"hearth": Ledger(book), "naive": Ledger(book)}
    series = {k: Series.empty(months, book.n_hh) for k in ledgers}
    acct_index = {a: i for i, a in enumerate(book.acct_ids.tolist())}
    sec_index = {s: i for i, s in enumerate(book.sec_ids.tolist())}
    root = os.path.join(out, path)
    static = os.path.join(root, "static")
    write_static(book, static)
    hearth_out = os.path.join(root, "hearth")
    executor = LocalExecutor(workers)
    statuses: dict[str, int] = {}
    failures: list[dict] = []
    failure_kinds: dict[str, int] = {}
    hearth_washes = 0
    run_seconds = 0.0
    reason_turnover: dict[str, np.ndarray] = {}  # sum over months of notional / 2 / value
    need_at: tuple[int, int] | None = None
    need_result: dict = {}
    if need is not None:
        need_at = need_household(book, ledgers["hearth"], run_prices[0], need.amount)
        known = day(dates[need.month])
        due = known + need.days
        pay_month = max(m for m in range(months) if day(dates[m]) <= due)
        need_year = int(str(dates[pay_month])[:4])
        need_before: dict[str, tuple[float, float]] = {}
        # the simulator runs monthly: the need must be in cash by the last run before it
        config = config.model_copy(update={"cash_need_lead_days":
                                           max(config.cash_need_lead_days, 31)})
    for m in range(months):
        today = day(dates[m])
        run_date = str(dates[m])
        prices = run_prices[m]
        if m > 0 and run_date[5:7] == "01":
            for ledger in ledgers.values():
                ledger.settle_year(int(run_date[:4]) - 1)
                ledger.settle_cash(after_run=False)
        need_now = need_at is not None and need.month <= m <= pay_month
        if need_now and m == need.month:
            for k, led in ledgers.items():
                yt = led.year(need_year)
                need_before[k] = (float(yt.st[need_at[0]]), float(yt.lt[need_at[0]]))
        # -- hearth ------------------------------------------------------------------------
        ledger = ledgers["hearth"]
        withdrawal = _cap_withdrawal(ledger, book.withdrawal + ledger.pending_withdrawal, prices)
        ledger.pending_withdrawal[:] = 0.0
        folder = os.path.join(root, "books", run_date) if keep_books else os.path.join(root, "book")
        if not keep_books:
            shutil.rmtree(folder, ignore_errors=True)
        needs = [(str(book.hh_ids[need_at[0]]), due, need.amount)] if need_now else None
        write_book(book, ledger, folder, today, prices, book.contribution, withdrawal, static,
                   needs=needs)
        t_run = time.perf_counter()
        run_book(folder, hearth_out, run_date, config, executor, progress=False)
        run_seconds += time.perf_counter() - t_run
        prop = read_proposals(book, ledger, hearth_out, run_date, acct_index, sec_index)
        hearth_washes += prop.hearth_wash_sales
        ledger.counters.unknown_lots += prop.unknown_lots
        for s in prop.status.values():
            statuses[s] = statuses.get(s, 0) + 1
        for h, msg in prop.messages.items():
            kind = f"{prop.status[h]}: {_failure_kind(msg)}"
            failure_kinds[kind] = failure_kinds.get(kind, 0) + 1
            if failure_kinds[kind] <= 3:  # the first few of each kind, to reproduce
                failures.append({"household": h, "run_date": run_date, "status": prop.status[h],
                                 "message": msg})
        ledger.cash += book.contribution
        ledger.execute(today, prices, prop.sells, prop.buys)
        ledger.cash -= withdrawal
        if need_now and m == pay_month:
            a = need_at[1]
            short = max(need.amount - float(ledger.cash[a]), 0.0)
            ledger.cash[a] -= need.amount
            need_result["hearth"] = _need_result(ledger, need_at[0], need_year,
                                                 need_before["hearth"], short, book)
        ok = np.array([prop.status.get(h) in ("traded", "no_trade") for h in book.hh_ids.tolist()])
        ledger.settle_cash(ok[book.acct_hh])
        series["hearth"].record(m, book, ledger, prices)
        for reason, notional in prop.notional_by_reason.items():
            acc = reason_turnover.setdefault(reason, np.zeros(book.n_hh))
            acc += notional / 2 / np.maximum(series["hearth"].value[m], 1.0)
        # -- naive -------------------------------------------------------------------------
        ledger = ledgers["naive"]
        withdrawal = _cap_withdrawal(ledger, book.withdrawal + ledger.pending_withdrawal, prices)
        ledger.pending_withdrawal[:] = 0.0
        if need_now and m == pay_month:  # sold on the day, as a withdrawal
            withdrawal[need_at[1]] += need.amount
        ledger.cash += book.contribution - withdrawal
        sells, buys, _ = naive_orders(book, ledger, prices, book.contribution, withdrawal, band)
        ledger.execute(today, prices, sells, buys)
        if need_now and m == pay_month:
            short = max(-float(ledger.cash[need_at[1]]), 0.0)
            need_result["naive"] = _need_result(ledger, need_at[0], need_year,
                                                need_before["naive"], short, book)
        ledger.settle_cash()
        series["naive"].record(m, book, ledger, prices)
        # -- income until the next run ---------------------------------------------------------
        if m < months - 1:
            for ledger in ledgers.values():
                ledger.pay_income(day(div_dates[m]), div_prices[m], reinvest)
                ledger.compact(day(div_dates[m]))
        if (m + 1) % 12 == 0 or m == months - 1:
            log.write(json.dumps({"event": "simulate", "path": path, "month": m + 1,
                                  "run_date": run_date, "seconds": round(time.perf_counter() - t0, 1),
                                  "lots": len(ledgers["hearth"].lot_qty), "statuses": statuses})
                      + "\n")
            log.flush()
    last = dates[-1]
    for ledger in ledgers.values():
        ledger.settle_year(int(str(last)[:4]))
        ledger.settle_cash(after_run=False)
    atv = {k: ledgers[k].after_tax_value(day(last), run_prices[months - 1]) for k in ledgers}
    if state is not None:
        state.update(ledgers)
    result = summarize(book, path, months / 12, ledgers, series, atv, statuses, failures,
                       hearth_washes, time.perf_counter() - t0, run_seconds)
    result["hearth_failure_kinds"] = dict(sorted(failure_kinds.items(), key=lambda kv: -kv[1]))
    if need_at is not None:
        h = need_at[0]
        need_result.update({
            "household": str(book.hh_ids[h]), "amount": need.amount,
            "known": str(dates[need.month]), "due": str(np.datetime64(due, "D")),
            "paid_after_run": str(dates[pay_month])})
        for k, led in ledgers.items():
            need_result[k]["cg_tax_paid_whole_run"] = round(float(led.cg_tax_paid[h]), 2)
        result["cash_need"] = need_result
    result["hearth_turnover_by_reason"] = {
        k: float(v.mean() / (months / 12) * 100)
        for k, v in sorted(reason_turnover.items(), key=lambda kv: -kv[1].sum())}
    return result


def _failure_kind(message: str | None) -> str:
    """A failure message without its record details, to count failures by kind."""
    text = message or ""
    for sep in (" [", " (", ";"):
        text = text.split(sep)[0]
    return text[:90]


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q))


def summarize(book: Book, path: str, years: float, ledgers: dict[str, Ledger],
              series: dict[str, Series], atv: dict[str, np.ndarray], statuses: dict[str, int],
              failures: list[dict], hearth_washes: int, seconds: float, run_seconds: float) -> dict:
    diff = ((atv["hearth"] / atv["naive"]) ** (1.0 / years) - 1.0) * 1e4
    out: dict = {"path": path, "description": PATHS[path], "households": book.n_hh, "years": years,
                 "after_tax_bps_per_year": {"median": float(np.median(diff)), "p10": _pct(diff, 10),
                                            "p90": _pct(diff, 90), "mean": float(diff.mean()),
                                            "share_ahead": float((diff > 0).mean())},
                 "hearth_statuses": statuses, "hearth_failures": failures,
                 "hearth_declared_wash_sales": hearth_washes,
                 "seconds": round(seconds, 1), "hearth_run_seconds": round(run_seconds, 1)}
    for k, led in ledgers.items():
        s = series[k]
        mean_value = s.value.mean(axis=0)
        c = led.counters
        out[k] = {
            "after_tax_value": float(atv[k].sum()),
            "class_weight_error_pts": float(s.class_error.mean()),
            "equity_tilt_pts": float(s.tilt.mean()),
            "equity_tilt_abs_pts": float(np.abs(s.tilt.mean(axis=0)).mean()),
            "idle_cash_pct": float(s.idle.mean()),
            "turnover_pct_per_year": float(s.turnover.sum(axis=0).mean() / years * 100),
            "turnover_after_first_run_pct_per_year":
                float(s.turnover[1:].sum(axis=0).mean() / max(years - 1 / 12, 1e-9) * 100),
            "taxes_bps_per_year": float((led.taxes_paid / mean_value).mean() / years * 1e4),
            "cg_tax_bps_per_year": float((led.cg_tax_paid / mean_value).mean() / years * 1e4),
            "div_tax_bps_per_year": float((led.div_tax_paid / mean_value).mean() / years * 1e4),
            "losses_realized": float(led.losses_realized.sum()),
            "losses_used": float(led.losses_used.sum()),
            "carryforward_left": float((led.carry_st + led.carry_lt).sum()),
            "wash_sales": c.wash_sales, "disallowed_loss": c.disallowed_loss,
            "disallowed_lost_in_ira": c.disallowed_lost_in_ira,
            "months_with_trades_share": float(s.traded.mean()),
            "sells": c.sells, "buys": c.buys,
            "oversells": c.oversells, "unknown_lots": c.unknown_lots,
            "cash_violations": c.cash_violations, "cash_violation_dollars": c.cash_violation_dollars,
            "unfunded_withdrawal_dollars": c.unfunded_withdrawal_dollars,
            "deferred_withdrawals": c.deferred_withdrawals,
            "owed_at_end": float(led.pending_withdrawal.sum()),
        }
    return out


# -- the report ------------------------------------------------------------------------------
ROWS = [
    ("after-tax value, $M", "after_tax_value", lambda v: f"{v / 1e6:,.2f}"),
    ("class-weight error, pts", "class_weight_error_pts", lambda v: f"{v:.2f}"),
    ("equity tilt, pts", "equity_tilt_pts", lambda v: f"{v:+.2f}"),
    ("idle cash over target, %", "idle_cash_pct", lambda v: f"{v:.2f}"),
    ("turnover, %/yr", "turnover_pct_per_year", lambda v: f"{v:.1f}"),
    ("  after the first run", "turnover_after_first_run_pct_per_year", lambda v: f"{v:.1f}"),
    ("taxes paid, bps/yr", "taxes_bps_per_year", lambda v: f"{v:.1f}"),
    ("  capital gains", "cg_tax_bps_per_year", lambda v: f"{v:.1f}"),
    ("  dividends", "div_tax_bps_per_year", lambda v: f"{v:.1f}"),
    ("losses realized, $k", "losses_realized", lambda v: f"{v / 1e3:,.0f}"),
    ("losses used, $k", "losses_used", lambda v: f"{v / 1e3:,.0f}"),
    ("carryforward left, $k", "carryforward_left", lambda v: f"{v / 1e3:,.0f}"),
    ("wash sales", "wash_sales", lambda v: f"{v:,d}"),
    ("disallowed loss, $k", "disallowed_loss", lambda v: f"{v / 1e3:,.1f}"),
    ("  of it lost in IRA/Roth/HSA, $k", "disallowed_lost_in_ira", lambda v: f"{v / 1e3:,.1f}"),
    ("household-months with trades", "months_with_trades_share", lambda v: f"{v:.1%}"),
    ("order lines (sells / buys)", None, None),
    ("oversold lots / unknown lots", None, None),
    ("cash violations ($)", None, None),
    ("withdrawals capped, $", "unfunded_withdrawal_dollars", lambda v: f"{v:,.0f}"),
    ("account-months short after a run", "deferred_withdrawals", lambda v: f"{v:,d}"),
    ("tax or withdrawal owed at the end, $", "owed_at_end", lambda v: f"{v:,.0f}"),
]


def criteria(r: dict) -> dict[str, bool]:
    h, n = r["hearth"], r["naive"]
    return {"median after-tax ahead": r["after_tax_bps_per_year"]["median"] > 0,
            "class-weight error <= naive": h["class_weight_error_pts"] <= n["class_weight_error_pts"],
            "equity tilt within 1 pt": abs(h["equity_tilt_pts"]) <= 1.0,
            "turnover <= 2x naive": h["turnover_pct_per_year"] <= 2 * n["turnover_pct_per_year"],
            "idle cash < 0.5%": h["idle_cash_pct"] < 0.5}


def table(r: dict) -> str:
    a = r["after_tax_bps_per_year"]
    lines = [f"== path {r['path']}: {r['description']} ({r['households']} households, "
             f"{r['years']} years, {r['seconds']:.0f}s, hearth runs {r['hearth_run_seconds']:.0f}s)",
             f"after-tax lead of hearth, bps/yr: median {a['median']:+.1f}  p10 {a['p10']:+.1f}  "
             f"p90 {a['p90']:+.1f}  mean {a['mean']:+.1f}  ahead in {a['share_ahead']:.0%} of households",
             f"{'':34s}{'hearth':>18s}{'naive':>18s}"]
    for label, key, fmt in ROWS:
        h, n = r["hearth"], r["naive"]
        if key is None:
            if label.startswith("order"):
                hv, nv = f"{h['sells']:,} / {h['buys']:,}", f"{n['sells']:,} / {n['buys']:,}"
            elif label.startswith("oversold"):
                hv, nv = f"{h['oversells']} / {h['unknown_lots']}", f"{n['oversells']} / {n['unknown_lots']}"
            else:
                hv = f"{h['cash_violations']} ({h['cash_violation_dollars']:,.2f})"
                nv = "-"
        else:
            hv, nv = fmt(h[key]), fmt(n[key])
        lines.append(f"{label:34s}{hv:>18s}{nv:>18s}")
    by_reason = r.get("hearth_turnover_by_reason", {})
    if by_reason:
        lines.append("hearth turnover by trade reason, %/yr: "
                     + ", ".join(f"{k} {v:.1f}" for k, v in by_reason.items()))
    need = r.get("cash_need")
    if need:
        lines.append(f"cash need of ${need['amount']:,.0f} for {need['household']}, known "
                     f"{need['known']}, due {need['due']} (paid after the run of "
                     f"{need['paid_after_run']}):")
        for k in ("hearth", "naive"):
            n = need[k]
            lines.append(f"  {k:6s} funded on time {'yes' if n['funded_on_time'] else 'NO'}"
                         f" (short ${n['short']:,.0f}); gains realized from then to the due date"
                         f" ST ${n['realized_st_gain']:,.0f}, LT ${n['realized_lt_gain']:,.0f}:"
                         f" ${n['tax_at_rates']:,.0f} of tax at its rates; capital-gains tax"
                         f" paid over the whole run ${n['cg_tax_paid_whole_run']:,.0f}")
    lines.append(f"wash sales hearth declared in trades.wash_sale: {r['hearth_declared_wash_sales']:,}")
    lines.append("hearth statuses (household-months): "
                 + ", ".join(f"{k} {v:,}" for k, v in sorted(r["hearth_statuses"].items())))
    for kind, count in list(r.get("hearth_failure_kinds", {}).items())[:6]:
        lines.append(f"  {count:5,d} x {kind}")
    for f in r["hearth_failures"][:3]:
        lines.append(f"  e.g. {f['status']}: {f['household']} on {f['run_date']}: {f['message'][:300]}")
    lines.append("done criteria: " + ", ".join(f"{k} {'PASS' if v else 'FAIL'}"
                                               for k, v in criteria(r).items()))
    return "\n".join(lines)


def _path_job(args: tuple) -> dict:
    households, seed, path, years, config, workers, out, reinvest, band, keep_books, months, need = args
    book = build_book(households, seed)
    return simulate_path(book, path, years, seed, config, workers, out, reinvest, band, keep_books,
                         months=months, need=need)


def run(households: int, years: int, paths: list[str], seed: int, config: RunConfig, workers: int,
        jobs: int, out: str, reinvest: bool = True, band: float = 0.05,
        keep_books: bool = False, months: int | None = None,
        need: NeedPlan | None = None) -> list[dict]:
    """Simulate every path; paths run in ``jobs`` processes (each runs hearth in-process
    with ``workers`` workers). Results are in the order of ``paths``."""
    args = [(households, seed, p, years, config, workers, out, reinvest, band, keep_books, months,
             need) for p in paths]
    if jobs <= 1 or len(paths) == 1:
        return [_path_job(a) for a in args]
    with cf.ProcessPoolExecutor(max_workers=min(jobs, len(paths)),
                                mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(_path_job, args))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--households", type=int, default=150)
    ap.add_argument("--years", type=int, default=5)
    ap.add_argument("--paths", default="flat,bear,bull", help=f"comma-separated: {', '.join(PATHS)}")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="hearth LocalExecutor workers per run")
    ap.add_argument("--jobs", type=int, default=1, help="market paths simulated in parallel")
    ap.add_argument("--config", default=None, help="hearth run configuration (TOML)")
    ap.add_argument("--out", default=None, help="keep every month's book and hearth outputs here")
    ap.add_argument("--dividends", choices=("reinvest", "cash"), default="reinvest")
    ap.add_argument("--band", type=float, default=0.05, help="naive rebalancing band (absolute weight)")
    ap.add_argument("--months", type=int, default=None,
                    help="stop after this many months (to reproduce a month's book with --out)")
    ap.add_argument("--quick", action="store_true", help="20 households, 1 year")
    ap.add_argument("--cash-need", type=float, default=0.0,
                    help="dollars one household needs in cash (the largest taxable account's); 0: none")
    ap.add_argument("--cash-need-days", type=int, default=60, help="days from known to due")
    ap.add_argument("--cash-need-month", type=int, default=6,
                    help="the run (0-based month) at which the need becomes known")
    a = ap.parse_args(argv)
    if a.quick:
        a.households, a.years = 20, 1
    paths = [p.strip() for p in a.paths.split(",") if p.strip()]
    for p in paths:
        if p not in PATHS:
            ap.error(f"unknown path {p!r}; use one of {', '.join(PATHS)}")
    config = load_config(a.config)
    out = a.out or tempfile.mkdtemp(prefix="hearth-sim-")
    t0 = time.perf_counter()
    try:
        results = run(a.households, a.years, paths, a.seed, config, a.workers, a.jobs, out,
                      a.dividends == "reinvest", a.band, keep_books=a.out is not None,
                      months=a.months,
                      need=NeedPlan(a.cash_need, a.cash_need_days, a.cash_need_month)
                      if a.cash_need > 0 else None)
    finally:
        if a.out is None:
            shutil.rmtree(out, ignore_errors=True)
    wall = time.perf_counter() - t0
    for r in results:
        print(table(r))
        print()
    n_months = 12 * a.years if a.months is None else min(a.months, 12 * a.years)
    print(f"wall time {wall:.0f}s for {a.households} households x {n_months} months x "
          f"{len(paths)} paths (seed {a.seed}, dividends {a.dividends}, naive band {a.band:.0%})")
    summary = {"command": {"households": a.households, "years": a.years, "paths": paths, "seed": a.seed,
                           "workers": a.workers, "jobs": a.jobs, "config": a.config,
                           "dividends": a.dividends, "band": a.band,
                           "cash_need": [a.cash_need, a.cash_need_days, a.cash_need_month]},
               "wall_seconds": round(wall, 1), "paths": {r["path"]: r for r in results},
               "criteria": {r["path"]: criteria(r) for r in results}}
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
