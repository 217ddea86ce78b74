"""Helpers shared by the benchmarks: a deterministic book, cached on disk, the
households of any book as model objects (read through the same io path as a run),
and a book's shape (lots per household)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator

import numpy as np

from hearth.batch.generate import DEFAULT_AS_OF, generate
from hearth.io.households import HouseholdInput, households, reference
from hearth.io.read import open_book
from hearth.io.shards import prepare, read_shard
from hearth.io.validate import validate

BOOKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".books")


def book(n: int, seed: int = 0, profile: str = "realistic") -> str:
    """The generated book of ``n`` households (``profile`` of ``generate``), made once."""
    path = os.path.join(BOOKS, f"book-{profile}-{n}-s{seed}")
    if not os.path.exists(os.path.join(path, "households.parquet")):
        t0 = time.perf_counter()
        stats = generate(path, n, seed=seed, profile=profile)
        print(f"generated {n} households ({profile}, {stats.lots:,} lots) in "
              f"{time.perf_counter() - t0:.1f}s -> {path}")
    return path


def book_households(path: str, shard_size: int = 500,
                    run_date: str = DEFAULT_AS_OF) -> Iterator[HouseholdInput]:
    """Every household of the book at ``path`` (any book in the contract: a folder of
    tables or of Parquet parts, or a URI), validated for ``run_date``. The shards are
    prepared in a temporary folder, so the book itself is only read."""
    con = open_book(path)
    validate(con, run_date)
    day = np.datetime64(run_date, "D")
    with tempfile.TemporaryDirectory(prefix="hearth-bench-prep-") as prep:
        plan = prepare(con, prep, shard_size)
        for shard in plan.shards:
            data = read_shard(prep, shard)
            yield from households(data, day, reference(data.tables, 5.0))


def book_shape(path: str) -> dict[str, float]:
    """Households, accounts, lots and the distribution of lots per household of the
    book at ``path`` (read as a run reads it)."""
    con = open_book(path)
    n_hh, n_acct, n_lots = con.execute(
        "SELECT (SELECT count(*) FROM in_households), (SELECT count(*) FROM in_accounts), "
        "(SELECT count(*) FROM in_lots)").fetchone()  # type: ignore[misc]
    median, p90, top = con.execute("""
        SELECT coalesce(quantile_cont(n, 0.5), 0), coalesce(quantile_cont(n, 0.9), 0),
               coalesce(max(n), 0)
        FROM (SELECT h.household_id, count(l.account_id) AS n FROM in_households h
              LEFT JOIN in_accounts a USING (household_id)
              LEFT JOIN in_lots l USING (account_id) GROUP BY 1)""").fetchone()  # type: ignore[misc]
    return {"households": int(n_hh), "accounts": int(n_acct), "lots": int(n_lots),
            "lots_per_household_median": float(median), "lots_per_household_p90": float(p90),
            "lots_per_household_max": float(top)}
