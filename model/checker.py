"""The compliance checker: an independent second opinion on every proposal.

It re-derives each hard rule of docs/model.md from the household's input records and
the proposed trades alone. It deliberately imports nothing of the optimization
(``build``, ``solve``, ``highs``): a bug there must not be able to hide here. Money
and share quantities are compared with :mod:`hearth.model.tolerances` and nothing
else; a value within tolerance of a bound is at the bound, not a violation.

Wash sales
----------
The window is ``wash_sale_days`` (W, 30): start = run date - W days.

* A **loss sale** is a proposed sale of a lot in a taxable account whose gain per
  share (price - basis / quantity) is below zero (below -LOSS_PER_SHARE_TOL, 1e-9
  dollars: a basis equal to the price up to float noise is no loss).
* The **replacement pool** of wash group g, household-wide, is
  (a) for every lot of g (any account) acquired on or after start, its shares still
  held after the proposal (quantity - sold);
  (b) today's buys of g (any account, any type: an IRA buy counts, Rev. Rul. 2008-5);
  (c) for buys in ``transactions`` within the window (trade date in [start, run
  date]) of an account x security that has no lot acquired in the window, their
  shares, at most the transaction's quantity and, over that account x security's
  rows in date order, at most the shares its lots still hold after the proposal
  (today's buys there are already in (b)). A row whose account or security is
  unknown (-1) is skipped; an unknown quantity is capped by the held shares only.
* **Never its own replacement** (IRC 1091, Rev. Rul. 56-602): the shares of the lot
  being sold, its unsold remainder included, never wash that lot's loss. Sold shares
  are never replacement shares for anything, so selling a whole position bought 20
  days ago at a loss is not a wash sale, and a loss sale nothing replaces is allowed.
* **Matching** (Treas. Reg. 1.1091-1(b)-(d)): the loss sales of g in order of
  (acquired date, lot index) take replacement shares in order of (acquired date,
  lot index / transaction order; today's buys last, in buy-line order); each
  replacement share is used once. A sale's disallowed loss is its loss per share x
  its washed shares, never more than its realized loss; a partial wash disallows
  only the matched part.
* **When a washed sale is allowed**: only where cash needs force it: the lot is
  under a ``no_hold`` restriction, or its account must raise cash today (withdrawal
  > 0, or cash + contribution below min_cash). Any other washed loss sale whose
  disallowed loss exceeds MONEY_TOL is ``wash_sale_w1``, naming the lot, the group
  and the replacement shares.
* **Declared figures**: the model declares its disallowed loss per lot
  (``disallowed_loss``); where it differs from the checker's by more than MONEY_TOL
  on a lot, the proposal is ``wash_sale_declared``. The tax figures treat the
  checker's disallowed loss as not realized.
* **W2**: a wash group with a loss sale in the window (a ``transactions`` sell with
  realized gain < 0 or null) may not be bought today in any account. A sell in an
  account known to be tax-advantaged is not a loss sale (a loss there is no loss
  for IRC 1091).
* **W3**: today's proposal never both sells a lot of a group at a loss in a taxable
  account and buys the same group anywhere, forced sales included: a forced washed
  sale is washed by earlier purchases only.

Budgets
-------
The tax budget bounds the netted additional tax, :func:`hearth.model.tax.tax_due` of
the run's short- and long-term gains (sold shares of taxable lots, disallowed
losses excluded) on top of the year to date; turnover is (buys + sells) / 2 over
household value. Cash needs relax both by exactly what they need, no more: each
tradable account must raise R = max(0, withdrawal + min_cash - cash - contribution),
and ``no_hold`` lots must be sold whole. The least-tax way to do that sells the
no_hold lots, then, per account, its sellable lots (not ``no_sell``/``no_trade``) in
order of marginal tax per dollar of net proceeds (rate x gain per share / (price x
(1 - cost)): losses first, then the cheapest gains; ties by lot index), the last lot
partly. The budget is relaxed by that sale's netted tax (its own wash sales
applied; never below zero) and turnover by half its sale value; the violation
message names both parts.

Broker-ready quantities
-----------------------
Every sell and buy quantity is a multiple of ``share_increment`` (to 1e-6 of an
increment plus float spacing) unless a sell is the whole lot, exactly its quantity.
Under ``whole_shares`` every buy is an exact integer and every sell an exact integer
or the whole lot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hearth.model.household import TAXABLE, Household
from hearth.model.tax import gains_by_term, long_term, sold_gain, tax_due
from hearth.model.tolerances import (
    DEFAULT_DUST_SHARES,
    DEFAULT_SHARE_INCREMENT,
    MONEY_TOL,
    is_dust,
    qty_tol,
)

# A sale loses money only below this gain per share (dollars): a basis that equals the
# price up to float noise is no loss. The model uses the same figure (model/wash.py).
LOSS_PER_SHARE_TOL = 1e-9
# A quantity is a multiple of the increment when q / increment is this close to an
# integer (plus the float spacing of q / increment, which grows with its size).
INCREMENT_RTOL = 1e-6


@dataclass(frozen=True)
class Violation:
    rule: str
    record: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule} [{self.record}]: {self.message}"


@dataclass(frozen=True)
class CheckRules:
    """The configured parts of the hard rules."""

    wash_sale_days: int = 30
    min_trade_value: float = 0.0
    whole_shares: bool = False
    dust_shares: float = DEFAULT_DUST_SHARES  # a no_hold position below this is gone
    share_increment: float = DEFAULT_SHARE_INCREMENT  # the broker's smallest share step


@dataclass(frozen=True)
class WashSales:
    """The checker's own wash-sale figures for a proposal, per lot."""

    loss_sale: np.ndarray  # bool: a sale at a loss in a taxable account
    washed: np.ndarray  # shares of the sale that replacement shares wash
    disallowed: np.ndarray  # dollars >= 0: loss per share x washed shares
    replacement: tuple[str, ...]  # the replacement shares matched ("" if none)


def _where(mask: np.ndarray) -> list[int]:
    if not mask.any():  # the common case, and much cheaper than flatnonzero
        return []
    return [int(i) for i in np.flatnonzero(mask)]


def _txn_column(hh: Household, name: str, fill: float, dtype: type) -> np.ndarray:
    """An optional transactions column; unknown where absent or not one per row (a
    Household whose transactions were replaced without it)."""
    col = getattr(hh, name, None)
    if col is None or len(col) != len(hh.txn_group):
        return np.full(len(hh.txn_group), fill, dtype=dtype)
    return np.asarray(col, dtype=dtype)


def _gain_per_share(hh: Household) -> np.ndarray:
    q = hh.quantity
    held = q > 0
    return hh.price[hh.lot_security] - np.where(held, hh.cost_basis / np.where(held, q, 1.0), 0.0)


def wash_sales(hh: Household, sell: np.ndarray, buy_account: np.ndarray,
               buy_security: np.ndarray, buy_quantity: np.ndarray,
               wash_sale_days: int = 30) -> WashSales:
    """Which loss sales of a proposal replacement shares wash, and by how much
    (the rules in this module's docstring, "Wash sales")."""
    n = hh.n_lots
    sell = np.asarray(sell, dtype=np.float64)
    per_share = _gain_per_share(hh)
    taxable = hh.account_type[hh.lot_account] == TAXABLE
    loss_sale = (sell > 0) & taxable & (per_share < -LOSS_PER_SHARE_TOL)
    washed = np.zeros(n)
    disallowed = np.zeros(n)
    replacement = [""] * n
    if not loss_sale.any():
        return WashSales(loss_sale, washed, disallowed, tuple(replacement))

    start = hh.run_date - np.timedelta64(wash_sale_days, "D")
    group_of_lot = hh.wash_group[hh.lot_security]
    remaining = np.maximum(hh.quantity - sell, 0.0)
    recent_lot = hh.acquired >= start
    t_account = _txn_column(hh, "txn_account", -1, np.int64)
    t_security = _txn_column(hh, "txn_security", -1, np.int64)
    t_quantity = _txn_column(hh, "txn_quantity", np.nan, np.float64)
    t_recent_buy = ((hh.txn_date >= start) & (hh.txn_date <= hh.run_date) & hh.txn_buy
                    & (t_account >= 0) & (t_security >= 0))
    buy_group = hh.wash_group[np.asarray(buy_security, dtype=np.int64)]
    acquired_day = np.asarray(hh.acquired, dtype="datetime64[D]").astype(np.int64)
    txn_day = np.asarray(hh.txn_date, dtype="datetime64[D]").astype(np.int64)

    for g in sorted(set(group_of_lot[loss_sale].tolist())):
        # (sort key, shares, the lot they belong to or -1, what they are)
        pool: list[tuple[tuple[int, int, int, int], float, int, str]] = []
        for l in _where((group_of_lot == g) & recent_lot & (remaining > 0)):
            pool.append(((0, int(acquired_day[l]), 0, l), float(remaining[l]), l,
                         f"lot {hh.lot_ids[l]} ({hh.account_ids[hh.lot_account[l]]}, "
                         f"acquired {hh.acquired[l]})"))
        held_left: dict[tuple[int, int], float] = {}
        rows = sorted(_where(t_recent_buy & (hh.txn_group == g)),
                      key=lambda t: (int(txn_day[t]), t))
        for t in rows:
            a, s = int(t_account[t]), int(t_security[t])
            position = (hh.lot_account == a) & (hh.lot_security == s)
            if (position & recent_lot).any():
                continue  # that purchase is a lot in the window, already in (a)
            left = held_left.setdefault((a, s), float(remaining[position].sum()))
            shares = left if np.isnan(t_quantity[t]) else min(float(t_quantity[t]), left)
            if shares <= 0:
                continue
            held_left[(a, s)] = left - shares
            pool.append(((0, int(txn_day[t]), 1, t), shares, -1,
                         f"buy of {hh.security_ids[s]} in {hh.account_ids[a]} on "
                         f"{hh.txn_date[t]}"))
        for j in _where((buy_group == g) & (np.asarray(buy_quantity) > 0)):
            a, s = int(buy_account[j]), int(buy_security[j])
            pool.append(((1, 0, 2, j), float(buy_quantity[j]), -1,
                         f"today's buy of {buy_quantity[j]:g} {hh.security_ids[s]} in "
                         f"{hh.account_ids[a]}"))
        if not pool:
            continue  # no replacement shares: no sale of this group is washed
        pool.sort(key=lambda e: e[0])
        left_in = [e[1] for e in pool]
        in_group = np.flatnonzero(loss_sale & (group_of_lot == g))
        sales = in_group[np.lexsort((in_group, acquired_day[in_group]))].tolist()
        for l in sales:
            need = float(sell[l])
            used: list[str] = []
            for i, (_, _, owner, what) in enumerate(pool):
                if need <= 0:
                    break
                if owner == l or left_in[i] <= 0:
                    continue  # never its own replacement; each share used once
                take = min(need, left_in[i])
                left_in[i] -= take
                need -= take
                used.append(f"{take:g} shares of {what}")
            washed[l] = float(sell[l]) - max(need, 0.0)
            realized_loss = -per_share[l] * sell[l]
            disallowed[l] = min(-per_share[l] * washed[l], realized_loss)
            replacement[l] = "; ".join(used)
    return WashSales(loss_sale, washed, disallowed, tuple(replacement))


# -- restrictions -----------------------------------------------------------------------------
def _matches(hh: Household, r) -> np.ndarray:
    """Securities a restriction applies to."""
    if r.security is not None:
        return np.array([sid == r.security for sid in hh.security_ids], dtype=bool)
    if r.sector is not None:
        return np.array([sec == r.sector for sec in hh.sector], dtype=bool)
    return np.array([r.tag in tags for tags in hh.tags], dtype=bool)


def _scope(hh: Household, r) -> np.ndarray:
    """account x security cells a restriction applies to."""
    accts = np.ones(hh.n_accounts, dtype=bool) if r.account < 0 else (
        np.arange(hh.n_accounts) == r.account)
    return accts[:, None] & _matches(hh, r)[None, :]


@dataclass(frozen=True)
class _Restricted:
    no_sell: np.ndarray  # account x security: sells forbidden (no_sell, no_trade)
    no_hold: np.ndarray  # account x security: must end at zero


def _restricted(hh: Household) -> _Restricted:
    shape = (hh.n_accounts, hh.n_securities)
    no_sell, no_hold = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    for r in hh.restrictions:
        if r.rule in ("no_sell", "no_trade"):
            no_sell |= _scope(hh, r)
        elif r.rule == "no_hold":
            no_hold |= _scope(hh, r)
    return _Restricted(no_sell, no_hold)


# -- budgets ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Relief:
    """What cash needs force: the least tax and the turnover they cost."""

    tax: float
    turnover: float
    why: str  # "raising the $R withdrawal from account A and selling no_hold lots L"


def _tax_due(hh: Household, run_st: float, run_lt: float) -> float:
    return tax_due(ytd_st=hh.ytd_st_gain, ytd_lt=hh.ytd_lt_gain, run_st=run_st, run_lt=run_lt,
                   carryforward_st=hh.loss_carryforward_st,
                   carryforward_lt=hh.loss_carryforward_lt, st_rate=hh.st_rate,
                   lt_rate=hh.lt_rate, ordinary_rate=hh.ordinary_rate,
                   filing_status=hh.filing_status)


def cash_needs(hh: Household) -> np.ndarray:
    """Dollars each tradable account must raise by selling: max(0, withdrawal + min_cash -
    cash - contribution); zero for untradable accounts."""
    need = hh.withdrawal + hh.min_cash - hh.cash - hh.contribution
    return np.where(hh.tradable & (need > MONEY_TOL), need, 0.0)


def least_tax_raise(hh: Household, restricted: _Restricted | None = None,
                    is_long: np.ndarray | None = None) -> np.ndarray:
    """Shares per lot of the least-tax sale that meets the household's cash needs: no_hold
    lots whole, then per account its sellable lots by marginal tax per dollar of net
    proceeds (losses first), the last one partly."""
    restricted = _restricted(hh) if restricted is None else restricted
    q = hh.quantity
    cells = (hh.lot_account, hh.lot_security)
    sellable = hh.tradable[hh.lot_account] & ~restricted.no_sell[cells] & (q > 0)
    net = hh.price[hh.lot_security] * (1 - hh.cost_rate[hh.lot_security])
    x = np.where(sellable & restricted.no_hold[cells], q, 0.0)
    short = cash_needs(hh) - np.bincount(hh.lot_account, weights=x * net, minlength=hh.n_accounts)
    if not (short > MONEY_TOL).any():
        return x
    taxable = hh.account_type[hh.lot_account] == TAXABLE
    is_long = long_term(hh.acquired, hh.run_date) if is_long is None else is_long
    rate = np.where(is_long, hh.lt_rate, hh.st_rate)
    per_dollar = np.where(taxable, rate * _gain_per_share(hh), 0.0) / np.where(net > 0, net, 1.0)
    order = np.lexsort((np.arange(hh.n_lots), per_dollar))
    for a in _where(short > MONEY_TOL):
        left = float(short[a])
        for l in order:
            if hh.lot_account[l] != a or not sellable[l] or x[l] > 0 or net[l] <= 0:
                continue
            x[l] = min(q[l], left / net[l])
            left -= x[l] * net[l]
            if left <= 0:
                break
    return x


def _relief(hh: Household, restricted: _Restricted, wash_sale_days: int,
            is_long: np.ndarray) -> _Relief:
    x = least_tax_raise(hh, restricted, is_long)
    if not (x > 0).any():
        return _Relief(0.0, 0.0, "")
    none = np.zeros(0, dtype=np.int64)
    ws = wash_sales(hh, x, none, none, np.zeros(0), wash_sale_days)
    taxable = hh.account_type[hh.lot_account] == TAXABLE
    price_l = hh.price[hh.lot_security]
    gain = np.where(taxable, sold_gain(x, hh.quantity, hh.cost_basis, price_l), 0.0)
    tax = max(0.0, _tax_due(hh, *gains_by_term(gain, is_long, ws.disallowed)))
    parts = []
    need = cash_needs(hh)
    for a in _where(need > 0):
        acct = hh.account_ids[a]
        if hh.withdrawal[a] > 0 and abs(need[a] - hh.withdrawal[a]) <= MONEY_TOL:
            parts.append(f"raising the ${need[a]:,.2f} withdrawal from account {acct}")
        elif hh.withdrawal[a] > 0:
            parts.append(f"raising ${need[a]:,.2f} in account {acct} for its "
                         f"${hh.withdrawal[a]:,.2f} withdrawal")
        else:
            parts.append(f"raising ${need[a]:,.2f} in account {acct} to reach its min cash "
                         f"${hh.min_cash[a]:,.2f}")
    no_hold = restricted.no_hold[hh.lot_account, hh.lot_security] & (x > 0)
    if no_hold.any():
        parts.append("selling the no_hold lots " + ", ".join(hh.lot_ids[l] for l in _where(no_hold)))
    return _Relief(tax, float((x * price_l).sum()) / 2, " and ".join(parts))


# -- the check ------------------------------------------------------------------------------------
def _multiple_of(x: np.ndarray, step: float) -> np.ndarray:
    k = np.asarray(x, dtype=np.float64) / step
    return np.abs(k - np.round(k)) <= INCREMENT_RTOL + 4 * np.finfo(float).eps * np.abs(k)


def _exact_integer(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.isfinite(x) & (x == np.trunc(x))


def check_proposal(hh: Household, sell: np.ndarray, buy_account: np.ndarray,
                   buy_security: np.ndarray, buy_quantity: np.ndarray,
                   final_cash: np.ndarray, rules: CheckRules, *,
                   disallowed_loss: np.ndarray | None = None) -> list[Violation]:
    """Every hard-rule violation of a proposal; empty when it may be executed.

    ``disallowed_loss`` is the model's declared disallowed loss per lot (dollars >= 0;
    None or nan: none declared), checked against the checker's own wash-sale figures.
    """
    v: list[Violation] = []
    sell = np.asarray(sell, dtype=np.float64)
    buy_account = np.asarray(buy_account, dtype=np.int64)
    buy_security = np.asarray(buy_security, dtype=np.int64)
    buy_quantity = np.asarray(buy_quantity, dtype=np.float64)
    q = hh.quantity
    price_l = hh.price[hh.lot_security]
    tol_q = qty_tol(q)
    sold = sell > 0

    def buy_record(j: int) -> str:
        return f"{hh.account_ids[buy_account[j]]}/{hh.security_ids[buy_security[j]]}"

    # -- quantities ---------------------------------------------------------------------
    for l in _where((sell < -tol_q) | (sell > q + tol_q)):
        v.append(Violation("oversell", hh.lot_ids[l],
                           f"sells {sell[l]:g} shares of a lot holding {q[l]:g}"))
    for j in _where(buy_quantity <= 0):
        v.append(Violation("non_positive_buy", hh.security_ids[buy_security[j]],
                           f"buy quantity {buy_quantity[j]:g}"))
    for l in _where(sold & ~hh.tradable[hh.lot_account]):
        v.append(Violation("untradable_account", hh.lot_ids[l],
                           f"sells in untradable account {hh.account_ids[hh.lot_account[l]]}"))
    for j in _where(~hh.tradable[buy_account]):
        v.append(Violation("untradable_account", hh.account_ids[buy_account[j]],
                           f"buys {hh.security_ids[buy_security[j]]} in an untradable account"))

    # -- cash (an empty proposal too: the backstop for an unfundable account) -------------
    cost = hh.cost_rate
    proceeds = np.bincount(hh.lot_account, weights=sell * price_l * (1 - cost[hh.lot_security]),
                           minlength=hh.n_accounts)
    spent = np.bincount(buy_account, minlength=hh.n_accounts,
                        weights=buy_quantity * hh.price[buy_security] * (1 + cost[buy_security]))
    cash = hh.cash + hh.contribution - hh.withdrawal + proceeds - spent
    floor = hh.min_cash  # untradable accounts too: nothing there can raise it, and it must hold
    for a in _where(np.abs(cash - final_cash) > MONEY_TOL):
        v.append(Violation("cash_balance", hh.account_ids[a], f"final cash {final_cash[a]:,.2f} "
                           f"does not match the trades, which leave {cash[a]:,.2f}"))
    for a in _where(cash < floor - MONEY_TOL):
        rule = "withdrawal_funded" if hh.withdrawal[a] > 0 else "min_cash"
        v.append(Violation(rule, hh.account_ids[a], f"cash after trading {cash[a]:,.2f} is below "
                           f"{floor[a]:,.2f}"))
    for a in _where(hh.tradable & (cash > hh.max_cash + MONEY_TOL)):
        v.append(Violation("max_cash", hh.account_ids[a], f"cash after trading {cash[a]:,.2f} "
                           f"exceeds max_cash {hh.max_cash[a]:,.2f}"))

    # -- restrictions, menus, model ---------------------------------------------------------
    position = np.zeros((hh.n_accounts, hh.n_securities))
    np.add.at(position, (hh.lot_account, hh.lot_security), q - sell)
    np.add.at(position, (buy_account, buy_security), buy_quantity)
    lot_cell = (hh.lot_account, hh.lot_security)
    for r in hh.restrictions:
        scope = _scope(hh, r)
        what = r.describe(hh.account_ids)
        if r.rule in ("no_buy", "no_trade", "no_hold"):
            for j in _where(scope[buy_account, buy_security]):
                v.append(Violation(r.rule, buy_record(j), f"buy breaks {what}"))
        if r.rule in ("no_sell", "no_trade"):
            for l in _where(sold & scope[lot_cell]):
                v.append(Violation(r.rule, hh.lot_ids[l], f"sell breaks {what}"))
        if r.rule == "no_hold":
            for a, s in zip(*np.nonzero(scope & ~is_dust(position, rules.dust_shares))):
                v.append(Violation("no_hold", f"{hh.account_ids[a]}/{hh.security_ids[s]}",
                                   f"{position[a, s]:g} shares remain; {what}"))
    restricted = _restricted(hh)
    for j in _where(~hh.menu[buy_account, buy_security]):
        v.append(Violation("menu", buy_record(j), "security is not on the account's menu"))
    for j in _where(hh.rank[buy_security] < 1):
        v.append(Violation("off_model", buy_record(j),
                           "security is not listed by the household's model"))

    # -- wash sales (taxable losses; every account's purchases count) -----------------------
    ws = wash_sales(hh, sell, buy_account, buy_security, buy_quantity, rules.wash_sale_days)
    group_of_lot = hh.wash_group[hh.lot_security]
    raises_cash = hh.tradable & ((hh.withdrawal > 0)
                                 | (hh.cash + hh.contribution < hh.min_cash - MONEY_TOL))
    forced = restricted.no_hold[lot_cell] | raises_cash[hh.lot_account]
    for l in _where((ws.disallowed > MONEY_TOL) & ~forced):
        v.append(Violation("wash_sale_w1", hh.lot_ids[l],
                           f"loss sale in wash group {hh.wash_groups[group_of_lot[l]]} is washed "
                           f"(${ws.disallowed[l]:,.2f} disallowed) by {ws.replacement[l]}; "
                           "only a cash need may force a washed sale"))
    declared = np.zeros(hh.n_lots) if disallowed_loss is None else np.nan_to_num(
        np.asarray(disallowed_loss, dtype=np.float64), nan=0.0)  # null: none disallowed
    for l in _where(np.abs(declared - ws.disallowed) > MONEY_TOL):
        found = f"washed by {ws.replacement[l]}" if ws.replacement[l] else "not washed"
        v.append(Violation("wash_sale_declared", hh.lot_ids[l],
                           f"declares ${declared[l]:,.2f} of disallowed loss; the sale has "
                           f"${ws.disallowed[l]:,.2f} ({found})"))
    start = hh.run_date - np.timedelta64(rules.wash_sale_days, "D")
    t_account = _txn_column(hh, "txn_account", -1, np.int64)
    t_advantaged = np.zeros(len(t_account), dtype=bool)
    known = t_account >= 0
    t_advantaged[known] = hh.account_type[t_account[known]] != TAXABLE
    recent_loss = ((hh.txn_date >= start) & (hh.txn_date <= hh.run_date) & ~hh.txn_buy
                   & ~(hh.txn_realized_gain >= 0) & ~t_advantaged)  # nan (null) is a loss
    buy_group = hh.wash_group[buy_security]
    n_groups = len(hh.wash_groups)
    lost_recently = np.zeros(n_groups, dtype=bool)
    lost_recently[hh.txn_group[recent_loss]] = True
    bought_today = np.zeros(n_groups, dtype=bool)
    bought_today[buy_group] = True
    for j in _where(lost_recently[buy_group]):
        g = int(buy_group[j])
        when = hh.txn_date[recent_loss & (hh.txn_group == g)].max()
        v.append(Violation("wash_sale_w2", buy_record(j),
                           f"buys wash group {hh.wash_groups[g]} within "
                           f"{rules.wash_sale_days} days of a loss sale (on {when})"))
    for l in _where(ws.loss_sale & bought_today[group_of_lot]):
        v.append(Violation("wash_sale_w3", hh.lot_ids[l],
                           f"loss sale while the proposal buys wash group "
                           f"{hh.wash_groups[group_of_lot[l]]}"))

    # -- budgets ----------------------------------------------------------------------------
    is_long = long_term(hh.acquired, hh.run_date)
    relief = (_relief(hh, restricted, rules.wash_sale_days, is_long)
              if hh.tax_budget is not None or hh.turnover_limit is not None
              else _Relief(0.0, 0.0, ""))
    if hh.tax_budget is not None:
        taxable = hh.account_type[hh.lot_account] == TAXABLE
        gain = np.where(taxable, sold_gain(sell, q, hh.cost_basis, price_l), 0.0)
        run_st, run_lt = gains_by_term(gain, is_long, ws.disallowed)
        tax = _tax_due(hh, run_st, run_lt)
        if tax > hh.tax_budget + relief.tax + MONEY_TOL:
            because = f" (+ ${relief.tax:,.2f} that {relief.why} needs)" if relief.why else ""
            v.append(Violation("tax_budget", hh.household_id,
                               f"realizes ${tax:,.2f} of tax against a budget of "
                               f"${hh.tax_budget:,.2f}{because}; netted: short-term "
                               f"${run_st:,.2f} and long-term ${run_lt:,.2f} on top of the "
                               "year to date and carryforwards"))
    if hh.turnover_limit is not None:
        traded = float((sell * price_l).sum() + (buy_quantity * hh.price[buy_security]).sum())
        value = hh.value()
        if traded / 2 > hh.turnover_limit * value + relief.turnover + MONEY_TOL:
            because = (f" (+ ${relief.turnover:,.2f} that {relief.why} needs)"
                       if relief.why else "")
            v.append(Violation("turnover", hh.household_id,
                               f"turnover ${traded / 2:,.2f} exceeds "
                               f"{hh.turnover_limit:.2%} of ${value:,.2f}{because}"))

    # -- order sizes --------------------------------------------------------------------------
    if rules.min_trade_value > 0:
        held = np.zeros((hh.n_accounts, hh.n_securities))
        np.add.at(held, lot_cell, q)
        sold_pos = np.zeros_like(held)
        np.add.at(sold_pos, lot_cell, sell)
        for a, s in zip(*np.nonzero(sold_pos > 0)):
            order_value = sold_pos[a, s] * hh.price[s]
            closes = bool(is_dust(held[a, s] - sold_pos[a, s], rules.dust_shares))
            if order_value < rules.min_trade_value - MONEY_TOL and not closes:
                v.append(Violation("min_trade", f"{hh.account_ids[a]}/{hh.security_ids[s]}",
                                   f"sell order of ${order_value:,.2f} is below the minimum "
                                   f"${rules.min_trade_value:,.2f}"))
        for j in _where(buy_quantity * hh.price[buy_security] < rules.min_trade_value - MONEY_TOL):
            v.append(Violation("min_trade", buy_record(j),
                               f"buy order of ${buy_quantity[j] * hh.price[buy_security[j]]:,.2f}"
                               f" is below the minimum ${rules.min_trade_value:,.2f}"))
    whole_lot = sell == q
    for l in _where(sold & ~whole_lot & ~_multiple_of(sell, rules.share_increment)):
        v.append(Violation("share_increment", hh.lot_ids[l],
                           f"sells {sell[l]!r} shares: not a multiple of "
                           f"{rules.share_increment:g} nor the whole lot ({q[l]!r})"))
    for j in _where((buy_quantity > 0) & ~_multiple_of(buy_quantity, rules.share_increment)):
        v.append(Violation("share_increment", buy_record(j),
                           f"buys {buy_quantity[j]!r} shares: not a multiple of "
                           f"{rules.share_increment:g}"))
    if rules.whole_shares:
        for l in _where(sold & ~whole_lot & ~_exact_integer(sell)):
            v.append(Violation("whole_shares", hh.lot_ids[l], f"sells {sell[l]!r} shares: "
                               "neither whole shares nor the whole lot"))
        for j in _where(~_exact_integer(buy_quantity)):
            v.append(Violation("whole_shares", buy_record(j),
                               f"buys {buy_quantity[j]!r} shares: not an exact integer"))
    return v
