"""Shared fixtures: a HiGHS solver and a small household builder."""

from __future__ import annotations

import numpy as np
import pytest

from hearth.model.highs import Solver
from hearth.model.household import Household, make_household

RUN_DATE = "2026-11-20"


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
