"""Reading the input contract through DuckDB: locating each table (one file or a
folder of parts, Hive partitions allowed, local path or any URI DuckDB reads),
normalizing it to the contract's columns (optional columns defaulted, unknown
ones ignored, money cast to DOUBLE), and fingerprinting it.

Each table becomes a view ``in_<table>`` on the connection, so validation and
sharding are plain SQL over the whole book without loading it into Python.
"""

from __future__ import annotations

import os

import duckdb

from hearth.io.contract import INPUT_TABLES, Table
from hearth.io.errors import InputError


def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def _is_uri(path: str) -> bool:
    return "://" in path


def locate(con: duckdb.DuckDBPyConnection, root: str, table: str) -> str | None:
    """The DuckDB table expression for ``<root>/<table>.parquet`` or ``<root>/<table>/``."""
    root = root.rstrip("/")
    single = f"{root}/{table}.parquet"
    folder = f"{root}/{table}"
    parts = (f"read_parquet({_quote(folder + '/**/*.parquet')}, hive_partitioning = true, "
             "union_by_name = true)")
    if not _is_uri(root):
        if os.path.isfile(single):
            return f"read_parquet({_quote(single)})"
        if os.path.isdir(folder):
            has_parts = any(f.endswith(".parquet") for _, _, fs in os.walk(folder) for f in fs)
            return parts if has_parts else None
        return None
    for expr in (f"read_parquet({_quote(single)})", parts):
        try:
            con.execute(f"DESCRIBE SELECT * FROM {expr}").fetchall()
            return expr
        except duckdb.Error:
            continue
    return None


def _normalized_select(table: Table, present: set[str], source: str) -> str:
    exprs = []
    for c in table.columns:
        if c.name in present:
            cast = (f"CAST({_ident(c.name)} AS {c.sql_type})" if c.sql_type in ("VARCHAR", "VARCHAR[]")
                    else f"TRY_CAST({_ident(c.name)} AS {c.sql_type})")
            expr = cast if c.default in (None, "NULL") else f"COALESCE({cast}, {c.default})"
        else:
            expr = f"CAST({c.default} AS {c.sql_type})"
        exprs.append(f"{expr} AS {_ident(c.name)}")
    return f"SELECT {', '.join(exprs)} FROM {source}"


def _empty_select(table: Table) -> str:
    cols = ", ".join(f"CAST(NULL AS {c.sql_type}) AS {_ident(c.name)}" for c in table.columns)
    return f"SELECT {cols} WHERE false"


def open_book(root: str, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one normalized view ``in_<table>`` per input table.

    Raises InputError when a required table or a required column is missing or a
    table cannot be read at all: those stop the run (exit code 2), since no
    household could be judged without them.
    """
    con = con if con is not None else duckdb.connect()
    if not _is_uri(root) and not os.path.isdir(root):
        raise InputError(f"input folder {root} does not exist; pass the folder that holds "
                         "households.parquet, accounts.parquet, ...")
    for table in INPUT_TABLES.values():
        source = locate(con, root, table.name)
        if source is None:
            if table.required:
                raise InputError(f"table {table.name}: not found; expected {root}/{table.name}.parquet "
                                 f"or a folder {root}/{table.name}/ of Parquet parts")
            con.execute(f"CREATE OR REPLACE VIEW in_{table.name} AS {_empty_select(table)}")
            continue
        try:
            present = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        except duckdb.Error as e:
            raise InputError(f"table {table.name}: cannot be read ({e}); re-export it as Parquet") from e
        missing = [c for c in table.required_columns if c not in present]
        if missing:
            raise InputError(f"table {table.name}: required column(s) {', '.join(missing)} missing; "
                             f"add them (see data-contract.md)")
        con.execute(f"CREATE OR REPLACE VIEW in_{table.name} AS "
                    f"{_normalized_select(table, present, source)}")
    return con


def fingerprints(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, object]]:
    """Row count and an order-independent content hash of every normalized input table."""
    out: dict[str, dict[str, object]] = {}
    for name in INPUT_TABLES:
        rows, digest = con.execute(
            f"SELECT count(*), coalesce(sum(hash(t))::HUGEINT % 18446744073709551557, 0)::VARCHAR "
            f"FROM in_{name} t").fetchone()  # type: ignore[misc]
        out[name] = {"rows": int(rows), "hash": str(digest)}
    return out
