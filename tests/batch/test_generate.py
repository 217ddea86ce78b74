"""The synthetic books: the realistic profile has the shape it promises (accounts,
lots from monthly buys, direct-indexed sleeves, gains and losses of both terms,
wash-sale history) and passes validation but for the households made bad on
purpose; the small profile is the toy book the other tests were written for."""

from __future__ import annotations

import hashlib
import os

import duckdb
import pyarrow.parquet as pq
import pytest

from hearth.batch.generate import CHUNK, DEFAULT_AS_OF, generate
from hearth.io.read import open_book
from hearth.io.validate import validate

N = 30


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("realistic") / "book")
    generate(path, N, seed=4, bad_fraction=0.0)
    return path


def _sql(book: str, query: str) -> list[tuple]:
    con = duckdb.connect()
    for t in ("lots", "accounts", "securities", "transactions", "households"):
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM '{os.path.join(book, t)}.parquet'")
    return con.execute(query).fetchall()


def _digests(path: str) -> dict[str, str]:
    return {f: hashlib.sha256(open(os.path.join(path, f), "rb").read()).hexdigest()
            for f in sorted(os.listdir(path))}


def test_the_same_seed_writes_the_same_bytes(book, tmp_path):
    again = str(tmp_path / "again")
    generate(again, N, seed=4, bad_fraction=0.0)
    assert _digests(again) == _digests(book)
    assert len(_digests(book)) == 17  # every input table the realistic profile fills
    other = str(tmp_path / "other")
    generate(other, N, seed=5, bad_fraction=0.0)
    assert _digests(other)["lots.parquet"] != _digests(book)["lots.parquet"]


def test_households_have_one_to_six_accounts_and_lots_by_the_thousand(book):
    per_hh = _sql(book, """
        SELECT h.household_id, count(DISTINCT a.account_id), count(l.lot_id)
        FROM households h JOIN accounts a USING (household_id) JOIN lots l USING (account_id)
        GROUP BY 1 ORDER BY 3""")
    assert len(per_hh) == N
    assert all(1 <= n_acct <= 6 for _, n_acct, _ in per_hh)
    lots = [n for _, _, n in per_hh]
    median = lots[N // 2]
    assert 700 <= median <= 4500, lots
    assert lots[-1] <= 17_000 and lots[-1] >= 3000, lots
    assert lots[0] >= 36  # one account, three classes, a year of monthly buys


def test_fund_positions_are_monthly_buys_over_one_to_fifteen_years(book):
    # a position is an account's holding of a wash group (an ETF and its share class)
    sizes = _sql(book, """
        SELECT count(*), min(acquired_date), max(acquired_date)
        FROM lots JOIN securities s USING (security_id)
        WHERE s.security_id NOT LIKE 'EQ%' GROUP BY account_id, s.wash_group""")
    assert all(12 <= n <= 180 for n, _, _ in sizes)
    assert min(n for n, _, _ in sizes) < 30 and max(n for n, _, _ in sizes) > 150
    spans = [(last - first).days for _, first, last in sizes]
    assert max(spans) > 12 * 365 and min(spans) >= 300


def test_direct_indexed_accounts_hold_hundreds_of_stocks(book):
    sleeves = _sql(book, """
        SELECT a.account_type, count(DISTINCT security_id), min(n), max(n) FROM (
            SELECT account_id, security_id, count(*) AS n FROM lots
            WHERE security_id LIKE 'EQ%' GROUP BY ALL) JOIN accounts a USING (account_id)
        GROUP BY a.account_id, a.account_type""")
    assert len(sleeves) >= 3
    assert all(t == "taxable" and 100 <= n <= 500 and 1 <= lo and hi <= 20
               for t, n, lo, hi in sleeves)
    assert max(n for _, n, _, _ in sleeves) >= 250
    # stocks are their own wash groups and carry a sector
    assert _sql(book, "SELECT count(*) FROM securities WHERE security_id LIKE 'EQ%' "
                      "AND (wash_group <> security_id OR sector IS NULL)") == [(0,)]
    assert _sql(book, "SELECT count(*) FROM securities WHERE security_id LIKE 'EQ%'")[0][0] >= 300


def test_taxable_lots_sit_at_gains_and_losses_of_both_terms(book):
    run = DEFAULT_AS_OF
    rows = dict(((long, gain), n) for long, gain, n in _sql(book, f"""
        SELECT (DATE '{run}' - acquired_date) > 365, quantity * s.price > cost_basis, count(*)
        FROM lots JOIN securities s USING (security_id) JOIN accounts a USING (account_id)
        WHERE a.account_type = 'taxable' GROUP BY ALL"""))
    total = sum(rows.values())
    for term in (False, True):
        for gain in (False, True):
            assert rows.get((term, gain), 0) >= 0.01 * total, rows


def test_equivalents_share_a_wash_group_and_partners_do_not(book):
    groups = dict(_sql(book, "SELECT security_id, wash_group FROM securities"))
    assert groups["VTI"] == groups["VTSAX"] and groups["BND"] == groups["VBTLX"]
    assert len({groups[s] for s in ("VTI", "ITOT", "SCHB", "FXAIX")}) == 4


def test_transactions_hold_recent_buys_and_loss_harvests(book):
    run = DEFAULT_AS_OF
    buys, sells, losses = _sql(book, f"""
        SELECT count(*) FILTER (WHERE side = 'buy'), count(*) FILTER (WHERE side = 'sell'),
               count(*) FILTER (WHERE side = 'sell' AND realized_gain < 0)
        FROM transactions WHERE trade_date > DATE '{run}' - 30 AND trade_date < DATE '{run}'""")[0]
    assert buys >= N and losses >= 3 and sells >= losses
    # every lot bought in the window is in the history, as a buy of the same shares
    missing = _sql(book, f"""
        SELECT count(*) FROM lots l WHERE acquired_date > DATE '{run}' - 45 AND NOT EXISTS (
            SELECT 1 FROM transactions t WHERE t.account_id = l.account_id AND t.side = 'buy'
            AND t.security_id = l.security_id AND t.trade_date = l.acquired_date
            AND abs(t.quantity - l.quantity) < 1e-9)""")
    assert missing == [(0,)]


def test_validation_flags_only_the_households_made_bad(book, tmp_path):
    con = open_book(book)
    validate(con, DEFAULT_AS_OF)
    assert con.execute("SELECT count(*) FROM exceptions_found").fetchone() == (0,)

    bad = str(tmp_path / "bad")
    generate(bad, N, seed=4, bad_fraction=0.2)
    con = open_book(bad)
    validate(con, DEFAULT_AS_OF)
    found = con.execute('SELECT "table", code, household_id, record_id FROM exceptions_found').fetchall()
    assert len(found) >= 2
    assert {(t, c) for t, c, _, _ in found} <= {("lots", "negative_quantity"), ("lots", "unknown_security")}
    assert len({h for _, _, h, _ in found}) == len(found)  # one bad lot per bad household
    assert all(r == f"{h}-A0-L00000" for _, _, h, r in found)


def test_chunks_make_one_book(tmp_path):
    path = str(tmp_path / "two-chunks")
    stats = generate(path, CHUNK + 3, seed=1, bad_fraction=0.0)
    assert pq.ParquetFile(os.path.join(path, "lots.parquet")).metadata.num_row_groups >= 2
    (n_hh, first, last), = _sql(path, "SELECT count(DISTINCT household_id), min(household_id), "
                                      "max(household_id) FROM households")
    assert (n_hh, first, last) == (CHUNK + 3, "H0000000", f"H{CHUNK + 2:07d}")
    (n_lots, n_ids), = _sql(path, "SELECT count(*), count(DISTINCT lot_id) FROM lots")
    assert n_lots == n_ids == stats.lots
    (n_acct, n_acct_ids, orphans), = _sql(path, """
        SELECT count(*), count(DISTINCT account_id),
               count(*) FILTER (WHERE household_id NOT IN (SELECT household_id FROM households))
        FROM accounts""")
    assert n_acct == n_acct_ids == stats.accounts and orphans == 0


def test_the_small_profile_is_the_toy_book(tmp_path):
    stats = generate(str(tmp_path / "small"), 50, seed=0, profile="small")
    assert (stats.accounts, stats.lots) == (98, 1008)


@pytest.mark.parametrize("kwargs, message", [
    ({"profile": "huge"}, "profile must be one of realistic, small"),
    ({"households": 0}, "households must be at least 1"),
])
def test_bad_arguments_are_refused(tmp_path, kwargs, message):
    args = {"households": 5, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(str(tmp_path / "x"), args.pop("households"), **args)
    assert not os.path.exists(tmp_path / "x")


def test_a_few_households_glide_from_their_models_weights(tmp_path):
    """About 4% of households have a glide path of their own: their model's weights on
    the as-of date (tonight's target is the model's), 15 points of equity moved to
    us_bond ten years on; the book still validates clean."""
    import numpy as np

    from hearth.batch.generate import MODELS
    from hearth.io.households import glide_targets

    path = str(tmp_path / "book")
    generate(path, 500, seed=9, bad_fraction=0.0)
    paths = pq.read_table(os.path.join(path, "glide_paths.parquet"))
    households = pq.read_table(os.path.join(path, "households.parquet")).to_pydict()
    model_of = dict(zip(households["household_id"], households["model_id"]))
    owners = set(paths.column("household_id").to_pylist())
    assert 10 <= len(owners) <= 35, len(owners)  # 4% of 500 is 20
    assert paths.column("model_id").null_count == paths.num_rows
    equity = ("us_equity", "intl_equity", "em_equity", "reit")
    for years, moved in ((0, 0.0), (5, 0.075), (10, 0.15)):
        day = np.datetime64(DEFAULT_AS_OF, "D") + np.timedelta64(365 * years, "D")
        for hid, (classes, w) in glide_targets(paths, "household_id", day).items():
            model = MODELS[model_of[hid]]
            got = dict(zip(classes, w))
            assert sum(got.values()) == pytest.approx(1.0)
            eq_model = sum(v for k, v in model.items() if k in equity)
            eq_now = sum(v for k, v in got.items() if k in equity)
            assert eq_now == pytest.approx(eq_model - min(moved, eq_model * years / 10), abs=1e-6)
            if years == 0:
                assert got == pytest.approx({k: v for k, v in model.items()}, abs=1e-6)
    con = open_book(path)
    validate(con, DEFAULT_AS_OF)
    assert con.execute("SELECT count(*) FROM exceptions_found").fetchone() == (0,)
