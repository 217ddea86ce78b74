"""The location stage on a household whose stage-one answer is feasible only to the
solver's tolerances: bounds set exactly on it gave an LP that a cold start called
infeasible and a warm start solved, so the cold night dropped the relocation (a
different answer, $8.90 of objective worse). The household is H0015647 of the
20,000-household realistic book's next night (``bench/warmstart.py``), kept whole in
``data/borderline_location``."""

from __future__ import annotations

import dataclasses
import os

import duckdb
import numpy as np
import pytest

from hearth.batch.config import RunConfig
from hearth.io.households import households, reference
from hearth.io.read import open_book
from hearth.io.shards import prepare, read_shard
from hearth.io.validate import validate
from hearth.io.warm import read_warm
from hearth.model.highs import Solver
from hearth.model.solve import solve_household
from hearth.model.warm import BASIC, UPPER

BOOK = os.path.join(os.path.dirname(__file__), "data", "borderline_location")
RUN_DATE = "2026-11-21"


def only_household(book: str, run_date: str, prep: str):
    """The one household of a book kept whole under ``data/``, read as a night reads it."""
    config = RunConfig()
    con = open_book(book)
    validate(con, run_date)
    plan = prepare(con, prep, config.shard_size)
    con.close()
    data = read_shard(prep, plan.shards[0])
    (item,) = list(households(data, np.datetime64(run_date, "D"),
                              reference(data.tables, config.default_cost_bps)))
    assert item.household is not None
    return item.household


@pytest.fixture(scope="module")
def household(tmp_path_factory):
    return only_household(BOOK, RUN_DATE, str(tmp_path_factory.mktemp("prep")))


def test_a_location_stage_infeasible_only_to_tolerance_still_relocates(household):
    hh = household
    out = solve_household(hh, RunConfig().model_settings(), Solver())
    assert out.status == "traded"
    p = out.proposal
    buys = {(hh.account_ids[a], hh.security_ids[s]): q
            for a, s, q in zip(p.buy_account, p.buy_security, p.buy_quantity)}
    # the bond fund goes to the traditional IRA (A2), as location has it, not taxable A1
    assert buys == pytest.approx({("H0015647-A2", "AGG"): 5.639564}, abs=1e-6)
    assert out.benefit == pytest.approx(501.204985, abs=1e-5)


class CountingSolver(Solver):
    """Each solve's (objective instance, iterations): True for the location stage's."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[bool, int]] = []

    def solve(self):
        r = super().solve()
        self.log.append((self._h is self._second, r.iterations))
        return r


def test_the_location_stage_starts_from_its_own_saved_basis(household):
    """Night two's location stage starts from night one's location basis, not from
    stage one's: on the same household its first solve takes no iteration (19 from
    stage one's basis), and the answer is the same."""
    s = RunConfig().model_settings()
    solver = CountingSolver()
    cold = solve_household(household, s, solver)
    assert [second for second, _ in solver.log[:2]] == [False, True]
    cold_location = solver.log[1][1]
    assert cold_location >= 10
    assert cold.warm is not None and cold.warm.location() is not None

    solver.log = []
    warm = solve_household(household, s, solver, cold.warm)
    assert warm.warm_started
    assert solver.log[1] == (True, 0)
    assert warm.benefit == pytest.approx(cold.benefit, rel=1e-9)
    assert np.allclose(warm.proposal.buy_quantity, cold.proposal.buy_quantity, rtol=1e-9)
    assert np.allclose(warm.proposal.sell, cold.proposal.sell, rtol=1e-9, atol=1e-9)

    # stage one's saved basis alone: the location stage starts from stage one's answer
    first_only = dataclasses.replace(cold.warm, location_col_keys=(),
                                     location_col_status=np.zeros(0, dtype=np.int8),
                                     location_row_status=np.zeros(0, dtype=np.int8))
    assert first_only.location() is None
    solver.log = []
    again = solve_household(household, s, solver, first_only)
    assert solver.log[0] == (False, 0) and solver.log[1][1] >= cold_location // 2
    assert again.benefit == pytest.approx(cold.benefit, rel=1e-9)


def test_a_location_basis_that_names_nothing_still_gives_the_cold_answer(household):
    s = RunConfig().model_settings()
    cold = solve_household(household, s, Solver())
    assert cold.warm is not None
    rows = len(cold.warm.row_keys)
    stranger = dataclasses.replace(
        cold.warm, location_col_keys=("s\x1fno-such-lot", "b\x1fno-account\x1fno-security"),
        location_col_status=np.full(2, BASIC, dtype=np.int8),
        location_row_status=np.full(rows, UPPER, dtype=np.int8))
    warm = solve_household(household, s, Solver(), stranger)
    assert warm.warm_started
    assert warm.benefit == pytest.approx(cold.benefit, rel=1e-9)
    assert np.allclose(warm.proposal.buy_quantity, cold.proposal.buy_quantity, rtol=1e-9)


def test_a_warm_location_stage_does_not_depend_on_the_households_solved_before(tmp_path):
    """H0014550 of the 20,000-household book's third night (``bench/warmstart.py
    --nights 3``), with the bases it saved the night before: started warm on a solver
    that had just solved H0006674 (whose minimum orders need binaries), its location
    stage once ended $1.05 of benefit away from a fresh solver's answer (the instance
    reused for the location stage kept something of its last MIP). Its answer and
    iterations must not depend on what the solver did before."""
    data = os.path.join(os.path.dirname(__file__), "data")
    hh = only_household(os.path.join(data, "warm_location"), "2026-11-22", str(tmp_path / "a"))
    mip = only_household(os.path.join(data, "min_order_mip"), "2026-11-22", str(tmp_path / "b"))
    warm = read_warm(duckdb.connect(), os.path.join(data, "warm_location_state"), ["H0014550"])
    basis = warm["H0014550"]
    assert basis.location() is not None
    s = RunConfig().model_settings()
    fresh = solve_household(hh, s, Solver(), basis)
    cold = solve_household(hh, s, Solver())
    solver = Solver()
    before = solve_household(mip, s, solver)  # another household first
    assert before.min_trade_binaries > 0
    after = solve_household(hh, s, solver, basis)
    assert fresh.warm_started and after.warm_started
    assert after.iterations == fresh.iterations
    assert after.benefit == pytest.approx(fresh.benefit, rel=1e-9)
    assert fresh.benefit == pytest.approx(cold.benefit, rel=1e-9)
    assert np.allclose(after.proposal.sell, cold.proposal.sell, rtol=1e-9, atol=1e-9)
