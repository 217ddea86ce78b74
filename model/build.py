"""Assembly of one household's linear program from its arrays.

``derive`` turns the household's records into per-lot and per-(account, security)
figures once; each ``rows_*`` function is one constraint family that returns its
rows as coordinates; ``build`` stacks them into a CSC matrix for HiGHS. Adding a
rule means adding one ``rows_*`` function (and its tests).

The math, with V the dollars targets apply to (``Household.target_value``):

  minimize  sum_l (tax_l + cost_l - loc_l - pref_l) sell_l
          + sum_as (cost_as + loc_as + pref_as) buy_as
          + w_in * in-band drift + w_out * out-of-band drift
  s.t.  cash balance per account, exposure per asset class, budgets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hearth.model.household import (
    EDUCATION,
    HSA,
    ROTH,
    TAXABLE,
    TRADITIONAL,
    Household,
)
from hearth.model.lp import Layout, LinearProgram, ModelSettings
from hearth.model.tax import long_term

ELASTIC_PENALTY = 1_000.0  # dollars of objective per dollar of violated constraint
GAIN_EPS = 1e-9  # gain per share below which a lot counts as a loss
TIE_BREAK = 1e-6  # objective dollars per traded dollar, varied by column position


@dataclass(frozen=True, eq=False)
class Derived:
    """Per-household figures the model needs, computed once from a Household."""

    lot_price: np.ndarray
    gain_per_share: np.ndarray
    is_long: np.ndarray
    rate_now: np.ndarray  # st_rate or lt_rate per lot
    tax_coef: np.ndarray  # c_l * gain per share, dollars of objective per share sold (taxable)
    lot_taxable: np.ndarray
    lot_tradable: np.ndarray
    no_buy: np.ndarray  # [n_a, n_s] bool (no_buy, no_trade and no_hold)
    no_sell: np.ndarray  # [n_a, n_s] bool (no_sell, no_trade)
    no_hold: np.ndarray  # [n_a, n_s] bool
    tau: np.ndarray  # [n_a, n_s] annual tax drag per dollar held
    buyable: np.ndarray  # [n_a, n_s] bool: a buy column exists
    w1_group: np.ndarray  # bool per wash group: recent purchase, no loss sales today
    w2_group: np.ndarray  # bool per wash group: recent loss sale, no buys today
    forced_sell: np.ndarray  # bool per lot: no_hold forces the sale
    current_by_class: np.ndarray  # dollars per class, lots of every account (cash excluded)
    forced_cash: bool  # a withdrawal or cash shortfall must be met, or a no_hold sale made
    target_value: float
    value: float
    band: float


def restriction_masks(hh: Household) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(no_buy, no_sell, no_hold) as [n_accounts, n_securities] boolean masks."""
    n_a, n_s = hh.n_accounts, hh.n_securities
    no_buy = np.zeros((n_a, n_s), dtype=bool)
    no_sell = np.zeros((n_a, n_s), dtype=bool)
    no_hold = np.zeros((n_a, n_s), dtype=bool)
    for r in hh.restrictions:
        if r.security is not None:
            sec = np.array([s == r.security for s in hh.security_ids], dtype=bool)
        elif r.sector is not None:
            sec = np.array([s == r.sector for s in hh.sector], dtype=bool)
        else:
            sec = np.array([r.tag in t for t in hh.tags], dtype=bool)
        acct = np.ones(n_a, dtype=bool) if r.account < 0 else np.arange(n_a) == r.account
        hit = np.outer(acct, sec)
        if r.rule in ("no_buy", "no_trade", "no_hold"):
            no_buy |= hit
        if r.rule in ("no_sell", "no_trade"):
            no_sell |= hit
        if r.rule == "no_hold":
            no_hold |= hit
    return no_buy, no_sell, no_hold


def tax_drag(hh: Household) -> np.ndarray:
    """tau[a, s]: annual tax drag per dollar of security s held in account a."""
    iy, qf, ex = hh.income_yield, hh.qualified_fraction, hh.tax_exempt_fraction
    taxable = (iy * (qf * hh.qualified_div_rate + np.maximum(1.0 - qf - ex, 0.0) * hh.ordinary_rate)
               + hh.cg_distribution * hh.lt_rate)
    by_type = np.empty((5, hh.n_securities))
    by_type[TAXABLE] = taxable  # foreign tax is credited: zero net
    by_type[TRADITIONAL] = hh.expected_return * hh.retirement_rate
    by_type[ROTH] = by_type[HSA] = by_type[EDUCATION] = iy * hh.foreign_tax_fraction
    return by_type[hh.account_type]


def wash_windows(hh: Household, days: int) -> tuple[np.ndarray, np.ndarray]:
    """(recent purchase, recent taxable loss sale) per wash group, within ``days``."""
    start = hh.run_date - np.timedelta64(days, "D")
    n_g = len(hh.wash_groups)
    purchased = np.zeros(n_g, dtype=bool)
    loss_sold = np.zeros(n_g, dtype=bool)
    in_window = (hh.txn_date >= start) & (hh.txn_date <= hh.run_date)
    purchased[hh.txn_group[in_window & hh.txn_buy]] = True
    loss = in_window & ~hh.txn_buy & (hh.txn_realized_gain < 0)  # nan compares False
    loss_sold[hh.txn_group[loss]] = True
    recent_lots = hh.acquired >= start
    purchased[hh.wash_group[hh.lot_security[recent_lots]]] = True
    return purchased, loss_sold


def derive(hh: Household, s: ModelSettings) -> Derived:
    lot_price = hh.price[hh.lot_security]
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = lot_price - np.where(hh.quantity > 0, hh.cost_basis / hh.quantity, 0.0)
    is_long = long_term(hh.acquired, hh.run_date)
    rate_now = np.where(is_long, hh.lt_rate, hh.st_rate)
    lot_taxable = hh.account_type[hh.lot_account] == TAXABLE
    c = rate_now - hh.lt_rate * s.discount
    tax_coef = np.where(lot_taxable, c * gain, 0.0)
    if not hh.tlh_enabled:  # losses earn nothing: never sold for their own sake
        tax_coef = np.where(gain < 0, 0.0, tax_coef)
    no_buy, no_sell, no_hold = restriction_masks(hh)
    tradable = hh.tradable
    buyable = (tradable[:, None] & hh.menu & (hh.rank > 0)[None, :] & ~no_buy)
    w1, w2 = wash_windows(hh, s.wash_sale_days)
    forced = no_hold[hh.lot_account, hh.lot_security] & tradable[hh.lot_account]
    current = np.bincount(hh.asset_class[hh.lot_security], weights=hh.quantity * lot_price,
                          minlength=len(hh.classes)).astype(np.float64)  # float even with no lots
    value = float(current.sum() + hh.cash.sum())  # Household.value(), from what is at hand
    band = hh.drift_threshold if hh.drift_threshold is not None else s.drift_threshold
    forced_cash = bool(((hh.withdrawal > 0) | (hh.cash < hh.min_cash))[tradable].any()
                       or (forced & (hh.quantity > 0)).any())
    return Derived(
        lot_price=lot_price, gain_per_share=gain, is_long=is_long, rate_now=rate_now,
        tax_coef=tax_coef, lot_taxable=lot_taxable, lot_tradable=tradable[hh.lot_account],
        no_buy=no_buy, no_sell=no_sell, no_hold=no_hold, tau=tax_drag(hh), buyable=buyable,
        w1_group=w1, w2_group=w2, forced_sell=forced, current_by_class=current,
        forced_cash=forced_cash,
        target_value=value + float(hh.contribution.sum() - hh.withdrawal.sum()
                                   + hh.held_away.sum()),
        value=value, band=float(band),
    )


# -- columns ------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Columns:
    layout: Layout
    cost: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    integer: np.ndarray  # bool


def columns(hh: Household, d: Derived, s: ModelSettings) -> Columns:
    n_a, n_k = hh.n_accounts, len(hh.classes)
    sell_lot = np.flatnonzero(d.lot_tradable)
    sell_mult = np.ones(len(sell_lot))
    whole = np.zeros(len(sell_lot), dtype=bool)
    if s.whole_shares:
        # Integer shares per lot, plus a 0/1 column that sells a lot's fractional rest
        # (allowed only together with all its whole shares: see rows_whole_lot).
        frac = hh.quantity[sell_lot] - np.floor(hh.quantity[sell_lot])
        extra = sell_lot[frac > 1e-9]
        whole = np.concatenate([np.ones(len(sell_lot), dtype=bool), np.ones(len(extra), dtype=bool)])
        sell_mult = np.concatenate([sell_mult, frac[frac > 1e-9]])
        sell_lot = np.concatenate([sell_lot, extra])
    buy_account, buy_security = np.nonzero(d.buyable)
    lay = Layout(sell_lot=sell_lot, sell_mult=sell_mult, buy_account=buy_account,
                 buy_security=buy_security, n_accounts=n_a, n_classes=n_k, rows={})

    # sells: shares of lot l (times mult)
    lots = sell_lot
    a_l, s_l = hh.lot_account[lots], hh.lot_security[lots]
    p_l = d.lot_price[lots]
    pref = np.where(hh.rank == 1, 0.0, s.preference_per_dollar * np.maximum(hh.rank - 1, 1))
    sell_cost = sell_mult * (
        s.tax_weight * d.tax_coef[lots]
        + s.cost_weight * hh.cost_rate[s_l] * p_l
        - s.location_weight * d.tau[a_l, s_l] * s.annuity * p_l
        - pref[s_l] * p_l
    )
    qty = hh.quantity[lots]
    if s.whole_shares:
        n_int = len(lots) - int((sell_mult != 1).sum())
        sell_upper = np.concatenate([np.floor(qty[:n_int] + 1e-9), np.ones(len(lots) - n_int)])
    else:
        sell_upper = qty.copy()
    sell_lower = np.zeros(len(lots))
    blocked = d.no_sell[a_l, s_l]
    # W1: a recent purchase in the wash group forbids selling taxable lots at a loss today.
    w1 = d.w1_group[hh.wash_group[s_l]] & d.lot_taxable[lots] & (d.gain_per_share[lots] < -GAIN_EPS)
    forced = d.forced_sell[lots]
    sell_upper = np.where((blocked | w1) & ~forced, 0.0, sell_upper)
    sell_lower = np.where(forced, sell_upper, 0.0)

    # buys: shares of security s in account a
    p_b = hh.price[buy_security]
    buy_cost = (s.cost_weight * hh.cost_rate[buy_security] * p_b
                + s.location_weight * d.tau[buy_account, buy_security] * s.annuity * p_b
                + pref[buy_security] * p_b)
    account_money = (hh.cash + hh.contribution
                     + np.bincount(hh.lot_account, weights=hh.quantity * d.lot_price, minlength=n_a))
    buy_upper = np.maximum(account_money[buy_account], 0.0) / p_b
    # W2: a recent loss sale in the wash group forbids buying it today; so does a loss
    # sale that a no_hold restriction forces today (W3 with no choice left).
    forced_loss = forced & d.lot_taxable[lots] & (d.gain_per_share[lots] < -GAIN_EPS)
    no_buy_group = d.w2_group.copy()
    no_buy_group[hh.wash_group[s_l[forced_loss]]] = True
    buy_upper = np.where(no_buy_group[hh.wash_group[buy_security]], 0.0, buy_upper)
    if s.whole_shares:
        buy_upper = np.floor(buy_upper + 1e-9)

    # final cash; untradable accounts only need to stay non-negative
    cash_lower = np.where(hh.tradable, hh.min_cash, 0.0)
    cash_upper = np.where(hh.tradable, hh.max_cash, np.inf)

    # drift parts per class: over-in, over-out, under-in, under-out
    in_cap = d.band * max(d.target_value, 0.0)
    drift_upper = np.array([in_cap, np.inf, in_cap, np.inf] * n_k)
    drift_cost = np.array([s.drift_weight_in, s.drift_weight_out,
                           s.drift_weight_in, s.drift_weight_out] * n_k)

    # Break ties deterministically (two lots with the same gain per share, two alike
    # accounts that could swap what they buy): a cost far below a cent per trade that
    # differs quasi-randomly by the column's stable position (quadratic in it: a
    # linear pattern cancels around swap cycles between alike accounts), so one
    # optimum wins whatever the starting basis.
    trade_cols = len(lots) + len(buy_account)
    j = 1.0 + np.arange(trade_cols)
    tie = TIE_BREAK * (1.0 + np.modf(j * j * 0.6180339887498949)[0])
    sell_cost = sell_cost + tie[: len(lots)] * sell_mult * p_l
    buy_cost = buy_cost + tie[len(lots):] * p_b
    cost = np.concatenate([sell_cost, buy_cost, np.zeros(n_a), drift_cost])
    lower = np.concatenate([sell_lower, np.zeros(len(buy_account)), cash_lower, np.zeros(4 * n_k)])
    upper = np.concatenate([sell_upper, buy_upper, cash_upper, drift_upper])
    integer = np.zeros(len(cost), dtype=bool)
    if s.whole_shares:
        integer[: len(lots)] = whole
        integer[len(lots): len(lots) + len(buy_account)] = True
    return Columns(layout=lay, cost=cost, lower=lower, upper=upper, integer=integer)


# -- constraint families -------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class RowBlock:
    family: str
    lower: np.ndarray
    upper: np.ndarray
    row: np.ndarray  # local row index within the block
    col: np.ndarray
    val: np.ndarray


def _sell_parts(hh: Household, d: Derived, lay: Layout):
    lots = lay.sell_lot
    cols = np.arange(lay.n_sell)
    return lots, cols, d.lot_price[lots] * lay.sell_mult


def rows_cash_balance(hh: Household, d: Derived, lay: Layout) -> RowBlock:
    """cash + contribution - withdrawal + proceeds - purchases - costs = final cash."""
    lots, sell_cols, dollars = _sell_parts(hh, d, lay)
    s_l = hh.lot_security[lots]
    buy_cols = lay.buy0 + np.arange(len(lay.buy_account))
    p_b = hh.price[lay.buy_security]
    rhs = -(hh.cash + hh.contribution - hh.withdrawal)
    n_a = lay.n_accounts
    return RowBlock(
        family="cash_balance", lower=rhs, upper=rhs.copy(),
        row=np.concatenate([hh.lot_account[lots], lay.buy_account, np.arange(n_a)]),
        col=np.concatenate([sell_cols, buy_cols, lay.cash0 + np.arange(n_a)]),
        val=np.concatenate([dollars * (1.0 - hh.cost_rate[s_l]),
                            -p_b * (1.0 + hh.cost_rate[lay.buy_security]),
                            -np.ones(n_a)]),
    )


def rows_exposure(hh: Household, d: Derived, lay: Layout) -> RowBlock:
    """Per asset class: post-trade value + held-away - target * V = over - under."""
    lots, sell_cols, dollars = _sell_parts(hh, d, lay)
    n_k, n_a = lay.n_classes, lay.n_accounts
    k_cash = hh.cash_class
    buy_cols = lay.buy0 + np.arange(len(lay.buy_account))
    drift_rows = np.repeat(np.arange(n_k), 4)
    drift_vals = np.array([-1.0, -1.0, 1.0, 1.0] * n_k)
    rhs = hh.target * d.target_value - d.current_by_class - hh.held_away
    return RowBlock(
        family="exposure", lower=rhs, upper=rhs.copy(),
        row=np.concatenate([hh.asset_class[hh.lot_security[lots]],
                            hh.asset_class[lay.buy_security],
                            np.full(n_a, k_cash), drift_rows]),
        col=np.concatenate([sell_cols, buy_cols, lay.cash0 + np.arange(n_a),
                            lay.drift0 + np.arange(4 * n_k)]),
        val=np.concatenate([-dollars, hh.price[lay.buy_security], np.ones(n_a), drift_vals]),
    )


def rows_tax_budget(hh: Household, d: Derived, lay: Layout) -> RowBlock | None:
    """sum over taxable sells of rate x realized gain <= tax_budget (losses buy room)."""
    if hh.tax_budget is None:
        return None
    lots = lay.sell_lot
    coef = np.where(d.lot_taxable[lots], d.rate_now[lots] * d.gain_per_share[lots], 0.0)
    coef = coef * lay.sell_mult
    nz = np.flatnonzero(coef)
    return RowBlock(family="tax_budget", lower=np.array([-np.inf]),
                    upper=np.array([hh.tax_budget]), row=np.zeros(len(nz), dtype=np.int64),
                    col=nz, val=coef[nz])


def rows_turnover(hh: Household, d: Derived, lay: Layout) -> RowBlock | None:
    """(buy value + sell value) / 2 <= turnover_limit x household value."""
    if hh.turnover_limit is None:
        return None
    lots, sell_cols, dollars = _sell_parts(hh, d, lay)
    buy_cols = lay.buy0 + np.arange(len(lay.buy_account))
    return RowBlock(family="turnover", lower=np.array([-np.inf]),
                    upper=np.array([2.0 * hh.turnover_limit * d.value]),
                    row=np.zeros(len(sell_cols) + len(buy_cols), dtype=np.int64),
                    col=np.concatenate([sell_cols, buy_cols]),
                    val=np.concatenate([dollars, hh.price[lay.buy_security]]))


def rows_whole_lot(hh: Household, d: Derived, lay: Layout) -> RowBlock | None:
    """Under whole shares, a lot's fractional rest is sold only with all its whole
    shares: floor(q) * rest <= whole shares sold."""
    rest = np.flatnonzero(lay.sell_mult != 1.0)
    if len(rest) == 0:
        return None
    lots = lay.sell_lot[rest]
    int_col = np.searchsorted(lay.sell_lot[: lay.n_sell - len(rest)], lots)
    n = len(rest)
    return RowBlock(family="whole_lot", lower=np.full(n, -np.inf), upper=np.zeros(n),
                    row=np.concatenate([np.arange(n), np.arange(n)]),
                    col=np.concatenate([rest, int_col]),
                    val=np.concatenate([np.floor(hh.quantity[lots] + 1e-9), -np.ones(n)]))


ROW_FAMILIES = (rows_cash_balance, rows_exposure, rows_tax_budget, rows_turnover, rows_whole_lot)


# -- elastic slacks, for explaining infeasibility ------------------------------------------

def elastic_columns(lay: Layout, blocks: list[RowBlock], row_start: dict[str, int],
                    n_col: int, families: tuple[str, ...]
                    ) -> tuple[list[RowBlock], dict[str, np.ndarray], int]:
    """Slack columns that let each of ``families`` be violated at a large price;
    their values say which family could not be met."""
    extra: list[RowBlock] = []
    elastic: dict[str, np.ndarray] = {}
    for b in blocks:
        n = len(b.lower)
        if b.family not in families:
            continue
        if b.family == "cash_balance":
            # shortfall (money from nowhere) and excess (money that cannot be invested)
            short = n_col + np.arange(n)
            excess = n_col + n + np.arange(n)
            elastic["cash_short"], elastic["cash_excess"] = short, excess
            extra.append(RowBlock("cash_balance", b.lower[:0], b.upper[:0],
                                  np.concatenate([np.arange(n), np.arange(n)]),
                                  np.concatenate([short, excess]),
                                  np.concatenate([np.ones(n), -np.ones(n)])))
            n_col += 2 * n
        elif b.family in ("tax_budget", "turnover"):
            col = n_col + np.arange(n)
            elastic[b.family] = col
            extra.append(RowBlock(b.family, b.lower[:0], b.upper[:0], np.arange(n), col,
                                  -np.ones(n)))
            n_col += n
    return extra, elastic, n_col


def build(hh: Household, s: ModelSettings, d: Derived | None = None, *,
          elastic: bool = False) -> LinearProgram:
    d = d if d is not None else derive(hh, s)
    cols = columns(hh, d, s)
    lay = cols.layout
    blocks = [b for b in (f(hh, d, lay) for f in ROW_FAMILIES) if b is not None]
    row_start: dict[str, int] = {}
    n_row = 0
    for b in blocks:
        row_start[b.family] = n_row
        lay.rows[b.family] = (n_row, n_row + len(b.lower))
        n_row += len(b.lower)
    cost, lower, upper, integer = cols.cost, cols.lower, cols.upper, cols.integer
    # Withdrawals are raised even at a tax cost: when cash must be raised (or a
    # no_hold position sold), the budgets give way at a large price, never otherwise.
    families = (("cash_balance", "tax_budget", "turnover") if elastic
                else ("tax_budget", "turnover") if d.forced_cash else ())
    if families:
        extra, slack, n_col = elastic_columns(lay, blocks, row_start, len(cost), families)
        n_new = n_col - len(cost)
        cost = np.concatenate([cost, np.full(n_new, ELASTIC_PENALTY)])
        lower = np.concatenate([lower, np.zeros(n_new)])
        upper = np.concatenate([upper, np.full(n_new, np.inf)])
        integer = np.concatenate([integer, np.zeros(n_new, dtype=bool)])
        lay.elastic.update(slack)
        blocks = blocks + extra
    row = np.concatenate([b.row + row_start[b.family] for b in blocks])
    col = np.concatenate([b.col for b in blocks])
    val = np.concatenate([b.val for b in blocks])
    keep = val != 0.0
    row, col, val = row[keep], col[keep], val[keep]
    order = np.argsort(col, kind="stable")
    n_col = len(cost)
    start = np.zeros(n_col + 1, dtype=np.int32)
    np.cumsum(np.bincount(col, minlength=n_col), out=start[1:])
    base = [b for b in blocks if len(b.lower)]
    return LinearProgram(
        cost=cost, lower=lower, upper=upper,
        row_lower=np.concatenate([b.lower for b in base]),
        row_upper=np.concatenate([b.upper for b in base]),
        a_start=start, a_index=row[order].astype(np.int32), a_value=val[order],
        integrality=integer.astype(np.int32) if integer.any() else None,
        layout=lay,
    )
