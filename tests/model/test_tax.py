"""The tax module on its own: holding periods and every branch of the netting."""

from __future__ import annotations

import numpy as np
import pytest

from hearth.model.tax import gains_by_term, long_term, net_capital_gains, sold_gain, tax_due

RATES = dict(st_rate=0.37, lt_rate=0.20, ordinary_rate=0.37)


def net(st, lt, carry_st=0.0, carry_lt=0.0, filing="single"):
    return net_capital_gains(st, lt, carryforward_st=carry_st, carryforward_lt=carry_lt,
                             filing_status=filing, **RATES)


@pytest.mark.parametrize("acquired, run_date, expected", [
    ("2025-01-10", "2026-01-10", False),  # the anniversary itself is short-term
    ("2025-01-10", "2026-01-11", True),
    ("2024-02-29", "2025-02-28", False),  # Feb 29: anniversary is Feb 28 ...
    ("2024-02-29", "2025-03-01", True),   # ... so long-term from Mar 1
    ("2023-12-31", "2024-12-31", False),
    ("2023-12-31", "2025-01-01", True),
])
def test_holding_period(acquired, run_date, expected):
    got = long_term(np.array([acquired], dtype="datetime64[D]"), np.datetime64(run_date))
    assert bool(got[0]) is expected


def test_both_gains():
    t = net(10_000, 20_000)
    assert t.tax == pytest.approx(10_000 * 0.37 + 20_000 * 0.20)  # 7,700


def test_both_losses_offset_3000_st_first():
    t = net(-2_000, -5_000)
    assert t.ordinary_offset == 3_000
    assert t.tax == pytest.approx(-1_110.0)
    assert (t.carryforward_st, t.carryforward_lt) == (0.0, 4_000.0)


def test_short_loss_against_long_gain_leaves_gain():
    t = net(-4_000, 10_000)
    assert (t.taxable_st, t.taxable_lt) == (0.0, 6_000.0)
    assert t.tax == pytest.approx(1_200.0)


def test_short_loss_against_long_gain_leaves_short_loss():
    t = net(-12_000, 10_000)
    assert t.ordinary_offset == 2_000 and t.tax == pytest.approx(-740.0)
    assert (t.carryforward_st, t.carryforward_lt) == (0.0, 0.0)


def test_long_loss_against_short_gain_leaves_gain():
    t = net(5_000, -2_000)
    assert t.taxable_st == 3_000 and t.tax == pytest.approx(1_110.0)


def test_long_loss_against_short_gain_leaves_long_loss_carried():
    t = net(5_000, -9_000)
    assert t.tax == pytest.approx(-1_110.0)
    assert (t.carryforward_st, t.carryforward_lt) == (0.0, 1_000.0)


def test_married_separate_offset_is_1500():
    t = net(-2_000, -5_000, filing="married_separate")
    assert t.ordinary_offset == 1_500 and t.tax == pytest.approx(-555.0)
    assert (t.carryforward_st, t.carryforward_lt) == (500.0, 5_000.0)


def test_carryforwards_keep_their_character():
    # ST 5,000 - 2,000 carried ST = 3,000; LT 0 - 1,000 carried LT = -1,000; net ST 2,000
    t = net(5_000, 0, carry_st=2_000, carry_lt=1_000)
    assert t.taxable_st == 2_000 and t.tax == pytest.approx(740.0)


def test_tax_due_is_the_difference_with_and_without_the_run():
    due = tax_due(ytd_st=10_000, ytd_lt=0, run_st=-4_000, run_lt=0, carryforward_st=0,
                  carryforward_lt=0, filing_status="single", **RATES)
    assert due == pytest.approx(6_000 * 0.37 - 10_000 * 0.37)  # -1,480


def test_tax_due_is_zero_when_gains_fill_unused_losses():
    # YTD net loss of 10,000 already uses the full 3,000 offset; 5,000 of new gains
    # only shrink the carryforward, so no extra tax this year.
    due = tax_due(ytd_st=0, ytd_lt=-10_000, run_st=0, run_lt=5_000, carryforward_st=0,
                  carryforward_lt=0, filing_status="single", **RATES)
    assert due == pytest.approx(0.0)


def test_holding_period_matches_the_anniversary_rule_everywhere():
    """Every acquisition day of 2022-2025 against every run day of 2024-2026 (two
    leap days in range): long-term exactly when the anniversary is before the run."""
    import datetime

    def anniversary(d: datetime.date) -> datetime.date:
        try:
            return d.replace(year=d.year + 1)
        except ValueError:  # Feb 29 -> Feb 28
            return datetime.date(d.year + 1, 2, 28)

    start = datetime.date(2022, 1, 1)
    days = [start + datetime.timedelta(i) for i in range(4 * 365 + 1)]
    acquired = np.array(days, dtype="datetime64[D]")
    anniversaries = np.array([anniversary(d) for d in days], dtype="datetime64[D]")
    for i in range(3 * 365):
        run = np.datetime64(datetime.date(2024, 1, 1) + datetime.timedelta(i))
        assert (long_term(acquired, run) == (anniversaries < run)).all(), run


def test_sold_gain_shares_the_basis_per_share():
    # 4 of 10 shares at $100, basis $1,200: 400 - 480 = -80; an empty lot realizes nothing
    got = sold_gain(np.array([4.0, 0.0, 0.0]), np.array([10.0, 5.0, 0.0]),
                    np.array([1_200.0, 100.0, 0.0]), np.array([100.0, 100.0, 100.0]))
    assert got.tolist() == [-80.0, 0.0, 0.0]


def test_gains_by_term_leaves_disallowed_losses_unrealized():
    gain = np.array([-200.0, -240.0, 500.0, -100.0])
    is_long = np.array([True, True, False, False])
    assert gains_by_term(gain, is_long) == (400.0, -440.0)
    # 200 and 80 of the long-term losses are washed: LT -160
    assert gains_by_term(gain, is_long, np.array([200.0, 80.0, 0.0, 0.0])) == (400.0, -160.0)
    # a disallowed amount never exceeds the lot's loss, and a gain has none to disallow
    assert gains_by_term(gain, is_long, np.array([0.0, 0.0, 50.0, 300.0])) == (500.0, -440.0)
