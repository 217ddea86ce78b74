"""The data contract (``docs/data-contract.md``) as data: every input table's
columns, types and defaults, and the output tables' Arrow schemas."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str  # DuckDB type the column is cast to
    default: str | None = None  # SQL default when optional (absent) or null; None = required


@dataclass(frozen=True)
class Table:
    name: str
    required: bool
    columns: tuple[Column, ...]
    key: str | None = None  # the id column that must be unique

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.default is None]


def C(name: str, sql_type: str, default: str | None = None) -> Column:
    return Column(name, sql_type, default)


NULL = "NULL"

INPUT_TABLES: dict[str, Table] = {t.name: t for t in (
    Table("households", True, (
        C("household_id", "VARCHAR"), C("model_id", "VARCHAR"),
        C("st_rate", "DOUBLE"), C("lt_rate", "DOUBLE"),
        C("ordinary_rate", "DOUBLE", NULL), C("qualified_div_rate", "DOUBLE", NULL),
        C("retirement_rate", "DOUBLE", NULL),
        C("ytd_st_gain", "DOUBLE", "0"), C("ytd_lt_gain", "DOUBLE", "0"),
        C("loss_carryforward_st", "DOUBLE", "0"), C("loss_carryforward_lt", "DOUBLE", "0"),
        C("tax_budget", "DOUBLE", NULL), C("turnover_limit", "DOUBLE", NULL),
        C("drift_threshold", "DOUBLE", NULL), C("tlh_enabled", "BOOLEAN", "TRUE"),
        C("filing_status", "VARCHAR", "'single'"),
        C("max_position_share", "DOUBLE", NULL),
        C("max_sector_share", "DOUBLE", NULL),  # contract 2.1: concentration per sector
    ), key="household_id"),
    Table("accounts", True, (
        C("account_id", "VARCHAR"), C("household_id", "VARCHAR"), C("account_type", "VARCHAR"),
        C("cash", "DOUBLE"), C("min_cash", "DOUBLE", "0"), C("max_cash", "DOUBLE", NULL),
        C("contribution", "DOUBLE", "0"), C("withdrawal", "DOUBLE", "0"),
        C("tradable", "BOOLEAN", "TRUE"), C("menu_id", "VARCHAR", NULL),
    ), key="account_id"),
    Table("lots", True, (
        C("lot_id", "VARCHAR"), C("account_id", "VARCHAR"), C("security_id", "VARCHAR"),
        C("quantity", "DOUBLE"), C("cost_basis", "DOUBLE"), C("acquired_date", "DATE"),
    ), key="lot_id"),
    Table("securities", True, (
        C("security_id", "VARCHAR"), C("asset_class", "VARCHAR"), C("price", "DOUBLE"),
        C("wash_group", "VARCHAR", NULL), C("income_yield", "DOUBLE", "0"),
        C("qualified_fraction", "DOUBLE", "1"), C("tax_exempt_fraction", "DOUBLE", "0"),
        C("foreign_tax_fraction", "DOUBLE", "0"), C("cg_distribution", "DOUBLE", "0"),
        C("expected_return", "DOUBLE", "0.06"), C("sector", "VARCHAR", NULL),
        C("tags", "VARCHAR[]", NULL), C("cost_bps", "DOUBLE", NULL),
        C("vehicle", "VARCHAR", NULL),  # contract 2.1: etf, mutual_fund, ... (product_preferences)
        C("issuer", "VARCHAR", NULL),  # contract 2.1: securities held together under a limit
    ), key="security_id"),
    Table("targets", True, (
        C("model_id", "VARCHAR"), C("asset_class", "VARCHAR"), C("weight", "DOUBLE"),
    )),
    Table("model_securities", True, (
        C("model_id", "VARCHAR"), C("asset_class", "VARCHAR"), C("security_id", "VARCHAR"),
        C("rank", "BIGINT"),
    )),
    Table("household_targets", False, (
        C("household_id", "VARCHAR"), C("asset_class", "VARCHAR"), C("weight", "DOUBLE"),
    )),
    Table("restrictions", False, (
        C("household_id", "VARCHAR"), C("account_id", "VARCHAR", NULL), C("rule", "VARCHAR"),
        C("security_id", "VARCHAR", NULL), C("sector", "VARCHAR", NULL),
        C("tag", "VARCHAR", NULL),
    )),
    Table("transactions", False, (
        C("account_id", "VARCHAR"), C("security_id", "VARCHAR"), C("trade_date", "DATE"),
        C("side", "VARCHAR"), C("quantity", "DOUBLE"), C("realized_gain", "DOUBLE", NULL),
    )),
    Table("held_away", False, (
        C("household_id", "VARCHAR"), C("asset_class", "VARCHAR"), C("value", "DOUBLE"),
    )),
    Table("menus", False, (
        C("menu_id", "VARCHAR"), C("security_id", "VARCHAR"),
    )),
    # contract 2.1: dated target weights of a model or of one household, interpolated
    # to the run date (io/households.py, glide_targets); exactly one owner per row
    Table("glide_paths", False, (
        C("model_id", "VARCHAR", NULL), C("household_id", "VARCHAR", NULL),
        C("effective_date", "DATE"), C("asset_class", "VARCHAR"), C("weight", "DOUBLE"),
    )),
    # contract 2.1: a person's explicit decision about one household, in force until
    # expires_on (inclusive); applied in io/households.py, echoed in overrides_applied
    Table("overrides", False, (
        C("override_id", "VARCHAR"), C("household_id", "VARCHAR"), C("action", "VARCHAR"),
        C("security_id", "VARCHAR", NULL), C("account_id", "VARCHAR", NULL),
        C("reason", "VARCHAR"), C("author", "VARCHAR"), C("expires_on", "DATE", NULL),
    ), key="override_id"),
    # contract 2.1: dollars a household must pay out on a date, from a named account or
    # (account_id null) from whichever of its tradable taxable accounts costs the least
    # tax (model/needs.py)
    Table("cash_needs", False, (
        C("household_id", "VARCHAR"), C("account_id", "VARCHAR", NULL),
        C("due_date", "DATE"), C("amount", "DOUBLE"), C("need_id", "VARCHAR", NULL),
    )),
    # contract 2.1: a household's own order of the securities it buys for a class (by
    # security or by vehicle), ahead of its model's (io/households.py, preferred_ranks)
    Table("product_preferences", False, (
        C("household_id", "VARCHAR"), C("asset_class", "VARCHAR"),
        C("security_id", "VARCHAR", NULL), C("vehicle", "VARCHAR", NULL),
        C("rank", "BIGINT", "1"),
    )),
    # contract 2.1: goals, sleeves of a household's accounts with their own targets (one
    # row per account in the goal; an account is in at most one goal); the weights are
    # goal_targets' when the goal has any, else model_id's (its glide path if it has one),
    # glided to horizon_date (model/goals.py)
    Table("goals", False, (
        C("goal_id", "VARCHAR"), C("household_id", "VARCHAR"), C("account_id", "VARCHAR"),
        C("model_id", "VARCHAR", NULL), C("horizon_date", "DATE", NULL),
    )),
    Table("goal_targets", False, (
        C("goal_id", "VARCHAR"), C("asset_class", "VARCHAR"), C("weight", "DOUBLE"),
    )),
)}

# overrides.action: skip the household tonight; never trade security_id (in account_id,
# or every account); ignore the household's tax_budget; no tax-loss harvesting tonight
OVERRIDE_ACTIONS: tuple[str, ...] = ("skip", "hold_security", "no_tax_budget", "no_harvest")

TRADES_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("household_id", pa.string()), ("account_id", pa.string()),
    ("security_id", pa.string()), ("side", pa.string()), ("lot_id", pa.string()),
    ("quantity", pa.float64()), ("price", pa.float64()), ("notional", pa.float64()),
    ("realized_gain", pa.float64()), ("term", pa.string()), ("wash_sale", pa.bool_()),
    ("disallowed_loss", pa.float64()), ("reason", pa.string()),
])

HOUSEHOLD_RESULTS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("household_id", pa.string()), ("status", pa.string()),
    ("message", pa.string()), ("value", pa.float64()),
    ("drift_before", pa.float64()), ("drift_after", pa.float64()),
    ("max_drift_before", pa.float64()), ("max_drift_after", pa.float64()),
    ("n_trades", pa.int64()), ("turnover", pa.float64()),
    ("realized_st_gain", pa.float64()), ("realized_lt_gain", pa.float64()),
    ("tax_due_estimate", pa.float64()), ("tlh_losses", pa.float64()),
    ("tax_savings_estimate", pa.float64()),
    ("location_drag_before", pa.float64()), ("location_drag_after", pa.float64()),
    ("needs_review", pa.bool_()), ("review_reasons", pa.list_(pa.string())),
    ("solve_ms", pa.float64()), ("iterations", pa.int64()), ("warm_started", pa.bool_()),
    ("overrides_applied", pa.list_(pa.string())),  # contract 2.1
    # contract 2.1: the largest goal drift (sum of |class drift| / goal value), null without goals
    ("goal_drift_before", pa.float64()), ("goal_drift_after", pa.float64()),
])

EXCEPTIONS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("source_table", pa.string()), ("household_id", pa.string()),
    ("account_id", pa.string()), ("record_id", pa.string()), ("code", pa.string()),
    ("message", pa.string()),
])

OUTPUT_SCHEMAS = {
    "trades": TRADES_SCHEMA,
    "household_results": HOUSEHOLD_RESULTS_SCHEMA,
    "exceptions": EXCEPTIONS_SCHEMA,
}
