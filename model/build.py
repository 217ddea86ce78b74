"""Assembly of one household's linear program from its arrays.

``derive`` turns the household's records into per-lot and per-(account, security)
figures once. The objective is a sum of named terms, one function each
(``drift_cost``, ``realized_tax_cost`` from ``tax_on_realized``, ``location_cost``,
``trading_cost``, ``preference_cost``, ``tie_break``); the rules that act on
column bounds are ``rule_*`` functions (no_sell, W1, no_hold, W2); each ``rows_*``
function is one constraint family that returns its rows as coordinates; ``build``
stacks them into a CSC matrix for HiGHS. Adding a rule means adding one function
(and its tests).

The math, with V the dollars targets apply to (``Household.target_value``):

  minimize  sum_l (tax_l + cost_l - loc_l - pref_l) sell_l
          + sum_as (cost_as + loc_as + pref_as) buy_as
          + w_in * in-band drift + w_out * out-of-band drift
  s.t.  cash balance per account, exposure per asset class, budgets.

The location part (loc) is kept apart in ``LinearProgram.location``: the solve
first fixes class exposures without it, then lets it choose where they sit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from hearth.model import wash
from hearth.model.goals import GoalFigures, goal_figures
from hearth.model.household import (
    EDUCATION,
    HSA,
    ROTH,
    TAXABLE,
    TRADITIONAL,
    Household,
)
from hearth.model.lp import Layout, LinearProgram, ModelSettings
from hearth.model.needs import NeedWindows, need_windows
from hearth.model.tax import long_term, net_capital_gains
from hearth.model.tolerances import MONEY_TOL
from hearth.model.wash import GAIN_EPS

ELASTIC_PENALTY = 1_000.0  # dollars of objective per dollar of violated constraint
TIE_BREAK = 1e-6  # objective dollars per traded dollar, varied by column position
DRIFT_TIE_BREAK = 1e-3  # relative step of the drift weights from one class to the next
# Objective dollars per dollar of a concentrated position left above tonight's
# wind-down allowance: far above any tax or drift price, so only a hard rule (the
# tax budget, turnover, no_sell) keeps a wind-down from its pace; far below
# ELASTIC_PENALTY, so a wind-down never breaks a budget that forced cash relaxes.
WIND_DOWN_PENALTY = 100.0


@dataclass(frozen=True, eq=False)
class LimitGroups:
    """The groups of securities a concentration limit applies to (``limit_groups``):
    one per issuer (a security with no issuer is its own) under the position limit,
    one per sector under the sector limit, each over the limited securities only.
    Membership is (group, security) pairs; a security may be in an issuer and a sector."""

    name: tuple[str, ...]  # the issuer (or security id), or "sector <name>"
    limit: np.ndarray  # exposure dollars per group
    current: np.ndarray  # exposure dollars per group before trading
    member_group: np.ndarray  # int per membership
    member_security: np.ndarray  # int per membership

    @property
    def concentrated(self) -> np.ndarray:
        """bool per group: above its limit before trading (within MONEY_TOL is at it)."""
        return self.current > self.limit + MONEY_TOL

    def exposure(self, by_security: np.ndarray) -> np.ndarray:
        """Exposure dollars per group, given them per security."""
        return np.bincount(self.member_group, weights=by_security[self.member_security],
                           minlength=len(self.name)).astype(np.float64)


@dataclass(frozen=True, eq=False)
class Derived:
    """Per-household figures the model needs, computed once from a Household."""

    lot_price: np.ndarray
    gain_per_share: np.ndarray
    is_long: np.ndarray
    rate_now: np.ndarray  # st_rate or lt_rate per lot
    tax_coef: np.ndarray  # objective dollars per share sold (taxable lots; 0 elsewhere)
    lot_taxable: np.ndarray
    lot_tradable: np.ndarray
    no_buy: np.ndarray  # [n_a, n_s] bool (no_buy, no_trade and no_hold)
    no_sell: np.ndarray  # [n_a, n_s] bool (no_sell, no_trade)
    no_hold: np.ndarray  # [n_a, n_s] bool
    tau: np.ndarray  # [n_a, n_s] annual tax drag per dollar held
    buyable: np.ndarray  # [n_a, n_s] bool: a buy column exists
    w1_blocked: np.ndarray  # bool per lot: a loss sale that replacement shares would wash
    w1_washable: np.ndarray  # bool per lot: would wash, but cash needs may sell it anyway
    w1_groups: np.ndarray  # bool per wash group with a W1-blocked lot
    w2_group: np.ndarray  # bool per wash group: recent loss sale, no buys today
    forced_sell: np.ndarray  # bool per lot: no_hold forces the sale
    cash_need: np.ndarray  # dollars per account that must be raised today (tradable)
    needs: NeedWindows  # the cash_needs records in today's windows (hearth.model.needs)
    current_by_class: np.ndarray  # exposure dollars per class, lots of every account (no cash)
    exposure_weight: np.ndarray  # per account: what a dollar held there counts for in exposure
    start_cash: float  # exposure dollars of cash + contribution - withdrawal, all accounts
    current_by_security: np.ndarray  # exposure dollars per security, every account
    position_limit: float  # most exposure dollars one issuer may hold (inf: no limit)
    limited: np.ndarray  # bool per security: a concentration limit applies to it
    concentrated: np.ndarray  # bool per security: in a group above its limit before trading
    groups: LimitGroups  # the issuers and sectors a concentration limit applies to
    forced_cash: bool  # a withdrawal or cash shortfall must be met, or a no_hold sale made
    target_value: float
    value: float
    band: float
    goals: GoalFigures | None = None  # the household's goals tonight (hearth.model.goals)


def restriction_masks(hh: Household) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(no_buy, no_sell, no_hold) as [n_accounts, n_securities] boolean masks."""
    n_a, n_s = hh.n_accounts, hh.n_securities
    no_buy = np.zeros((n_a, n_s), dtype=bool)
    no_sell = np.zeros((n_a, n_s), dtype=bool)
    no_hold = np.zeros((n_a, n_s), dtype=bool)
    for r in hh.restrictions:
        if r.security is not None:
            sec = np.array([s == r.security for s in hh.security_ids], dtype=bool)
        elif r.sector is not None:
            sec = np.array([s == r.sector for s in hh.sector], dtype=bool)
        else:
            sec = np.array([r.tag in t for t in hh.tags], dtype=bool)
        acct = np.ones(n_a, dtype=bool) if r.account < 0 else np.arange(n_a) == r.account
        hit = np.outer(acct, sec)
        if r.rule in ("no_buy", "no_trade", "no_hold"):
            no_buy |= hit
        if r.rule in ("no_sell", "no_trade"):
            no_sell |= hit
        if r.rule == "no_hold":
            no_hold |= hit
    return no_buy, no_sell, no_hold


def tax_drag(hh: Household, s: ModelSettings | None = None) -> np.ndarray:
    """tau[a, s]: annual tax drag per dollar of security s held in account a.

    - taxable: income at its rates (qualified dividends, ordinary income; the
      tax-exempt share carries no federal tax, and the qualified share can be at
      most what is not exempt), capital-gain distributions at lt_rate, plus the
      present value of the eventual capital-gains tax on price growth over the
      horizon, spread over it as a yearly figure (divided by the annuity factor);
      foreign tax is credited, so zero net;
    - traditional: expected_return x retirement_rate (growth leaves as ordinary income);
    - roth, hsa, education: income_yield x foreign_tax_fraction (withholding is lost).
    """
    s = s if s is not None else ModelSettings()
    iy, ex = hh.income_yield, np.clip(hh.tax_exempt_fraction, 0.0, 1.0)
    qf = np.minimum(np.clip(hh.qualified_fraction, 0.0, 1.0), 1.0 - ex)
    growth = np.maximum(hh.expected_return - iy - hh.cg_distribution, 0.0)
    h = s.horizon_years
    growth_tax = hh.lt_rate * ((1.0 + growth) ** h - 1.0) * s.discount / s.annuity
    taxable = (iy * (qf * hh.qualified_div_rate + np.maximum(1.0 - qf - ex, 0.0) * hh.ordinary_rate)
               + hh.cg_distribution * hh.lt_rate + growth_tax)
    by_type = np.empty((5, hh.n_securities))
    by_type[TAXABLE] = taxable
    by_type[TRADITIONAL] = hh.expected_return * hh.retirement_rate
    by_type[ROTH] = by_type[HSA] = by_type[EDUCATION] = iy * hh.foreign_tax_fraction
    return by_type[hh.account_type]


def exposure_weight(hh: Household, s: ModelSettings) -> np.ndarray:
    """Per account, what one dollar held there counts for when exposure, drift and
    concentration are measured: 1, or with ``exposure_basis = "after_tax"``
    (1 - retirement_rate) in a traditional account, whose withdrawals are taxed as
    ordinary income (Roth, HSA and education dollars are already after tax, and a
    taxable account's unrealized gains are left to the tax terms)."""
    w = np.ones(hh.n_accounts)
    if s.exposure_basis == "after_tax":
        w[hh.account_type == TRADITIONAL] = 1.0 - hh.retirement_rate
    return w


def position_limit(hh: Household, s: ModelSettings, target_value: float) -> float:
    """The most exposure dollars one issuer may hold (a security with no issuer is
    its own; two share classes of one company, with ``securities.issuer``, are held
    together): max_position_share (the household's, else the run's) of the dollars
    targets apply to; inf at 1 or more. It applies to the securities
    ``concentration_scope`` names (``Derived.limited``): by default those the
    household's model does not list (single stocks, legacy holdings), since the
    model's own funds are its diversified building blocks."""
    share = hh.max_position_share if hh.max_position_share is not None else s.max_position_share
    return share * max(target_value, 0.0) if share < 1.0 else np.inf


def sector_limit(hh: Household, s: ModelSettings, target_value: float) -> float:
    """The most exposure dollars the limited securities of one sector
    (``securities.sector``) may hold together: max_sector_share (the household's, else
    the run's) of the dollars targets apply to; inf at 1 or more."""
    share = hh.max_sector_share if hh.max_sector_share is not None else s.max_sector_share
    return share * max(target_value, 0.0) if share < 1.0 else np.inf


def limit_groups(hh: Household, limited: np.ndarray, by_security: np.ndarray,
                 issuer_limit: float, sector_limit: float) -> LimitGroups:
    """The concentration groups of the limited securities: per issuer when the
    position limit is finite, then per sector when the sector limit is, each in the
    order of its first security (so with no issuers the issuer groups are the
    securities themselves, in order). A security with no sector is in no sector group."""
    issuers = hh.issuer if len(hh.issuer) == hh.n_securities else (None,) * hh.n_securities
    issuer_key = [issuers[i] or hh.security_ids[i] for i in range(hh.n_securities)]
    names: list[str] = []
    limits: list[float] = []
    member_group: list[int] = []
    member_security: list[int] = []
    for limit, keys, label in ((issuer_limit, issuer_key, "{}"),
                               (sector_limit, hh.sector, "sector {}")):
        if not np.isfinite(limit):
            continue
        index: dict[str, int] = {}
        for i in np.flatnonzero(limited).tolist():
            key = keys[i]
            if key is None:
                continue
            if key not in index:
                index[key] = len(names)
                names.append(label.format(key))
                limits.append(limit)
            member_group.append(index[key])
            member_security.append(i)
    group = np.array(member_group, dtype=np.int64)
    security = np.array(member_security, dtype=np.int64)
    current = np.bincount(group, weights=by_security[security], minlength=len(names))
    return LimitGroups(name=tuple(names), limit=np.array(limits, dtype=np.float64),
                       current=current.astype(np.float64), member_group=group,
                       member_security=security)


def positions_after(hh: Household, d: Derived, sell: np.ndarray, buy_account: np.ndarray,
                    buy_security: np.ndarray, buy_quantity: np.ndarray) -> np.ndarray:
    """Exposure dollars per security after a proposal (shares sold per lot, buy lines)."""
    w = d.exposure_weight
    held = (hh.quantity - sell) * d.lot_price * w[hh.lot_account]
    out = np.bincount(hh.lot_security, weights=held, minlength=hh.n_securities).astype(np.float64)
    out += np.bincount(buy_security, weights=buy_quantity * hh.price[buy_security]
                       * w[buy_account], minlength=hh.n_securities)
    return out


def concentration_shift(hh: Household, d: Derived, sell: np.ndarray, buy_account: np.ndarray,
                        buy_security: np.ndarray, buy_quantity: np.ndarray) -> bool:
    """Whether a proposal trades a position in a group (issuer, sector) above its
    concentration limit, or leaves a group above it: the review reason
    ``concentration`` (a person sees every step of a wind-down)."""
    g = d.groups
    if len(g.name) == 0:
        return False
    after = g.exposure(positions_after(hh, d, sell, buy_account, buy_security, buy_quantity))
    traded = bool((d.concentrated[hh.lot_security] & (sell > 0)).any())
    return traded or bool((after > g.limit + MONEY_TOL).any())


def cash_needs(hh: Household, needs: NeedWindows | None = None) -> np.ndarray:
    """Dollars each tradable account must raise today: withdrawal, min_cash and the
    cash needs it names that are due within the lead window, beyond its cash and
    contribution. A household-level need's shortfall is owed by every account that
    may fund it (the model chooses which sells)."""
    need = hh.withdrawal + hh.min_cash - hh.cash - hh.contribution
    if needs is not None:
        need = need + needs.lead_account
        need = np.where(needs.funds_pool, np.maximum(need, needs.pool_short), need)
    return np.where(hh.tradable & (need > MONEY_TOL), need, 0.0)


def derive(hh: Household, s: ModelSettings) -> Derived:
    lot_price = hh.price[hh.lot_security]
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = lot_price - np.where(hh.quantity > 0, hh.cost_basis / hh.quantity, 0.0)
    is_long = long_term(hh.acquired, hh.run_date)
    rate_now = np.where(is_long, hh.lt_rate, hh.st_rate)
    lot_taxable = hh.account_type[hh.lot_account] == TAXABLE
    no_buy, no_sell, no_hold = restriction_masks(hh)
    tradable = hh.tradable
    buyable = (tradable[:, None] & hh.menu & (hh.rank > 0)[None, :] & ~no_buy)
    forced = no_hold[hh.lot_account, hh.lot_security] & tradable[hh.lot_account]
    needs = need_windows(hh, s.cash_need_lead_days, s.cash_reserve_days)
    need = cash_needs(hh, needs)
    # W1 gives way where cash needs force the sale: such a loss sale is made, washed,
    # and reported with its disallowed loss (hearth.model.wash).
    would_wash = wash.w1_blocked_lots(hh, gain, s.wash_sale_days, s.dust_shares)
    w1 = would_wash & ~(forced | (need[hh.lot_account] > 0))
    w1_groups = np.zeros(len(hh.wash_groups), dtype=bool)
    w1_groups[hh.wash_group[hh.lot_security[w1]]] = True
    w = exposure_weight(hh, s)
    held = hh.quantity * lot_price * w[hh.lot_account]
    current = np.bincount(hh.asset_class[hh.lot_security], weights=held,
                          minlength=len(hh.classes)).astype(np.float64)  # float even with no lots
    by_security = np.bincount(hh.lot_security, weights=held,
                              minlength=hh.n_securities).astype(np.float64)
    # Household.value(), from what is at hand (pre-tax whatever the exposure basis)
    value = float((hh.quantity * lot_price).sum() + hh.cash.sum()
                  if s.exposure_basis == "after_tax" else current.sum() + hh.cash.sum())
    # the dollars targets apply to, on the exposure basis
    target_value = float(current.sum() + (w * hh.cash).sum()) + float(
        (w * hh.contribution).sum() - (w * hh.withdrawal).sum() + hh.held_away.sum())
    limit = position_limit(hh, s, target_value)
    in_scope = (hh.rank == 0) if s.concentration_scope == "unlisted" else np.ones(
        hh.n_securities, dtype=bool)
    groups = limit_groups(hh, in_scope, by_security, limit,
                          sector_limit(hh, s, target_value))
    limited = np.zeros(hh.n_securities, dtype=bool)
    limited[groups.member_security] = True
    concentrated = np.zeros(hh.n_securities, dtype=bool)
    concentrated[groups.member_security[groups.concentrated[groups.member_group]]] = True
    band = hh.drift_threshold if hh.drift_threshold is not None else s.drift_threshold
    forced_cash = bool((need > 0).any() or (forced & (hh.quantity > 0)).any())
    partial = Derived(
        lot_price=lot_price, gain_per_share=gain, is_long=is_long, rate_now=rate_now,
        tax_coef=np.zeros(hh.n_lots), lot_taxable=lot_taxable,
        lot_tradable=tradable[hh.lot_account],
        no_buy=no_buy, no_sell=no_sell, no_hold=no_hold, tau=tax_drag(hh, s), buyable=buyable,
        w1_blocked=w1, w1_washable=would_wash & ~w1, w1_groups=w1_groups,
        w2_group=wash.recent_loss_groups(hh, s.wash_sale_days), forced_sell=forced,
        cash_need=need, needs=needs, current_by_class=current, forced_cash=forced_cash,
        exposure_weight=w, start_cash=float((w * (hh.cash + hh.contribution - hh.withdrawal)).sum()),
        current_by_security=by_security, position_limit=limit, limited=limited,
        concentrated=concentrated, groups=groups,
        target_value=target_value, value=value, band=float(band),
    )
    return dataclasses.replace(partial, tax_coef=tax_on_realized(hh, partial, s),
                               goals=goal_figures(hh, s.goal_glide_floor, s.goal_glide_years, w,
                                                  held, needs.own_reserved))


# -- objective terms: one function each, dollars per unit of a column ----------------------

def loss_pool(hh: Household) -> float:
    """Dollars of gain this run can realize with no tax this year: the loss
    carried past this year's netting of the year-to-date figures (beyond the
    ordinary-income offset it already takes)."""
    year = net_capital_gains(hh.ytd_st_gain, hh.ytd_lt_gain,
                             carryforward_st=hh.loss_carryforward_st,
                             carryforward_lt=hh.loss_carryforward_lt, st_rate=hh.st_rate,
                             lt_rate=hh.lt_rate, ordinary_rate=hh.ordinary_rate,
                             filing_status=hh.filing_status)
    return float(year.carryforward_st + year.carryforward_lt)


def rate_at_position(hh: Household, d: Derived, s: ModelSettings) -> np.ndarray:
    """Per lot, what a dollar of gain realized now costs this year at the household's
    tax position: its rate (st_rate or lt_rate), or, with a loss pool, the value of
    the carryforward it uses up, lt_rate x (1 + d)^-k."""
    if loss_pool(hh) > MONEY_TOL:
        return np.full(hh.n_lots, hh.lt_rate * s.carryforward_value)
    return d.rate_now


def tax_on_realized(hh: Household, d: Derived, s: ModelSettings) -> np.ndarray:
    """Objective dollars per share sold of each lot, priced at the household's tax
    position: what the sale does to this year's netted tax, minus the tax it saves
    at the horizon (deferral: r_lt (1 + d)^-H per dollar of gain).

    - With net gains so far this year (no loss pool), a gain costs its rate now
      (st_rate or lt_rate) and a loss saves it: c_l = r_now - r_lt (1 + d)^-H.
    - With a loss pool (carryforwards or year-to-date losses beyond what netting
      uses), a gain is absorbed and costs only the carryforward it uses up, and a
      loss only adds to the carryforward: both at r_lt (1 + d)^-k, k =
      ``carryforward_years``, instead of r_now. (A run realizing more gain than
      the pool is priced at the starting position; the tax budget is checked
      exactly after the solve.)

    Sells in tax-advantaged accounts have no tax term. A loss lot whose whole
    harvest is worth less than ``harvest_min_benefit``, or whose loss is less than
    ``harvest_min_loss_share`` of its value, earns nothing for its loss: it is sold
    only when rebalancing needs it, never for a sliver of value that starts a 30-day
    lockout; so are all losses when harvesting is off, and loss lots a cash need
    sells inside a W1 window (a washed loss is deferred)."""
    c = rate_at_position(hh, d, s) - hh.lt_rate * s.discount
    coef = np.where(d.lot_taxable, c * d.gain_per_share, 0.0)
    loss = coef < 0
    lot_value = hh.quantity * d.lot_price
    small = ((-coef * hh.quantity * s.tax_weight < s.harvest_min_benefit)
             | (-d.gain_per_share * hh.quantity < s.harvest_min_loss_share * lot_value))
    no_credit = loss & (small | (not hh.tlh_enabled) | d.w1_washable)
    return np.where(no_credit, 0.0, coef)


def location_cost(hh: Household, d: Derived, s: ModelSettings, lay: Layout) -> np.ndarray:
    """Asset location: the present value of the tax drag of what each trade adds to
    (buys) or removes from (sells) an account, tau x A per dollar. Solved in its own
    stage with class exposures fixed, so it decides where, never how much."""
    a_l, s_l = hh.lot_account[lay.sell_lot], hh.lot_security[lay.sell_lot]
    sell = -lay.sell_mult * d.tau[a_l, s_l] * s.annuity * d.lot_price[lay.sell_lot]
    buy = d.tau[lay.buy_account, lay.buy_security] * s.annuity * hh.price[lay.buy_security]
    return s.location_weight * np.concatenate([sell, buy])


def trading_cost(hh: Household, d: Derived, s: ModelSettings, lay: Layout) -> np.ndarray:
    """cost_bps x traded value, both sides."""
    s_l = hh.lot_security[lay.sell_lot]
    sell = lay.sell_mult * hh.cost_rate[s_l] * d.lot_price[lay.sell_lot]
    buy = hh.cost_rate[lay.buy_security] * hh.price[lay.buy_security]
    return s.cost_weight * np.concatenate([sell, buy])


def preference_cost(hh: Household, d: Derived, s: ModelSettings, lay: Layout) -> np.ndarray:
    """A small cost per dollar held in a rank > 1 (or unlisted) security: equivalents
    are kept rather than sold at a gain, and primaries are bought."""
    pref = np.where(hh.rank == 1, 0.0, s.preference_per_dollar * np.maximum(hh.rank - 1, 1))
    s_l = hh.lot_security[lay.sell_lot]
    sell = -lay.sell_mult * pref[s_l] * d.lot_price[lay.sell_lot]
    buy = pref[lay.buy_security] * hh.price[lay.buy_security]
    return np.concatenate([sell, buy])


def realized_tax_cost(hh: Household, d: Derived, s: ModelSettings, lay: Layout) -> np.ndarray:
    """The tax term per sell column (zero for buys)."""
    sell = s.tax_weight * lay.sell_mult * d.tax_coef[lay.sell_lot]
    return np.concatenate([sell, np.zeros(len(lay.buy_account))])


def drift_cost(hh: Household, d: Derived, s: ModelSettings, lay: Layout) -> np.ndarray:
    """w_in per dollar of deviation inside the band, w_out outside it, per class
    (over-in, over-out, under-in, under-out); cash is a class like any other.
    The weights rise by DRIFT_TIE_BREAK (relative) from class to class, so two
    answers that put the same small deviation into different classes are never a
    tie the solver settles by its path (the location stage fixes the exposures the
    first stage returns, so such a tie would reach the trades)."""
    k = np.repeat(np.arange(lay.n_classes), 4)
    base = np.tile([s.drift_weight_in, s.drift_weight_out, s.drift_weight_in, s.drift_weight_out],
                   lay.n_classes)
    return base * (1.0 + DRIFT_TIE_BREAK * k)


def goal_drift_cost(hh: Household, d: Derived, s: ModelSettings, lay: Layout) -> np.ndarray:
    """Each goal's drift columns (hearth.model.goals), priced as the household's
    (``drift_cost``, class by class) times ``drift_weight_goal``."""
    if lay.n_goals == 0:
        return np.zeros(0)
    return s.drift_weight_goal * np.tile(drift_cost(hh, d, s, lay), lay.n_goals)


def goal_drift_upper(d: Derived, lay: Layout) -> np.ndarray:
    """Upper bounds of the goal drift columns: the in-band parts hold up to the band x
    the goal's value V_g, the out-of-band parts the rest."""
    if lay.n_goals == 0 or d.goals is None:
        return np.zeros(0)
    in_cap = np.repeat(d.band * np.maximum(d.goals.value, 0.0), lay.n_classes)
    return np.column_stack([in_cap, np.full(len(in_cap), np.inf), in_cap,
                            np.full(len(in_cap), np.inf)]).ravel()


def concentration_cost(hh: Household, d: Derived, s: ModelSettings, lay: Layout) -> np.ndarray:
    """Per concentrated group (issuer, sector), its two excess columns:
    ``concentration_weight`` per exposure dollar above its limit, plus WIND_DOWN_PENALTY on what
    stays above tonight's wind-down allowance (so the group falls by at least
    ``concentration_wind_down`` of its excess tonight unless a hard rule, the tax
    budget above all, stops it; the rest waits for the next nights)."""
    n = len(lay.concentrated)
    return np.tile([s.concentration_weight, s.concentration_weight + WIND_DOWN_PENALTY], n)


def idle_concentration_cost(d: Derived, s: ModelSettings) -> float:
    """What ``concentration_cost`` charges for trading nothing: every excess dollar
    at the weight, and the part tonight's wind-down asks for at the penalty too."""
    g = d.groups
    excess = float(np.maximum(g.current - g.limit, 0.0)[g.concentrated].sum())
    return (s.concentration_weight + s.concentration_wind_down * WIND_DOWN_PENALTY) * excess


def tie_break(hh: Household, d: Derived, lay: Layout) -> np.ndarray:
    """Break ties deterministically (two lots with the same gain per share, two alike
    accounts that could swap what they buy): a cost far below a cent per trade that
    differs quasi-randomly by the column's stable position (quadratic in it: a
    linear pattern cancels around swap cycles between alike accounts), so one
    optimum wins whatever the starting basis."""
    n_sell = lay.n_sell
    j = 1.0 + np.arange(n_sell + len(lay.buy_account))
    tie = TIE_BREAK * (1.0 + np.modf(j * j * 0.6180339887498949)[0])
    dollars = np.concatenate([lay.sell_mult * d.lot_price[lay.sell_lot],
                              hh.price[lay.buy_security]])
    return tie * dollars


# -- rules that act on column bounds: one function each -----------------------------------

def rule_no_sell(hh: Household, d: Derived, lots: np.ndarray) -> np.ndarray:
    """no_sell / no_trade restrictions: these lots cannot be sold."""
    return d.no_sell[hh.lot_account[lots], hh.lot_security[lots]]


def rule_w1(hh: Household, d: Derived, lots: np.ndarray) -> np.ndarray:
    """W1: loss lots whose sale replacement shares would wash (and no cash need
    forces): not sold, unless the pool is cleared (hearth.model.solve)."""
    return d.w1_blocked[lots]


def rule_no_hold(hh: Household, d: Derived, lots: np.ndarray) -> np.ndarray:
    """no_hold: these lots must be sold whole (even at a tax cost, even inside W1)."""
    return d.forced_sell[lots]


def rule_no_buy_concentrated(hh: Household, d: Derived, buy_security: np.ndarray) -> np.ndarray:
    """Concentration: a security in a group (issuer, sector) above its limit is not
    bought (in any account); below it, ``rows_concentration`` caps buys at the limit."""
    return d.concentrated[buy_security]


def rule_no_buy_groups(hh: Household, d: Derived, lots: np.ndarray) -> np.ndarray:
    """W2, and W3 with no choice left: per wash group, whether it may not be bought
    today (a recent loss sale, or a loss sale that a no_hold restriction forces)."""
    forced_loss = d.forced_sell[lots] & d.lot_taxable[lots] & (d.gain_per_share[lots] < -GAIN_EPS)
    no_buy_group = d.w2_group.copy()
    no_buy_group[hh.wash_group[hh.lot_security[lots[forced_loss]]]] = True
    return no_buy_group


# -- columns ------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Columns:
    layout: Layout
    cost: np.ndarray
    location: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    integer: np.ndarray  # bool


def sell_columns(hh: Household, s: ModelSettings, d: Derived
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lot of each sell column, shares per unit, integer?) for lots in tradable
    accounts. Under whole shares: integer shares per lot, plus a 0/1 column that
    sells a lot's fractional rest (only with all its whole shares: rows_whole_lot)."""
    sell_lot = np.flatnonzero(d.lot_tradable)
    if not s.whole_shares:
        return sell_lot, np.ones(len(sell_lot)), np.zeros(len(sell_lot), dtype=bool)
    frac = hh.quantity[sell_lot] - np.floor(hh.quantity[sell_lot])
    extra = sell_lot[frac > 1e-9]
    return (np.concatenate([sell_lot, extra]),
            np.concatenate([np.ones(len(sell_lot)), frac[frac > 1e-9]]),
            np.ones(len(sell_lot) + len(extra), dtype=bool))


def columns(hh: Household, d: Derived, s: ModelSettings) -> Columns:
    n_a, n_k = hh.n_accounts, len(hh.classes)
    sell_lot, sell_mult, whole = sell_columns(hh, s, d)
    buy_account, buy_security = np.nonzero(d.buyable)
    lay = Layout(sell_lot=sell_lot, sell_mult=sell_mult, buy_account=buy_account,
                 buy_security=buy_security, n_accounts=n_a, n_classes=n_k, rows={},
                 concentrated=np.flatnonzero(d.groups.concentrated),
                 n_goals=d.goals.n if d.goals is not None else 0)
    lots = sell_lot

    # sells: shares of lot l (times mult)
    qty = hh.quantity[lots]
    if s.whole_shares:
        n_int = len(lots) - int((sell_mult != 1).sum())
        sell_upper = np.concatenate([np.floor(qty[:n_int] + 1e-9), np.ones(len(lots) - n_int)])
    else:
        sell_upper = qty.copy()
    forced = rule_no_hold(hh, d, lots)
    blocked = rule_no_sell(hh, d, lots) | rule_w1(hh, d, lots)
    sell_upper = np.where(blocked & ~forced, 0.0, sell_upper)
    sell_lower = np.where(forced, sell_upper, 0.0)

    # buys: shares of security s in account a, at most what the account could spend
    p_b = hh.price[buy_security]
    account_money = (hh.cash + hh.contribution
                     + np.bincount(hh.lot_account, weights=hh.quantity * d.lot_price, minlength=n_a))
    buy_upper = np.maximum(account_money[buy_account], 0.0) / p_b
    no_buy_group = rule_no_buy_groups(hh, d, lots)
    buy_upper = np.where(no_buy_group[hh.wash_group[buy_security]], 0.0, buy_upper)
    buy_upper = np.where(rule_no_buy_concentrated(hh, d, buy_security), 0.0, buy_upper)
    if s.whole_shares:
        buy_upper = np.floor(buy_upper + 1e-9)

    # final cash; untradable accounts only need to stay non-negative
    cash_lower = np.where(hh.tradable, hh.min_cash, 0.0)
    cash_upper = np.where(hh.tradable, hh.max_cash + d.needs.cap_raise, np.inf)

    # drift parts per class: over-in, over-out, under-in, under-out
    in_cap = d.band * max(d.target_value, 0.0)
    drift_upper = np.array([in_cap, np.inf, in_cap, np.inf] * n_k)

    trade = (realized_tax_cost(hh, d, s, lay) + trading_cost(hh, d, s, lay)
             + preference_cost(hh, d, s, lay) + tie_break(hh, d, lay))
    loc = location_cost(hh, d, s, lay)
    # concentration excess per concentrated group: within tonight's wind-down
    # allowance (1 - f) x excess, and beyond it
    excess = d.groups.current[lay.concentrated] - d.groups.limit[lay.concentrated]
    allowance = (1.0 - s.concentration_wind_down) * excess
    conc_upper = np.column_stack([allowance, np.full(len(excess), np.inf)]).ravel()

    n_c = 2 * len(lay.concentrated)
    goal_upper = goal_drift_upper(d, lay)
    n_gd = len(goal_upper)
    rest = np.zeros(n_a + 4 * n_k + n_gd + n_c)
    cost = np.concatenate([trade + loc, np.zeros(n_a), drift_cost(hh, d, s, lay),
                           goal_drift_cost(hh, d, s, lay),
                           concentration_cost(hh, d, s, lay)])
    lower = np.concatenate([sell_lower, np.zeros(len(buy_account)), cash_lower,
                            np.zeros(4 * n_k + n_gd),
                            np.zeros(n_c)])
    upper = np.concatenate([sell_upper, buy_upper, cash_upper, drift_upper, goal_upper,
                            conc_upper])
    integer = np.zeros(len(cost), dtype=bool)
    if s.whole_shares:
        integer[: len(lots)] = whole
        integer[len(lots): len(lots) + len(buy_account)] = True
    return Columns(layout=lay, cost=cost, location=np.concatenate([loc, rest]), lower=lower,
                   upper=upper, integer=integer)


# -- constraint families -------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class RowBlock:
    family: str
    lower: np.ndarray
    upper: np.ndarray
    row: np.ndarray  # local row index within the block
    col: np.ndarray
    val: np.ndarray


def _sell_parts(hh: Household, d: Derived, lay: Layout):
    lots = lay.sell_lot
    cols = np.arange(lay.n_sell)
    return lots, cols, d.lot_price[lots] * lay.sell_mult


def rows_cash_balance(hh: Household, d: Derived, lay: Layout) -> RowBlock:
    """cash + contribution - withdrawal + proceeds - purchases - costs = final cash."""
    lots, sell_cols, dollars = _sell_parts(hh, d, lay)
    s_l = hh.lot_security[lots]
    buy_cols = lay.buy0 + np.arange(len(lay.buy_account))
    p_b = hh.price[lay.buy_security]
    rhs = -(hh.cash + hh.contribution - hh.withdrawal)
    n_a = lay.n_accounts
    return RowBlock(
        family="cash_balance", lower=rhs, upper=rhs.copy(),
        row=np.concatenate([hh.lot_account[lots], lay.buy_account, np.arange(n_a)]),
        col=np.concatenate([sell_cols, buy_cols, lay.cash0 + np.arange(n_a)]),
        val=np.concatenate([dollars * (1.0 - hh.cost_rate[s_l]),
                            -p_b * (1.0 + hh.cost_rate[lay.buy_security]),
                            -np.ones(n_a)]),
    )


def target_dollars(hh: Household, d: Derived) -> np.ndarray:
    """Exposure dollars each class aims at: the target weights of V less the cash held
    for cash needs, plus that cash in the cash class (hearth.model.needs): the reserve
    is not idle cash for drift to invest, and the rest is held at its weights. With
    goals (hearth.model.goals), the blend: each goal's target dollars, and the
    household's weights over what no goal holds."""
    g = d.goals
    has_goals = g is not None and g.any
    if not d.needs.any and not has_goals:
        return hh.target * d.target_value
    w = d.exposure_weight
    reserved = float((w * d.needs.own_reserved).sum()
                     + d.needs.pool_reserved)  # (funding accounts are taxable: weight 1)
    in_goals = float((g.value - g.reserved).sum()) if g is not None and has_goals else 0.0
    out = hh.target * max(d.target_value - reserved - in_goals, 0.0)
    out[hh.cash_class] += reserved
    if g is not None and has_goals:
        out += g.target.sum(axis=0)
        out[hh.cash_class] -= float(g.reserved.sum())  # (already in ``reserved``)
    return out


def rows_exposure(hh: Household, d: Derived, lay: Layout) -> RowBlock:
    """Per asset class: post-trade value + held-away - target * V = over - under,
    every account's dollars at its exposure weight (``exposure_weight``)."""
    lots, sell_cols, dollars = _sell_parts(hh, d, lay)
    n_k, n_a = lay.n_classes, lay.n_accounts
    k_cash = hh.cash_class
    buy_cols = lay.buy0 + np.arange(len(lay.buy_account))
    drift_rows = np.repeat(np.arange(n_k), 4)
    drift_vals = np.array([-1.0, -1.0, 1.0, 1.0] * n_k)
    w = d.exposure_weight
    rhs = target_dollars(hh, d) - d.current_by_class - hh.held_away
    return RowBlock(
        family="exposure", lower=rhs, upper=rhs.copy(),
        row=np.concatenate([hh.asset_class[hh.lot_security[lots]],
                            hh.asset_class[lay.buy_security],
                            np.full(n_a, k_cash), drift_rows]),
        col=np.concatenate([sell_cols, buy_cols, lay.cash0 + np.arange(n_a),
                            lay.drift0 + np.arange(4 * n_k)]),
        val=np.concatenate([-dollars * w[hh.lot_account[lots]],
                            hh.price[lay.buy_security] * w[lay.buy_account], w, drift_vals]),
    )


def rows_goal_exposure(hh: Household, d: Derived, lay: Layout) -> RowBlock | None:
    """Per goal and asset class (goal-major): the post-trade value of the goal's
    accounts in the class - its target dollars = over - under, dollars at each
    account's exposure weight as in ``rows_exposure`` (hearth.model.goals)."""
    g = d.goals
    if g is None or lay.n_goals == 0:
        return None
    lots, sell_cols, dollars = _sell_parts(hh, d, lay)
    n_k = lay.n_classes
    w = d.exposure_weight
    lot_goal = g.account[hh.lot_account[lots]]
    sell = lot_goal >= 0
    buy_goal = g.account[lay.buy_account]
    buy = np.flatnonzero(buy_goal >= 0)
    cash = np.flatnonzero(g.account >= 0)
    n_rows = lay.n_goals * n_k
    rhs = (g.target - g.current).ravel()
    return RowBlock(
        family="goal_exposure", lower=rhs, upper=rhs.copy(),
        row=np.concatenate([lot_goal[sell] * n_k + hh.asset_class[hh.lot_security[lots[sell]]],
                            buy_goal[buy] * n_k + hh.asset_class[lay.buy_security[buy]],
                            g.account[cash] * n_k + hh.cash_class,
                            np.repeat(np.arange(n_rows), 4)]).astype(np.int64),
        col=np.concatenate([sell_cols[sell], lay.buy0 + buy, lay.cash0 + cash,
                            lay.goal_drift0 + np.arange(4 * n_rows)]).astype(np.int64),
        val=np.concatenate([-dollars[sell] * w[hh.lot_account[lots[sell]]],
                            hh.price[lay.buy_security[buy]] * w[lay.buy_account[buy]],
                            w[cash], np.tile([-1.0, -1.0, 1.0, 1.0], n_rows)]),
    )


def rows_concentration(hh: Household, d: Derived, lay: Layout) -> RowBlock | None:
    """Per group (issuer, sector: ``LimitGroups``) above its limit: post-trade
    exposure of its securities - excess <= limit (the excess columns priced by
    ``concentration_cost``); per other group with a security that may be bought:
    post-trade exposure <= limit, so a buy never takes a group above it (met by
    buying nothing). Exposure dollars as in ``rows_exposure``; a trade enters the row
    of every group its security is in."""
    g = d.groups
    bought = np.zeros(hh.n_securities, dtype=bool)
    bought[lay.buy_security] = True
    has_buy = np.zeros(len(g.name), dtype=bool)
    has_buy[g.member_group[bought[g.member_security]]] = True
    groups = np.flatnonzero(g.concentrated | has_buy)
    if len(groups) == 0:
        return None
    row_of = np.full(len(g.name), -1, dtype=np.int64)
    row_of[groups] = np.arange(len(groups))
    lots, sell_cols, dollars = _sell_parts(hh, d, lay)
    w = d.exposure_weight
    keep = row_of[g.member_group] >= 0
    sell, sell_row = _group_rows(hh.lot_security[lots], g.member_security[keep],
                                 row_of[g.member_group[keep]], hh.n_securities)
    buy, buy_row = _group_rows(lay.buy_security, g.member_security[keep],
                               row_of[g.member_group[keep]], hh.n_securities)
    n_c = len(lay.concentrated)
    room = g.limit[groups] - g.current[groups]  # (a group within MONEY_TOL of the
    return RowBlock(                             # limit is at it, not above)
        family="concentration", lower=np.full(len(groups), -np.inf),
        upper=np.where(g.concentrated[groups], room, np.maximum(room, 0.0)),
        row=np.concatenate([sell_row, buy_row, np.repeat(row_of[lay.concentrated], 2)]),
        col=np.concatenate([sell_cols[sell], lay.buy0 + buy, lay.n_base + np.arange(2 * n_c)]),
        val=np.concatenate([-dollars[sell] * w[hh.lot_account[lots[sell]]],
                            hh.price[lay.buy_security[buy]] * w[lay.buy_account[buy]],
                            -np.ones(2 * n_c)]),
    )


def _group_rows(security: np.ndarray, member_security: np.ndarray, member_row: np.ndarray,
                n_securities: int) -> tuple[np.ndarray, np.ndarray]:
    """(item, row) pairs: each item (a column, by its ``security``) once per row of a
    group its security is in, in item order."""
    order = np.argsort(member_security, kind="stable")
    rows = member_row[order]
    count = np.bincount(member_security, minlength=n_securities)
    start = np.cumsum(count) - count
    k = count[security]
    item = np.repeat(np.arange(len(security)), k)
    within = np.arange(len(item)) - np.repeat(np.cumsum(k) - k, k)
    return item, rows[start[security][item] + within]


def rows_cash_needs(hh: Household, d: Derived, lay: Layout) -> RowBlock | None:
    """Cash needs (hearth.model.needs): per account that names a need, final cash >=
    min_cash + what it keeps for its needs; for household-level needs, the final cash
    of the tradable taxable accounts together >= their own floors + what they keep
    for those needs (the model picks the account: lowest tax cost)."""
    n = d.needs
    own = np.flatnonzero(n.own_reserved > 0)
    pool = np.flatnonzero(n.funds_pool) if n.pool_reserved > 0 else np.zeros(0, dtype=np.int64)
    if len(own) == 0 and n.pool_reserved <= 0:
        return None
    k = len(own)
    lower = np.concatenate([n.floor[own], [n.pool_floor] if n.pool_reserved > 0 else []])
    return RowBlock(family="cash_needs", lower=lower, upper=np.full(len(lower), np.inf),
                    row=np.concatenate([np.arange(k), np.full(len(pool), k)]).astype(np.int64),
                    col=lay.cash0 + np.concatenate([own, pool]).astype(np.int64),
                    val=np.ones(k + len(pool)))


def rows_tax_budget(hh: Household, d: Derived, lay: Layout) -> RowBlock | None:
    """The tax budget, as a linear bound that is never below the netted tax:
    gains at their rate, losses credited at lt_rate (the least a loss saves while
    there are gains to net it against), and room for the household's loss pool at
    lt_rate. The solve then checks the netted tax exactly (``tax_due``) and
    tightens the bound where the household's position makes it loose."""
    if hh.tax_budget is None:
        return None
    lots = lay.sell_lot
    gain = d.gain_per_share[lots]
    rate = np.where(gain > 0, d.rate_now[lots], np.minimum(d.rate_now[lots], hh.lt_rate))
    coef = np.where(d.lot_taxable[lots], rate * gain, 0.0) * lay.sell_mult
    nz = np.flatnonzero(coef)
    room = hh.lt_rate * loss_pool(hh)
    return RowBlock(family="tax_budget", lower=np.array([-np.inf]),
                    upper=np.array([hh.tax_budget + room]), row=np.zeros(len(nz), dtype=np.int64),
                    col=nz, val=coef[nz])


def rows_turnover(hh: Household, d: Derived, lay: Layout) -> RowBlock | None:
    """(buy value + sell value) / 2 <= turnover_limit x household value."""
    if hh.turnover_limit is None:
        return None
    lots, sell_cols, dollars = _sell_parts(hh, d, lay)
    buy_cols = lay.buy0 + np.arange(len(lay.buy_account))
    return RowBlock(family="turnover", lower=np.array([-np.inf]),
                    upper=np.array([2.0 * hh.turnover_limit * d.value]),
                    row=np.zeros(len(sell_cols) + len(buy_cols), dtype=np.int64),
                    col=np.concatenate([sell_cols, buy_cols]),
                    val=np.concatenate([dollars, hh.price[lay.buy_security]]))


def rows_whole_lot(hh: Household, d: Derived, lay: Layout) -> RowBlock | None:
    """Under whole shares, a lot's fractional rest is sold only with all its whole
    shares: floor(q) * rest <= whole shares sold."""
    rest = np.flatnonzero(lay.sell_mult != 1.0)
    if len(rest) == 0:
        return None
    lots = lay.sell_lot[rest]
    int_col = np.searchsorted(lay.sell_lot[: lay.n_sell - len(rest)], lots)
    n = len(rest)
    return RowBlock(family="whole_lot", lower=np.full(n, -np.inf), upper=np.zeros(n),
                    row=np.concatenate([np.arange(n), np.arange(n)]),
                    col=np.concatenate([rest, int_col]),
                    val=np.concatenate([np.floor(hh.quantity[lots] + 1e-9), -np.ones(n)]))


ROW_FAMILIES = (rows_cash_balance, rows_exposure, rows_tax_budget, rows_turnover, rows_whole_lot,
                rows_concentration, rows_cash_needs, rows_goal_exposure)


# -- elastic slacks, for explaining infeasibility ------------------------------------------

def elastic_columns(lay: Layout, blocks: list[RowBlock], row_start: dict[str, int],
                    n_col: int, families: tuple[str, ...]
                    ) -> tuple[list[RowBlock], dict[str, np.ndarray], int]:
    """Slack columns that let each of ``families`` be violated at a large price;
    their values say which family could not be met."""
    extra: list[RowBlock] = []
    elastic: dict[str, np.ndarray] = {}
    for b in blocks:
        n = len(b.lower)
        if b.family not in families:
            continue
        if b.family == "cash_balance":
            # shortfall (money from nowhere) and excess (money that cannot be invested)
            short = n_col + np.arange(n)
            excess = n_col + n + np.arange(n)
            elastic["cash_short"], elastic["cash_excess"] = short, excess
            extra.append(RowBlock("cash_balance", b.lower[:0], b.upper[:0],
                                  np.concatenate([np.arange(n), np.arange(n)]),
                                  np.concatenate([short, excess]),
                                  np.concatenate([np.ones(n), -np.ones(n)])))
            n_col += 2 * n
        elif b.family in ("tax_budget", "turnover"):
            col = n_col + np.arange(n)
            elastic[b.family] = col
            extra.append(RowBlock(b.family, b.lower[:0], b.upper[:0], np.arange(n), col,
                                  -np.ones(n)))
            n_col += n
    return extra, elastic, n_col


def build(hh: Household, s: ModelSettings, d: Derived | None = None, *,
          elastic: bool = False) -> LinearProgram:
    d = d if d is not None else derive(hh, s)
    cols = columns(hh, d, s)
    lay = cols.layout
    blocks = [b for b in (f(hh, d, lay) for f in ROW_FAMILIES) if b is not None]
    row_start: dict[str, int] = {}
    n_row = 0
    for b in blocks:
        row_start[b.family] = n_row
        lay.rows[b.family] = (n_row, n_row + len(b.lower))
        n_row += len(b.lower)
    cost, lower, upper, integer = cols.cost, cols.lower, cols.upper, cols.integer
    # Withdrawals are raised even at a tax cost: when cash must be raised (or a
    # no_hold position sold), the budgets give way at a large price, never otherwise.
    families = (("cash_balance", "tax_budget", "turnover") if elastic
                else ("tax_budget", "turnover") if d.forced_cash else ())
    if families:
        extra, slack, n_col = elastic_columns(lay, blocks, row_start, len(cost), families)
        n_new = n_col - len(cost)
        cost = np.concatenate([cost, np.full(n_new, ELASTIC_PENALTY)])
        lower = np.concatenate([lower, np.zeros(n_new)])
        upper = np.concatenate([upper, np.full(n_new, np.inf)])
        integer = np.concatenate([integer, np.zeros(n_new, dtype=bool)])
        lay.elastic.update(slack)
        blocks = blocks + extra
    row = np.concatenate([b.row + row_start[b.family] for b in blocks])
    col = np.concatenate([b.col for b in blocks])
    val = np.concatenate([b.val for b in blocks])
    keep = val != 0.0
    row, col, val = row[keep], col[keep], val[keep]
    order = np.argsort(col, kind="stable")
    n_col = len(cost)
    start = np.zeros(n_col + 1, dtype=np.int32)
    np.cumsum(np.bincount(col, minlength=n_col), out=start[1:])
    base = [b for b in blocks if len(b.lower)]
    return LinearProgram(
        cost=cost, lower=lower, upper=upper,
        row_lower=np.concatenate([b.lower for b in base]),
        row_upper=np.concatenate([b.upper for b in base]),
        a_start=start, a_index=row[order].astype(np.int32), a_value=val[order],
        integrality=integer.astype(np.int32) if integer.any() else None,
        layout=lay, location=np.concatenate([cols.location, np.zeros(n_col - len(cols.location))]),
    )
