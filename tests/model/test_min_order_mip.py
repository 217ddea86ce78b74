"""Minimum orders that need binaries, on households of the 20,000-household realistic
book's third night (``bench/warmstart.py --nights 3``, run date 2026-11-22), each
kept whole under ``data/``:

- H0019560 (``closed_within_tolerance``): its MIP sold a position worth less than
  the minimum order (0.8088 shares) all but 3e-9 of a share, which the solve called a
  small order, not a close; the household fell back to a rounded answer, $42.66 of
  benefit worse than doing nothing, where the MIP's answer was worth $7,747.63;
- H0008828 (``pinned_location_mip``): the location stage's MIP, its exposures
  pinned at stage one's answer, took 5 s to be called infeasible, although stage
  one's answer lies in it; it now starts from that answer.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from hearth.batch.config import RunConfig
from hearth.model.build import build, derive
from hearth.model.checker import check_proposal
from hearth.model.highs import Solver
from hearth.model.solve import SolveStatus, all_trade_lines, min_trade_violations, solve_household

from .test_location_stage import only_household

DATA = os.path.join(os.path.dirname(__file__), "data")
RUN_DATE = "2026-11-22"


@pytest.fixture(scope="module")
def closed(tmp_path_factory):
    return only_household(os.path.join(DATA, "closed_within_tolerance"), RUN_DATE,
                          str(tmp_path_factory.mktemp("prep")))


@pytest.fixture(scope="module")
def pinned(tmp_path_factory):
    return only_household(os.path.join(DATA, "pinned_location_mip"), RUN_DATE,
                          str(tmp_path_factory.mktemp("prep")))


class MipLog(Solver):
    """Each solve's (location stage?, status, objective - HiGHS's dual bound) for MIPs."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.log: list[tuple[bool, SolveStatus, float]] = []

    def solve(self):
        r = super().solve()
        if r.mip:
            bound = self._h.getInfo().mip_dual_bound
            self.log.append((self._h is self._second, r.status, r.objective - bound))
        return r


def checked(hh, out):
    """The independent checker's violations of the household's proposal."""
    p = out.proposal
    return check_proposal(hh, p.sell, p.buy_account, p.buy_security, p.buy_quantity,
                          p.final_cash, RunConfig().check_rules(),
                          disallowed_loss=p.disallowed_loss)


def test_a_sale_within_one_share_increment_of_the_whole_position_closes_it(closed):
    """``broker_quantities`` sells such a line's lots whole, so it is no small order;
    short of the position by more than an increment, it is one."""
    hh = closed
    s = RunConfig().model_settings()
    lp = build(hh, s, derive(hh, s))
    lay = lp.layout
    key = hh.lot_account[lay.sell_lot] * hh.n_securities + hh.lot_security[lay.sell_lot]
    value = (lp.upper[: lay.n_sell] * lay.sell_mult
             * hh.price[hh.lot_security[lay.sell_lot]])
    # a position worth less than the minimum order whose every lot may be sold
    position = np.bincount(hh.lot_account * hh.n_securities + hh.lot_security,
                           weights=hh.quantity * hh.price[hh.lot_security])
    whole = np.bincount(key, weights=value, minlength=len(position))
    small = np.flatnonzero((whole > 1.0) & (whole < s.min_trade_value)
                           & np.isclose(whole, position[: len(whole)], rtol=1e-12))
    assert len(small)
    cols = np.flatnonzero(key == small[0])
    x = np.zeros(lp.n_col)
    x[cols] = lp.upper[cols]
    assert min_trade_violations(hh, lp, x, s) == ([], [])
    x[cols[0]] -= 1e-7 / lay.sell_mult[cols[0]]  # HiGHS's feasibility tolerance short
    assert min_trade_violations(hh, lp, x, s) == ([], [])
    x[cols[0]] -= 1e-3 / lay.sell_mult[cols[0]]  # a thousandth of a share short
    sells, buys = min_trade_violations(hh, lp, x, s)
    assert [c.tolist() for c in sells] == [cols.tolist()] and buys == []


def test_minimum_order_mips_are_solved_to_a_dollar_of_their_bound(closed):
    """Its objective runs to $2.2 million (a concentrated position above what may be
    wound down tonight, at WIND_DOWN_PENALTY a dollar): 0.01% of that let a MIP stop
    $31 from its bound. Every MIP now ends within a dollar, and the
    household trades the MIP's answer, not the rounded fallback."""
    hh = closed
    s = RunConfig().model_settings()
    solver = MipLog()
    out = solve_household(hh, s, solver)
    assert out.status == "traded"
    assert not out.min_trade_fallback and out.min_trade_binaries > 0
    mips = [gap for _, status, gap in solver.log if status == SolveStatus.OPTIMAL]
    assert mips and max(mips) <= 1.0 + 1e-6
    assert out.benefit > 7_000
    assert checked(hh, out) == []


def test_the_location_stages_mip_starts_from_stage_ones_answer(pinned):
    """Stage one's answer lies in the location stage's MIP (its exposures are
    pinned there), so that MIP is never infeasible; cold, HiGHS called it so after
    13,487 iterations and a looser pin was solved again."""
    s = RunConfig().model_settings()
    solver = MipLog()
    out = solve_household(pinned, s, solver)
    assert out.status == "traded" and out.min_trade_binaries > 0
    location = [status for second, status, _ in solver.log if second]
    assert location and all(status == SolveStatus.OPTIMAL for status in location)
    assert max(gap for _, _, gap in solver.log) <= 1.0 + 1e-6
    assert checked(pinned, out) == []


def test_minimum_orders_that_need_binaries_get_them_on_every_line_in_one_mip(pinned):
    """H0008828's LP repair leaves small lines. Binaries for those 82 lines alone (a
    MIP pair of 0.8 s and 0.3 s) left others small, and every one of its 273 lines
    then needed binaries anyway: they now go on every line at once, so stage one
    solves one MIP, then the same MIP with its binaries fixed (the exact answer)."""
    s = RunConfig().model_settings()
    solver = MipLog()
    out = solve_household(pinned, s, solver)
    lp = build(pinned, s, derive(pinned, s))
    sells, buys = all_trade_lines(pinned, lp, lp.upper)
    lines = len(sells) + len(buys)
    assert out.status == "traded" and not out.min_trade_fallback
    assert out.min_trade_binaries == lines
    assert sum(1 for second, _, _ in solver.log if not second) == 2
    assert checked(pinned, out) == []
