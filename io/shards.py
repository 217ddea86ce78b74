"""Sharding: the book is cut once into shards of households, each table written
as Hive partitions ``shard=<n>`` so that a worker reads only its own rows, and the
shared reference tables (securities, targets, model securities, menus, the models'
glide paths) once.

The prepared copy lives in the run's staging folder; it is what makes a worker's
read cheap (one small file per table) and keeps every process's memory bounded by
the shard size, never the book size.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from hearth.io.read import row_ranges
from hearth.io.validate import over_memory_limit

PER_HOUSEHOLD = {
    # table: SQL over the normalized views, with household_id, ordered for determinism
    "households": """
        SELECT h.*, b.message AS error_message, s.shard
        FROM (SELECT * FROM in_households WHERE household_id IS NOT NULL
              QUALIFY row_number() OVER (PARTITION BY household_id ORDER BY model_id) = 1) h
        JOIN shard_map s USING (household_id)
        LEFT JOIN bad_households b USING (household_id)
        ORDER BY household_id""",
    "accounts": """
        SELECT a.*, s.shard FROM in_accounts a JOIN shard_map s USING (household_id)
        WHERE a.account_id IS NOT NULL ORDER BY household_id, account_id""",
    "lots": """
        SELECT l.*, m.household_id, s.shard FROM in_lots l
        JOIN acct_hh m USING (account_id) JOIN shard_map s USING (household_id)
        ORDER BY household_id, account_id, lot_id""",
    "transactions": """
        SELECT t.*, m.household_id, s.shard FROM in_transactions t
        JOIN acct_hh m USING (account_id) JOIN shard_map s USING (household_id)
        ORDER BY household_id, account_id, trade_date, security_id, side, quantity""",
    "restrictions": """
        SELECT r.*, s.shard FROM in_restrictions r JOIN shard_map s USING (household_id)
        ORDER BY household_id, rule, account_id, security_id, sector, tag""",
    "held_away": """
        SELECT h.*, s.shard FROM in_held_away h JOIN shard_map s USING (household_id)
        ORDER BY household_id, asset_class""",
    "household_targets": """
        SELECT t.*, s.shard FROM in_household_targets t JOIN shard_map s USING (household_id)
        ORDER BY household_id, asset_class""",
    # a household's own glide path; a row naming a model too belongs to neither (its
    # households are set aside by validation)
    "household_glide_paths": """
        SELECT g.household_id, g.effective_date, g.asset_class, g.weight, s.shard
        FROM in_glide_paths g JOIN shard_map s USING (household_id)
        WHERE g.model_id IS NULL
        ORDER BY household_id, effective_date, asset_class, weight""",
    # every override, expired or not: the run date decides (io/households.py)
    "overrides": """
        SELECT o.*, s.shard FROM in_overrides o JOIN shard_map s USING (household_id)
        ORDER BY household_id, override_id, action, security_id, account_id, expires_on""",
    # cash needs, each with its record id (need_id, else household/account/due date, as
    # validation names it)
    "cash_needs": """
        SELECT n.household_id, n.account_id, n.due_date, n.amount,
               coalesce(n.need_id, n.household_id || '/' || coalesce(n.account_id, 'household')
                        || '/' || coalesce(n.due_date::VARCHAR, 'null')) AS need_id, s.shard
        FROM in_cash_needs n JOIN shard_map s USING (household_id)
        ORDER BY household_id, due_date, account_id, need_id, amount""",
    "product_preferences": """
        SELECT p.*, s.shard FROM in_product_preferences p JOIN shard_map s USING (household_id)
        ORDER BY household_id, asset_class, rank, security_id, vehicle""",
    # goals, one row per account in a goal, and each goal's own weights with its household
    "goals": """
        SELECT g.*, s.shard FROM in_goals g JOIN shard_map s USING (household_id)
        WHERE g.goal_id IS NOT NULL
        ORDER BY household_id, goal_id, account_id, model_id, horizon_date""",
    "goal_targets": """
        SELECT t.goal_id, t.asset_class, t.weight, g.household_id, s.shard
        FROM in_goal_targets t
        JOIN (SELECT goal_id, min(household_id) AS household_id FROM in_goals
              WHERE goal_id IS NOT NULL GROUP BY goal_id) g USING (goal_id)
        JOIN shard_map s USING (household_id)
        ORDER BY household_id, goal_id, asset_class, weight""",
}

# DuckDB's partitioned COPY does not keep row order inside a partition file, so the
# order is applied when a shard is read, and the COPY does not sort: a global sort of
# the book's lots (57 million rows on a 20,000-household book) spilled to disk under
# the memory limit and made preparing the shards grow faster than the book.
ORDER = {t: sql.rsplit("ORDER BY", 1)[1].strip() for t, sql in PER_HOUSEHOLD.items()}
UNSORTED = {t: sql.rsplit("ORDER BY", 1)[0] for t, sql in PER_HOUSEHOLD.items()}

REFERENCE = {
    "securities": "SELECT * FROM in_securities WHERE security_id IS NOT NULL "
                  "QUALIFY row_number() OVER (PARTITION BY security_id) = 1 ORDER BY security_id",
    "targets": "SELECT * FROM in_targets ORDER BY model_id, asset_class",
    "model_securities": "SELECT * FROM in_model_securities "
                        "ORDER BY model_id, asset_class, rank, security_id",
    "menus": "SELECT * FROM in_menus ORDER BY menu_id, security_id",
    "model_glide_paths": "SELECT model_id, effective_date, asset_class, weight FROM in_glide_paths "
                         "WHERE model_id IS NOT NULL AND household_id IS NULL "
                         "ORDER BY model_id, effective_date, asset_class, weight",
}


# The estimated cost of solving a household, in lot-equivalents: model size (and
# solve time) grows with its lots; each account adds cash and buy columns and a row.
COST_PER_HOUSEHOLD = 40
COST_PER_ACCOUNT = 20
# Shards per worker at least, so the last shards to finish are small against the run.
SHARDS_PER_WORKER = 4


@dataclass(frozen=True)
class ShardPlan:
    root: str  # the prepared folder
    shards: tuple[int, ...]
    households_per_shard: tuple[int, ...]
    cost_per_shard: tuple[int, ...] = ()

    @property
    def n_households(self) -> int:
        return sum(self.households_per_shard)


def _sql_path(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def shard_by_cost(con: duckdb.DuckDBPyConnection, shard_size: int, workers: int = 1) -> None:
    """``shard_map`` (household_id, shard, cost): households in id order cut into
    shards of about equal estimated cost (lots, accounts), not of equal count, so
    every worker finishes together and a household with thousands of lots does not
    make its shard the straggler: a household goes to the shard where the middle of
    its cost falls. The book is cut into at least ceil(households / shard_size)
    and at least SHARDS_PER_WORKER-per-worker equal shares of cost; a household
    costlier than a share is (nearly always) a shard of its own."""
    con.execute(f"""CREATE OR REPLACE TEMP TABLE hh_cost AS
        SELECT h.household_id,
               {COST_PER_HOUSEHOLD} + {COST_PER_ACCOUNT} * coalesce(a.n, 0) + coalesce(l.n, 0) AS cost
        FROM (SELECT DISTINCT household_id FROM in_households WHERE household_id IS NOT NULL) h
        LEFT JOIN (SELECT household_id, count(*) AS n FROM in_accounts GROUP BY 1) a
            USING (household_id)
        LEFT JOIN (SELECT m.household_id, count(*) AS n FROM in_lots
                   JOIN acct_hh m USING (account_id) GROUP BY 1) l USING (household_id)""")
    n, total = con.execute("SELECT count(*), coalesce(sum(cost), 0) FROM hh_cost").fetchone()  # type: ignore[misc]
    wanted = max(-(-int(n) // max(int(shard_size), 1)), SHARDS_PER_WORKER * max(int(workers), 1), 1)
    share = max(float(total) / wanted, 1.0)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE shard_map AS
        SELECT household_id, cost,
               (dense_rank() OVER (ORDER BY bucket) - 1)::BIGINT AS shard
        FROM (SELECT household_id, cost,
                     floor((sum(cost) OVER (ORDER BY household_id
                                            ROWS UNBOUNDED PRECEDING) - cost / 2) / {share}) AS bucket
              FROM hh_cost)""")


@dataclass(frozen=True)
class LotPiece:
    """One range of the book's lots, partitioned into the shards by a worker
    (``copy_lot_piece``): ``select`` gives the range's rows as ``in_lots`` has them."""

    root: str  # the prepared folder
    index: int
    select: str
    memory_limit: str  # DuckDB's, as the driver's


# Each worker partitions about this many ranges of the lots (at least a million rows
# each): enough to even out, few enough that ranges x shards files stay manageable.
LOT_PIECES_PER_WORKER = 2
LOT_PIECE_MIN_ROWS = 1_000_000
# A per-household table's COPY: one folder per shard, the shard column in the path only.
_BY_SHARD = "FORMAT PARQUET, PARTITION_BY (shard), OVERWRITE_OR_IGNORE, WRITE_PARTITION_COLUMNS false"
_LOT_MAP = "lot_map.parquet"  # account_id -> household_id, shard: what a piece joins to


def prepare(con: duckdb.DuckDBPyConnection, root: str, shard_size: int,
            workers: int = 1, run_pieces: Callable[[list[LotPiece]], None] | None = None
            ) -> ShardPlan:
    """Write the shard-partitioned copy of the book under ``root``. Expects the
    normalized views of ``read.open_book`` and the tables of ``validate.validate``.

    With ``run_pieces``, the lots (nearly all of a real book) are cut into ranges of
    their file that ``run_pieces`` has partitioned (``copy_lot_piece``, in the
    workers: in this process, DuckDB writing 57 million lots as Parquet took 14 of
    prepare's 24 s), where the lots are local Parquet (one file, or parts with the
    same columns: ``read.row_ranges``); otherwise, and for every other table, this
    connection partitions them."""
    os.makedirs(root, exist_ok=True)
    try:
        return _prepare(con, root, shard_size, workers, run_pieces)
    except duckdb.OutOfMemoryException as e:
        raise over_memory_limit(con, "preparing the shards") from e


def _prepare(con: duckdb.DuckDBPyConnection, root: str, shard_size: int,
             workers: int, run_pieces: Callable[[list[LotPiece]], None] | None) -> ShardPlan:
    shard_by_cost(con, shard_size, workers)
    pieces = _lot_pieces(con, root, workers) if run_pieces is not None else []
    for table, sql in UNSORTED.items():
        if not (table == "lots" and pieces):
            con.execute(f"COPY ({sql}) TO {_sql_path(os.path.join(root, table))} ({_BY_SHARD})")
        con.execute(f"COPY (SELECT * EXCLUDE (shard) FROM ({sql}) LIMIT 0) TO "
                    f"{_sql_path(os.path.join(root, table + '.empty.parquet'))} (FORMAT PARQUET)")
    if pieces:
        assert run_pieces is not None
        run_pieces(pieces)
    for table, sql in REFERENCE.items():
        con.execute(f"COPY ({sql}) TO {_sql_path(os.path.join(root, table + '.parquet'))} "
                    f"(FORMAT PARQUET)")
    counts = con.execute("SELECT shard, count(*), sum(cost) FROM shard_map GROUP BY shard "
                         "ORDER BY shard").fetchall()
    return ShardPlan(root=root, shards=tuple(int(s) for s, _, _ in counts),
                     households_per_shard=tuple(int(n) for _, n, _ in counts),
                     cost_per_shard=tuple(int(c) for _, _, c in counts))


def _lot_pieces(con: duckdb.DuckDBPyConnection, root: str, workers: int) -> list[LotPiece]:
    """The lots' ranges for the workers, and the account map they join to; none
    where ``read.row_ranges`` gives none."""
    total = con.execute("SELECT count(*) FROM in_lots").fetchone()[0]  # type: ignore[index]
    rows = max(-(-int(total) // (LOT_PIECES_PER_WORKER * max(workers, 1))), LOT_PIECE_MIN_ROWS)
    selects = row_ranges(con, "lots", rows)
    if not selects:
        return []
    con.execute("COPY (SELECT m.account_id, m.household_id, s.shard FROM acct_hh m "
                f"JOIN shard_map s USING (household_id)) TO {_sql_path(os.path.join(root, _LOT_MAP))} "
                "(FORMAT PARQUET)")
    limit = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]  # type: ignore[index]
    return [LotPiece(root, k, sql, str(limit)) for k, sql in enumerate(selects)]


def copy_lot_piece(piece: LotPiece) -> None:
    """Partition one range of the lots into the prepared folder's ``lots/shard=N/``
    (one file per shard it touches, named after the range: a retried piece rewrites
    its own files), exactly as the driver's copy of them would. Runs in a worker."""
    con = duckdb.connect(config={"threads": 1, "memory_limit": piece.memory_limit,
                                 "preserve_insertion_order": False})
    try:
        con.execute(
            f"COPY (SELECT l.*, m.household_id, m.shard FROM ({piece.select}) l "
            f"JOIN read_parquet({_sql_path(os.path.join(piece.root, _LOT_MAP))}) m "
            f"USING (account_id)) TO {_sql_path(os.path.join(piece.root, 'lots'))} "
            f"({_BY_SHARD}, FILENAME_PATTERN 'piece{piece.index:05d}_{{i}}')")
    except duckdb.OutOfMemoryException as e:
        raise over_memory_limit(con, f"partitioning lots range {piece.index}") from e
    finally:
        con.close()


@dataclass(frozen=True, eq=False)
class ShardTables:
    """One shard's rows of every per-household table plus the reference tables."""

    shard: int
    tables: dict[str, pa.Table]


_REFERENCE_CACHE: dict[str, dict[str, pa.Table]] = {}


def read_reference(root: str, con: duckdb.DuckDBPyConnection) -> dict[str, pa.Table]:
    """The shared tables of a prepared book, read once per process."""
    if root not in _REFERENCE_CACHE:
        _REFERENCE_CACHE.clear()  # one prepared book at a time per worker process
        _REFERENCE_CACHE[root] = {
            t: con.sql(f"SELECT * FROM read_parquet({_sql_path(os.path.join(root, t + '.parquet'))})"
                       ).to_arrow_table() for t in REFERENCE}
    return _REFERENCE_CACHE[root]


def read_shard(root: str, shard: int, con: duckdb.DuckDBPyConnection | None = None) -> ShardTables:
    """Read one shard's rows through DuckDB; the partition folder is the filter."""
    con = con if con is not None else duckdb.connect()
    out: dict[str, pa.Table] = dict(read_reference(root, con))
    for table in PER_HOUSEHOLD:
        path = os.path.join(root, table, f"shard={shard}")
        # a shard with no rows of this table has no folder: read the empty schema file
        path = (os.path.join(path, "*.parquet") if os.path.isdir(path)
                else os.path.join(root, f"{table}.empty.parquet"))
        out[table] = con.sql(f"SELECT * FROM read_parquet({_sql_path(path)}) "
                             f"ORDER BY {ORDER[table]}").to_arrow_table()
    return ShardTables(shard=shard, tables=out)
