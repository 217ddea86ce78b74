"""The run configuration: one frozen pydantic model, loaded from TOML, validated
once when the run starts. Every key has a default, so no file is needed; unknown
keys are rejected. Household columns (drift_threshold, tax_budget, ...) override
the matching keys for their household."""

from __future__ import annotations

import hashlib
import json
import tomllib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hearth.errors import InputError
from hearth.model.checker import CheckRules
from hearth.model.lp import ModelSettings
from hearth.model.review import ReviewThresholds


class RunConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    drift_threshold: float = Field(0.03, ge=0, lt=1)
    """Tolerance band per asset class, as a fraction of household value."""
    drift_weight_in: float = Field(0.002, ge=0)
    """Objective dollars per dollar of deviation inside the band (small: drift there is cheap)."""
    drift_weight_out: float = Field(0.25, ge=0)
    """Objective dollars per dollar of deviation outside the band (large)."""
    tax_weight: float = Field(1.0, ge=0)
    """Multiplier on the priced tax of realized gains and losses."""
    location_weight: float = Field(1.0, ge=0)
    """Multiplier on the asset-location term (present value of tax drag)."""
    cost_weight: float = Field(1.0, ge=0)
    """Multiplier on trading costs in the objective."""
    preference_per_dollar: float = Field(0.0002, ge=0)
    """Cost per dollar held in a rank > 1 (or unlisted) security, so primaries are bought."""
    horizon_years: float = Field(10.0, gt=0)
    """H: the horizon over which deferred tax and location drag are priced."""
    discount_rate: float = Field(0.05, ge=0)
    """d: the discount rate of that pricing."""
    wash_sale_days: int = Field(30, ge=0)
    """Wash-sale window before and after the run date."""
    wash_sale_method: Literal["resolve", "mip"] = "resolve"
    """W3 enforcement: detect-forbid-resolve from the previous basis, or binaries up front."""
    default_cost_bps: float = Field(5.0, ge=0)
    """One-way trading cost where securities.cost_bps is absent."""
    min_trade_value: float = Field(25.0, ge=0)
    """Smallest order line (account x security) in dollars, unless it closes the position."""
    whole_shares: bool = False
    """Integer buy quantities; sells of whole shares or whole lots."""
    objective: Literal["weighted", "lexicographic"] = "weighted"
    """lexicographic: minimize out-of-band drift first, then everything else."""
    lexicographic_tolerance: float = Field(1e-4, ge=0)
    """Stage two may add this fraction of household value of out-of-band drift."""
    harvest_min_benefit: float = Field(25.0, ge=0)
    """Dollars of priced tax benefit that make a loss lot worth harvesting on its own
    (a smaller harvest earns no credit: the lot is sold only when rebalancing needs it)."""
    harvest_min_loss_share: float = Field(0.05, ge=0, lt=1)
    """The least loss, as a share of the lot's value, that earns a harvest credit: a
    small loss on a large lot is not worth the trades and the 30-day lockout."""
    always_solve: bool = False
    """Solve every household, even when the no-trade rule says nothing is worth doing."""
    min_benefit_dollars: float = Field(25.0, ge=0)
    """A proposal that nothing obliges (no out-of-band drift, no cash flow, no no_hold)
    must beat doing nothing by at least this many objective dollars, or the household
    is ``no_trade``."""
    min_benefit_share: float = Field(0.0002, ge=0)
    """... and by at least this fraction of household value (the larger of the two applies)."""
    location_stage: bool = True
    """Choose where class exposures sit in a second stage with the exposures held, so
    location never changes how much of each class is held (off: one weighted solve)."""
    location_exposure_tolerance: float = Field(0.0005, ge=0, le=0.01)
    """How far (fraction of value) a class may shrink in the location stage, to pay
    the relocation's trading costs; no class may grow."""
    exposure_basis: Literal["pre_tax", "after_tax"] = "pre_tax"
    """How exposure and drift are measured: ``pre_tax`` counts every dollar alike;
    ``after_tax`` counts a dollar in a traditional account at (1 - retirement_rate),
    in the exposures, in the value targets apply to, in drift_before / drift_after
    and in the concentration limit."""
    max_position_share: float = Field(1.0, gt=0, le=1)
    """Concentration limit: the most of household value (as targets see it) one
    security may be after trading (one issuer: the securities that share a
    ``securities.issuer`` count together); 1 is no limit. A position above it is
    wound down (``concentration_wind_down``), never bought, and routed to review
    (``concentration``); no buy takes a security above it."""
    max_sector_share: float = Field(1.0, gt=0, le=1)
    """Sector concentration limit: the most of household value (as targets see it)
    the limited securities of one ``securities.sector`` may be together after
    trading; 1 is no limit. A sector above it is wound down like a position, its
    securities are never bought, and no buy takes a sector above it."""
    concentration_weight: float = Field(0.1, ge=0)
    """Objective dollars per dollar a position stays above the concentration limit:
    a sale beyond the night's wind-down is made where its priced tax and costs are
    below this."""
    concentration_wind_down: float = Field(0.25, ge=0, le=1)
    """Share of a position's excess above the limit that must go each night, unless
    the tax budget (or turnover, or a restriction) stops it; the rest waits for the
    next nights. 1 sells down to the limit in one night."""
    concentration_scope: Literal["unlisted", "all"] = "unlisted"
    """Which securities the concentration limit applies to: ``unlisted``, those the
    household's model does not list (single stocks, legacy holdings: the model's
    funds are diversified building blocks a household may hold in size); ``all``,
    every security, the model's funds included."""
    cash_need_lead_days: int = Field(5, ge=0, le=366)
    """Cash needs (``cash_needs``) due within this many days of the run date (or
    already past) must be in cash after tonight's trades, on top of min_cash: the
    sales are forced like a withdrawal's, at the lowest tax cost tonight."""
    cash_reserve_days: int = Field(90, ge=0, le=3660)
    """Cash needs due within this many days are a reserve: the cash already held (with
    tonight's contribution) up to their amount stays cash, outside the exposure
    targets. Sales for them wait until they are due within ``cash_need_lead_days``,
    so a lot about to turn long-term can wait; 0 keeps no reserve."""
    drift_weight_goal: float = Field(1.0, ge=0)
    """Goals (``goals``): each goal's class drift is priced at the drift weights
    (``drift_weight_in`` inside the band, ``drift_weight_out`` outside it, the band a
    fraction of the goal's value) times this, on top of the household's drift; 0 leaves
    goals measured and reported but unpriced (the household's target is still the blend
    of its goals')."""
    goal_glide_years: float = Field(10.0, ge=0)
    """A goal with a horizon_date (whose weights are not a glide path's) de-risks over
    this many years before it: the invested (non-cash) share of its weights falls
    linearly to ``goal_glide_floor`` at the horizon, the cash class taking the rest;
    0: no built-in glide."""
    goal_glide_floor: float = Field(0.2, ge=0, le=1)
    """The invested (non-cash) share of a goal's weights at and after its horizon
    (a goal whose weights invest less keeps them)."""
    carryforward_years: float = Field(3.0, ge=0)
    """Years until a carried-forward capital loss is expected to be used: a loss that
    netting cannot use this year is worth lt_rate x (1 + d)^-k."""
    dust_shares: float = Field(1e-3, ge=0)
    """A position below this many shares counts as none (a no_hold rule is met by it)."""
    share_increment: float = Field(1e-6, gt=0, le=1)
    """Order quantities are written as multiples of this many shares (broker-ready);
    whole_shares writes exact integers."""
    time_limit: float = Field(10.0, gt=0)
    """Seconds per household solve before it is abandoned as an error."""
    presolve: bool = False
    """HiGHS presolve; off by default: household LPs are small and solve faster without it."""
    warm_start: bool = True
    """Start each household from the previous night's basis, mapped by the stable
    identity of its variables (lot, account x security, class, row)."""
    warm_check_share: float = Field(0.02, ge=0, le=1)
    """Share of warm-started households (chosen by a hash of the household id) solved
    cold as well and compared; where the answers differ the cold one is written and
    a warning logged. 1 checks every one."""
    duckdb_memory_limit: str = "1GB"
    """DuckDB's memory cap for reading, validating and sharding the whole book (it
    spills to disk beyond it), so the driver's memory does not grow with the book.
    A book of 20,000 realistic households (57 million lots) needs more than 128MB
    for its duplicate-id checks."""
    delta_target: str = ""
    """Where to copy each committed night as Delta Lake tables (``<target>/trades``,
    ``household_results``, ``exceptions``; that run date's partition replaced); empty:
    no copy. A failed copy exits 5: the night is committed, and re-running copies again."""
    openlineage_url: str = ""
    """Where to send OpenLineage START / COMPLETE / FAIL events for each run: an
    ``http(s)://`` endpoint (e.g. Marquez's ``/api/v1/lineage``; ``OPENLINEAGE_API_KEY``
    is sent as a bearer token when set) or a ``file://`` path that gets one JSON line
    per event; empty: none. An event that cannot be delivered is a warning, never
    the run's failure."""
    openlineage_namespace: str = "hearth"
    """The OpenLineage job namespace of the runs' events (the job is ``hearth.run``)."""
    shard_size: int = Field(500, ge=1)
    """Households per shard, on average: shards are cut by estimated cost (lots and
    accounts), at least 4 per worker, so a shard of large households holds fewer."""
    failure_rate_limit: float = Field(0.05, ge=0, le=1)
    """Share of households in error/infeasible above which the run exits with code 3."""
    review_turnover: float = Field(0.20, ge=0)
    """needs_review when turnover exceeds this fraction of household value."""
    review_tax_due: float = Field(5_000.0, ge=0)
    """needs_review when the run's extra tax exceeds this many dollars."""
    review_order_share: float = Field(0.10, ge=0)
    """needs_review when one order line exceeds this fraction of household value."""

    def model_settings(self) -> ModelSettings:
        fields = set(ModelSettings.__dataclass_fields__)
        return ModelSettings(**{k: v for k, v in self.model_dump().items() if k in fields})

    def check_rules(self) -> CheckRules:
        return CheckRules(wash_sale_days=self.wash_sale_days,
                          min_trade_value=self.min_trade_value, whole_shares=self.whole_shares,
                          dust_shares=self.dust_shares, share_increment=self.share_increment,
                          cash_need_lead_days=self.cash_need_lead_days,
                          cash_reserve_days=self.cash_reserve_days,
                          max_position_share=self.max_position_share,
                          max_sector_share=self.max_sector_share,
                          concentration_scope=self.concentration_scope,
                          exposure_basis=self.exposure_basis)

    def review_thresholds(self) -> ReviewThresholds:
        return ReviewThresholds(turnover=self.review_turnover, tax_due=self.review_tax_due,
                                order_share=self.review_order_share)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()


def load_config(path: str | None) -> RunConfig:
    if path is None:
        return RunConfig()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"config {path}: cannot be read ({e})") from e
    try:
        return RunConfig(**data)
    except Exception as e:  # pydantic's message names every bad key
        raise InputError(f"config {path}: {e}") from e
