"""The location stage on a household whose stage-one answer is feasible only to the
solver's tolerances: bounds set exactly on it gave an LP that a cold start called
infeasible and a warm start solved, so the cold night dropped the relocation (a
different answer, $8.90 of objective worse). The household is H0015647 of the
20,000-household realistic book's next night (``bench/warmstart.py``), kept whole in
``data/borderline_location``."""

from __future__ import annotations

import os

import numpy as np
import pytest

from hearth.batch.config import RunConfig
from hearth.io.households import households, reference
from hearth.io.read import open_book
from hearth.io.shards import prepare, read_shard
from hearth.io.validate import validate
from hearth.model.highs import Solver
from hearth.model.solve import solve_household

BOOK = os.path.join(os.path.dirname(__file__), "data", "borderline_location")
RUN_DATE = "2026-11-21"


@pytest.fixture(scope="module")
def household(tmp_path_factory):
    config = RunConfig()
    con = open_book(BOOK)
    validate(con, RUN_DATE)
    prep = str(tmp_path_factory.mktemp("prep"))
    plan = prepare(con, prep, config.shard_size)
    con.close()
    data = read_shard(prep, plan.shards[0])
    (item,) = list(households(data, np.datetime64(RUN_DATE, "D"),
                              reference(data.tables, config.default_cost_bps)))
    assert item.household is not None
    return item.household


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
