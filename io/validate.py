"""Validation of the whole book in SQL: every problem becomes an ``exceptions`` row
with a stable code, attributed to the finest grain known (household, account,
record), and every household touched by a problem is set aside with status
``error``. Nothing here raises for a bad record; the rest of the book runs.

Problems with shared reference data (a security without a price, a model whose
weights do not sum to 1, a menu naming an unknown security) cost exactly the
households that depend on them: holders of the security, households whose model
lists it or who traded it recently, households on the model, accounts on the menu.

Every number is checked for finiteness (``non_finite_number``) and for its column's
range (one code per rule, e.g. ``invalid_rate``, ``invalid_income_yield``,
``income_fractions_exceed_one``), and every value the file's column type cannot give
as the contract's type is ``invalid_type`` (see ``io.read``), so no NaN, infinity or
absurd magnitude reaches a model.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from hearth.io.contract import INPUT_TABLES, OVERRIDE_ACTIONS
from hearth.io.errors import InputError
from hearth.model.household import ACCOUNT_TYPES, FILING_STATUSES, RULES
from hearth.model.tolerances import MONEY_TOL

WEIGHT_TOL = 1e-6
# DuckDB errors of a check's own SQL (a bug: exit 1); any other is the file's contents
_SQL_ERRORS = (duckdb.ProgrammingError, duckdb.InternalException)
# Magnitude caps: beyond them a number is a data error, not a household. HiGHS treats
# magnitudes of 1e20 and more as infinite, and the model multiplies amounts by prices
# and rates, so a trillion dollars (or shares) in one record is where belief ends.
MAX_AMOUNT = 1e12
MAX_PRICE = 1e7  # dollars per share; the dearest listed share trades below $1e6
MAX_RANK = 1000
MAX_COST_BPS = 1000.0  # one-way trading cost of 10%
_LOT_ID_HASH = "hash(lot_id, reverse(lot_id))"  # the duplicate_lot_id pre-filter

# Who a row belongs to, per table: (FROM clause over alias t, household, account, record),
# SQL over the table's columns; ``m`` is the account's household (acct_hh).
_WHO: dict[str, tuple[str, str, str, str]] = {
    "households": ("", "t.household_id", "NULL", "t.household_id"),
    "accounts": ("", "t.household_id", "t.account_id", "t.account_id"),
    "lots": ("acct", "m.household_id", "t.account_id", "t.lot_id"),
    "securities": ("", "NULL", "NULL", "t.security_id"),
    "targets": ("", "NULL", "NULL", "t.model_id || '/' || coalesce(t.asset_class, 'null')"),
    "model_securities": ("", "NULL", "NULL",
                         "t.model_id || '/' || coalesce(t.security_id, 'null')"),
    "household_targets": ("", "t.household_id", "NULL",
                          "t.household_id || '/' || coalesce(t.asset_class, 'null')"),
    "restrictions": ("", "t.household_id", "t.account_id", "t.household_id"),
    "transactions": ("acct", "m.household_id", "t.account_id",
                     "t.account_id || '/' || coalesce(t.security_id, 'null') || '/' || "
                     "coalesce(CAST(t.trade_date AS VARCHAR), 'null')"),
    "held_away": ("", "t.household_id", "NULL",
                  "t.household_id || '/' || coalesce(t.asset_class, 'null')"),
    "menus": ("", "NULL", "NULL", "t.menu_id || '/' || coalesce(t.security_id, 'null')"),
    "glide_paths": ("", "t.household_id", "NULL", "coalesce(t.model_id, 'null') || '/' || "
                    "coalesce(t.household_id, 'null') || '/' || "
                    "coalesce(CAST(t.effective_date AS VARCHAR), 'null') || '/' || "
                    "coalesce(t.asset_class, 'null')"),
    "overrides": ("", "t.household_id", "t.account_id", "t.override_id"),
    "cash_needs": ("", "t.household_id", "t.account_id",
                   "coalesce(t.need_id, t.household_id || '/' || coalesce(t.account_id, "
                   "'household') || '/' || coalesce(CAST(t.due_date AS VARCHAR), 'null'))"),
    "product_preferences": ("", "t.household_id", "NULL",
                            "t.household_id || '/' || coalesce(t.asset_class, 'null') || '/' || "
                            "coalesce(t.security_id, 'null') || '/' || coalesce(t.vehicle, 'null')"),
    "goals": ("", "t.household_id", "t.account_id",
              "coalesce(t.goal_id, 'null') || '/' || coalesce(t.account_id, 'null')"),
    # a goal's weights belong to the goal's household
    "goal_targets": ("", "(SELECT min(g.household_id) FROM in_goals g WHERE g.goal_id = t.goal_id)",
                     "NULL", "coalesce(t.goal_id, 'null') || '/' || coalesce(t.asset_class, 'null')"),
}


def _who(table: str, relation: str, columns: set[str] | None = None) -> tuple[str, str]:
    """(FROM clause, "household, account, record" select list) for rows of ``relation``.
    ``columns``: the columns the relation has (absent ones read as null)."""
    join, h, a, r = _WHO[table]
    exprs = []
    for e in (h, a, r):
        if columns is not None:
            for c in ("household_id", "account_id", "lot_id", "security_id", "model_id",
                      "asset_class", "menu_id", "trade_date", "override_id", "vehicle",
                      "need_id", "due_date", "goal_id"):
                e = e.replace(f"t.{c}", f"CAST(t.{c} AS VARCHAR)" if c in columns else "NULL")
        exprs.append(f"CAST({e} AS VARCHAR)")
    src = f"FROM {relation} t"
    if join:
        acct = "CAST(t.account_id AS VARCHAR)" if columns is None or "account_id" in columns \
            else "NULL"
        src += f" LEFT JOIN acct_hh m ON m.account_id = {acct}"
    return src, ", ".join(exprs)


# Money may sit up to a cent below zero (an upstream sum's float noise, e.g. a
# carryforward of -2.3e-13): such a value is read as 0, not reported (model/tolerances.py).
_AT_LEAST_ZERO = f"{{c}} >= -{MONEY_TOL}"
# Every number's rule, checked on finite values (non-finite ones have their own code):
# (table, column, code, SQL that holds for a good value ``{c}``, what the rule is).
# Nulls of a required column get the rule's code too; nullable columns may be null.
_RATE = ("invalid_rate", "{c} >= 0 AND {c} < 1", "must be a tax rate in [0, 1)")
_AMOUNT = ("implausible_amount", f"abs({{c}}) <= {MAX_AMOUNT:g}",
           f"is beyond +/- {MAX_AMOUNT:g}; check the units (dollars, shares) or use null")
NUMBER_RULES: list[tuple[str, str, str, str, str]] = [
    *(("households", c, *_RATE) for c in ("st_rate", "lt_rate", "ordinary_rate",
                                          "qualified_div_rate", "retirement_rate")),
    *(("households", c, *_AMOUNT) for c in ("ytd_st_gain", "ytd_lt_gain", "loss_carryforward_st",
                                            "loss_carryforward_lt", "tax_budget")),
    *(("households", c, "negative_carryforward", _AT_LEAST_ZERO,
       "must be >= 0 (enter a loss carryforward as a positive number)")
      for c in ("loss_carryforward_st", "loss_carryforward_lt")),
    ("households", "tax_budget", "invalid_tax_budget", _AT_LEAST_ZERO,
     "is negative; use 0 for no additional tax or null for no cap"),
    ("households", "turnover_limit", "invalid_turnover_limit", "{c} BETWEEN 0 AND 1",
     "is outside [0, 1]; give a fraction of household value"),
    ("households", "drift_threshold", "invalid_drift_threshold", "{c} >= 0 AND {c} < 1",
     "is outside [0, 1); give a fraction of household value"),
    ("households", "max_position_share", "invalid_max_position_share", "{c} > 0 AND {c} <= 1",
     "is outside (0, 1]; give the most of household value one security may be, or null"),
    ("households", "max_sector_share", "invalid_max_sector_share", "{c} > 0 AND {c} <= 1",
     "is outside (0, 1]; give the most of household value one sector may be, or null"),
    ("accounts", "cash", "negative_cash", _AT_LEAST_ZERO, "must be a number >= 0"),
    ("accounts", "min_cash", "invalid_cash_bounds", _AT_LEAST_ZERO,
     "must be >= 0 (and <= max_cash)"),
    *(("accounts", c, "negative_cash_flow", _AT_LEAST_ZERO, "must be >= 0")
      for c in ("contribution", "withdrawal")),
    *(("accounts", c, *_AMOUNT) for c in ("cash", "min_cash", "max_cash", "contribution",
                                          "withdrawal")),
    ("lots", "quantity", "negative_quantity", "{c} > 0", "must be > 0; drop closed lots"),
    ("lots", "cost_basis", "negative_cost_basis", _AT_LEAST_ZERO, "must be a number >= 0"),
    *(("lots", c, *_AMOUNT) for c in ("quantity", "cost_basis")),
    ("securities", "price", "missing_price", "{c} > 0",
     "is missing or not > 0; supply the run date's price"),
    ("securities", "price", "implausible_price", f"{{c}} <= {MAX_PRICE:g}",
     f"is above ${MAX_PRICE:g} a share; check the units of the price"),
    ("securities", "income_yield", "invalid_income_yield", "{c} >= 0 AND {c} < 1",
     "(annual income per dollar held) must be in [0, 1)"),
    *(("securities", c, f"invalid_{c}", "{c} BETWEEN 0 AND 1", "must be a fraction in [0, 1]")
      for c in ("qualified_fraction", "tax_exempt_fraction", "foreign_tax_fraction")),
    ("securities", "cg_distribution", "invalid_cg_distribution", "{c} >= 0 AND {c} < 1",
     "(annual capital-gain distributions per dollar held) must be in [0, 1)"),
    ("securities", "expected_return", "invalid_expected_return", "{c} > -1 AND {c} <= 1",
     "(expected total annual return) must be in (-1, 1]"),
    ("securities", "cost_bps", "invalid_cost_bps", f"{{c}} BETWEEN 0 AND {MAX_COST_BPS:g}",
     f"(one-way trading cost in basis points) must be in [0, {MAX_COST_BPS:g}]"),
    ("targets", "weight", "invalid_weight", "{c} BETWEEN 0 AND 1", "must be in [0, 1]"),
    ("household_targets", "weight", "invalid_weight", "{c} BETWEEN 0 AND 1",
     "must be in [0, 1]"),
    ("glide_paths", "weight", "invalid_weight", "{c} BETWEEN 0 AND 1", "must be in [0, 1]"),
    ("goal_targets", "weight", "invalid_weight", "{c} BETWEEN 0 AND 1", "must be in [0, 1]"),
    ("model_securities", "rank", "invalid_rank", f"{{c}} BETWEEN 1 AND {MAX_RANK}",
     f"must be an integer in [1, {MAX_RANK}]"),
    ("product_preferences", "rank", "invalid_rank", f"{{c}} BETWEEN 1 AND {MAX_RANK}",
     f"must be an integer in [1, {MAX_RANK}]"),
    ("transactions", "quantity", "invalid_transaction", "{c} > 0", "must be > 0"),
    ("cash_needs", "amount", "invalid_cash_need", "{c} > 0",
     "must be > 0 (the dollars to pay out); drop a need that is paid"),
    ("cash_needs", "amount", *_AMOUNT),
    *(("transactions", c, *_AMOUNT) for c in ("quantity", "realized_gain")),
    ("held_away", "value", "invalid_held_away", _AT_LEAST_ZERO, "must be a number >= 0"),
    ("held_away", "value", *_AMOUNT),
]


def _in_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join("'" + v + "'" for v in values) + ")"


def _number_checks() -> list[tuple[str, str]]:
    """(table, SQL selecting household, account, record, code, message): the finiteness
    of every float column and each column's range rules, one scan per table.

    Each runs with DuckDB's filter pushdown off (see ``validate``): pyarrow writes
    Parquet min/max statistics that leave NaN out, and a filter pushed into the scan
    is decided from them, so ``NOT isfinite(x)`` or ``isnan(x)`` there can skip the
    very row that is NaN."""
    out = []
    for name, table in INPUT_TABLES.items():
        rules: list[tuple[str, str, str]] = []  # (code, bad-value SQL over {p}columns, message)
        floats = [c.name for c in table.columns if c.sql_type == "DOUBLE"]
        if floats:
            parts = ", ".join(f"CASE WHEN NOT isfinite({{p}}{c}) THEN '{c}=' || {{p}}{c} END"
                              for c in floats)
            rules.append(("non_finite_number",
                          " OR ".join(f"NOT isfinite({{p}}{c})" for c in floats),
                          f"'not a finite number: ' || concat_ws(', ', {parts}) || '; every "
                          "number must be finite (NaN and infinity are not numbers), use null "
                          "for no value where the column allows it'"))
        for t_name, column, code, ok, text in NUMBER_RULES:
            if t_name != name:
                continue
            col = next(c for c in table.columns if c.name == column)
            c = "{p}" + column
            finite = f"isfinite({c})" if col.sql_type == "DOUBLE" else f"{c} IS NOT NULL"
            bad = f"({finite} AND NOT ({ok.format(c=c)}))"
            if col.default is None:  # required: a null breaks the rule too
                bad = f"({c} IS NULL OR {bad})"
            text = text.replace("'", "''")
            rules.append((code, bad, f"'{column} ' || coalesce({c}::VARCHAR, 'null') || ' {text}'"))
        if not rules:
            continue
        where = " OR ".join(f"({bad.format(p='')})" for _, bad, _ in rules)
        found = ", ".join(f"CASE WHEN {bad.format(p='t.')} THEN struct_pack(code := '{code}', "
                          f"message := {msg.format(p='t.')}) END" for code, bad, msg in rules)
        src, who = _who(name, f"(SELECT * FROM in_{name} WHERE {where})")
        out.append((name, f"""
            SELECT h, a, r, e.code, e.message FROM (
                SELECT {who}, unnest([{found}]) AS e
                {src}) AS q(h, a, r, e) WHERE e IS NOT NULL"""))
    return out


def _type_checks(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """Values that the file's column type cannot give as the contract's (io.read)."""
    out = []
    rows = con.execute('SELECT "table", "column", source_type, sql_type, bad FROM input_casts '
                       'ORDER BY "table", "column"').fetchall()
    columns: dict[str, set[str]] = {}
    for table, column, source_type, sql_type, bad in rows:
        if table not in columns:
            columns[table] = {r[0] for r in con.execute(f"DESCRIBE raw_{table}").fetchall()}
        relation = (f"(SELECT *, {bad} AS __bad, CAST(\"{column}\" AS VARCHAR) AS __value "
                    f"FROM raw_{table})")
        src, who = _who(table, relation, columns[table])
        expected = {"VARCHAR[]": "a list of strings (list<string>)", "DOUBLE": "a number",
                    "BIGINT": "a whole number", "DATE": "a date", "BOOLEAN": "true or false",
                    "VARCHAR": "a string"}[sql_type]
        out.append((table, "invalid_type", f"""
            SELECT {who}, '{column} ' || coalesce('''' || left(t.__value, 60) || '''', 'null') ||
                   ' cannot be read as {expected}: the column is {source_type} in the file, '
                   || 'the contract says {sql_type}; re-export {table}.{column} as {sql_type}'
            {src} WHERE t.__bad"""))
    return out


# said where a weights_not_one sum leaves out rows without an asset_class
_CLASSLESS = ("CASE WHEN count(*) FILTER (WHERE asset_class IS NULL) > 0 THEN ' (' || "
              "count(*) FILTER (WHERE asset_class IS NULL) || ' row(s) without an asset_class, "
              "which count for nothing: fill it)' ELSE '' END")


# A glide-path record: model_id/household_id/effective_date/asset_class (a null part
# reads 'null'); a problem of one date's weights ends at the date, of a whole path at
# its owner. A record whose first part is a model belongs to that model's households.
_GLIDE_OWNER = "coalesce(model_id, 'null') || '/' || coalesce(household_id, 'null')"
_GLIDE_RECORD = (f"{_GLIDE_OWNER} || '/' || coalesce(effective_date::VARCHAR, 'null') || '/' "
                 "|| coalesce(asset_class, 'null')")
_GLIDE_WHOSE = ("CASE WHEN model_id IS NOT NULL THEN 'model ' || model_id "
                "ELSE 'household ' || household_id END")
_ONE_OWNER = "(model_id IS NULL) <> (household_id IS NULL)"
_HAS_CLASS = "asset_class IS NOT NULL AND asset_class <> ''"


def _glide_path_checks() -> list[tuple[str, str, str]]:
    """The checks of ``glide_paths``, in the shape of ``_checks``. A household's path
    costs that household (``household_id`` is set); a model's is a reference problem
    that costs the households on the model (``bad_models``); a row naming both costs
    both, since it is not known whose path it breaks."""
    return [
        ("glide_paths", "invalid_glide_path_owner", f"""
            SELECT household_id, NULL, {_GLIDE_RECORD},
                   CASE WHEN model_id IS NULL THEN 'neither model_id nor household_id is set'
                        ELSE 'both model_id ''' || model_id || ''' and household_id ''' ||
                             household_id || ''' are set' END ||
                   '; a glide-path row belongs to exactly one model or one household: '
                   || 'set one and clear the other'
            FROM in_glide_paths WHERE NOT {_ONE_OWNER}"""),
        ("glide_paths", "invalid_glide_path", f"""
            SELECT household_id, NULL, {_GLIDE_RECORD},
                   concat_ws(' and ', CASE WHEN effective_date IS NULL THEN 'effective_date' END,
                             CASE WHEN NOT ({_HAS_CLASS}) THEN 'asset_class' END)
                   || ' missing; fill it or drop the row'
            FROM in_glide_paths WHERE effective_date IS NULL OR NOT ({_HAS_CLASS})"""),
        ("glide_paths", "duplicate_target", f"""
            SELECT household_id, NULL, {_GLIDE_RECORD},
                   'asset class listed ' || count(*) || ' times on the same effective date of '
                   || {_GLIDE_WHOSE} || '; keep one row per date and class'
            FROM in_glide_paths WHERE effective_date IS NOT NULL AND {_HAS_CLASS}
            GROUP BY model_id, household_id, effective_date, asset_class HAVING count(*) > 1"""),
        # rows without a date or class are invalid_glide_path, and null or non-finite
        # weights have their own codes: a date's sum is judged where each is a number
        ("glide_paths", "weights_not_one", f"""
            SELECT household_id, NULL, {_GLIDE_OWNER} || '/' || effective_date,
                   'weights of ' || {_GLIDE_WHOSE} || ' on ' || effective_date || ' sum to ' ||
                   round(sum(weight), 8) || ', not 1; each effective date''s weights must '
                   || 'sum to 1 (+/- {WEIGHT_TOL:g}): fix the rows of that date'
            FROM in_glide_paths
            WHERE {_ONE_OWNER} AND effective_date IS NOT NULL AND {_HAS_CLASS}
            GROUP BY model_id, household_id, effective_date
            HAVING bool_and(coalesce(isfinite(weight), false))
               AND abs(sum(weight) - 1) > {WEIGHT_TOL}"""),
        ("glide_paths", "unknown_model", """
            SELECT NULL, NULL, model_id || '/null', 'model_id ''' || model_id || ''' has ' ||
                   count(*) || ' glide-path row(s) but no rows in targets; fix the id or add '
                   || 'the model to targets'
            FROM in_glide_paths WHERE model_id IS NOT NULL AND household_id IS NULL
              AND model_id NOT IN (SELECT model_id FROM in_targets WHERE model_id IS NOT NULL)
            GROUP BY model_id"""),
        ("glide_paths", "unknown_household", """
            SELECT NULL, NULL, 'null/' || household_id, 'household_id ''' || household_id ||
                   ''' has ' || count(*) || ' glide-path row(s) but is not in households; '
                   || 'fix the id or drop its glide path'
            FROM in_glide_paths WHERE household_id IS NOT NULL AND model_id IS NULL
              AND household_id NOT IN (SELECT household_id FROM in_households
                                       WHERE household_id IS NOT NULL)
            GROUP BY household_id"""),
    ]


# An override in force on the run date (expires_on is its last day); without a run date
# every row is judged. Expired rows are ignored, not judged: the run notes each one
# (override_expired, io/households.py) without costing its household.
def _live_overrides(run_date: str | None) -> str:
    live = f"expires_on IS NULL OR expires_on >= DATE '{run_date}'" if run_date else "TRUE"
    return f"(SELECT * FROM in_overrides WHERE {live})"


_PREF_RECORD = ("p.household_id || '/' || coalesce(p.asset_class, 'null') || '/' || "
                "coalesce(p.security_id, 'null') || '/' || coalesce(p.vehicle, 'null')")


def _override_and_preference_checks(run_date: str | None) -> list[tuple[str, str, str]]:
    """The checks of ``overrides`` and ``product_preferences``, in the shape of
    ``_checks``: a bad row costs its household only (one it names that is not in
    ``households`` belongs to no household)."""
    live = _live_overrides(run_date)
    blank = "coalesce(trim({c}), '') = ''"
    actions = _in_list(OVERRIDE_ACTIONS)
    return [
        ("overrides", "missing_id", f"""
            SELECT household_id, account_id, NULL, 'an override row has no override_id; '
                   || 'give every override an id (it is echoed in overrides_applied)'
            FROM {live} WHERE {blank.format(c="override_id")}"""),
        ("overrides", "duplicate_override_id", f"""
            SELECT household_id, any_value(account_id), override_id, 'override_id appears ' ||
                   any_value(n) || ' times; override ids must be unique'
            FROM (SELECT *, count(*) OVER (PARTITION BY override_id) AS n FROM {live}
                  WHERE override_id IS NOT NULL)
            WHERE n > 1 GROUP BY override_id, household_id"""),
        ("overrides", "invalid_override", f"""
            SELECT household_id, account_id, override_id, concat_ws('; ',
                CASE WHEN action IS NULL OR action NOT IN {actions} THEN
                     'action ' || coalesce('''' || action || '''', 'null') ||
                     ' is not one of {', '.join(OVERRIDE_ACTIONS)}' END,
                CASE WHEN action = 'hold_security' AND security_id IS NULL THEN
                     'hold_security needs the security_id to hold' END,
                CASE WHEN action IN {actions} AND action <> 'hold_security'
                          AND (security_id IS NOT NULL OR account_id IS NOT NULL) THEN
                     'security_id and account_id are for hold_security only: clear them' END,
                CASE WHEN {blank.format(c="reason")} THEN 'reason is empty' END,
                CASE WHEN {blank.format(c="author")} THEN 'author is empty' END)
                || '; an override is a person''s logged decision: fix the row or drop it'
            FROM {live}
            WHERE action IS NULL OR action NOT IN {actions}
               OR (action = 'hold_security' AND security_id IS NULL)
               OR (action <> 'hold_security' AND (security_id IS NOT NULL
                                                  OR account_id IS NOT NULL))
               OR {blank.format(c="reason")} OR {blank.format(c="author")}"""),
        _unknown_household("overrides", live, "account_id", "override_id", "override"),
        ("overrides", "unknown_security", f"""
            SELECT household_id, account_id, override_id, 'security_id ''' || security_id ||
                   ''' is not in securities; fix the id'
            FROM {live} WHERE security_id IS NOT NULL AND security_id NOT IN
                 (SELECT security_id FROM in_securities WHERE security_id IS NOT NULL)"""),
        ("overrides", "unknown_account", f"""
            SELECT o.household_id, o.account_id, o.override_id, 'account ''' || o.account_id ||
                   ''' is not an account of household ''' || coalesce(o.household_id, 'null') ||
                   '''; fix the id or clear it (null = every account)'
            FROM {live} o LEFT JOIN acct_hh a USING (account_id)
            WHERE o.account_id IS NOT NULL AND (a.household_id IS NULL
                  OR a.household_id IS DISTINCT FROM o.household_id)"""),
        ("product_preferences", "invalid_preference", f"""
            SELECT household_id, NULL, {_PREF_RECORD}, concat_ws('; ',
                CASE WHEN {blank.format(c="asset_class")} THEN 'asset_class is missing' END,
                CASE WHEN (security_id IS NULL) = (vehicle IS NULL) THEN
                     'set exactly one of security_id and vehicle' END)
                || '; fix the row or drop it'
            FROM in_product_preferences p
            WHERE {blank.format(c="asset_class")} OR (security_id IS NULL) = (vehicle IS NULL)"""),
        ("product_preferences", "duplicate_preference", f"""
            SELECT household_id, NULL, {_PREF_RECORD}, 'listed ' || count(*) || ' times; keep '
                   || 'one row per household, class and security (or vehicle)'
            FROM in_product_preferences p WHERE household_id IS NOT NULL
            GROUP BY household_id, asset_class, security_id, vehicle HAVING count(*) > 1"""),
        _unknown_household("product_preferences", "in_product_preferences p", "NULL",
                           _PREF_RECORD, "preference"),
        ("product_preferences", "unknown_security", f"""
            SELECT household_id, NULL, {_PREF_RECORD}, 'security_id ''' || security_id ||
                   ''' is not in securities; fix the id'
            FROM in_product_preferences p WHERE security_id IS NOT NULL AND security_id NOT IN
                 (SELECT security_id FROM in_securities WHERE security_id IS NOT NULL)"""),
        ("product_preferences", "preference_class_mismatch", f"""
            SELECT DISTINCT p.household_id, NULL, {_PREF_RECORD}, 'security ' || p.security_id ||
                   ' is in asset class ' || coalesce(s.asset_class, 'null') || ', not ' ||
                   p.asset_class || '; a preferred security must be of the class it is '
                   || 'preferred for'
            FROM in_product_preferences p JOIN in_securities s USING (security_id)
            WHERE p.asset_class IS NOT NULL AND s.asset_class IS DISTINCT FROM p.asset_class"""),
        # a vehicle is looked for among the securities the household's model lists for
        # the class: none there is an error, never a silent fall-back to the model's order
        ("product_preferences", "unmatched_preference", f"""
            SELECT DISTINCT p.household_id, NULL, {_PREF_RECORD}, 'no security that model '
                   || coalesce(h.model_id, 'null') || ' lists for ' || p.asset_class ||
                   ' has vehicle ''' || p.vehicle || ''' (securities.vehicle); fix the vehicle, '
                   || 'name a security_id, or list such a security in model_securities'
            FROM in_product_preferences p JOIN in_households h USING (household_id)
            WHERE p.vehicle IS NOT NULL AND p.security_id IS NULL AND p.asset_class IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM in_model_securities ms JOIN in_securities s
                                  ON s.security_id = ms.security_id
                              WHERE ms.model_id = h.model_id AND s.asset_class = p.asset_class
                                AND s.vehicle = p.vehicle)"""),
    ]


def _checks(run_date: str | None) -> list[tuple[str, str, str]]:
    """(table, code, SQL selecting household_id, account_id, record_id, message)."""
    future = (f"SELECT a.household_id, l.account_id, l.lot_id, 'acquired_date ' || "
              f"l.acquired_date || ' is after the run date {run_date}; fix the date' "
              f"FROM in_lots l LEFT JOIN acct_hh a USING (account_id) "
              f"WHERE l.acquired_date > DATE '{run_date}'") if run_date else None
    return [
        # households ---------------------------------------------------------------------
        ("households", "missing_household_id", """
            SELECT NULL, NULL, NULL, 'a row has no household_id (null or empty; model_id ' ||
                   coalesce('''' || model_id || '''', 'null') || ', st_rate ' ||
                   coalesce(st_rate::VARCHAR, 'null') || '), so it cannot be run or reported; '
                   || 'fill household_id or drop the row'
            FROM in_households WHERE household_id IS NULL"""),
        ("households", "duplicate_household_id", """
            SELECT household_id, NULL, household_id, 'household_id appears ' || count(*) ||
                   ' times; keep one row per household'
            FROM in_households WHERE household_id IS NOT NULL
            GROUP BY household_id HAVING count(*) > 1"""),
        ("households", "missing_model", """
            SELECT household_id, NULL, household_id, 'model_id is empty; set the target model'
            FROM in_households WHERE model_id IS NULL OR model_id = ''"""),
        ("households", "invalid_filing_status", f"""
            SELECT household_id, NULL, household_id, 'filing_status ''' || filing_status ||
                   ''' is not one of {', '.join(FILING_STATUSES)}'
            FROM in_households WHERE filing_status NOT IN {_in_list(FILING_STATUSES)}"""),
        ("households", "unknown_model", """
            SELECT household_id, NULL, household_id, 'model_id ''' || model_id ||
                   ''' has no rows in targets and the household has no household_targets; '
                   || 'add the model or custom targets'
            FROM in_households
            WHERE model_id NOT IN (SELECT model_id FROM in_targets WHERE model_id IS NOT NULL)
              AND household_id NOT IN (SELECT household_id FROM in_household_targets
                                       WHERE household_id IS NOT NULL)"""),
        # accounts -----------------------------------------------------------------------
        ("accounts", "missing_id", """
            SELECT household_id, NULL, NULL, 'an account row has no account_id; fill it'
            FROM in_accounts WHERE account_id IS NULL OR account_id = ''"""),
        ("accounts", "duplicate_account_id", """
            SELECT a.household_id, a.account_id, a.account_id, 'account_id appears ' || d.n ||
                   ' times; keep one row per account'
            FROM (SELECT account_id, count(*) AS n FROM in_accounts WHERE account_id IS NOT NULL
                  GROUP BY account_id HAVING count(*) > 1) d
            JOIN in_accounts a USING (account_id)
            GROUP BY a.household_id, a.account_id, d.n"""),  # each household using the id
        ("accounts", "unknown_household", """
            SELECT NULL, account_id, account_id, 'household_id ''' ||
                   coalesce(household_id, 'null') || ''' is not in households; fix the reference'
            FROM in_accounts
            WHERE household_id IS NULL OR household_id NOT IN
                  (SELECT household_id FROM in_households WHERE household_id IS NOT NULL)"""),
        ("accounts", "invalid_account_type", f"""
            SELECT household_id, account_id, account_id, 'account_type ''' ||
                   coalesce(account_type, 'null') || ''' is not one of {', '.join(ACCOUNT_TYPES)}'
            FROM in_accounts WHERE account_type IS NULL OR account_type NOT IN
                  {_in_list(ACCOUNT_TYPES)}"""),
        ("accounts", "invalid_cash_bounds", """
            SELECT household_id, account_id, account_id, 'min_cash ' || min_cash ||
                   ' / max_cash ' || max_cash || ' must satisfy 0 <= min_cash <= max_cash'
            FROM in_accounts
            WHERE isfinite(min_cash) AND isfinite(max_cash) AND max_cash < min_cash"""),
        ("accounts", "unknown_menu", """
            SELECT household_id, account_id, account_id, 'menu_id ''' || menu_id ||
                   ''' has no rows in menus; add the menu or clear menu_id'
            FROM in_accounts WHERE menu_id IS NOT NULL
              AND menu_id NOT IN (SELECT menu_id FROM in_menus WHERE menu_id IS NOT NULL)"""),
        # lots ---------------------------------------------------------------------------
        ("lots", "missing_id", """
            SELECT a.household_id, l.account_id, NULL, 'a lot row has no lot_id; fill it'
            FROM in_lots l LEFT JOIN acct_hh a USING (account_id)
            WHERE l.lot_id IS NULL OR l.lot_id = ''"""),
        # Grouping 10^7-10^9 lot id strings is the costliest check of all; grouping a
        # 64-bit hash of each is half the work, and only the ids whose hash repeats are
        # then grouped exactly. DuckDB's hash of one string collides for ids that differ
        # in a few aligned bytes (1.9M of 57.5M generated ids); with the reversed string
        # hashed in, none did.
        ("lots", "duplicate_lot_id", f"""
            WITH repeated AS MATERIALIZED (
                SELECT {_LOT_ID_HASH} AS k FROM in_lots WHERE lot_id IS NOT NULL
                GROUP BY k HAVING count(*) > 1),
            d AS (SELECT lot_id, count(*) AS n FROM in_lots
                  WHERE lot_id IS NOT NULL AND {_LOT_ID_HASH} IN (SELECT k FROM repeated)
                  GROUP BY lot_id HAVING count(*) > 1)
            SELECT a.household_id, any_value(l.account_id), l.lot_id,
                   'lot_id appears ' || d.n || ' times; lot ids must be unique'
            FROM d JOIN in_lots l USING (lot_id) LEFT JOIN acct_hh a USING (account_id)
            GROUP BY l.lot_id, a.household_id, d.n"""),  # each household holding one
        ("lots", "unknown_account", """
            SELECT NULL, account_id, lot_id, 'account_id ''' || coalesce(account_id, 'null') ||
                   ''' is not in accounts; fix the reference'
            FROM in_lots WHERE account_id IS NULL OR account_id NOT IN (SELECT account_id FROM acct_hh)"""),
        ("lots", "unknown_security", """
            SELECT a.household_id, l.account_id, l.lot_id, 'security_id ''' ||
                   coalesce(l.security_id, 'null') || ''' is not in securities; add the security'
            FROM in_lots l LEFT JOIN acct_hh a USING (account_id)
            WHERE l.security_id IS NULL OR l.security_id NOT IN
                  (SELECT security_id FROM in_securities WHERE security_id IS NOT NULL)"""),
        ("lots", "missing_acquired_date", """
            SELECT a.household_id, l.account_id, l.lot_id,
                   'acquired_date is missing; the holding period cannot be known'
            FROM in_lots l LEFT JOIN acct_hh a USING (account_id) WHERE l.acquired_date IS NULL"""),
        *([("lots", "future_acquired_date", future)] if future else []),
        # securities ---------------------------------------------------------------------
        ("securities", "duplicate_security_id", """
            SELECT NULL, NULL, security_id, 'security_id appears ' || count(*) || ' times'
            FROM in_securities WHERE security_id IS NOT NULL GROUP BY security_id HAVING count(*) > 1"""),
        ("securities", "invalid_asset_class", """
            SELECT NULL, NULL, security_id, 'asset_class ''' || coalesce(asset_class, 'null') ||
                   ''' is missing or the reserved class cash; assign an exposure bucket'
            FROM in_securities WHERE asset_class IS NULL OR asset_class = '' OR asset_class = 'cash'"""),
        ("securities", "income_fractions_exceed_one", f"""
            SELECT NULL, NULL, security_id, 'security ' || security_id || ': qualified_fraction '
                   || qualified_fraction || ' + tax_exempt_fraction ' || tax_exempt_fraction ||
                   ' exceed 1 (they are shares of the same income); fix the tax attributes'
            FROM in_securities WHERE qualified_fraction BETWEEN 0 AND 1
              AND tax_exempt_fraction BETWEEN 0 AND 1
              AND qualified_fraction + tax_exempt_fraction > 1 + {WEIGHT_TOL}"""),
        # targets ------------------------------------------------------------------------
        # a row without an asset_class counts for nothing (the model reads it so): the
        # sum is of the rows that have one
        ("targets", "weights_not_one", f"""
            SELECT NULL, NULL, model_id, 'weights of model ' || model_id || ' sum to ' ||
                   round(coalesce(sum(weight) FILTER (WHERE asset_class IS NOT NULL), 0), 8) ||
                   ', not 1' || {_CLASSLESS} || '; fix the model'
            FROM in_targets GROUP BY model_id
            HAVING bool_and(coalesce(isfinite(weight), false)) AND abs(coalesce(
                sum(weight) FILTER (WHERE asset_class IS NOT NULL), 0) - 1) > {WEIGHT_TOL}"""),
        ("targets", "duplicate_target", """
            SELECT NULL, NULL, model_id || '/' || asset_class, 'asset class listed twice in a model'
            FROM in_targets GROUP BY model_id, asset_class HAVING count(*) > 1"""),
        ("model_securities", "unknown_security", """
            SELECT NULL, NULL, model_id || '/' || coalesce(security_id, 'null'),
                   'security is not in securities; add it or drop the row'
            FROM in_model_securities WHERE security_id IS NULL OR security_id NOT IN
                  (SELECT security_id FROM in_securities WHERE security_id IS NOT NULL)"""),
        ("household_targets", "weights_not_one", f"""
            SELECT household_id, NULL, household_id, 'custom weights sum to ' ||
                   round(coalesce(sum(weight) FILTER (WHERE asset_class IS NOT NULL), 0), 8) ||
                   ', not 1' || {_CLASSLESS}
            FROM in_household_targets GROUP BY household_id
            HAVING bool_and(coalesce(isfinite(weight), false)) AND abs(coalesce(
                sum(weight) FILTER (WHERE asset_class IS NOT NULL), 0) - 1) > {WEIGHT_TOL}"""),
        ("household_targets", "unknown_household", """
            SELECT NULL, NULL, household_id, 'household_id is not in households'
            FROM in_household_targets WHERE household_id IS NULL OR household_id NOT IN
                 (SELECT household_id FROM in_households WHERE household_id IS NOT NULL)"""),
        # restrictions, transactions, held-away, menus -------------------------------------
        ("restrictions", "invalid_rule", f"""
            SELECT household_id, account_id, household_id, 'rule ''' || coalesce(rule, 'null') ||
                   ''' is not one of {', '.join(RULES)}'
            FROM in_restrictions WHERE rule IS NULL OR rule NOT IN {_in_list(RULES)}"""),
        ("restrictions", "invalid_restriction_target", """
            SELECT household_id, account_id, household_id,
                   'exactly one of security_id, sector, tag must be set'
            FROM in_restrictions
            WHERE (security_id IS NOT NULL)::INT + (sector IS NOT NULL)::INT
                  + (tag IS NOT NULL)::INT <> 1"""),
        ("restrictions", "unknown_account", """
            SELECT r.household_id, r.account_id, r.account_id,
                   'account is not an account of this household'
            FROM in_restrictions r LEFT JOIN acct_hh a USING (account_id)
            WHERE r.account_id IS NOT NULL AND (a.household_id IS NULL
                  OR a.household_id <> r.household_id)"""),
        ("restrictions", "unknown_household", """
            SELECT NULL, account_id, household_id, 'household_id is not in households'
            FROM in_restrictions WHERE household_id IS NULL OR household_id NOT IN
                 (SELECT household_id FROM in_households WHERE household_id IS NOT NULL)"""),
        ("transactions", "invalid_transaction", """
            SELECT a.household_id, t.account_id, t.account_id || '/' ||
                   coalesce(t.security_id, 'null') || '/' || coalesce(t.trade_date::VARCHAR, 'null'),
                   'side must be buy or sell, trade_date and security_id set'
            FROM in_transactions t LEFT JOIN acct_hh a USING (account_id)
            WHERE t.side IS NULL OR t.side NOT IN ('buy', 'sell')
               OR t.trade_date IS NULL OR t.security_id IS NULL"""),
        ("transactions", "unknown_account", """
            SELECT NULL, account_id, account_id, 'account_id is not in accounts'
            FROM in_transactions WHERE account_id IS NULL OR account_id NOT IN
                 (SELECT account_id FROM acct_hh)"""),
        ("held_away", "invalid_held_away", """
            SELECT household_id, NULL, household_id || '/' || coalesce(asset_class, 'null'),
                   'asset_class must be set'
            FROM in_held_away WHERE asset_class IS NULL"""),
        ("held_away", "unknown_household", """
            SELECT NULL, NULL, household_id, 'household_id is not in households'
            FROM in_held_away WHERE household_id IS NULL OR household_id NOT IN
                 (SELECT household_id FROM in_households WHERE household_id IS NOT NULL)"""),
        ("menus", "unknown_security", """
            SELECT NULL, NULL, menu_id || '/' || coalesce(security_id, 'null'),
                   'menu lists a security that is not in securities'
            FROM in_menus WHERE security_id IS NULL OR security_id NOT IN
                 (SELECT security_id FROM in_securities WHERE security_id IS NOT NULL)"""),
        *_glide_path_checks(),
        *_override_and_preference_checks(run_date),
        *_cash_need_checks(),
        *_goal_checks(),
    ]


def _unknown_household(table: str, source: str, account: str, record: str,
                       what: str) -> tuple[str, str, str]:
    """The check, in the shape of ``_checks``, that a row of an optional per-household
    table names a household of ``households`` (``source``: the table as read, with an
    alias if the other arguments use one)."""
    return (table, "unknown_household", f"""
        SELECT NULL, {account}, {record}, 'household_id ''' || coalesce(household_id, 'null')
               || ''' is not in households; fix the id or drop the {what}'
        FROM {source} WHERE household_id IS NULL OR household_id NOT IN
             (SELECT household_id FROM in_households WHERE household_id IS NOT NULL)""")


# A cash-need record: its need_id, else household_id/account_id (or 'household')/due_date
_NEED_RECORD = ("coalesce(n.need_id, n.household_id || '/' || coalesce(n.account_id, "
                "'household') || '/' || coalesce(n.due_date::VARCHAR, 'null'))")


def _cash_need_checks() -> list[tuple[str, str, str]]:
    """The checks of ``cash_needs``, in the shape of ``_checks``: a bad row costs its
    household (the amount's rules are in NUMBER_RULES). A due date already past is
    no error: the need counts as due now (docs/data-contract.md, cash_needs)."""
    return [
        _unknown_household("cash_needs", "in_cash_needs n", "n.account_id", _NEED_RECORD,
                           "need"),
        ("cash_needs", "invalid_cash_need", f"""
            SELECT n.household_id, n.account_id, {_NEED_RECORD},
                   'due_date is missing; give the date the cash is paid out'
            FROM in_cash_needs n WHERE n.due_date IS NULL"""),
        ("cash_needs", "unknown_account", f"""
            SELECT n.household_id, n.account_id, {_NEED_RECORD}, 'account_id ''' ||
                   n.account_id || ''' is not an account of household ''' || n.household_id
                   || '''; name one of its accounts or leave account_id empty (its tradable '
                   || 'taxable accounts fund it then)'
            FROM in_cash_needs n LEFT JOIN acct_hh a USING (account_id)
            WHERE n.account_id IS NOT NULL AND n.household_id IS NOT NULL
              AND (a.household_id IS NULL OR a.household_id <> n.household_id)"""),
        ("cash_needs", "untradable_need_account", f"""
            SELECT n.household_id, n.account_id, {_NEED_RECORD}, 'account ''' || n.account_id
                   || ''' is not tradable: nothing can be sold or kept there for the need; '
                   || 'name a tradable account or leave account_id empty'
            FROM in_cash_needs n JOIN in_accounts a
                 ON a.account_id = n.account_id AND a.household_id = n.household_id
            WHERE NOT coalesce(a.tradable, true)"""),
        ("cash_needs", "unfunded_cash_need", f"""
            SELECT n.household_id, NULL, {_NEED_RECORD}, 'household ''' || n.household_id ||
                   ''' has no tradable taxable account to fund a need without account_id; '
                   || 'name the account it is paid from'
            FROM in_cash_needs n
            WHERE n.account_id IS NULL AND n.household_id IN
                  (SELECT household_id FROM in_households WHERE household_id IS NOT NULL)
              AND n.household_id NOT IN (
                  SELECT household_id FROM in_accounts WHERE household_id IS NOT NULL
                  AND account_type = 'taxable' AND coalesce(tradable, true))"""),
    ]



# A goal record: goal_id/account_id (a null part reads 'null'); of goal_targets,
# goal_id/asset_class. A goal's weights cost the goal's household.
_GOAL_RECORD = "coalesce(g.goal_id, 'null') || '/' || coalesce(g.account_id, 'null')"
_GOAL_TARGET_HH = "(SELECT min(household_id) FROM in_goals WHERE goal_id = t.goal_id)"


def _goal_checks() -> list[tuple[str, str, str]]:
    """The checks of ``goals`` and ``goal_targets``, in the shape of ``_checks``: a bad
    row costs the goal's household only (a goal naming a household that is not in
    ``households``, or weights of an unknown goal, belong to no household). The weights'
    range is in NUMBER_RULES."""
    return [
        ("goals", "invalid_goal", f"""
            SELECT g.household_id, g.account_id, {_GOAL_RECORD},
                   'goal_id is missing; give every goal an id (one row per account in it)'
            FROM in_goals g WHERE coalesce(trim(g.goal_id), '') = ''"""),
        _unknown_household("goals", "in_goals g", "g.account_id", _GOAL_RECORD, "goal"),
        ("goals", "unknown_account", f"""
            SELECT g.household_id, g.account_id, {_GOAL_RECORD},
                   CASE WHEN g.account_id IS NULL THEN 'account_id is missing'
                        ELSE 'account ''' || g.account_id || ''' is not an account of '
                             || 'household ''' || g.household_id || '''' END
                   || '; a goal is a sleeve of the household''s accounts: name one per row'
            FROM in_goals g LEFT JOIN acct_hh a USING (account_id)
            WHERE g.household_id IN (SELECT household_id FROM in_households
                                     WHERE household_id IS NOT NULL) AND (g.account_id IS NULL
                  OR a.household_id IS NULL OR a.household_id <> g.household_id)"""),
        ("goals", "duplicate_goal_account", """
            SELECT household_id, account_id, string_agg(DISTINCT coalesce(goal_id, 'null'), '+'
                   ORDER BY coalesce(goal_id, 'null')) || '/' || account_id, 'account ''' ||
                   account_id || ''' is listed ' || count(*) || ' times in goals ('
                   || string_agg(DISTINCT coalesce(goal_id, 'null'), ', '
                                 ORDER BY coalesce(goal_id, 'null'))
                   || '); an account belongs to at most one goal: keep one row'
            FROM in_goals WHERE account_id IS NOT NULL
            GROUP BY household_id, account_id HAVING count(*) > 1"""),
        ("goals", "inconsistent_goal", """
            SELECT DISTINCT g.household_id, NULL, g.goal_id || '/null', 'the rows of goal '
                   || g.goal_id || ' disagree on household_id, model_id or horizon_date; '
                   || 'every row of a goal names the same household, model and horizon'
            FROM in_goals g JOIN (
                SELECT goal_id FROM in_goals WHERE goal_id IS NOT NULL GROUP BY goal_id
                HAVING count(DISTINCT coalesce(household_id, '')) > 1
                    OR count(DISTINCT coalesce(model_id, '')) > 1
                    OR count(DISTINCT coalesce(horizon_date::VARCHAR, '')) > 1) d
            USING (goal_id)"""),
        ("goals", "unknown_model", f"""
            SELECT g.household_id, g.account_id, {_GOAL_RECORD}, 'model_id ''' || g.model_id
                   || ''' has no rows in targets; fix the id, add the model, or give the '
                   || 'goal its own weights in goal_targets'
            FROM in_goals g WHERE g.model_id IS NOT NULL AND g.model_id NOT IN
                 (SELECT model_id FROM in_targets WHERE model_id IS NOT NULL)"""),
        ("goals", "missing_goal_weights", f"""
            SELECT g.household_id, g.account_id, {_GOAL_RECORD}, 'goal ' || g.goal_id ||
                   ' has neither a model_id nor rows in goal_targets; set its model or '
                   || 'give its weights'
            FROM in_goals g WHERE g.model_id IS NULL AND g.goal_id IS NOT NULL
              AND g.goal_id NOT IN (SELECT goal_id FROM in_goal_targets
                                    WHERE goal_id IS NOT NULL)"""),
        ("goal_targets", "unknown_goal", """
            SELECT NULL, NULL, coalesce(goal_id, 'null') || '/' || coalesce(asset_class, 'null'),
                   'goal_id ''' || coalesce(goal_id, 'null') || ''' is not in goals; fix the '
                   || 'id or drop the row'
            FROM in_goal_targets WHERE goal_id IS NULL OR goal_id NOT IN
                 (SELECT goal_id FROM in_goals WHERE goal_id IS NOT NULL)"""),
        ("goal_targets", "invalid_goal_target", f"""
            SELECT {_GOAL_TARGET_HH}, NULL, t.goal_id || '/null',
                   'asset_class is missing; fill it or drop the row'
            FROM in_goal_targets t WHERE t.goal_id IS NOT NULL
              AND coalesce(trim(t.asset_class), '') = ''"""),
        ("goal_targets", "duplicate_target", f"""
            SELECT {_GOAL_TARGET_HH}, NULL, t.goal_id || '/' || t.asset_class,
                   'asset class listed ' || count(*) || ' times for goal ' || t.goal_id ||
                   '; keep one row per goal and class'
            FROM in_goal_targets t WHERE t.goal_id IS NOT NULL AND t.asset_class IS NOT NULL
            GROUP BY t.goal_id, t.asset_class HAVING count(*) > 1"""),
        ("goal_targets", "weights_not_one", f"""
            SELECT {_GOAL_TARGET_HH}, NULL, t.goal_id, 'weights of goal ' || t.goal_id ||
                   ' sum to ' || round(coalesce(sum(t.weight) FILTER (WHERE t.asset_class IS
                   NOT NULL), 0), 8) || ', not 1; each goal''s weights must sum to 1 '
                   || '(+/- {WEIGHT_TOL:g}): fix its rows'
            FROM in_goal_targets t WHERE t.goal_id IS NOT NULL GROUP BY t.goal_id
            HAVING bool_and(coalesce(isfinite(t.weight), false)) AND abs(coalesce(
                sum(t.weight) FILTER (WHERE t.asset_class IS NOT NULL), 0) - 1) > {WEIGHT_TOL}"""),
    ]


def over_memory_limit(con: duckdb.DuckDBPyConnection, doing: str) -> InputError:
    """The error for a step of reading the book that DuckDB's memory cap stopped: the
    configuration's fault, not the data's (exit 2, with the key to raise)."""
    limit = con.execute("SELECT current_setting('memory_limit')").fetchone()
    return InputError(f"{doing} needs more memory than DuckDB's limit of "
                      f"{limit[0] if limit else '?'} on this book; raise duckdb_memory_limit "
                      "in the run configuration")

def validate(con: duckdb.DuckDBPyConnection, run_date: str | None = None) -> None:
    """Create ``exceptions_found`` (one row per problem) and ``bad_households``
    (household_id, message) on the connection."""
    con.execute("""CREATE OR REPLACE TEMP TABLE acct_hh AS
                   SELECT account_id, any_value(household_id) AS household_id
                   FROM in_accounts WHERE account_id IS NOT NULL GROUP BY account_id""")
    # One check at a time: each scans the book once within DuckDB's memory limit,
    # where a single UNION of all of them would run side by side.
    con.execute('CREATE OR REPLACE TEMP TABLE exceptions_found ("table" VARCHAR, '
                "household_id VARCHAR, account_id VARCHAR, record_id VARCHAR, code VARCHAR, "
                "message VARCHAR)")

    def run(table: str, what: str, sql: str) -> None:
        try:
            con.execute(sql)
        except _SQL_ERRORS:
            raise
        except duckdb.IOException as e:
            if "No space left" in str(e) or '"errno":"28"' in str(e):
                raise  # the disk DuckDB spills to, not the data: the caller says so (exit 5)
            raise InputError(f"table {table}: its data (or that of a table it refers to) "
                             f"cannot be read while checking {what} "
                             f"({type(e).__name__}: {str(e).splitlines()[0]}); "
                             "re-export it as Parquet") from e
        except duckdb.OutOfMemoryException as e:  # the configuration, not the data
            raise over_memory_limit(con, f"table {table}: checking {what}") from e
        except duckdb.Error as e:  # the file, not the check: a corrupt page, a bad encoding
            raise InputError(f"table {table}: its data (or that of a table it refers to) "
                             f"cannot be read while checking {what} ({type(e).__name__}: {e}); "
                             "re-export it as Parquet") from e

    def insert(table: str, code: str, sql: str) -> None:
        run(table, code, f"INSERT INTO exceptions_found SELECT '{table}', CAST(h AS VARCHAR), "
                         f"CAST(a AS VARCHAR), CAST(r AS VARCHAR), '{code}', "
                         f"CAST(m AS VARCHAR) FROM ({sql}) AS q(h, a, r, m)")

    for check in _checks(run_date):
        insert(*check)
    # Numbers and types are judged on the values themselves, never on file statistics
    # (which may leave NaN out): no filter is pushed into a scan while they run.
    before = con.execute("SELECT current_setting('disabled_optimizers')").fetchone()[0]  # type: ignore[index]
    con.execute("SET disabled_optimizers = 'filter_pushdown'")
    try:
        for table, sql in _number_checks():
            run(table, "its numbers", f"INSERT INTO exceptions_found SELECT '{table}', "
                f"CAST(h AS VARCHAR), CAST(a AS VARCHAR), CAST(r AS VARCHAR), code, message "
                f"FROM ({sql}) AS q(h, a, r, code, message)")
        for check in _type_checks(con):
            insert(*check)
    finally:
        con.execute(f"SET disabled_optimizers = '{before}'")
    # Reference problems cost the households that depend on them.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE bad_securities AS
        SELECT DISTINCT record_id AS security_id, code FROM exceptions_found
        WHERE "table" = 'securities';
        CREATE OR REPLACE TEMP TABLE bad_models AS
        SELECT DISTINCT split_part(record_id, '/', 1) AS model_id, code FROM exceptions_found
        WHERE "table" IN ('targets', 'model_securities')
           OR ("table" = 'glide_paths' AND split_part(record_id, '/', 1) <> 'null');
        CREATE OR REPLACE TEMP TABLE bad_menus AS
        SELECT DISTINCT split_part(record_id, '/', 1) AS menu_id, code FROM exceptions_found
        WHERE "table" = 'menus';
        CREATE OR REPLACE TEMP TABLE bad_households AS
        SELECT household_id, string_agg(DISTINCT message, '; ' ORDER BY message) AS message
        FROM (
            SELECT household_id, "table" || '.' || code || ' [' || coalesce(record_id, '?') ||
                   ']: ' || message AS message
            FROM exceptions_found WHERE household_id IS NOT NULL
            UNION ALL
            SELECT a.household_id, 'holds security ' || b.security_id || ', which has a data '
                   || 'problem (' || b.code || '); see exceptions'
            FROM in_lots l JOIN acct_hh a USING (account_id) JOIN bad_securities b USING (security_id)
            UNION ALL
            SELECT a.household_id, 'traded security ' || b.security_id || ' recently (wash-sale '
                   || 'history), which has a data problem (' || b.code || '); see exceptions'
            FROM in_transactions t JOIN acct_hh a USING (account_id)
                 JOIN bad_securities b USING (security_id)
            UNION ALL
            SELECT h.household_id, 'model ' || h.model_id || ' lists security ' || b.security_id
                   || ', which has a data problem (' || b.code || '); see exceptions'
            FROM in_households h JOIN in_model_securities ms USING (model_id)
                 JOIN bad_securities b ON b.security_id = ms.security_id
            UNION ALL
            SELECT p.household_id, 'prefers security ' || b.security_id || ', which has a data '
                   || 'problem (' || b.code || '); see exceptions'
            FROM in_product_preferences p JOIN bad_securities b USING (security_id)
            UNION ALL
            SELECT h.household_id, 'model ' || h.model_id || ' has a data problem (' || b.code
                   || '); see exceptions'
            FROM in_households h JOIN bad_models b USING (model_id)
            UNION ALL
            SELECT a.household_id, 'menu ' || a.menu_id || ' has a data problem (' || b.code
                   || '); see exceptions'
            FROM in_accounts a JOIN bad_menus b USING (menu_id)
            UNION ALL
            SELECT g.household_id, 'goal ' || g.goal_id || ' is on model ' || g.model_id ||
                   ', which has a data problem (' || b.code || '); see exceptions'
            FROM in_goals g JOIN bad_models b USING (model_id)
        ) WHERE household_id IS NOT NULL
        GROUP BY household_id
    """)


def exceptions_table(con: duckdb.DuckDBPyConnection, run_id: str) -> pa.Table:
    quoted = "'" + run_id.replace("'", "''") + "'"
    return con.sql(f"SELECT {quoted} AS run_id, \"table\" AS source_table, household_id, "
                   "account_id, record_id, "
                   "code, message FROM exceptions_found ORDER BY \"table\", code, "
                   "household_id NULLS FIRST, account_id NULLS FIRST, record_id NULLS FIRST, "
                   "message").to_arrow_table()


def unkeyed_rows(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows of per-household tables that belong to no household this run can report
    on (a household row without household_id, an account of an unknown household, ...):
    they have ``exceptions`` rows but can have no ``household_results`` row. Per table."""
    shared = ("securities", "targets", "model_securities", "menus")
    return dict(con.execute(
        f'SELECT "table", count(*) FROM exceptions_found WHERE household_id IS NULL '
        f'AND "table" NOT IN {_in_list(shared)} '
        # a model's glide path is shared too: its record starts with the model
        f"""AND NOT ("table" = 'glide_paths' AND split_part(record_id, '/', 1) <> 'null') """
        f'GROUP BY "table" ORDER BY "table"').fetchall())
