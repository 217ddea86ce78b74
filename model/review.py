"""Review routing: which proposals go to a person before execution."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReviewThresholds:
    turnover: float = 0.20  # fraction of household value
    tax_due: float = 5_000.0  # dollars of extra tax this year
    order_share: float = 0.10  # a single order line as a fraction of household value


def review_reasons(*, status: str, turnover: float, tax_due: float, largest_order: float,
                   value: float, restricted_traded: bool, t: ReviewThresholds,
                   budget_overrun: bool = False, solver_limit: bool = False,
                   min_trade_fallback: bool = False, wash_sale: bool = False,
                   concentration: bool = False, goal_drift: bool = False) -> list[str]:
    """Reasons to route a household to a human; empty means it may auto-execute."""
    why = []
    if status not in ("traded", "no_trade"):
        why.append(f"status_{status}")
    if turnover > t.turnover:
        why.append("turnover")
    if tax_due > t.tax_due:
        why.append("tax_due")
    if value > 0 and largest_order > t.order_share * value:
        why.append("large_order")
    if restricted_traded:
        why.append("restricted_trade")
    if budget_overrun:  # a withdrawal or no_hold sale needed more than the budgets allow
        why.append("budget_exceeded")
    if solver_limit:  # feasible and checked, but not proven optimal
        why.append("solver_limit")
    if min_trade_fallback:  # minimum-trade binaries gave way to a rounded, checked answer
        why.append("min_trade_fallback")
    if wash_sale:  # a cash need forced a loss sale that replacement shares wash
        why.append("wash_sale")
    if concentration:  # a group (issuer, sector) above its limit is traded or still held
        why.append("concentration")
    if goal_drift:  # a goal (hearth.model.goals) ends outside its band
        why.append("goal_drift")
    return why
