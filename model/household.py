"""The household as the model sees it: plain numpy arrays, one record per account,
security, lot, asset class and transaction. ``hearth.io`` builds these from the
contract tables; tests build them by hand. Nothing here decides anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ACCOUNT_TYPES: tuple[str, ...] = ("taxable", "traditional", "roth", "hsa", "education")
TAXABLE, TRADITIONAL, ROTH, HSA, EDUCATION = range(5)
CASH_CLASS = "cash"
RULES: tuple[str, ...] = ("no_buy", "no_sell", "no_trade", "no_hold")
FILING_STATUSES: tuple[str, ...] = ("single", "married_joint", "married_separate", "head_of_household")


@dataclass(frozen=True)
class Restriction:
    """One restrictions row. ``account`` is an index into the household's accounts,
    or -1 for every account. Exactly one of security/sector/tag is set."""

    rule: str
    account: int = -1
    security: str | None = None
    sector: str | None = None
    tag: str | None = None

    def describe(self, account_ids: tuple[str, ...]) -> str:
        what = (
            f"security {self.security}" if self.security is not None
            else f"sector {self.sector}" if self.sector is not None
            else f"tag {self.tag}"
        )
        where = "every account" if self.account < 0 else f"account {account_ids[self.account]}"
        return f"{self.rule} on {what} in {where}"


@dataclass(frozen=True, eq=False)
class Household:
    """Everything one household's optimization needs, already validated.

    Index conventions: accounts ``a``, securities ``s``, asset classes ``k``
    (``classes`` always contains ``cash``), lots ``l``, wash groups ``g``,
    transactions ``t``. Money is dollars, quantities shares.
    """

    household_id: str
    run_date: np.datetime64
    st_rate: float
    lt_rate: float
    # accounts
    account_ids: tuple[str, ...]
    account_type: np.ndarray  # int8, index into ACCOUNT_TYPES
    cash: np.ndarray
    # securities
    security_ids: tuple[str, ...]
    asset_class: np.ndarray  # int, index into classes
    price: np.ndarray
    # asset classes and targets
    classes: tuple[str, ...]
    target: np.ndarray  # weight per class, sums to 1
    # lots
    lot_ids: tuple[str, ...]
    lot_account: np.ndarray
    lot_security: np.ndarray
    quantity: np.ndarray
    cost_basis: np.ndarray
    acquired: np.ndarray  # datetime64[D]
    ordinary_rate: float
    qualified_div_rate: float
    retirement_rate: float
    ytd_st_gain: float
    ytd_lt_gain: float
    loss_carryforward_st: float
    loss_carryforward_lt: float
    tax_budget: float | None
    turnover_limit: float | None
    drift_threshold: float | None  # None: the run's configured default
    tlh_enabled: bool
    filing_status: str
    min_cash: np.ndarray
    max_cash: np.ndarray  # +inf for no cap
    contribution: np.ndarray
    withdrawal: np.ndarray
    tradable: np.ndarray  # bool
    menu: np.ndarray  # bool [n_accounts, n_securities]: may buy per the account's menu
    wash_group: np.ndarray  # int index into wash_groups
    wash_groups: tuple[str, ...]
    rank: np.ndarray  # rank in the household's model; 0 = not listed (never bought)
    income_yield: np.ndarray
    qualified_fraction: np.ndarray
    tax_exempt_fraction: np.ndarray
    foreign_tax_fraction: np.ndarray
    cg_distribution: np.ndarray
    expected_return: np.ndarray
    cost_rate: np.ndarray  # one-way trading cost as a fraction of traded value
    sector: tuple[str | None, ...]
    tags: tuple[frozenset[str], ...]
    held_away: np.ndarray  # dollars per class
    restrictions: tuple[Restriction, ...]
    # recent transactions, for wash sales
    txn_group: np.ndarray  # int index into wash_groups
    txn_date: np.ndarray  # datetime64[D]
    txn_buy: np.ndarray  # bool
    txn_realized_gain: np.ndarray  # nan = null
    # optional per transaction: index into accounts / securities (-1 = unknown) and
    # shares (nan = unknown); None where a Household was built without them
    txn_account: np.ndarray | None = None
    txn_security: np.ndarray | None = None
    txn_quantity: np.ndarray | None = None
    # cash needs (contract 2.1, optional): one record per need, dollars due on a date from
    # an account (index into accounts) or, -1, from whichever account the model chooses
    need_ids: tuple[str, ...] = ()
    need_account: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    need_due: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype="datetime64[D]"))
    need_amount: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # most of the household's value one security may be (None: the run's default)
    max_position_share: float | None = None
    # goals (contract 2.1, optional; hearth.model.goals): sleeves of accounts, each with
    # its own target weights per class and, optionally, a horizon it glides to
    goal_ids: tuple[str, ...] = ()
    goal_account: np.ndarray = field(  # [n_a] goal index of each account, -1 for none
        default_factory=lambda: np.zeros(0, dtype=np.int64))
    goal_target: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [n_g, n_k]
    goal_horizon: np.ndarray = field(  # [n_g] NaT: no horizon (or a glide path's own)
        default_factory=lambda: np.zeros(0, dtype="datetime64[D]"))
    # concentration groups (contract 2.1): each security's issuer (None: the security is
    # its own), and the most of the household's value one sector may be (None: the run's)
    issuer: tuple[str | None, ...] = ()
    max_sector_share: float | None = None

    # -- derived figures every consumer agrees on -------------------------------------
    @property
    def n_accounts(self) -> int:
        return len(self.account_ids)

    @property
    def n_securities(self) -> int:
        return len(self.security_ids)

    @property
    def n_lots(self) -> int:
        return len(self.lot_ids)

    @property
    def cash_class(self) -> int:
        return self.classes.index(CASH_CLASS)

    def lot_value(self) -> np.ndarray:
        return self.quantity * self.price[self.lot_security]

    def by_position(self, per_lot: np.ndarray) -> np.ndarray:
        """[n_a, n_s]: a figure per lot summed over each account x security position."""
        n_s = self.n_securities
        out = np.bincount(self.lot_account * n_s + self.lot_security, weights=per_lot,
                          minlength=self.n_accounts * n_s)
        return out.astype(np.float64, copy=False).reshape(self.n_accounts, n_s)

    def value(self) -> float:
        """Household value before trading: accounts' holdings and cash, not held-away."""
        return float(self.lot_value().sum() + self.cash.sum())

    def target_value(self) -> float:
        """The dollars that targets apply to: value + contributions - withdrawals + held-away."""
        return float(
            self.value() + self.contribution.sum() - self.withdrawal.sum() + self.held_away.sum()
        )


def make_household(
    household_id: str,
    run_date: np.datetime64 | str,
    *,
    st_rate: float,
    lt_rate: float,
    account_ids: tuple[str, ...],
    account_type: np.ndarray,
    cash: np.ndarray,
    security_ids: tuple[str, ...],
    asset_class: np.ndarray,
    price: np.ndarray,
    classes: tuple[str, ...],
    target: np.ndarray,
    lot_ids: tuple[str, ...],
    lot_account: np.ndarray,
    lot_security: np.ndarray,
    quantity: np.ndarray,
    cost_basis: np.ndarray,
    acquired: np.ndarray,
    **optional: Any,
) -> Household:
    """A Household with the contract's defaults filled for every optional column."""
    n_a, n_s, n_k = len(account_ids), len(security_ids), len(classes)
    ordinary = optional.pop("ordinary_rate", None)
    ordinary = st_rate if ordinary is None else ordinary
    qualified = optional.pop("qualified_div_rate", None)
    retirement = optional.pop("retirement_rate", None)
    wash_group = optional.pop("wash_group", None)
    wash_groups = optional.pop("wash_groups", None)
    if wash_group is None:
        wash_group, wash_groups = np.arange(n_s), tuple(security_ids)
    defaults: dict[str, Any] = dict(
        ytd_st_gain=0.0, ytd_lt_gain=0.0, loss_carryforward_st=0.0, loss_carryforward_lt=0.0,
        tax_budget=None, turnover_limit=None, drift_threshold=None, tlh_enabled=True,
        filing_status="single",
        min_cash=np.zeros(n_a), max_cash=np.full(n_a, np.inf), contribution=np.zeros(n_a),
        withdrawal=np.zeros(n_a), tradable=np.ones(n_a, dtype=bool),
        menu=np.ones((n_a, n_s), dtype=bool),
        rank=np.ones(n_s, dtype=np.int64), income_yield=np.zeros(n_s),
        qualified_fraction=np.ones(n_s), tax_exempt_fraction=np.zeros(n_s),
        foreign_tax_fraction=np.zeros(n_s), cg_distribution=np.zeros(n_s),
        expected_return=np.full(n_s, 0.06), cost_rate=np.full(n_s, 0.0005),
        sector=(None,) * n_s, tags=(frozenset(),) * n_s, held_away=np.zeros(n_k),
        restrictions=(),
        txn_group=np.zeros(0, dtype=np.int64), txn_date=np.zeros(0, dtype="datetime64[D]"),
        txn_buy=np.zeros(0, dtype=bool), txn_realized_gain=np.zeros(0),
        txn_account=None, txn_security=None, txn_quantity=None,
        need_ids=(), need_account=np.zeros(0, dtype=np.int64),
        need_due=np.zeros(0, dtype="datetime64[D]"), need_amount=np.zeros(0),
        max_position_share=None, issuer=(None,) * n_s, max_sector_share=None,
        goal_ids=(), goal_account=None, goal_target=None, goal_horizon=None,
    )
    unknown = set(optional) - set(defaults)
    if unknown:
        raise TypeError(f"unknown household fields: {sorted(unknown)}")
    defaults.update(optional)
    n_t = len(defaults["txn_group"])
    for name, fill, dtype in (("txn_account", -1, np.int64), ("txn_security", -1, np.int64),
                              ("txn_quantity", np.nan, np.float64)):
        given = defaults[name]
        defaults[name] = (np.full(n_t, fill, dtype=dtype) if given is None
                          else np.asarray(given, dtype=dtype))
    defaults["need_ids"] = tuple(defaults["need_ids"])
    defaults["need_account"] = np.asarray(defaults["need_account"], dtype=np.int64)
    defaults["need_due"] = np.asarray(defaults["need_due"], dtype="datetime64[D]")
    defaults["need_amount"] = np.asarray(defaults["need_amount"], dtype=np.float64)
    n_g = len(defaults["goal_ids"])
    defaults["goal_ids"] = tuple(defaults["goal_ids"])
    goal_fills: tuple[tuple[str, np.ndarray, Any], ...] = (
        ("goal_account", np.full(n_a, -1), np.int64),
        ("goal_target", np.zeros((n_g, n_k)), np.float64),
        ("goal_horizon", np.full(n_g, np.datetime64("NaT", "D")), "datetime64[D]"))
    for name, goal_fill, goal_dtype in goal_fills:
        given = defaults[name]
        defaults[name] = np.asarray(goal_fill if given is None else given, dtype=goal_dtype)
    defaults["issuer"] = tuple(defaults["issuer"])
    return Household(
        household_id=household_id,
        run_date=np.datetime64(str(run_date), "D"),
        st_rate=st_rate,
        lt_rate=lt_rate,
        account_ids=tuple(account_ids),
        account_type=np.asarray(account_type, dtype=np.int8),
        cash=np.asarray(cash, dtype=np.float64),
        security_ids=tuple(security_ids),
        asset_class=np.asarray(asset_class, dtype=np.int64),
        price=np.asarray(price, dtype=np.float64),
        classes=tuple(classes),
        target=np.asarray(target, dtype=np.float64),
        lot_ids=tuple(lot_ids),
        lot_account=np.asarray(lot_account, dtype=np.int64),
        lot_security=np.asarray(lot_security, dtype=np.int64),
        quantity=np.asarray(quantity, dtype=np.float64),
        cost_basis=np.asarray(cost_basis, dtype=np.float64),
        acquired=np.asarray(acquired, dtype="datetime64[D]"),
        ordinary_rate=ordinary,
        qualified_div_rate=lt_rate if qualified is None else qualified,
        retirement_rate=ordinary if retirement is None else retirement,
        wash_group=np.asarray(wash_group, dtype=np.int64),
        wash_groups=tuple(wash_groups),
        **defaults,
    )
