"""Goals (hearth.model.goals, docs/model.md "Goals"): hand-solved households whose
accounts are sleeves with targets of their own, the blend of the household's target,
the built-in glide to a horizon on three run dates, the no-trade rule, the location
stage, lexicographic mode and warm starts with goal columns.

The household of most tests: a taxable account T and a 529 E, each $100,000, each in
its own goal; securities EQ (equity) and BD (bond) at $100, no trading cost, every
lot at its basis (no tax). T holds 600 EQ / 400 BD, E holds 500 EQ / 500 BD, so the
household holds $110,000 EQ / $90,000 BD."""

from __future__ import annotations

import numpy as np
import pytest

from hearth.model.build import build, derive, target_dollars
from hearth.model.goals import drift_before, drift_share, glide_weights
from hearth.model.highs import Solver
from hearth.model.household import EDUCATION, TAXABLE, make_household
from hearth.model.lp import ModelSettings
from hearth.model.solve import benefit_bounds, must_trade, solve_household
from hearth.model.warm import map_basis

CLASSES = ("cash", "bond", "equity")  # BD is class 1, EQ class 2
RETIREMENT = [0.0, 0.2, 0.8]  # the retirement goal's model: 80/20 equity/bond
TUITION = [0.0, 0.7, 0.3]  # the tuition goal's model: 30/70


def household(goals: dict[str, tuple[list[int], list[float], str | None]] | None = None,
              target=(0.0, 0.45, 0.55), run_date: str = "2027-01-04", **extra):
    """T (taxable) and E (529); ``goals``: goal_id -> (accounts, weights, horizon)."""
    kw: dict = {}
    if goals:
        account = np.full(2, -1)
        for g, (accounts, _, _) in enumerate(goals.values()):
            account[accounts] = g
        kw = dict(goal_ids=tuple(goals), goal_account=account,
                  goal_target=np.array([w for _, w, _ in goals.values()]),
                  goal_horizon=np.array([h if h else "NaT" for _, _, h in goals.values()],
                                        dtype="datetime64[D]"))
    lots = dict(quantity=np.array([600.0, 400.0, 500.0, 500.0]),
                cost_basis=np.array([60_000.0, 40_000.0, 50_000.0, 50_000.0]))
    lots.update({k: extra.pop(k) for k in list(extra) if k in lots})
    kw.update(extra)
    return make_household(
        "H1", run_date, st_rate=0.35, lt_rate=0.15, account_ids=("T", "E"),
        account_type=np.array([TAXABLE, EDUCATION]), cash=np.zeros(2),
        security_ids=("BD", "EQ"), asset_class=np.array([1, 2]), price=np.array([100.0, 100.0]),
        classes=CLASSES, target=np.array(target),
        lot_ids=("T-EQ", "T-BD", "E-EQ", "E-BD"), lot_account=np.array([0, 0, 1, 1]),
        lot_security=np.array([1, 0, 1, 0]),
        acquired=np.array(["2020-01-01"] * 4, dtype="datetime64[D]"),
        cost_rate=np.zeros(2), **lots, **kw)


TWO_GOALS = {"retirement": ([0], RETIREMENT, None), "tuition": ([1], TUITION, None)}


def trades(out) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """(shares sold per lot, shares bought per (account, security))."""
    p = out.proposal
    hh_lots = ("T-EQ", "T-BD", "E-EQ", "E-BD")
    sells = {hh_lots[i]: round(float(q), 6) for i, q in enumerate(p.sell) if q > 0}
    buys = {(("T", "E")[a], ("BD", "EQ")[s]): round(float(q), 6)
            for a, s, q in zip(p.buy_account, p.buy_security, p.buy_quantity)}
    return sells, buys


def test_each_account_rebalances_to_its_own_goal():
    """T must hold 80/20 ($80k EQ, $20k BD): sell 200 BD, buy 200 EQ; E must hold
    30/70 ($30k EQ, $70k BD): sell 200 EQ, buy 200 BD. The household (its model equal
    to the blend, 55/45 of $200k) is at its target before and after."""
    hh = household(TWO_GOALS)
    d = derive(hh, ModelSettings())
    assert d.goals is not None
    np.testing.assert_allclose(d.goals.value, [100_000.0, 100_000.0])
    np.testing.assert_allclose(d.goals.target, [[0.0, 20_000.0, 80_000.0],
                                                [0.0, 70_000.0, 30_000.0]])
    # the blend: 80k + 30k equity, 20k + 70k bond; the household's own 55/45 weighs nothing
    np.testing.assert_allclose(target_dollars(hh, d), [0.0, 90_000.0, 110_000.0])
    # goal drift before: T -20k EQ / +20k BD, E +20k / -20k: 40% of each goal's value
    np.testing.assert_allclose(drift_before(hh, d.goals), [[0.0, 20_000.0, -20_000.0],
                                                           [0.0, -20_000.0, 20_000.0]])
    assert drift_share(d.goals, drift_before(hh, d.goals)) == pytest.approx(0.4)
    assert must_trade(hh, d, ModelSettings()) == ["drift"]  # the goals, not the household

    out = solve_household(hh, ModelSettings(), Solver())
    assert out.status == "traded", out.message
    assert trades(out) == ({"T-BD": 200.0, "E-EQ": 200.0},
                           {("T", "EQ"): 200.0, ("E", "BD"): 200.0})
    np.testing.assert_allclose(out.proposal.final_cash, [0.0, 0.0], atol=1e-6)


def test_without_goals_the_same_household_trades_nothing():
    """At household level the book is at its 55/45 target ($110k / $90k): nothing to
    do, where the goals asked for four trades."""
    hh = household(None)
    d = derive(hh, ModelSettings())
    assert d.goals is not None and not d.goals.any
    np.testing.assert_allclose(target_dollars(hh, d), [0.0, 90_000.0, 110_000.0])
    assert must_trade(hh, d, ModelSettings()) == []
    out = solve_household(hh, ModelSettings(), Solver())
    assert out.status == "no_trade"
    assert trades(out) == ({}, {})


def test_the_household_target_blends_a_goal_and_the_rest():
    """Only T is in a goal (80/20); the household's own weights, 50/50, apply to E's
    $100k: target $130k EQ / $70k BD. E is at 50/50 already, so only T trades:
    sell 200 BD, buy 200 EQ."""
    hh = household({"retirement": ([0], RETIREMENT, None)}, target=(0.0, 0.5, 0.5))
    d = derive(hh, ModelSettings())
    np.testing.assert_allclose(target_dollars(hh, d), [0.0, 70_000.0, 130_000.0])
    out = solve_household(hh, ModelSettings(), Solver())
    assert out.status == "traded", out.message
    assert trades(out) == ({"T-BD": 200.0}, {("T", "EQ"): 200.0})


def test_a_goal_in_band_obliges_nothing():
    """T at 78/22 against its 80/20 goal: $2,000 off, inside the 3% band of $100k;
    the household (50/50 on E, T's goal) is off by the same $2,000: nothing obliges a
    trade, and the most removing all drift can pay is (2 x $2,000 for the household +
    2 x $2,000 for the goal) x 0.002 = $16."""
    hh = household({"retirement": ([0], RETIREMENT, None)}, target=(0.0, 0.5, 0.5),
                   quantity=np.array([780.0, 220.0, 500.0, 500.0]),
                   cost_basis=np.array([78_000.0, 22_000.0, 50_000.0, 50_000.0]))
    d = derive(hh, ModelSettings())
    assert must_trade(hh, d, ModelSettings()) == []
    assert benefit_bounds(hh, d, ModelSettings())["drift"] == pytest.approx(16.0)


@pytest.mark.parametrize("years_before, invested", [
    (3000, 1.0),   # more than goal_glide_years (8) before the horizon: the model's weights
    (1461, 0.6),   # 4 years (1461 days / 365.25) before: halfway, 1 - 0.8 x 0.5
    (-30, 0.2),    # past the horizon: the floor
])
def test_a_goal_with_a_horizon_glides_to_cash(years_before, invested):
    """The tuition goal (30/70) on E, horizon 2031-01-01, glide over 8 years to a 20%
    invested floor: on each run date E's target is 30/70 of the invested share and
    cash the rest; E sells down to it (its lots at their basis: no tax). T, outside
    the goal, is at the household's 60/40 already and does not trade."""
    horizon = np.datetime64("2031-01-01", "D")
    run = horizon - np.timedelta64(years_before, "D")
    s = ModelSettings(goal_glide_years=8.0, goal_glide_floor=0.2)
    hh = household({"tuition": ([1], TUITION, "2031-01-01")}, target=(0.0, 0.4, 0.6),
                   run_date=str(run))
    d = derive(hh, s)
    assert d.goals is not None
    want = [1.0 - invested, 0.7 * invested, 0.3 * invested]
    np.testing.assert_allclose(d.goals.weights, [want], atol=1e-12)
    np.testing.assert_allclose(d.goals.target, [np.array(want) * 100_000.0], atol=1e-6)
    out = solve_household(hh, s, Solver())
    eq_sold = 500.0 - 300.0 * invested  # E holds 500 EQ, the goal wants 30,000 x invested
    bd_sold = 500.0 - 700.0 * invested
    sells, buys = trades(out)
    if invested == 1.0:  # 30/70 in full: sell 200 EQ, buy 200 BD
        assert (sells, buys) == ({"E-EQ": 200.0}, {("E", "BD"): 200.0})
    else:
        assert out.status == "traded", out.message
        assert sells == {"E-EQ": pytest.approx(eq_sold), "E-BD": pytest.approx(bd_sold)}
        assert buys == {}
        assert out.proposal.final_cash[1] == pytest.approx(100_000.0 * (1.0 - invested))


def test_glide_weights_keep_a_goal_below_the_floor_and_scale_every_invested_class():
    w = np.array([[0.05, 0.15, 0.30, 0.50],   # conservative-ish: 95% invested
                  [0.90, 0.10, 0.00, 0.00]])  # already 10% invested: below the floor
    got = glide_weights(w, 0, np.array([0.0, 0.0]), floor=0.2, years=10.0)
    np.testing.assert_allclose(got[0], [0.8, 0.15 * 0.2 / 0.95, 0.30 * 0.2 / 0.95,
                                        0.50 * 0.2 / 0.95])
    np.testing.assert_allclose(got[1], w[1])
    # no horizon, or no glide configured: the weights as given
    np.testing.assert_allclose(glide_weights(w, 0, np.array([np.nan, np.nan]), 0.2, 10.0), w)
    np.testing.assert_allclose(glide_weights(w, 0, np.array([0.0, 0.0]), 0.2, 0.0), w)


def test_the_location_stage_never_moves_a_goal_exposure():
    """Every goal drift column sits in drift0 .. n_base, the columns the location
    stage holds. Without the stage, one weighted solve buys in-band goal drift with
    location: T sells 30 more BD and keeps $3,000 cash (3% of T, the band: $6 of goal
    drift at 0.002 against BD's tax drag in a taxable account); with it, the goals end
    exactly at their targets."""
    hh = household(TWO_GOALS)
    lp = build(hh, ModelSettings())
    lay = lp.layout
    assert lay.n_goals == 2
    assert lay.n_base - lay.drift0 == 4 * 3 * (1 + 2)
    assert lay.rows["goal_exposure"][1] - lay.rows["goal_exposure"][0] == 2 * 3
    staged = solve_household(hh, ModelSettings(), Solver())
    single = solve_household(hh, ModelSettings(location_stage=False), Solver())
    assert trades(staged) == ({"T-BD": 200.0, "E-EQ": 200.0},
                              {("T", "EQ"): 200.0, ("E", "BD"): 200.0})
    assert trades(single) == ({"T-BD": 230.0, "E-EQ": 200.0},
                              {("T", "EQ"): 200.0, ("E", "BD"): 200.0})
    np.testing.assert_allclose(single.proposal.final_cash, [3_000.0, 0.0], atol=1e-6)


def test_lexicographic_mode_counts_goal_drift_out_of_band_first():
    out = solve_household(household(TWO_GOALS), ModelSettings(objective="lexicographic"),
                          Solver())
    assert trades(out) == ({"T-BD": 200.0, "E-EQ": 200.0},
                           {("T", "EQ"): 200.0, ("E", "BD"): 200.0})


def test_unpriced_goals_oblige_nothing():
    """drift_weight_goal 0: goals are measured, not priced; the household at its blend
    target has nothing to do."""
    s = ModelSettings(drift_weight_goal=0.0)
    hh = household(TWO_GOALS)
    assert must_trade(hh, derive(hh, s), s) == []
    assert solve_household(hh, s, Solver()).status == "no_trade"


def test_a_warm_start_maps_the_goal_columns_and_rows_by_identity():
    hh = household(TWO_GOALS)
    s = ModelSettings(warm_check_share=1.0)
    cold = solve_household(hh, s, Solver())
    assert cold.warm is not None
    keys = cold.warm.row_keys
    assert any(k.startswith("goal_exposure\x1fretirement\x1fequity") for k in keys)
    _, _, matched = map_basis(hh, build(hh, s), cold.warm)
    assert matched == 1.0
    warm = solve_household(hh, s, Solver(), warm=cold.warm)
    assert warm.warm_started and not warm.warm_mismatch
    assert trades(warm) == trades(cold)


def test_a_household_without_goals_builds_the_model_it_always_did():
    hh = household(None)
    lp = build(hh, ModelSettings())
    lay = lp.layout
    assert lay.n_goals == 0 and lay.n_base == lay.drift0 + 4 * 3
    assert "goal_exposure" not in lay.rows
