"""Validation of the whole book in SQL: every problem becomes an ``exceptions`` row
with a stable code, attributed to the finest grain known (household, account,
record), and every household touched by a problem is set aside with status
``error``. Nothing here raises for a bad record; the rest of the book runs.

Problems with shared reference data (a security without a price, a model whose
weights do not sum to 1, a menu naming an unknown security) cost exactly the
households that depend on them: holders of the security, households on the model,
accounts on the menu.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from hearth.model.household import ACCOUNT_TYPES, FILING_STATUSES, RULES

WEIGHT_TOL = 1e-6


def _in_list(values: tuple[str, ...]) -> str:
    return "(" + ", ".join("'" + v + "'" for v in values) + ")"


def _checks(run_date: str | None) -> list[tuple[str, str, str]]:
    """(table, code, SQL selecting household_id, account_id, record_id, message)."""
    rate_cols = ("st_rate", "lt_rate", "ordinary_rate", "qualified_div_rate", "retirement_rate")
    bad_rate = " OR ".join(f"({c} IS NOT NULL AND NOT ({c} >= 0 AND {c} < 1))" for c in rate_cols)
    future = (f"SELECT a.household_id, l.account_id, l.lot_id, 'acquired_date ' || "
              f"l.acquired_date || ' is after the run date {run_date}; fix the date' "
              f"FROM in_lots l LEFT JOIN acct_hh a USING (account_id) "
              f"WHERE l.acquired_date > DATE '{run_date}'") if run_date else None
    return [
        # households ---------------------------------------------------------------------
        ("households", "missing_id", """
            SELECT NULL, NULL, NULL, 'a row has no household_id; fill it or drop the row'
            FROM in_households WHERE household_id IS NULL OR household_id = ''"""),
        ("households", "duplicate_household_id", """
            SELECT household_id, NULL, household_id, 'household_id appears ' || count(*) ||
                   ' times; keep one row per household'
            FROM in_households WHERE household_id IS NOT NULL
            GROUP BY household_id HAVING count(*) > 1"""),
        ("households", "missing_model", """
            SELECT household_id, NULL, household_id, 'model_id is empty; set the target model'
            FROM in_households WHERE model_id IS NULL OR model_id = ''"""),
        ("households", "invalid_rate", f"""
            SELECT household_id, NULL, household_id,
                   'tax rates must be in [0, 1): st_rate=' || coalesce(st_rate::VARCHAR, 'null') ||
                   ', lt_rate=' || coalesce(lt_rate::VARCHAR, 'null') || '; fix the rates'
            FROM in_households WHERE st_rate IS NULL OR lt_rate IS NULL OR {bad_rate}"""),
        ("households", "negative_carryforward", """
            SELECT household_id, NULL, household_id,
                   'loss carryforwards must be >= 0 (enter losses as positive numbers)'
            FROM in_households WHERE loss_carryforward_st < 0 OR loss_carryforward_lt < 0"""),
        ("households", "invalid_tax_budget", """
            SELECT household_id, NULL, household_id, 'tax_budget ' || tax_budget ||
                   ' is negative; use 0 for no additional tax or null for no cap'
            FROM in_households WHERE tax_budget < 0"""),
        ("households", "invalid_turnover_limit", """
            SELECT household_id, NULL, household_id, 'turnover_limit ' || turnover_limit ||
                   ' is outside [0, 1]; give a fraction of household value'
            FROM in_households WHERE turnover_limit < 0 OR turnover_limit > 1"""),
        ("households", "invalid_drift_threshold", """
            SELECT household_id, NULL, household_id, 'drift_threshold ' || drift_threshold ||
                   ' is outside [0, 1); give a fraction of household value'
            FROM in_households WHERE drift_threshold < 0 OR drift_threshold >= 1"""),
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
            SELECT any_value(household_id), account_id, account_id, 'account_id appears ' ||
                   count(*) || ' times; keep one row per account'
            FROM in_accounts WHERE account_id IS NOT NULL GROUP BY account_id HAVING count(*) > 1"""),
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
        ("accounts", "negative_cash", """
            SELECT household_id, account_id, account_id, 'cash ' || coalesce(cash::VARCHAR, 'null')
                   || ' must be a number >= 0'
            FROM in_accounts WHERE cash IS NULL OR cash < 0"""),
        ("accounts", "invalid_cash_bounds", """
            SELECT household_id, account_id, account_id, 'min_cash ' || min_cash ||
                   ' / max_cash ' || coalesce(max_cash::VARCHAR, 'null') ||
                   ' must satisfy 0 <= min_cash <= max_cash'
            FROM in_accounts WHERE min_cash < 0 OR max_cash < min_cash"""),
        ("accounts", "negative_cash_flow", """
            SELECT household_id, account_id, account_id, 'contribution and withdrawal must be >= 0'
            FROM in_accounts WHERE contribution < 0 OR withdrawal < 0"""),
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
        ("lots", "duplicate_lot_id", """
            SELECT any_value(a.household_id), any_value(l.account_id), l.lot_id,
                   'lot_id appears ' || count(*) || ' times; lot ids must be unique'
            FROM (SELECT lot_id FROM in_lots WHERE lot_id IS NOT NULL
                  GROUP BY lot_id HAVING count(*) > 1) d
            JOIN in_lots l USING (lot_id) LEFT JOIN acct_hh a USING (account_id)
            GROUP BY l.lot_id"""),
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
        ("lots", "negative_quantity", """
            SELECT a.household_id, l.account_id, l.lot_id, 'quantity ' ||
                   coalesce(l.quantity::VARCHAR, 'null') || ' must be > 0; drop closed lots'
            FROM in_lots l LEFT JOIN acct_hh a USING (account_id)
            WHERE l.quantity IS NULL OR NOT (l.quantity > 0) OR isnan(l.quantity)"""),
        ("lots", "negative_cost_basis", """
            SELECT a.household_id, l.account_id, l.lot_id, 'cost_basis ' ||
                   coalesce(l.cost_basis::VARCHAR, 'null') || ' must be a number >= 0'
            FROM in_lots l LEFT JOIN acct_hh a USING (account_id)
            WHERE l.cost_basis IS NULL OR l.cost_basis < 0 OR isnan(l.cost_basis)"""),
        ("lots", "missing_acquired_date", """
            SELECT a.household_id, l.account_id, l.lot_id,
                   'acquired_date is missing; the holding period cannot be known'
            FROM in_lots l LEFT JOIN acct_hh a USING (account_id) WHERE l.acquired_date IS NULL"""),
        *([("lots", "future_acquired_date", future)] if future else []),
        # securities ---------------------------------------------------------------------
        ("securities", "duplicate_security_id", """
            SELECT NULL, NULL, security_id, 'security_id appears ' || count(*) || ' times'
            FROM in_securities WHERE security_id IS NOT NULL GROUP BY security_id HAVING count(*) > 1"""),
        ("securities", "missing_price", """
            SELECT NULL, NULL, security_id, 'price ' || coalesce(price::VARCHAR, 'null') ||
                   ' is missing or not > 0; supply the run date''s price'
            FROM in_securities WHERE price IS NULL OR NOT (price > 0) OR isnan(price)"""),
        ("securities", "invalid_asset_class", """
            SELECT NULL, NULL, security_id, 'asset_class ''' || coalesce(asset_class, 'null') ||
                   ''' is missing or the reserved class cash; assign an exposure bucket'
            FROM in_securities WHERE asset_class IS NULL OR asset_class = '' OR asset_class = 'cash'"""),
        ("securities", "invalid_attribute", """
            SELECT NULL, NULL, security_id, 'fractions must be in [0, 1] and yields, distributions '
                   || 'and cost_bps >= 0; check the security''s tax attributes'
            FROM in_securities
            WHERE NOT (qualified_fraction BETWEEN 0 AND 1) OR NOT (tax_exempt_fraction BETWEEN 0 AND 1)
               OR NOT (foreign_tax_fraction BETWEEN 0 AND 1) OR income_yield < 0
               OR cg_distribution < 0 OR cost_bps < 0"""),
        # targets ------------------------------------------------------------------------
        ("targets", "invalid_weight", """
            SELECT NULL, NULL, model_id || '/' || coalesce(asset_class, 'null'),
                   'weight ' || coalesce(weight::VARCHAR, 'null') || ' must be in [0, 1]'
            FROM in_targets WHERE weight IS NULL OR NOT (weight BETWEEN 0 AND 1)"""),
        ("targets", "weights_not_one", f"""
            SELECT NULL, NULL, model_id, 'weights of model ' || model_id || ' sum to ' ||
                   round(sum(weight), 8) || ', not 1; fix the model'
            FROM in_targets GROUP BY model_id HAVING abs(sum(weight) - 1) > {WEIGHT_TOL}"""),
        ("targets", "duplicate_target", """
            SELECT NULL, NULL, model_id || '/' || asset_class, 'asset class listed twice in a model'
            FROM in_targets GROUP BY model_id, asset_class HAVING count(*) > 1"""),
        ("model_securities", "invalid_rank", """
            SELECT NULL, NULL, model_id || '/' || coalesce(security_id, 'null'),
                   'rank ' || coalesce(rank::VARCHAR, 'null') || ' must be an integer >= 1'
            FROM in_model_securities WHERE rank IS NULL OR rank < 1"""),
        ("model_securities", "unknown_security", """
            SELECT NULL, NULL, model_id || '/' || coalesce(security_id, 'null'),
                   'security is not in securities; add it or drop the row'
            FROM in_model_securities WHERE security_id IS NULL OR security_id NOT IN
                  (SELECT security_id FROM in_securities WHERE security_id IS NOT NULL)"""),
        ("household_targets", "invalid_weight", """
            SELECT household_id, NULL, household_id || '/' || coalesce(asset_class, 'null'),
                   'weight ' || coalesce(weight::VARCHAR, 'null') || ' must be in [0, 1]'
            FROM in_household_targets WHERE weight IS NULL OR NOT (weight BETWEEN 0 AND 1)"""),
        ("household_targets", "weights_not_one", f"""
            SELECT household_id, NULL, household_id, 'custom weights sum to ' ||
                   round(sum(weight), 8) || ', not 1'
            FROM in_household_targets GROUP BY household_id
            HAVING abs(sum(weight) - 1) > {WEIGHT_TOL}"""),
        ("household_targets", "unknown_household", """
            SELECT NULL, NULL, household_id, 'household_id is not in households'
            FROM in_household_targets WHERE household_id NOT IN
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
                   'side must be buy or sell, quantity > 0, trade_date and security_id set'
            FROM in_transactions t LEFT JOIN acct_hh a USING (account_id)
            WHERE t.side IS NULL OR t.side NOT IN ('buy', 'sell') OR NOT (t.quantity > 0)
               OR t.trade_date IS NULL OR t.security_id IS NULL"""),
        ("transactions", "unknown_account", """
            SELECT NULL, account_id, account_id, 'account_id is not in accounts'
            FROM in_transactions WHERE account_id IS NULL OR account_id NOT IN
                 (SELECT account_id FROM acct_hh)"""),
        ("held_away", "invalid_held_away", """
            SELECT household_id, NULL, household_id || '/' || coalesce(asset_class, 'null'),
                   'value must be a number >= 0 and asset_class set'
            FROM in_held_away WHERE value IS NULL OR value < 0 OR asset_class IS NULL"""),
        ("held_away", "unknown_household", """
            SELECT NULL, NULL, household_id, 'household_id is not in households'
            FROM in_held_away WHERE household_id IS NULL OR household_id NOT IN
                 (SELECT household_id FROM in_households WHERE household_id IS NOT NULL)"""),
        ("menus", "unknown_security", """
            SELECT NULL, NULL, menu_id || '/' || coalesce(security_id, 'null'),
                   'menu lists a security that is not in securities'
            FROM in_menus WHERE security_id IS NULL OR security_id NOT IN
                 (SELECT security_id FROM in_securities WHERE security_id IS NOT NULL)"""),
    ]


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
    for table, code, sql in _checks(run_date):
        con.execute(f"INSERT INTO exceptions_found SELECT '{table}', CAST(h AS VARCHAR), "
                    f"CAST(a AS VARCHAR), CAST(r AS VARCHAR), '{code}', CAST(m AS VARCHAR) "
                    f"FROM ({sql}) AS q(h, a, r, m)")
    # Reference problems cost the households that depend on them.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE bad_securities AS
        SELECT DISTINCT record_id AS security_id, code FROM exceptions_found
        WHERE "table" = 'securities';
        CREATE OR REPLACE TEMP TABLE bad_models AS
        SELECT DISTINCT split_part(record_id, '/', 1) AS model_id, code FROM exceptions_found
        WHERE "table" IN ('targets', 'model_securities');
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
            SELECT h.household_id, 'model ' || h.model_id || ' lists security ' || b.security_id
                   || ', which has a data problem (' || b.code || '); see exceptions'
            FROM in_households h JOIN in_model_securities ms USING (model_id)
                 JOIN bad_securities b ON b.security_id = ms.security_id
            UNION ALL
            SELECT h.household_id, 'model ' || h.model_id || ' has a data problem (' || b.code
                   || '); see exceptions'
            FROM in_households h JOIN bad_models b USING (model_id)
            UNION ALL
            SELECT a.household_id, 'menu ' || a.menu_id || ' has a data problem (' || b.code
                   || '); see exceptions'
            FROM in_accounts a JOIN bad_menus b USING (menu_id)
        ) WHERE household_id IS NOT NULL
        GROUP BY household_id
    """)


def exceptions_table(con: duckdb.DuckDBPyConnection, run_id: str) -> pa.Table:
    quoted = "'" + run_id.replace("'", "''") + "'"
    return con.sql(f"SELECT {quoted} AS run_id, \"table\", household_id, account_id, record_id, "
                   "code, message FROM exceptions_found ORDER BY \"table\", code, "
                   "household_id NULLS FIRST, account_id NULLS FIRST, record_id NULLS FIRST, "
                   "message").to_arrow_table()
