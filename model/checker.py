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

Cash needs
----------
A ``cash_needs`` record is due in D = due date - run date days (a past date: 0). With
L = ``cash_need_lead_days`` and R = ``cash_reserve_days``:

* **Due within L days** (``cash_need``): an account's needs must be in its cash after
  the proposal, on top of min_cash; household-level needs (no account) must be in
  the cash of the household's tradable taxable accounts together, on top of each of
  those accounts' own floor (min_cash and its own needs). The violation names the
  needs, the account(s) and the shortfall.
* **Due within R days** (``cash_reserve``): the cash there before trading (cash +
  contribution - withdrawal, above the floor) is kept up to those needs: it may not
  be invested.
* Those accounts may hold that cash above max_cash (a household-level need's in any
  of its funding accounts), and an account that must raise a need due within L days
  may make a washed loss sale, as for a withdrawal; the budgets' relief (below)
  counts those needs as cash to raise.

Concentration
-------------
With a position limit (``households.max_position_share``, else the configured one;
1 is none), no buy leaves a limited issuer above limit x V; with a sector limit
(``households.max_sector_share``, else the configured one), no buy leaves a limited
sector above sector limit x V. The limited securities are those the household's
model does not list (rank 0), or every security with scope ``all``; an issuer's
position is that of its limited securities together (``securities.issuer``; a
security with none is its own issuer), a sector's that of its limited securities
with that ``securities.sector``. V is the household's holdings and cash +
contributions - withdrawals + held-away, and a security's position its shares in
every account after the proposal times price, with a traditional account's
dollars at (1 - retirement_rate) when the exposure basis is ``after_tax``. A
group left above its limit without buying into it is no violation (it is wound
down over nights).

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

from hearth.model.household import TAXABLE, TRADITIONAL, Household
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
    cash_need_lead_days: int = 5  # cash needs due within this many days must be in cash
    cash_reserve_days: int = 90  # ... within this many, the cash held for them is kept
    max_position_share: float = 1.0  # concentration limit (the household's column wins)
    max_sector_share: float = 1.0  # sector concentration limit (likewise)
    concentration_scope: str = "unlisted"  # "unlisted" (by the model) or "all"
    exposure_basis: str = "pre_tax"  # "after_tax": traditional dollars at 1 - retirement_rate


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


def _by_group(group: np.ndarray, mask: np.ndarray) -> dict[int, list[int]]:
    """The indices where ``mask`` holds, by their ``group``, each list ascending (what
    ``_where((group == g) & mask)`` gives for every g at once)."""
    idx = np.flatnonzero(mask)
    out: dict[int, list[int]] = {}
    for g, i in zip(group[idx].tolist(), idx.tolist()):
        out.setdefault(g, []).append(i)
    return out


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

    recent_by_group = _by_group(group_of_lot, recent_lot & (remaining > 0))
    buys_by_group = _by_group(hh.txn_group, t_recent_buy)
    today_by_group = _by_group(buy_group, np.asarray(buy_quantity) > 0)
    sales_by_group = _by_group(group_of_lot, loss_sale)
    for g in sorted(sales_by_group):
        # (sort key, shares, the lot they belong to or -1, what they are)
        pool: list[tuple[tuple[int, int, int, int], float, int, str]] = []
        for l in recent_by_group.get(g, []):
            pool.append(((0, int(acquired_day[l]), 0, l), float(remaining[l]), l,
                         f"lot {hh.lot_ids[l]} ({hh.account_ids[hh.lot_account[l]]}, "
                         f"acquired {hh.acquired[l]})"))
        held_left: dict[tuple[int, int], float] = {}
        rows = sorted(buys_by_group.get(g, []), key=lambda t: (int(txn_day[t]), t))
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
        for j in today_by_group.get(g, []):
            a, s = int(buy_account[j]), int(buy_security[j])
            pool.append(((1, 0, 2, j), float(buy_quantity[j]), -1,
                         f"today's buy of {buy_quantity[j]:g} {hh.security_ids[s]} in "
                         f"{hh.account_ids[a]}"))
        if not pool:
            continue  # no replacement shares: no sale of this group is washed
        pool.sort(key=lambda e: e[0])
        left_in = [e[1] for e in pool]
        in_group = np.asarray(sales_by_group[g])
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


@dataclass(frozen=True)
class _Needs:
    """The household's cash needs per the rules of "Cash needs", dollars."""

    due: np.ndarray  # bool per need: due within the lead window
    kept: np.ndarray  # bool per need: due within the reserve horizon (lead included)
    account_due: np.ndarray  # per account: its own needs due within the lead window
    account_keep: np.ndarray  # per account: cash it must hold for its own needs
    funding: np.ndarray  # bool per account: tradable taxable (funds household-level needs)
    pool_due: float  # household-level needs due within the lead window
    pool_keep: float  # cash the funding accounts must hold together for them

    def floor(self, hh: Household) -> np.ndarray:
        return hh.min_cash + self.account_keep

    def above_cap(self) -> np.ndarray:
        """Per account, how far its cash may exceed max_cash."""
        return self.account_keep + np.where(self.funding, self.pool_keep, 0.0)


def _needs(hh: Household, lead_days: int = 5, reserve_days: int = 90) -> _Needs:
    n_a = hh.n_accounts
    amount = np.asarray(hh.need_amount, dtype=np.float64)
    account = np.asarray(hh.need_account, dtype=np.int64)
    days = np.maximum((np.asarray(hh.need_due, dtype="datetime64[D]")
                       - np.asarray(hh.run_date, dtype="datetime64[D]")).astype(np.int64), 0)
    due = days <= lead_days
    kept = days <= max(lead_days, reserve_days)
    named = account >= 0
    account_due = np.zeros(n_a)
    np.add.at(account_due, account[named & due], amount[named & due])
    account_kept = np.zeros(n_a)
    np.add.at(account_kept, account[named & kept], amount[named & kept])
    before = hh.cash + hh.contribution - hh.withdrawal
    keep = np.zeros(n_a)
    for a in _where(account_kept > 0):
        keep[a] = max(account_due[a], min(max(before[a] - hh.min_cash[a], 0.0), account_kept[a]))
    funding = (hh.account_type == TAXABLE) & hh.tradable
    pool_due = float(amount[~named & due].sum())
    pool_kept = float(amount[~named & kept].sum())
    pool_keep = 0.0
    if pool_kept > 0:
        spare = float(np.maximum(before - hh.min_cash - keep, 0.0)[funding].sum())
        pool_keep = max(pool_due, min(spare, pool_kept))
    return _Needs(due, kept, account_due, keep, funding, pool_due, pool_keep)


def cash_needs(hh: Household, lead_days: int = 5) -> np.ndarray:
    """Dollars each tradable account must raise by selling: max(0, withdrawal + min_cash +
    its cash needs due within ``lead_days`` - cash - contribution); zero for untradable
    accounts. Household-level needs are ``least_tax_raise``'s to place."""
    needs = _needs(hh, lead_days, lead_days)
    need = hh.withdrawal + hh.min_cash + needs.account_due - hh.cash - hh.contribution
    return np.where(hh.tradable & (need > MONEY_TOL), need, 0.0)


def _pool_short(hh: Household, lead_days: int) -> float:
    """Dollars the funding accounts must raise together for household-level needs due
    within ``lead_days``, beyond the cash they hold above their own floors."""
    needs = _needs(hh, lead_days, lead_days)
    if needs.pool_due <= 0:
        return 0.0
    before = hh.cash + hh.contribution - hh.withdrawal
    spare = float(np.maximum(before - needs.floor(hh), 0.0)[needs.funding].sum())
    return max(needs.pool_due - spare, 0.0)


def least_tax_raise(hh: Household, restricted: _Restricted | None = None,
                    is_long: np.ndarray | None = None, lead_days: int = 5) -> np.ndarray:
    """Shares per lot of the least-tax sale that meets the household's cash needs: no_hold
    lots whole, then per account its sellable lots by marginal tax per dollar of net
    proceeds (losses first), the last one partly; then household-level needs due within
    ``lead_days`` from the funding accounts' remaining lots, in the same order."""
    restricted = _restricted(hh) if restricted is None else restricted
    q = hh.quantity
    cells = (hh.lot_account, hh.lot_security)
    sellable = hh.tradable[hh.lot_account] & ~restricted.no_sell[cells] & (q > 0)
    net = hh.price[hh.lot_security] * (1 - hh.cost_rate[hh.lot_security])
    x = np.where(sellable & restricted.no_hold[cells], q, 0.0)
    short = cash_needs(hh, lead_days) - np.bincount(hh.lot_account, weights=x * net,
                                                     minlength=hh.n_accounts)
    pool = _pool_short(hh, lead_days)
    if not (short > MONEY_TOL).any() and pool <= MONEY_TOL:
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
    funding = _needs(hh, lead_days, lead_days).funding
    for l in order:  # household-level needs: whichever funding account sells cheapest
        if pool <= MONEY_TOL:
            break
        if not funding[hh.lot_account[l]] or not sellable[l] or net[l] <= 0 or x[l] >= q[l]:
            continue
        more = min(q[l] - x[l], pool / net[l])
        x[l] += more
        pool -= more * net[l]
    return x


def forced_investment(hh: Household, x: np.ndarray, lead_days: int = 5) -> np.ndarray:
    """Dollars per account that must be bought because its cash would otherwise end
    above max_cash (plus what it keeps for cash needs) once the forced sale ``x``
    (``least_tax_raise``) is made: the proceeds of a no_hold sale cannot stay in cash
    any more than a contribution can."""
    net = hh.price[hh.lot_security] * (1 - hh.cost_rate[hh.lot_security])
    after = (hh.cash + hh.contribution - hh.withdrawal
             + np.bincount(hh.lot_account, weights=x * net, minlength=hh.n_accounts))
    cap = hh.max_cash + _needs(hh, lead_days, lead_days).above_cap()
    return np.where(hh.tradable, np.maximum(after - cap, 0.0), 0.0)


def _relief(hh: Household, restricted: _Restricted, wash_sale_days: int,
            is_long: np.ndarray, lead_days: int = 5) -> _Relief:
    x = least_tax_raise(hh, restricted, is_long, lead_days)
    if not (x > 0).any():
        return _Relief(0.0, 0.0, "")
    invest = forced_investment(hh, x, lead_days)
    none = np.zeros(0, dtype=np.int64)
    ws = wash_sales(hh, x, none, none, np.zeros(0), wash_sale_days)
    taxable = hh.account_type[hh.lot_account] == TAXABLE
    price_l = hh.price[hh.lot_security]
    gain = np.where(taxable, sold_gain(x, hh.quantity, hh.cost_basis, price_l), 0.0)
    tax = max(0.0, _tax_due(hh, *gains_by_term(gain, is_long, ws.disallowed)))
    parts = []
    need = cash_needs(hh, lead_days)
    named = _needs(hh, lead_days, lead_days).account_due
    for a in _where(need > 0):
        acct = hh.account_ids[a]
        if named[a] > 0:
            parts.append(f"raising ${need[a]:,.2f} in account {acct} for its "
                         f"${named[a]:,.2f} of cash needs due")
        elif hh.withdrawal[a] > 0 and abs(need[a] - hh.withdrawal[a]) <= MONEY_TOL:
            parts.append(f"raising the ${need[a]:,.2f} withdrawal from account {acct}")
        elif hh.withdrawal[a] > 0:
            parts.append(f"raising ${need[a]:,.2f} in account {acct} for its "
                         f"${hh.withdrawal[a]:,.2f} withdrawal")
        else:
            parts.append(f"raising ${need[a]:,.2f} in account {acct} to reach its min cash "
                         f"${hh.min_cash[a]:,.2f}")
    pool = _pool_short(hh, lead_days)
    if pool > MONEY_TOL:
        parts.append(f"raising ${pool:,.2f} for household-level cash needs due")
    no_hold = restricted.no_hold[hh.lot_account, hh.lot_security] & (x > 0)
    if no_hold.any():
        parts.append("selling the no_hold lots " + ", ".join(hh.lot_ids[l] for l in _where(no_hold)))
    for a in _where(invest > MONEY_TOL):
        parts.append(f"investing ${invest[a]:,.2f} the sale leaves above max cash in account "
                     f"{hh.account_ids[a]}")
    return _Relief(tax, (float((x * price_l).sum()) + float(invest.sum())) / 2,
                   " and ".join(parts))


def _need_names(hh: Household, which: np.ndarray) -> str:
    """The needs selected by ``which``: id, amount and due date each."""
    ids = hh.need_ids
    return ", ".join(f"{ids[i] if i < len(ids) else f'need {i}'} (${hh.need_amount[i]:,.2f} due "
                     f"{hh.need_due[i]})" for i in _where(which))


def _need_record(hh: Household, which: np.ndarray) -> str:
    ids = hh.need_ids
    return ", ".join(ids[i] if i < len(ids) else f"need {i}" for i in _where(which))


def _need_violations(hh: Household, needs: _Needs, cash: np.ndarray,
                     rules: CheckRules) -> list[Violation]:
    """Cash needs due within the lead window not in cash after the proposal
    (``cash_need``), and cash held for needs within the reserve horizon invested
    (``cash_reserve``); per account that names needs, and for household-level needs
    over the funding accounts together."""
    v: list[Violation] = []
    account = np.asarray(hh.need_account, dtype=np.int64)
    lead, reserve = rules.cash_need_lead_days, rules.cash_reserve_days
    for a in _where(needs.account_keep > 0):
        acct = hh.account_ids[a]
        have = float(cash[a] - hh.min_cash[a])  # cash after trading above min_cash
        if have < needs.account_due[a] - MONEY_TOL:
            which = (account == a) & needs.due
            v.append(Violation(
                "cash_need", _need_record(hh, which),
                f"cash needs due within {lead} days from account {acct} are not funded: "
                f"{_need_names(hh, which)}; cash after trading ${cash[a]:,.2f} is "
                f"${have:,.2f} above min_cash ${hh.min_cash[a]:,.2f}, short by "
                f"${needs.account_due[a] - have:,.2f}"))
        elif have < needs.account_keep[a] - MONEY_TOL:
            which = (account == a) & needs.kept
            v.append(Violation(
                "cash_reserve", _need_record(hh, which),
                f"invests ${needs.account_keep[a] - have:,.2f} of the "
                f"${needs.account_keep[a]:,.2f} account {acct} holds for cash needs due within "
                f"{reserve} days ({_need_names(hh, which)}); that cash must stay cash"))
    if needs.pool_keep > 0:
        funding = needs.funding
        names = ", ".join(hh.account_ids[a] for a in _where(funding)) or "none"
        have = float((cash - needs.floor(hh))[funding].sum())
        if have < needs.pool_due - MONEY_TOL:
            which = (account < 0) & needs.due
            v.append(Violation(
                "cash_need", _need_record(hh, which),
                f"household-level cash needs due within {lead} days are not funded: "
                f"{_need_names(hh, which)}; the tradable taxable accounts ({names}) hold "
                f"${have:,.2f} above their floors after trading, short by "
                f"${needs.pool_due - have:,.2f}"))
        elif have < needs.pool_keep - MONEY_TOL:
            which = (account < 0) & needs.kept
            v.append(Violation(
                "cash_reserve", _need_record(hh, which),
                f"invests ${needs.pool_keep - have:,.2f} of the ${needs.pool_keep:,.2f} the "
                f"tradable taxable accounts ({names}) hold for household-level cash needs due "
                f"within {reserve} days ({_need_names(hh, which)}); that cash must stay cash"))
    return v


# -- the check ------------------------------------------------------------------------------------
def _multiple_of(x: np.ndarray, step: float) -> np.ndarray:
    k = np.asarray(x, dtype=np.float64) / step
    return np.abs(k - np.round(k)) <= INCREMENT_RTOL + 4 * np.finfo(float).eps * np.abs(k)


def _exact_integer(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.isfinite(x) & (x == np.trunc(x))


def concentration_violations(hh: Household, sell: np.ndarray, buy_account: np.ndarray,
                             buy_security: np.ndarray, buy_quantity: np.ndarray,
                             rules: CheckRules) -> list[Violation]:
    """No buy takes a limited issuer or sector above its limit (module docstring)."""
    share = hh.max_position_share if hh.max_position_share is not None else rules.max_position_share
    sector_share = (hh.max_sector_share if hh.max_sector_share is not None
                    else rules.max_sector_share)
    if (share >= 1.0 and sector_share >= 1.0) or len(buy_quantity) == 0:
        return []
    w = np.ones(hh.n_accounts)
    if rules.exposure_basis == "after_tax":
        w = np.where(hh.account_type == TRADITIONAL, 1.0 - hh.retirement_rate, 1.0)
    held = hh.quantity * hh.price[hh.lot_security] * w[hh.lot_account]
    value = max(float(held.sum() + (w * (hh.cash + hh.contribution - hh.withdrawal)).sum()
                      + hh.held_away.sum()), 0.0)
    after = np.zeros(hh.n_securities)
    np.add.at(after, hh.lot_security, (hh.quantity - sell) * hh.price[hh.lot_security]
              * w[hh.lot_account])
    np.add.at(after, buy_security, buy_quantity * hh.price[buy_security] * w[buy_account])
    limited = (hh.rank == 0) if rules.concentration_scope == "unlisted" else np.ones(
        hh.n_securities, dtype=bool)
    issuer = [(hh.issuer[s] if len(hh.issuer) == hh.n_securities else None) or hh.security_ids[s]
              for s in range(hh.n_securities)]
    v = []
    for s in np.unique(buy_security[buy_quantity > 0]):
        for kind, key, sh, what in (("position", issuer, share, "issuer"),
                                    ("sector", hh.sector, sector_share, "sector")):
            if not limited[s] or sh >= 1.0 or key[s] is None:
                continue
            members = [m for m in range(hh.n_securities) if limited[m] and key[m] == key[s]]
            total = float(after[members].sum())
            if total > sh * value + MONEY_TOL:
                group = "" if kind == "position" and members == [s] else (
                    f"{what} {key[s]} ({', '.join(hh.security_ids[m] for m in members)}) ")
                v.append(Violation("concentration", hh.security_ids[s],
                                   f"{group}bought to ${total:,.2f}, above the {kind} limit "
                                   f"{sh:.2%} of ${value:,.2f} = ${sh * value:,.2f}"))
    return v


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
    needs = _needs(hh, rules.cash_need_lead_days, rules.cash_reserve_days)
    v.extend(_need_violations(hh, needs, cash, rules))
    above = needs.above_cap()
    for a in _where(hh.tradable & (cash > hh.max_cash + above + MONEY_TOL)):
        kept = f" + ${above[a]:,.2f} held for cash needs" if above[a] > 0 else ""
        v.append(Violation("max_cash", hh.account_ids[a], f"cash after trading {cash[a]:,.2f} "
                           f"exceeds max_cash {hh.max_cash[a]:,.2f}{kept}"))

    # -- restrictions, menus, model ---------------------------------------------------------
    position = hh.by_position(q - sell)
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
                                 | (hh.cash + hh.contribution < hh.min_cash - MONEY_TOL)
                                 | (needs.account_due > 0)
                                 | (needs.funding & (needs.pool_due > 0)))
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
    relief = (_relief(hh, restricted, rules.wash_sale_days, is_long, rules.cash_need_lead_days)
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
        held = hh.by_position(q)
        sold_pos = hh.by_position(sell)
        order_value = sold_pos * hh.price[None, :]
        closes = is_dust(held - sold_pos, rules.dust_shares)
        small = (sold_pos > 0) & (order_value < rules.min_trade_value - MONEY_TOL) & ~closes
        for a, s in zip(*np.nonzero(small)):
            v.append(Violation("min_trade", f"{hh.account_ids[a]}/{hh.security_ids[s]}",
                               f"sell order of ${order_value[a, s]:,.2f} is below the minimum "
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
    v.extend(concentration_violations(hh, sell, buy_account, buy_security, buy_quantity, rules))
    return v
