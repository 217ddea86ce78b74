"""Shards are cut by estimated cost (lots, accounts), not by household count."""

from __future__ import annotations

import duckdb
import pytest

from hearth.io.shards import COST_PER_ACCOUNT, COST_PER_HOUSEHOLD, SHARDS_PER_WORKER, shard_by_cost


def _book(lots_per_household: list[int]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    n = len(lots_per_household)
    con.execute(f"CREATE VIEW in_households AS SELECT printf('H%04d', i) AS household_id "
                f"FROM range({n}) t(i)")
    con.execute(f"CREATE VIEW in_accounts AS SELECT printf('H%04d', i) AS household_id, "
                f"printf('H%04d-A', i) AS account_id FROM range({n}) t(i)")
    con.execute("CREATE VIEW acct_hh AS SELECT account_id, household_id FROM in_accounts")
    rows = " UNION ALL ".join(f"SELECT 'H{i:04d}-A' AS account_id FROM range({k})"
                              for i, k in enumerate(lots_per_household) if k)
    con.execute(f"CREATE VIEW in_lots AS {rows}")
    return con


def _shards(con) -> list[tuple[int, int, int]]:
    return con.execute("SELECT shard, count(*), sum(cost) FROM shard_map GROUP BY shard "
                       "ORDER BY shard").fetchall()


def test_equal_cost_not_equal_count():
    # 40 households of 100 lots, then 4 of 5,000: by count the last shard would be
    # 40x the others; by cost the large households sit in shards of their own
    con = _book([100] * 40 + [5_000] * 4)
    shard_by_cost(con, shard_size=500, workers=2)
    shards = _shards(con)
    unit = COST_PER_HOUSEHOLD + COST_PER_ACCOUNT
    share = (40 * (100 + unit) + 4 * (5_000 + unit)) / (SHARDS_PER_WORKER * 2)
    big = [s for s in shards if s[2] >= 5_000]
    assert len(big) == 4 and all(n == 1 for _, n, _ in big)  # one large household each
    small = [c for _, n, c in shards if n > 1]
    assert small and max(small) <= share + 100 + unit  # the small ones in shares of cost
    # contiguous in household id, every household exactly once
    ids = con.execute("SELECT household_id, shard FROM shard_map ORDER BY household_id").fetchall()
    assert len(ids) == 44
    assert [s for _, s in ids] == sorted(s for _, s in ids)


@pytest.mark.parametrize("workers", [1, 2, 8])
def test_at_least_four_shards_per_worker_and_shard_size_caps_count(workers):
    con = _book([10] * 200)
    shard_by_cost(con, shard_size=20, workers=workers)
    shards = _shards(con)
    assert len(shards) >= max(200 // 20, SHARDS_PER_WORKER * workers)
    counts = [n for _, n, _ in shards]
    assert max(counts) - min(counts) <= 1  # equal households: equal cost, equal counts


def test_preparing_past_duckdbs_memory_cap_names_the_setting(tmp_path):
    # validation fits under the run's cap; the shard copy is then made under a cap of
    # 2 MB it cannot fit in: an InputError (exit 2) that names duckdb_memory_limit,
    # not DuckDB's raw OutOfMemoryException (exit 1)
    from hearth.batch.generate import generate
    from hearth.errors import InputError
    from hearth.io.read import open_book
    from hearth.io.shards import prepare
    from hearth.io.validate import validate

    book = str(tmp_path / "book")
    generate(book, households=300, seed=1)
    con = duckdb.connect(config={"memory_limit": "1GB", "preserve_insertion_order": False})
    open_book(book, con)
    validate(con, "2026-11-20")
    con.execute("SET memory_limit = '2MB'")
    with pytest.raises(InputError, match="preparing the shards needs more memory than "
                                         "DuckDB's limit of .* raise duckdb_memory_limit"):
        prepare(con, str(tmp_path / "prep"), 64, workers=2)


@pytest.mark.parametrize("layout", ["row groups", "parts"])
def test_lots_partitioned_in_ranges_are_the_shards_the_driver_would_cut(tmp_path, monkeypatch,
                                                                         layout):
    # The lots file rewritten in row groups of 500 rows, or as a folder of 12 parts in
    # two hive partitions, so that it is cut into several ranges; each range
    # partitioned by copy_lot_piece (as a worker does) must give every shard exactly
    # the lots the driver's own copy gives it.
    import os

    import pyarrow.parquet as pq

    from hearth.batch.generate import generate
    from hearth.io import shards
    from hearth.io.read import open_book
    from hearth.io.validate import validate

    book = str(tmp_path / "book")
    generate(book, households=60, seed=3)
    lots = pq.read_table(f"{book}/lots.parquet")
    if layout == "row groups":
        pq.write_table(lots, f"{book}/lots.parquet", row_group_size=500)
    else:
        os.remove(f"{book}/lots.parquet")
        n = lots.num_rows
        for i in range(12):
            folder = f"{book}/lots/region={i % 2}"
            os.makedirs(folder, exist_ok=True)
            lo, hi = i * n // 12, (i + 1) * n // 12
            pq.write_table(lots.slice(lo, hi - lo), f"{folder}/part-{i:02d}.parquet")
    monkeypatch.setattr(shards, "LOT_PIECE_MIN_ROWS", 1)

    def prepared(folder, run_pieces):
        con = duckdb.connect(config={"preserve_insertion_order": False})
        open_book(book, con)
        validate(con, "2026-11-20")
        return shards.prepare(con, str(tmp_path / folder), 10, workers=2, run_pieces=run_pieces)

    ran: list[int] = []

    def in_ranges(pieces):
        for p in reversed(pieces):  # in any order, as workers finish
            shards.copy_lot_piece(p)
            ran.append(p.index)
        shards.copy_lot_piece(pieces[0])  # a retried range rewrites its own files

    plan = prepared("ranges", in_ranges)
    assert len(ran) >= 4 and lots.num_rows > 4 * 500
    whole = prepared("whole", None)
    assert plan.shards == whole.shards and len(plan.shards) >= 8
    for s in plan.shards:
        a = shards.read_shard(plan.root, s).tables["lots"]
        b = shards.read_shard(whole.root, s).tables["lots"]
        assert a.num_rows > 0 and a.equals(b), s
    assert sum(shards.read_shard(plan.root, s).tables["lots"].num_rows
               for s in plan.shards) == lots.num_rows


def test_parts_with_other_columns_are_left_to_the_drivers_copy(tmp_path):
    # one part carries a column the others lack: a range of the others would not have
    # the table's columns, so the lots are not cut into ranges
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    from hearth.batch.generate import generate
    from hearth.io.read import open_book, row_ranges

    book = str(tmp_path / "book")
    generate(book, households=20, seed=4, profile="small")
    lots = pq.read_table(f"{book}/lots.parquet")
    os.remove(f"{book}/lots.parquet")
    os.makedirs(f"{book}/lots")
    half = lots.num_rows // 2
    pq.write_table(lots.slice(0, half), f"{book}/lots/part-0.parquet")
    rest = lots.slice(half)
    pq.write_table(rest.append_column("note", pa.array(["x"] * rest.num_rows)),
                   f"{book}/lots/part-1.parquet")
    con = open_book(book, duckdb.connect())
    assert row_ranges(con, "lots", 1) is None
    pq.write_table(rest, f"{book}/lots/part-1.parquet")  # the same columns: two ranges
    con = open_book(book, duckdb.connect())
    assert len(row_ranges(con, "lots", 1) or []) == 2
