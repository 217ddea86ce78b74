"""Reading the input contract through DuckDB: locating each table (one file or a
folder of parts, Hive partitions allowed, local path or any URI DuckDB reads),
normalizing it to the contract's columns (optional columns defaulted, unknown
ones ignored, money cast to DOUBLE), and fingerprinting it.

Each table becomes a view ``in_<table>`` on the connection, so validation and
sharding are plain SQL over the whole book without loading it into Python.
"""

from __future__ import annotations

import glob as globmod
import os
import re
from dataclasses import dataclass

import duckdb

from hearth.io.contract import INPUT_TABLES, Column, Table
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


# What a contract type is called in messages.
_FRIENDLY = {"VARCHAR": "a string", "VARCHAR[]": "a list of strings (list<string>)",
             "DOUBLE": "a number (float64)", "BIGINT": "an integer (int64)",
             "DATE": "a date (date32)", "BOOLEAN": "a boolean"}
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
            "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL")
_INTEGER = _NUMERIC[:10]


def _is_nested(source_type: str) -> bool:
    return source_type.endswith("]") or source_type.startswith(("STRUCT", "MAP", "UNION"))


def _base(source_type: str) -> str:
    return source_type.split("(")[0]


@dataclass(frozen=True)
class CastCheck:
    """A column whose file type is not the contract's: values that cannot be read as
    the contract type are reported per record by validation (``invalid_type``)."""

    table: str
    column: str
    source_type: str
    sql_type: str
    bad: str  # SQL over ``raw_<table>``: true for a value that cannot be read


def _column_expr(table: Table, c: Column, source_type: str) -> tuple[str | None, CastCheck | None]:
    """(SQL reading the column as its contract type, or None when no value of the file's
    type can be; the per-record check when some values may fail)."""
    col = _ident(c.name)
    target = c.sql_type
    if source_type == target:
        return col, None
    base = _base(source_type)
    check = None
    if target == "VARCHAR":
        if _is_nested(source_type):
            return None, None
        return f"CAST({col} AS VARCHAR)", None
    if target == "VARCHAR[]":
        if source_type.endswith("[]"):
            return f"TRY_CAST({col} AS VARCHAR[])", None
        if base != "VARCHAR":
            return None, None
        # a string column can hold lists written as '[a, b]'; a bare word is no list
        expr = f"TRY_CAST({col} AS VARCHAR[])"
        return expr, CastCheck(table.name, c.name, source_type, target,
                               f"{col} IS NOT NULL AND {expr} IS NULL")
    if _is_nested(source_type):
        return None, None
    expr = f"TRY_CAST({col} AS {target})"
    lossless = ((target == "DOUBLE" and base in _NUMERIC)
                or (target == "BIGINT" and base in _INTEGER and base not in ("UBIGINT", "HUGEINT",
                                                                             "UHUGEINT"))
                or (target == "DATE" and base == "DATE"))
    if not lossless:
        bad = f"{col} IS NOT NULL AND {expr} IS NULL"
        if target == "BIGINT" and base in _NUMERIC:  # 1.5 would round to 2: a rank is whole
            bad = f"{col} IS NOT NULL AND ({expr} IS NULL OR {expr} <> {col})"
        check = CastCheck(table.name, c.name, source_type, target, bad)
    return expr, check


def _normalized_select(table: Table, present: dict[str, str], source: str
                       ) -> tuple[str, list[CastCheck]]:
    """The view of a table in the contract's columns and types, and the per-record type
    checks it needs. Raises InputError for a required column whose file type can hold
    no value of the contract type (a list where an id is expected)."""
    exprs = []
    checks: list[CastCheck] = []
    for c in table.columns:
        if c.name in present:
            cast, check = _column_expr(table, c, present[c.name])
            if cast is None:
                if c.default is None:
                    raise InputError(
                        f"table {table.name}: column {c.name} is {present[c.name]}, expected "
                        f"{_FRIENDLY[c.sql_type]}; re-export the column with that type "
                        f"(see docs/data-contract.md)")
                # optional: read as absent, and every record that has a value is reported
                check = CastCheck(table.name, c.name, present[c.name], c.sql_type,
                                  f"{_ident(c.name)} IS NOT NULL")
                cast = f"CAST(NULL AS {c.sql_type})"
            if check is not None:
                checks.append(check)
            if c.name.endswith("_id") and c.sql_type == "VARCHAR":
                cast = f"NULLIF({cast}, '')"  # identifiers are non-empty: '' is a missing id
            expr = cast if c.default in (None, "NULL") else f"COALESCE({cast}, {c.default})"
        else:
            expr = f"CAST({c.default} AS {c.sql_type})"
        exprs.append(f"{expr} AS {_ident(c.name)}")
    return f"SELECT {', '.join(exprs)} FROM {source}", checks


def _empty_select(table: Table) -> str:
    cols = ", ".join(f"CAST(NULL AS {c.sql_type}) AS {_ident(c.name)}" for c in table.columns)
    return f"SELECT {cols} WHERE false"


def open_book(root: str, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one normalized view ``in_<table>`` per input table.

    Raises InputError when a required table or a required column is missing, a
    required column has a type that can hold no value of the contract's (a list where
    an id is expected), or a table cannot be read at all: those stop the run (exit
    code 2), since no household could be judged without them. Any other type slip
    (a string where a number or a list is expected, in any column) is recorded in the
    temp table ``input_casts`` and becomes ``invalid_type`` exceptions of the records
    whose values cannot be read; ``raw_<table>`` views show the file as it is.
    """
    con = con if con is not None else duckdb.connect()
    checks: list[CastCheck] = []
    if not _is_uri(root) and not os.path.isdir(root):
        raise InputError(f"input folder {root} does not exist; pass the folder that holds "
                         "households.parquet, accounts.parquet, ...")
    con.execute('CREATE OR REPLACE TEMP TABLE input_sources ("table" VARCHAR, source VARCHAR)')
    for table in INPUT_TABLES.values():
        source = locate(con, root, table.name)
        if source is not None:
            con.execute("INSERT INTO input_sources VALUES (?, ?)", [table.name, source])
        if source is None:
            if table.required:
                raise InputError(f"table {table.name}: not found; expected {root}/{table.name}.parquet "
                                 f"or a folder {root}/{table.name}/ of Parquet parts")
            con.execute(f"CREATE OR REPLACE VIEW in_{table.name} AS {_empty_select(table)}")
            continue
        try:
            present = {r[0]: r[1] for r in
                       con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        except duckdb.Error as e:
            # DuckDB's first line says why; the rest quotes hearth's own SQL back
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"table {table.name}: cannot be read ({why}); re-export it as "
                             "Parquet") from e
        missing = [c for c in table.required_columns if c not in present]
        if missing:
            raise InputError(f"table {table.name}: required column(s) {', '.join(missing)} missing; "
                             f"add them (see docs/data-contract.md)")
        select, table_checks = _normalized_select(table, present, source)
        con.execute(f"CREATE OR REPLACE VIEW in_{table.name} AS {select}")
        con.execute(f"CREATE OR REPLACE VIEW raw_{table.name} AS SELECT * FROM {source}")
        checks.extend(table_checks)
    con.execute('CREATE OR REPLACE TEMP TABLE input_casts ("table" VARCHAR, "column" VARCHAR, '
                "source_type VARCHAR, sql_type VARCHAR, bad VARCHAR)")
    if checks:
        con.executemany("INSERT INTO input_casts VALUES (?, ?, ?, ?, ?)",
                        [(k.table, k.column, k.source_type, k.sql_type, k.bad) for k in checks])
    return con


def _parts(source: str) -> list[str]:
    """The local files behind a table expression of ``locate``."""
    m = re.search(r"read_parquet\('((?:[^']|'')*)'", source)
    if not m:
        return []
    pattern = m.group(1).replace("''", "'")
    return sorted(globmod.glob(pattern, recursive=True)) if not _is_uri(pattern) else [pattern]


def row_ranges(con: duckdb.DuckDBPyConnection, table: str, rows: int) -> list[str] | None:
    """``in_<table>`` cut into SELECTs of about ``rows`` rows each, with the same columns
    and types as the view: consecutive ranges of whole row groups of a single file
    (DuckDB reads only the row groups a ``file_row_number`` range covers), or groups of
    whole files of a folder of parts. None where the table is not local Parquet, would
    be one range, or has parts whose columns differ from the table's."""
    row = con.execute('SELECT source FROM input_sources WHERE "table" = ?', [table]).fetchone()
    files = _parts(row[0]) if row else []
    if row is None or not files or _is_uri(files[0]):
        return None
    source = row[0]
    present = _describe(con, source)
    if "file_row_number" in present:
        return None
    if source == f"read_parquet({_quote(files[0])})":
        ranges = _row_group_ranges(con, files[0], rows)
    else:
        ranges = _file_groups(con, files, rows)
        if any(_describe(con, r) != present for r in ranges):
            return None  # a part without a column, or of another type: the driver's copy
    if len(ranges) < 2:
        return None
    return [_normalized_select(INPUT_TABLES[table], present, r)[0] for r in ranges]


def _describe(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}


def _row_group_ranges(con: duckdb.DuckDBPyConnection, file: str, rows: int) -> list[str]:
    path = _quote(file)
    bounds, start, end = [], 0, 0
    for (n,) in con.execute(f"SELECT any_value(row_group_num_rows) FROM parquet_metadata({path}) "
                            "GROUP BY row_group_id ORDER BY row_group_id").fetchall():
        end += int(n)
        if end - start >= rows:
            bounds.append((start, end))
            start = end
    if end > start:
        bounds.append((start, end))
    return [f"(SELECT * EXCLUDE (file_row_number) FROM read_parquet({path}, file_row_number = true) "
            f"WHERE file_row_number >= {lo} AND file_row_number < {hi})" for lo, hi in bounds]


def _file_groups(con: duckdb.DuckDBPyConnection, files: list[str], rows: int) -> list[str]:
    """Consecutive parts grouped to about ``rows`` rows, each read as ``locate`` reads
    the folder (hive partition columns from the path, columns by name)."""
    listed = "[" + ", ".join(_quote(f) for f in files) + "]"
    counts = dict(con.execute(f"SELECT file_name, num_rows FROM parquet_file_metadata({listed})"
                              ).fetchall())
    groups: list[list[str]] = [[]]
    n = 0
    for f in files:
        if n >= rows:
            groups.append([])
            n = 0
        groups[-1].append(f)
        n += int(counts.get(f, 0))
    return ["read_parquet([" + ", ".join(_quote(f) for f in g) + "], hive_partitioning = true, "
            "union_by_name = true)" for g in groups]


def _unreadable_part(con: duckdb.DuckDBPyConnection, source: str) -> str | None:
    """The first file of a table that DuckDB cannot read through (its footer may
    read while a data page does not)."""
    for part in _parts(source):
        try:
            con.execute(f"SELECT sum(hash(t)) FROM read_parquet({_quote(part)}) t").fetchall()
        except duckdb.Error:
            return part
    return None


def fingerprints(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, object]]:
    """Row count and an order-independent content hash of every normalized input
    table: the first full read of every file, so a file whose data cannot be read
    stops the run here, named (InputError, exit code 2)."""
    out: dict[str, dict[str, object]] = {}
    for name in INPUT_TABLES:
        try:
            rows, digest = con.execute(
                f"SELECT count(*), coalesce(sum(hash(t))::HUGEINT % 18446744073709551557, 0)"
                f"::VARCHAR FROM in_{name} t").fetchone()  # type: ignore[misc]
        except (duckdb.Error, TypeError) as e:
            row = con.execute("SELECT source FROM input_sources WHERE \"table\" = ?",
                              [name]).fetchone()
            bad = _unreadable_part(con, row[0]) if row else None
            where = f"file {bad}" if bad else "its data"
            raise InputError(f"table {name}: {where} cannot be read ({type(e).__name__}: {e}); "
                             "re-export it as Parquet") from e
        out[name] = {"rows": int(rows), "hash": str(digest)}
    return out
