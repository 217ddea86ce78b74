"""The compliance checker: an independent second opinion on every proposal.

It re-derives each hard rule of model.md from the household's input records and
the proposed trades alone. It deliberately imports nothing of the optimization
(``build``, ``solve``, ``highs``): a bug there must not be able to hide here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hearth.model.household import TAXABLE, Household
from hearth.model.tax import long_term

MONEY_TOL = 0.01
QTY_RTOL = 1e-9


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


def _where(mask: np.ndarray) -> list[int]:
    return [int(i) for i in np.flatnonzero(mask)]


def _matches(hh: Household, r, s: int) -> bool:
    if r.security is not None:
        return bool(hh.security_ids[s] == r.security)
    if r.sector is not None:
        return bool(hh.sector[s] == r.sector)
    return r.tag in hh.tags[s]


def check_proposal(hh: Household, sell: np.ndarray, buy_account: np.ndarray,
                   buy_security: np.ndarray, buy_quantity: np.ndarray,
                   final_cash: np.ndarray, rules: CheckRules) -> list[Violation]:
    """Every hard-rule violation of a proposal; empty when it may be executed."""
    v: list[Violation] = []
    q = hh.quantity
    price_l = hh.price[hh.lot_security]
    tol_q = QTY_RTOL * np.maximum(q, 1.0)
    sold = sell > 0

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

    # -- cash -----------------------------------------------------------------------------
    cost = hh.cost_rate
    proceeds = np.bincount(hh.lot_account, weights=sell * price_l * (1 - cost[hh.lot_security]),
                           minlength=hh.n_accounts)
    spent = np.bincount(buy_account, minlength=hh.n_accounts,
                        weights=buy_quantity * hh.price[buy_security] * (1 + cost[buy_security]))
    cash = hh.cash + hh.contribution - hh.withdrawal + proceeds - spent
    floor = np.where(hh.tradable, hh.min_cash, 0.0)
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
    forced = np.zeros(hh.n_lots, dtype=bool)
    for r in hh.restrictions:
        accts = range(hh.n_accounts) if r.account < 0 else [r.account]
        what = r.describe(hh.account_ids)
        for j in range(len(buy_quantity)):
            a, s = int(buy_account[j]), int(buy_security[j])
            if (r.rule in ("no_buy", "no_trade", "no_hold") and a in accts
                    and _matches(hh, r, s)):
                v.append(Violation(r.rule, f"{hh.account_ids[a]}/{hh.security_ids[s]}",
                                   f"buy breaks {what}"))
        for l in _where(sold):
            a, s = hh.lot_account[l], hh.lot_security[l]
            if r.rule in ("no_sell", "no_trade") and a in accts and _matches(hh, r, s):
                v.append(Violation(r.rule, hh.lot_ids[l], f"sell breaks {what}"))
        if r.rule == "no_hold":
            for a in accts:
                for s in range(hh.n_securities):
                    if _matches(hh, r, s):
                        forced |= (hh.lot_account == a) & (hh.lot_security == s)
                        if position[a, s] > QTY_RTOL * max(1.0, position[a, s]):
                            v.append(Violation("no_hold", f"{hh.account_ids[a]}/"
                                               f"{hh.security_ids[s]}",
                                               f"{position[a, s]:g} shares remain; {what}"))
    for j in _where(~hh.menu[buy_account, buy_security]):
        a, s = int(buy_account[j]), int(buy_security[j])
        v.append(Violation("menu", f"{hh.account_ids[a]}/{hh.security_ids[s]}",
                           "security is not on the account's menu"))
    for j in _where(hh.rank[buy_security] < 1):
        a, s = int(buy_account[j]), int(buy_security[j])
        v.append(Violation("off_model", f"{hh.account_ids[a]}/{hh.security_ids[s]}",
                           "security is not listed by the household's model"))

    # -- wash sales (taxable losses; every account's purchases count) -----------------------
    start = hh.run_date - np.timedelta64(rules.wash_sale_days, "D")
    group_of_lot = hh.wash_group[hh.lot_security]
    basis_sold = np.where(q > 0, hh.cost_basis * sell / np.where(q > 0, q, 1.0), 0.0)
    gain = sell * price_l - basis_sold
    taxable = hh.account_type[hh.lot_account] == TAXABLE
    loss_sale = sold & taxable & (gain < -1e-9)
    recent_buy = set(hh.txn_group[(hh.txn_date >= start) & (hh.txn_date <= hh.run_date)
                                  & hh.txn_buy].tolist())
    recent_buy |= set(group_of_lot[hh.acquired >= start].tolist())
    recent_loss = set(hh.txn_group[(hh.txn_date >= start) & (hh.txn_date <= hh.run_date)
                                   & ~hh.txn_buy
                                   & (hh.txn_realized_gain < 0)].tolist())
    bought_groups = set(hh.wash_group[buy_security].tolist())
    for l in _where(loss_sale):
        g = int(group_of_lot[l])
        if g in recent_buy and not forced[l]:
            v.append(Violation("wash_sale_w1", hh.lot_ids[l],
                               f"loss sale in wash group {hh.wash_groups[g]} within "
                               f"{rules.wash_sale_days} days of a purchase"))
        if g in bought_groups:
            v.append(Violation("wash_sale_w3", hh.lot_ids[l],
                               f"loss sale while the proposal buys wash group "
                               f"{hh.wash_groups[g]}"))
    for j in _where(np.isin(hh.wash_group[buy_security], list(recent_loss))):
        g = int(hh.wash_group[buy_security[j]])
        if g in recent_loss:
            v.append(Violation("wash_sale_w2", f"{hh.account_ids[buy_account[j]]}/"
                               f"{hh.security_ids[buy_security[j]]}",
                               f"buys wash group {hh.wash_groups[g]} within "
                               f"{rules.wash_sale_days} days of a loss sale"))

    # -- budgets ----------------------------------------------------------------------------
    # Withdrawals are raised even at a tax cost: budgets bind only households with no
    # cash to raise and no no_hold position to sell (those go to review instead).
    must_raise = bool(((hh.withdrawal > 0) | (hh.cash < hh.min_cash))[hh.tradable].any()
                      or (forced & (q > 0)).any())
    if hh.tax_budget is not None and not must_raise:
        rate = np.where(long_term(hh.acquired, hh.run_date), hh.lt_rate, hh.st_rate)
        tax = float((rate * np.where(taxable, gain, 0.0)).sum())
        if tax > hh.tax_budget + MONEY_TOL:
            v.append(Violation("tax_budget", hh.household_id,
                               f"realizes ${tax:,.2f} of tax against a budget of "
                               f"${hh.tax_budget:,.2f}"))
    traded = float((sell * price_l).sum() + (buy_quantity * hh.price[buy_security]).sum())
    if hh.turnover_limit is not None and not must_raise:
        value = float((q * price_l).sum() + hh.cash.sum())
        if traded / 2 > hh.turnover_limit * value + MONEY_TOL:
            v.append(Violation("turnover", hh.household_id,
                               f"turnover ${traded / 2:,.2f} exceeds "
                               f"{hh.turnover_limit:.2%} of ${value:,.2f}"))

    # -- order sizes --------------------------------------------------------------------------
    if rules.min_trade_value > 0:
        held = np.zeros((hh.n_accounts, hh.n_securities))
        np.add.at(held, (hh.lot_account, hh.lot_security), q)
        sold_pos = np.zeros_like(held)
        np.add.at(sold_pos, (hh.lot_account, hh.lot_security), sell)
        for a, s in zip(*np.nonzero(sold_pos > 0)):
            value = sold_pos[a, s] * hh.price[s]
            closes = abs(sold_pos[a, s] - held[a, s]) <= QTY_RTOL * max(held[a, s], 1.0)
            if value < rules.min_trade_value - MONEY_TOL and not closes:
                v.append(Violation("min_trade", f"{hh.account_ids[a]}/{hh.security_ids[s]}",
                                   f"sell order of ${value:,.2f} is below the minimum "
                                   f"${rules.min_trade_value:,.2f}"))
        for j in range(len(buy_quantity)):
            value = buy_quantity[j] * hh.price[buy_security[j]]
            if value < rules.min_trade_value - MONEY_TOL:
                v.append(Violation("min_trade", f"{hh.account_ids[buy_account[j]]}/"
                                   f"{hh.security_ids[buy_security[j]]}",
                                   f"buy order of ${value:,.2f} is below the minimum "
                                   f"${rules.min_trade_value:,.2f}"))
    if rules.whole_shares:
        def whole(x: np.ndarray) -> np.ndarray:
            return np.abs(x - np.round(x)) <= 1e-6
        for l in _where(sold & ~whole(sell) & (np.abs(sell - q) > tol_q)):
            v.append(Violation("whole_shares", hh.lot_ids[l],
                               f"sells {sell[l]:g} shares: neither whole shares nor the whole lot"))
        for j in _where(~whole(buy_quantity)):
            v.append(Violation("whole_shares", f"{hh.account_ids[buy_account[j]]}/"
                               f"{hh.security_ids[buy_security[j]]}",
                               f"buys {buy_quantity[j]:g} shares"))
    return v
