"""Shared fixtures: a HiGHS solver and a small household builder."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

from hearth.model.highs import Solver
from hearth.model.household import Household, make_household

RUN_DATE = "2026-11-20"

# Property tests draw the same examples on every run (a suite that passes here passes in
# CI); HEARTH_HYPOTHESIS=explore draws new ones each run, to look for new failures
# (each one found is kept as an @example next to its test once fixed).
settings.register_profile("fixed", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("explore" if os.environ.get("HEARTH_HYPOTHESIS") == "explore" else "fixed")


@pytest.fixture
def solver() -> Solver:
    return Solver()


def _household(**kw) -> Household:
    """A household from short lists; every array field may be given as a list."""
    kw.setdefault("st_rate", 0.37)
    kw.setdefault("lt_rate", 0.20)
    n_a = len(kw["account_ids"])
    kw.setdefault("cash", [0.0] * n_a)
    kw.setdefault("acquired", ["2020-01-02"] * len(kw["lot_ids"]))
    kw["acquired"] = np.array(kw["acquired"], dtype="datetime64[D]")
    for k, v in list(kw.items()):
        if isinstance(v, list) and k not in ("account_ids", "security_ids", "classes", "lot_ids",
                                            "restrictions", "sector", "tags", "wash_groups"):
            kw[k] = np.array(v)
    return make_household(kw.pop("household_id", "H1"), kw.pop("run_date", RUN_DATE), **kw)


@pytest.fixture
def household():
    return _household


@pytest.fixture
def stock_bond_household():
    """One taxable account holding lots of STK ($100), a 50/50 STK/BND ($100) target;
    give the lots (lot_ids, quantity, cost_basis, optional acquired) and any extras."""
    def make(**kw) -> Household:
        n = len(kw["lot_ids"])
        base = dict(account_ids=("taxable",), account_type=[0],
                    security_ids=("STK", "BND"), asset_class=[0, 1], price=[100.0, 100.0],
                    classes=("stocks", "bonds", "cash"), target=[0.5, 0.5, 0.0],
                    lot_account=[0] * n, lot_security=[0] * n)
        base.update(kw)
        return _household(**base)
    return make
