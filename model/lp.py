"""The assembled linear program of one household and the meaning of its columns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ModelSettings:
    """The optimization's knobs, in dollars per dollar unless said otherwise.

    ``hearth.batch.config.RunConfig`` documents each one for users; this is the
    plain copy the pure model code receives.
    """

    drift_threshold: float = 0.03
    drift_weight_in: float = 0.002
    drift_weight_out: float = 0.25
    tax_weight: float = 1.0
    location_weight: float = 1.0
    cost_weight: float = 1.0
    preference_per_dollar: float = 0.0002
    horizon_years: float = 10.0
    discount_rate: float = 0.05
    wash_sale_days: int = 30
    wash_sale_method: str = "resolve"  # "resolve" (detect, forbid, re-solve) or "mip"
    min_trade_value: float = 0.0
    whole_shares: bool = False
    objective: str = "weighted"  # or "lexicographic"
    lexicographic_tolerance: float = 1e-4  # fraction of household value
    harvest_min_benefit: float = 25.0  # dollars of tax value that make a harvest worth a solve
    harvest_min_loss_share: float = 0.05  # ... and the least loss, as a share of the lot's value
    always_solve: bool = False  # solve even when the no-trade rule says nothing is worth doing
    time_limit: float = 10.0
    presolve: bool = False
    location_stage: bool = True  # solve location with class exposures fixed (docs/model.md)
    location_exposure_tolerance: float = 0.0005  # fraction of value a class may move in that stage
    min_benefit_dollars: float = 25.0  # a discretionary proposal must beat doing nothing by this
    min_benefit_share: float = 0.0002  # ... and by this fraction of household value
    carryforward_years: float = 3.0  # years until a carried-forward loss is expected to be used
    dust_shares: float = 1e-3  # a position below this many shares counts as none
    share_increment: float = 1e-6  # order quantities are multiples of this (broker-ready)
    warm_check_share: float = 0.02  # warm-started households re-solved cold to compare
    cash_need_lead_days: int = 5  # cash needs due within this many days are raised today
    cash_reserve_days: int = 90  # ... within this many, the cash held for them is kept
    exposure_basis: str = "pre_tax"  # "after_tax": traditional dollars count at (1 - retirement_rate)
    max_position_share: float = 1.0  # most of household value one issuer may be (1: no limit)
    max_sector_share: float = 1.0  # most of household value one sector may be (1: no limit)
    concentration_weight: float = 0.1  # objective dollars per dollar of a position above the limit
    concentration_wind_down: float = 0.25  # share of tonight's excess that must go tonight
    concentration_scope: str = "unlisted"  # securities limited: "unlisted" (by the model) or "all"
    drift_weight_goal: float = 1.0  # goal drift priced at the drift weights times this
    goal_glide_years: float = 10.0  # a goal with a horizon de-risks over its last ... years
    goal_glide_floor: float = 0.2  # ... to this invested (non-cash) share at the horizon

    @property
    def discount(self) -> float:
        """(1 + d)^-H: today's value of a dollar of tax paid at the horizon."""
        return float((1.0 + self.discount_rate) ** (-self.horizon_years))

    @property
    def carryforward_value(self) -> float:
        """Today's value of a dollar of loss carried forward, per dollar of tax rate:
        (1 + d)^-k, k the years until it is expected to be used."""
        return float((1.0 + self.discount_rate) ** (-self.carryforward_years))

    @property
    def annuity(self) -> float:
        """A: present value of one dollar a year for H years at rate d."""
        d, h = self.discount_rate, self.horizon_years
        return h if d == 0 else float((1.0 - (1.0 + d) ** (-h)) / d)


@dataclass(frozen=True, eq=False)
class Layout:
    """Which column is which. Columns come in this order: sells (one per lot in a
    tradable account, plus whole-lot columns under whole shares), buys (account x
    security), final cash per account, drift (over-in, over-out, under-in,
    under-out per class), concentration excess (two per concentrated group),
    then elastic slacks when asked for. With goals (hearth.model.goals), each goal's
    drift columns (the same four parts per class, goal by goal) follow the household's,
    before ``n_base``: every drift column is in ``drift0 .. n_base``."""

    sell_lot: np.ndarray  # lot index of each sell column
    sell_mult: np.ndarray  # shares per unit of each sell column
    buy_account: np.ndarray
    buy_security: np.ndarray
    n_accounts: int
    n_classes: int
    rows: dict[str, tuple[int, int]]  # family -> [start, stop)
    elastic: dict[str, np.ndarray] = field(default_factory=dict)  # family -> slack columns
    # concentration groups (issuers, sectors: ``build.LimitGroups``) over their limit,
    # each with two excess columns from ``n_base`` on: within tonight's wind-down
    # allowance, and beyond it
    concentrated: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    n_goals: int = 0

    @property
    def n_sell(self) -> int:
        return len(self.sell_lot)

    @property
    def buy0(self) -> int:
        return self.n_sell

    @property
    def cash0(self) -> int:
        return self.n_sell + len(self.buy_account)

    @property
    def drift0(self) -> int:
        return self.cash0 + self.n_accounts

    @property
    def goal_drift0(self) -> int:
        return self.drift0 + 4 * self.n_classes

    @property
    def n_base(self) -> int:
        return self.goal_drift0 + 4 * self.n_classes * self.n_goals

    def concentration_cols(self, part: int) -> np.ndarray:
        """part: 0 excess within tonight's wind-down allowance, 1 beyond it."""
        return self.n_base + 2 * np.arange(len(self.concentrated)) + part

    def drift_cols(self, part: int) -> np.ndarray:
        """part: 0 over-in, 1 over-out, 2 under-in, 3 under-out."""
        return self.drift0 + 4 * np.arange(self.n_classes) + part

    def goal_drift_cols(self, part: int) -> np.ndarray:
        """Like ``drift_cols``, for every goal x class (goal-major)."""
        return self.goal_drift0 + 4 * np.arange(self.n_goals * self.n_classes) + part


@dataclass(frozen=True, eq=False)
class LinearProgram:
    cost: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    a_start: np.ndarray  # CSC, int32, n_col + 1 entries
    a_index: np.ndarray  # int32
    a_value: np.ndarray
    integrality: np.ndarray | None
    layout: Layout
    location: np.ndarray | None = None  # the location term's part of ``cost`` per column

    @property
    def n_col(self) -> int:
        return len(self.cost)

    @property
    def n_row(self) -> int:
        return len(self.row_lower)
