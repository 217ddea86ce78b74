"""Helpers shared by the benchmarks: a deterministic book, cached on disk, and the
households of a book as model objects (read through the same io path as a run)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import numpy as np

from hearth.batch.generate import DEFAULT_AS_OF, generate
from hearth.io.households import HouseholdInput, households, reference
from hearth.io.read import open_book
from hearth.io.shards import prepare, read_shard
from hearth.io.validate import validate

BOOKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".books")


def book(n: int, seed: int = 0) -> str:
    path = os.path.join(BOOKS, f"book-{n}-s{seed}")
    if not os.path.exists(os.path.join(path, "households.parquet")):
        t0 = time.perf_counter()
        generate(path, n, seed=seed)
        print(f"generated {n} households in {time.perf_counter() - t0:.1f}s -> {path}")
    return path


def book_households(path: str, shard_size: int = 500) -> Iterator[HouseholdInput]:
    con = open_book(path)
    validate(con, DEFAULT_AS_OF)
    prep = os.path.join(path + ".prep", str(shard_size))
    plan = prepare(con, prep, shard_size)
    day = np.datetime64(DEFAULT_AS_OF, "D")
    for shard in plan.shards:
        data = read_shard(prep, shard)
        yield from households(data, day, reference(data.tables, 5.0))
