"""Invariants over generated households (hypothesis): whatever the household, a
proposal holds every hard rule, withdrawals are funded or the household is
infeasible with a reason, and the reported tax follows the netting rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hearth.model.build import derive
from hearth.model.checker import CheckRules, check_proposal
from hearth.model.highs import Solver
from hearth.model.household import Restriction, make_household
from hearth.model.lp import ModelSettings
from hearth.model.solve import realized_by_term, solve_household
from hearth.model.tax import long_term, net_capital_gains, tax_due

RUN = np.datetime64("2026-11-20")
SOLVER = Solver()


def random_household(seed: int):
    rng = np.random.default_rng(seed)
    n_a = int(rng.integers(1, 4))
    account_type = rng.choice(5, n_a, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    classes = ("bond", "cash", "stock")
    n_s = int(rng.integers(2, 6))
    asset_class = rng.choice([0, 2], n_s)
    asset_class[0], asset_class[1] = 2, 0
    wash_group = np.arange(n_s)
    if n_s > 3 and rng.random() < 0.5:
        wash_group[3] = wash_group[0]  # substantially identical to the first
    rank = rng.integers(1, 3, n_s)
    rank[rng.random(n_s) < 0.15] = 0
    price = np.round(rng.uniform(10, 300, n_s), 2)
    n_l = int(rng.integers(1, 9))
    lot_account = rng.integers(0, n_a, n_l)
    lot_security = rng.integers(0, n_s, n_l)
    quantity = np.round(rng.uniform(1, 200, n_l), 3)
    value = quantity * price[lot_security]
    cost_basis = np.round(value * rng.uniform(0.5, 1.6, n_l), 2)
    age = rng.integers(1, 1500, n_l)
    acquired = RUN - age.astype("timedelta64[D]")
    cash = np.round(rng.uniform(0, 5_000, n_a), 2)
    withdrawal = np.where(rng.random(n_a) < 0.25, np.round(rng.uniform(0, 8_000, n_a), 2), 0.0)
    contribution = np.where(rng.random(n_a) < 0.25, np.round(rng.uniform(0, 5_000, n_a), 2), 0.0)
    min_cash = np.where(rng.random(n_a) < 0.3, 100.0, 0.0)
    max_cash = np.where(rng.random(n_a) < 0.2, 10_000.0, np.inf)
    restrictions = []
    if rng.random() < 0.3:
        rule = str(rng.choice(["no_buy", "no_sell", "no_trade", "no_hold"]))
        acct = int(rng.integers(-1, n_a))
        restrictions.append(Restriction(rule, account=acct, security=f"S{int(rng.integers(n_s))}"))
    n_t = int(rng.integers(0, 4))
    txn_group = rng.integers(0, n_s, n_t)
    txn_date = RUN - rng.integers(0, 45, n_t).astype("timedelta64[D]")
    txn_buy = rng.random(n_t) < 0.5
    txn_gain = np.where(txn_buy, np.nan, rng.uniform(-500, 500, n_t))
    w_stock = float(rng.uniform(0.2, 0.9))
    return make_household(
        f"P{seed}", RUN, st_rate=float(rng.uniform(0.2, 0.45)), lt_rate=float(rng.uniform(0.1, 0.25)),
        account_ids=tuple(f"A{i}" for i in range(n_a)), account_type=account_type, cash=cash,
        security_ids=tuple(f"S{i}" for i in range(n_s)), asset_class=asset_class, price=price,
        classes=classes, target=np.array([1 - w_stock, 0.0, w_stock]),
        lot_ids=tuple(f"L{i}" for i in range(n_l)), lot_account=lot_account,
        lot_security=lot_security, quantity=quantity, cost_basis=cost_basis, acquired=acquired,
        wash_group=wash_group, wash_groups=tuple(f"G{i}" for i in range(n_s)), rank=rank,
        tradable=rng.random(n_a) >= 0.1, min_cash=min_cash, max_cash=max_cash,
        contribution=contribution, withdrawal=withdrawal,
        tax_budget=float(rng.uniform(0, 500)) if rng.random() < 0.3 else None,
        turnover_limit=float(rng.uniform(0.05, 0.5)) if rng.random() < 0.2 else None,
        restrictions=tuple(restrictions), txn_group=txn_group, txn_date=txn_date,
        txn_buy=txn_buy, txn_realized_gain=txn_gain,
        income_yield=rng.uniform(0, 0.05, n_s), expected_return=rng.uniform(0.03, 0.08, n_s),
        ytd_st_gain=float(rng.normal(0, 3000)), loss_carryforward_lt=float(rng.uniform(0, 2000)),
    )


SETTINGS = [ModelSettings(min_trade_value=50.0),
            ModelSettings(min_trade_value=0.0, wash_sale_method="mip"),
            ModelSettings(whole_shares=True, min_trade_value=0.0),
            ModelSettings(objective="lexicographic", min_trade_value=25.0)]


@pytest.mark.parametrize("which", range(len(SETTINGS)))
def test_a_withdrawal_beside_an_either_or_choice_keeps_the_tax_budget(which):
    # Found by a sweep of seeds 0-2,999 outside the suite: the W3 choice kept an IRA buy
    # and forbade the loss sale, so a gain lot raised the withdrawal $8.81 over the tax
    # budget (the forced cash only lets it give way as far as the least-tax raise needs)
    hh = random_household(1341)
    s = SETTINGS[which]
    out = solve_household(hh, s, SOLVER)
    p = out.proposal
    rules = CheckRules(wash_sale_days=s.wash_sale_days, min_trade_value=s.min_trade_value,
                       whole_shares=s.whole_shares)
    violations = check_proposal(hh, p.sell, p.buy_account, p.buy_security, p.buy_quantity,
                                p.final_cash, rules, disallowed_loss=p.disallowed_loss)
    assert out.status == "traded" and violations == [], [str(v) for v in violations]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), which=st.integers(0, len(SETTINGS) - 1))
@example(seed=624155, which=0)  # W1 clearing once freed a loss lot a no_trade restriction holds
@example(seed=1090, which=0)  # a no_hold sale's proceeds above max cash, bought past the turnover limit
@example(seed=6276, which=2)  # whole shares: rounding made the tax budget give way; the MIP keeps it
@example(seed=6080, which=2)  # whole shares: the same for the turnover limit
def test_every_proposal_holds_the_hard_rules(seed, which):
    hh = random_household(seed)
    s = SETTINGS[which]
    out = solve_household(hh, s, SOLVER)
    assert out.status in ("traded", "no_trade", "infeasible")
    p = out.proposal
    rules = CheckRules(wash_sale_days=s.wash_sale_days, min_trade_value=s.min_trade_value,
                       whole_shares=s.whole_shares)
    violations = check_proposal(hh, p.sell, p.buy_account, p.buy_security, p.buy_quantity,
                                p.final_cash, rules, disallowed_loss=p.disallowed_loss)
    if out.status == "traded":
        assert violations == [], [str(v) for v in violations]
    if out.status == "infeasible":
        assert out.message and len(out.message) > 20
    if out.status == "no_trade":
        assert p.n_trades == 0


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_unfundable_withdrawals_are_infeasible_with_the_account_named(seed):
    hh = random_household(seed)
    d = derive(hh, ModelSettings())
    # everything sellable, at most, after costs, plus cash
    sellable = np.zeros(hh.n_accounts)
    ok = hh.tradable[hh.lot_account] & ~d.no_sell[hh.lot_account, hh.lot_security]
    np.add.at(sellable, hh.lot_account[ok], hh.quantity[ok] * d.lot_price[ok])
    short = hh.withdrawal - (hh.cash + hh.contribution + sellable - np.where(hh.tradable, hh.min_cash, 0))
    out = solve_household(hh, ModelSettings(min_trade_value=0.0), SOLVER)
    if (short > 1.0).any():
        assert out.status == "infeasible"
        if out.message.startswith(("no_hold restriction", "restrictions conflict")):
            return  # a restriction no trade can meet is reported first, naming its own account
        # one short account is named (where several are short, the first blocking one)
        assert any(hh.account_ids[a] in (out.message or "") for a in np.flatnonzero(short > 1.0))


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_tax_due_follows_the_netting_rules_on_the_proposed_trades(seed):
    hh = random_household(seed)
    out = solve_household(hh, ModelSettings(min_trade_value=0.0), SOLVER)
    p = out.proposal
    # realized gains recomputed lot by lot, outside the model's helpers
    st_gain = lt_gain = 0.0
    is_long = long_term(hh.acquired, hh.run_date)
    for l in range(hh.n_lots):
        if p.sell[l] > 0 and hh.account_type[hh.lot_account[l]] == 0:
            g = p.sell[l] * hh.price[hh.lot_security[l]] - hh.cost_basis[l] * p.sell[l] / hh.quantity[l]
            if is_long[l]:
                lt_gain += g
            else:
                st_gain += g
    assert out.derived is not None
    assert realized_by_term(hh, out.derived, p.sell) == (
        pytest.approx(st_gain, abs=1e-6), pytest.approx(lt_gain, abs=1e-6))
    common = dict(carryforward_st=hh.loss_carryforward_st, carryforward_lt=hh.loss_carryforward_lt,
                  st_rate=hh.st_rate, lt_rate=hh.lt_rate, ordinary_rate=hh.ordinary_rate,
                  filing_status=hh.filing_status)
    expected = (net_capital_gains(hh.ytd_st_gain + st_gain, hh.ytd_lt_gain + lt_gain, **common).tax
                - net_capital_gains(hh.ytd_st_gain, hh.ytd_lt_gain, **common).tax)
    got = tax_due(ytd_st=hh.ytd_st_gain, ytd_lt=hh.ytd_lt_gain, run_st=st_gain, run_lt=lt_gain,
                  **common)
    assert abs(got - expected) < 1e-6
