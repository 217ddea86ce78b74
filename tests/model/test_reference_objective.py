"""An independent reference formulation of the household objective, written from
docs/model.md as one dense LP per stage and solved with scipy's HiGHS interface, against
hearth's optimum on 200 random small households.

The reference shares no code with hearth's model: its columns, rows, tax drag and
tax pricing are written here again. Stage one minimizes drift, tax on realized
gains, trading cost and preference; stage two adds the location term with no
class growing and each shrinking by at most the configured sliver of value
(docs/model.md: location decides where, never how much). The tie-break of the README
(a cost below a cent per trade, quadratic in the column's position) is part of the
objective in both, so both have one optimum.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

from hearth.model.highs import Solver
from hearth.model.household import make_household
from hearth.model.lp import ModelSettings
from hearth.model.solve import solve_household

RUN = np.datetime64("2026-11-20")
S = ModelSettings(min_trade_value=0.0, harvest_min_benefit=0.0, harvest_min_loss_share=0.0,
                  always_solve=True,
                  min_benefit_dollars=0.0, min_benefit_share=0.0)


def small_household(seed: int):
    rng = np.random.default_rng(seed)
    n_a = int(rng.integers(1, 3))
    account_type = rng.choice(5, n_a)
    n_s = int(rng.integers(2, 4))
    asset_class = np.array([0, 1, *rng.integers(0, 2, n_s - 2)])  # 0 stock, 1 bond
    n_l = int(rng.integers(1, 4))
    price = np.round(rng.uniform(20, 200, n_s), 2)
    lot_security = rng.integers(0, n_s, n_l)
    quantity = np.round(rng.uniform(5, 100, n_l), 3)
    basis = np.round(quantity * price[lot_security] * rng.uniform(0.6, 1.4, n_l), 2)
    w = float(rng.uniform(0.3, 0.8))
    return make_household(
        f"R{seed}", RUN, st_rate=0.35, lt_rate=0.2, ordinary_rate=0.35,
        account_ids=tuple(f"A{i}" for i in range(n_a)), account_type=account_type,
        cash=np.round(rng.uniform(0, 3000, n_a), 2),
        security_ids=tuple(f"S{i}" for i in range(n_s)), asset_class=asset_class, price=price,
        classes=("stock", "bond", "cash"), target=np.array([w, 1 - w - 0.01, 0.01]),
        lot_ids=tuple(f"L{i}" for i in range(n_l)), lot_account=rng.integers(0, n_a, n_l),
        lot_security=lot_security, quantity=quantity, cost_basis=basis,
        acquired=RUN - rng.integers(30, 900, n_l).astype("timedelta64[D]"),
        contribution=np.where(rng.random(n_a) < 0.3, 1000.0, 0.0),
        income_yield=rng.uniform(0, 0.05, n_s), qualified_fraction=rng.uniform(0, 1, n_s),
        expected_return=rng.uniform(0.03, 0.08, n_s), cost_rate=np.full(n_s, 0.0001),
        rank=rng.integers(1, 3, n_s), drift_threshold=float(rng.choice([0.0, 0.02, 0.05])))


def reference_tau(hh, s: ModelSettings) -> np.ndarray:
    """Annual tax drag per dollar, docs/model.md, objective."""
    d, h = s.discount_rate, s.horizon_years
    annuity = (1 - (1 + d) ** -h) / d
    exempt = hh.tax_exempt_fraction
    qualified = np.minimum(hh.qualified_fraction, 1 - exempt)
    growth = np.maximum(hh.expected_return - hh.income_yield - hh.cg_distribution, 0)
    taxable = (hh.income_yield * (qualified * hh.qualified_div_rate
                                  + (1 - qualified - exempt) * hh.ordinary_rate)
               + hh.cg_distribution * hh.lt_rate
               + hh.lt_rate * ((1 + growth) ** h - 1) * (1 + d) ** -h / annuity)
    out = np.zeros((hh.n_accounts, hh.n_securities))
    for a, t in enumerate(hh.account_type):
        out[a] = (taxable if t == 0 else hh.expected_return * hh.retirement_rate if t == 1
                  else hh.income_yield * hh.foreign_tax_fraction)
    return out


def reference_solve(hh, s: ModelSettings, forbidden: frozenset = frozenset()):
    """Both stages as dense LPs with the columns in ``forbidden`` fixed at 0; returns
    (objective of stage two, its x, the column map), or None when infeasible."""
    d, h = s.discount_rate, s.horizon_years
    annuity = (1 - (1 + d) ** -h) / d
    n_a, n_s, n_l, n_k = hh.n_accounts, hh.n_securities, hh.n_lots, len(hh.classes)
    p_l = hh.price[hh.lot_security]
    buys = [(a, j) for a in range(n_a) for j in range(n_s) if hh.rank[j] >= 1]
    n_b = len(buys)
    n = n_l + n_b + n_a + 4 * n_k
    b0, c0, k0 = n_l, n_l + n_b, n_l + n_b + n_a
    value = float((hh.quantity * p_l).sum() + hh.cash.sum())
    V = value + float(hh.contribution.sum())
    # holding period: long-term when acquired before the run date's anniversary cutoff
    cutoff = RUN - np.timedelta64(365, "D")
    is_long = hh.acquired < cutoff
    rate = np.where(is_long, hh.lt_rate, hh.st_rate)
    gain = p_l - hh.cost_basis / hh.quantity
    taxable = hh.account_type[hh.lot_account] == 0
    tax = np.where(taxable, (rate - hh.lt_rate * (1 + d) ** -h) * gain, 0.0)
    pref = np.where(hh.rank == 1, 0.0, s.preference_per_dollar * np.maximum(hh.rank - 1, 1))
    cost_rate = hh.cost_rate
    j = 1.0 + np.arange(n_l + n_b)
    tie = 1e-6 * (1.0 + np.modf(j * j * 0.6180339887498949)[0])
    tau = reference_tau(hh, s)

    c_base = np.zeros(n)
    c_loc = np.zeros(n)
    for l in range(n_l):
        sec = hh.lot_security[l]
        c_base[l] = tax[l] + (cost_rate[sec] - pref[sec] + tie[l]) * p_l[l]
        c_loc[l] = -tau[hh.lot_account[l], sec] * annuity * p_l[l]
    for i, (a, sec) in enumerate(buys):
        c_base[b0 + i] = (cost_rate[sec] + pref[sec] + tie[n_l + i]) * hh.price[sec]
        c_loc[b0 + i] = tau[a, sec] * annuity * hh.price[sec]
    for k in range(n_k):  # the drift weights step up by 0.1% from class to class (tie-break)
        step = 1.0 + 1e-3 * k
        c_base[k0 + 4 * k: k0 + 4 * k + 4] = np.array([s.drift_weight_in, s.drift_weight_out] * 2) * step

    a_eq = np.zeros((n_a + n_k, n))
    b_eq = np.zeros(n_a + n_k)
    for l in range(n_l):  # cash balance
        a_eq[hh.lot_account[l], l] = p_l[l] * (1 - cost_rate[hh.lot_security[l]])
    for i, (a, sec) in enumerate(buys):
        a_eq[a, b0 + i] = -hh.price[sec] * (1 + cost_rate[sec])
    for a in range(n_a):
        a_eq[a, c0 + a] = -1.0
        b_eq[a] = -(hh.cash[a] + hh.contribution[a])
    held = np.zeros(n_k)  # exposure: held - sold + bought (+ cash) - target V = over - under
    np.add.at(held, hh.asset_class[hh.lot_security], hh.quantity * p_l)
    for l in range(n_l):
        a_eq[n_a + hh.asset_class[hh.lot_security[l]], l] = -p_l[l]
    for i, (_, sec) in enumerate(buys):
        a_eq[n_a + hh.asset_class[sec], b0 + i] = hh.price[sec]
    for a in range(n_a):
        a_eq[n_a + 2, c0 + a] = 1.0
    for k in range(n_k):
        a_eq[n_a + k, k0 + 4 * k: k0 + 4 * k + 4] = [-1, -1, 1, 1]
        b_eq[n_a + k] = hh.target[k] * V - held[k]
    band = (hh.drift_threshold if hh.drift_threshold is not None else s.drift_threshold) * V
    bounds = ([(0, q) for q in hh.quantity] + [(0, None)] * n_b + [(0, None)] * n_a
              + [(0, band), (0, None), (0, band), (0, None)] * n_k)
    for col in forbidden:
        bounds[col] = (0, 0)
    first = linprog(c_base, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
    if first.status != 0:
        return None

    e_star = a_eq[n_a:, :k0] @ first.x[:k0] + held  # post-trade class dollars (cash: final cash)
    slack = s.location_exposure_tolerance * V
    # stage two: no class grows, each shrinks by at most the sliver
    a_ub = np.vstack([a_eq[n_a:, :k0], -a_eq[n_a:, :k0]])
    a_ub = np.hstack([a_ub, np.zeros((2 * n_k, 4 * n_k))])
    b_ub = np.concatenate([e_star - held, -(e_star - slack - held)])
    second = linprog(c_base + c_loc, A_eq=a_eq, b_eq=b_eq, A_ub=a_ub, b_ub=b_ub, bounds=bounds,
                     method="highs")
    if second.status != 0:
        return None
    return (second.fun, second.x, (buys, b0, c0, k0, c_base + c_loc, a_eq, b_eq, held, V, band),
            first.fun)


def conflicts(hh, x, cmap) -> list[tuple[frozenset, frozenset]]:
    """Either/or rules the answer breaks, each as its two ways out (columns to zero):
    W3 (a loss sale in a taxable account and a buy of the same security anywhere)
    and a round trip (a buy and a sell of one account x security)."""
    buys, b0 = cmap[0], cmap[1]
    p_l = hh.price[hh.lot_security]
    loss = (hh.account_type[hh.lot_account] == 0) & (p_l * hh.quantity < hh.cost_basis)
    out = []
    for sec in range(hh.n_securities):
        sells = [l for l in range(hh.n_lots) if hh.lot_security[l] == sec and loss[l]]
        bcols = [b0 + i for i, (_, bs) in enumerate(buys) if bs == sec]
        if any(x[l] * p_l[l] > 0.01 for l in sells) and any(
                x[c] * hh.price[sec] > 0.01 for c in bcols):
            out.append((frozenset(bcols), frozenset(sells)))
    for i, (a, sec) in enumerate(buys):
        sells = [l for l in range(hh.n_lots) if hh.lot_security[l] == sec and hh.lot_account[l] == a]
        if x[b0 + i] * hh.price[sec] > 0.01 and any(x[l] * p_l[l] > 0.01 for l in sells):
            out.append((frozenset([b0 + i]), frozenset(sells)))
    return out


def reference_optimum(hh, s: ModelSettings, forbidden: frozenset = frozenset(), depth: int = 0):
    """Branch on every broken either/or rule, both ways, until none is broken, and
    keep the answer whose stage-one objective (drift, tax and costs: how much of each
    class) is least, to the cent, then the least stage-two objective: location never
    decides an either/or choice that changes the classes held."""
    found = reference_solve(hh, s, forbidden)
    if found is None:
        return None
    broken = conflicts(hh, found[1], found[2])
    if not broken:
        return found
    assert depth < 8
    best = None
    for side in broken[0]:
        child = reference_optimum(hh, s, forbidden | side, depth + 1)
        if child is not None and (best is None or (round(child[3], 2), child[0])
                                  < (round(best[3], 2), best[0])):
            best = child
    return best


def reference_cost_of(hh, s, proposal, cmap) -> float:
    """The reference objective of hearth's proposal (drift parts at their cheapest)."""
    buys, b0, c0, k0, cost, a_eq, b_eq, held, V, band = cmap
    n_a, n_k = hh.n_accounts, len(hh.classes)
    x = np.zeros(len(cost))
    x[: hh.n_lots] = proposal.sell
    for a, sec, q in zip(proposal.buy_account, proposal.buy_security, proposal.buy_quantity):
        x[b0 + buys.index((int(a), int(sec)))] = q
    x[c0: c0 + n_a] = proposal.final_cash
    post = a_eq[n_a:, :k0] @ x[:k0] + held
    dev = post - hh.target * V
    for k in range(n_k):
        over, under = max(dev[k], 0.0), max(-dev[k], 0.0)
        x[k0 + 4 * k: k0 + 4 * k + 4] = [min(over, band), over - min(over, band),
                                          min(under, band), under - min(under, band)]
    return float(cost @ x)


@pytest.mark.parametrize("chunk", range(4))
def test_hearth_agrees_with_the_reference_formulation(chunk):
    solver = Solver()
    compared = 0
    for seed in range(chunk * 50, chunk * 50 + 50):
        hh = small_household(seed)
        ref_obj, _, cmap, _ = reference_optimum(hh, S)
        out = solve_household(hh, S, solver)
        assert out.status in ("traded", "no_trade"), (seed, out.message)
        ours = reference_cost_of(hh, S, out.proposal, cmap)
        value = float(hh.value())
        assert ours == pytest.approx(ref_obj, abs=0.05 + 1e-6 * value), seed
        compared += 1
    assert compared == 50
