"""The checker's wash sales (IRC 1091, Rev. Rul. 2008-5): the classic bugs of wash-sale
tools, each with its numbers. Run date 2026-11-20, window 30 days: from 2026-10-21."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hearth.model.checker import CheckRules, check_proposal, wash_sales
from hearth.model.household import TAXABLE, TRADITIONAL, Household, Restriction

TAX, IRA = 0, 1
STK, STK2, BND = 0, 1, 2


@pytest.fixture
def book(household):
    """A taxable account (cash $0) and a traditional IRA (cash $30,000). STK ($100) and
    STK2 ($50) are substantially identical (wash group STK); BND ($100). No trading
    cost. Lots as (id, account, security, shares, basis, acquired)."""
    def make(*lots, **kw) -> Household:
        base = dict(
            account_ids=("tax", "ira"), account_type=[TAXABLE, TRADITIONAL],
            cash=[0.0, 30_000.0], security_ids=("STK", "STK2", "BND"), asset_class=[0, 0, 1],
            price=[100.0, 50.0, 100.0], classes=("stocks", "bonds", "cash"),
            target=[0.6, 0.4, 0.0], wash_group=[0, 0, 1], wash_groups=("STK", "BND"),
            cost_rate=[0.0, 0.0, 0.0], lot_ids=tuple(x[0] for x in lots),
            lot_account=[x[1] for x in lots], lot_security=[x[2] for x in lots],
            quantity=[float(x[3]) for x in lots], cost_basis=[float(x[4]) for x in lots],
            acquired=[x[5] for x in lots])
        base.update(kw)
        return household(**base)
    return make


def txns(*rows):
    """Transactions as (account, security, date, side, quantity, realized_gain)."""
    return dict(
        txn_group=np.array([[0, 0, 1][r[1]] for r in rows], dtype=np.int64),
        txn_account=np.array([r[0] for r in rows], dtype=np.int64),
        txn_security=np.array([r[1] for r in rows], dtype=np.int64),
        txn_date=np.array([r[2] for r in rows], dtype="datetime64[D]"),
        txn_buy=np.array([r[3] == "buy" for r in rows]),
        txn_quantity=np.array([r[4] for r in rows], dtype=float),
        txn_realized_gain=np.array([r[5] for r in rows], dtype=float))


def _arrays(buys):
    return (np.array([b[0] for b in buys], dtype=np.int64),
            np.array([b[1] for b in buys], dtype=np.int64),
            np.array([b[2] for b in buys], dtype=float))


def washes(hh, sell, buys=()):
    return wash_sales(hh, np.array(sell, dtype=float), *_arrays(buys))


def violations(hh, sell, buys=(), disallowed=None):
    sell = np.array(sell, dtype=float)
    ba, bs, bq = _arrays(buys)
    proceeds = np.bincount(hh.lot_account, weights=sell * hh.price[hh.lot_security],
                           minlength=hh.n_accounts)
    spent = np.bincount(ba, weights=bq * hh.price[bs], minlength=hh.n_accounts)
    final = hh.cash + hh.contribution - hh.withdrawal + proceeds - spent
    return check_proposal(hh, sell, ba, bs, bq, final, CheckRules(),
                          disallowed_loss=None if disallowed is None else np.array(disallowed))


def rules(hh, sell, buys=(), disallowed=None):
    return {v.rule for v in violations(hh, sell, buys, disallowed)}


# -- sold shares are never their own replacement ------------------------------------------------
def test_the_only_lot_bought_25_days_ago_sold_whole_funds_the_withdrawal(book):
    # 10 STK bought 2026-10-26 at $120, now $100: a $200 loss; the $1,000 withdrawal
    # needs all of it. Its purchase is the lot itself, which is sold: not washed.
    lot = ("L0", TAX, STK, 10, 1_200, "2026-10-26")
    hh = book(lot, withdrawal=[1_000.0, 0.0],
              **txns((TAX, STK, "2026-10-26", "buy", 10, np.nan)))
    ws = washes(hh, [10])
    assert ws.loss_sale.tolist() == [True]
    assert ws.washed.tolist() == [0.0] and ws.disallowed.tolist() == [0.0]
    assert rules(hh, [10]) == set()
    assert rules(hh, [10], disallowed=[0.0]) == set()
    assert rules(dataclasses.replace(hh, withdrawal=np.zeros(2)), [10]) == set()  # unforced too


def test_the_unsold_remainder_of_a_recent_lot_is_not_its_replacement(book):
    # sell 4 of 10 shares bought 2026-10-26 at $120: $80 loss; the 6 left are the same lot
    recent = ("L0", TAX, STK, 10, 1_200, "2026-10-26")
    hh = book(recent)
    assert washes(hh, [4]).disallowed.tolist() == [0.0]
    assert rules(hh, [4]) == set()


def test_a_partial_wash_disallows_only_the_matched_part(book):
    # as above, plus 3 shares bought 2026-11-15: they wash 3 of the 4 sold, $20 each
    hh = book(("L0", TAX, STK, 10, 1_200, "2026-10-26"), ("L1", TAX, STK, 3, 300, "2026-11-15"))
    ws = washes(hh, [4, 0])
    assert ws.washed.tolist() == [3.0, 0.0]
    assert ws.disallowed.tolist() == [60.0, 0.0]  # of a realized loss of $80
    found = [v for v in violations(hh, [4, 0], disallowed=[60.0, 0.0])]
    assert [(v.rule, v.record) for v in found] == [("wash_sale_w1", "L0")]  # nothing forces it
    assert "wash group STK" in found[0].message
    assert "3 shares of lot L1 (tax, acquired 2026-11-15)" in found[0].message


# -- each replacement share is used once -------------------------------------------------------
@pytest.fixture
def two_losses(book):
    """L0 8 sh at $125 (2025-01-10, loss $25/sh), L1 6 sh at $140 (2025-06-01, loss
    $40/sh), L2 10 sh bought 2026-11-15 at $98; a $1,000 withdrawal forces the sales."""
    return book(("L0", TAX, STK, 8, 1_000, "2025-01-10"), ("L1", TAX, STK, 6, 840, "2025-06-01"),
                ("L2", TAX, STK, 10, 980, "2026-11-15"), withdrawal=[1_000.0, 0.0])


def test_one_repurchase_is_matched_once_across_two_loss_sales(two_losses):
    hh = two_losses
    ws = washes(hh, [8, 6, 0])
    assert ws.washed.tolist() == [8.0, 2.0, 0.0]  # L0 first (acquired first), then 2 left
    assert ws.disallowed.tolist() == [200.0, 80.0, 0.0]  # 8 x 25, 2 x 40
    assert rules(hh, [8, 6, 0], disallowed=[200.0, 80.0, 0.0]) == set()
    # the classic bug: both sales see all 10 replacement shares (8 x 25, 6 x 40)
    assert rules(hh, [8, 6, 0], disallowed=[200.0, 240.0, 0.0]) == {"wash_sale_declared"}
    assert rules(hh, [8, 6, 0]) == {"wash_sale_declared"}  # nothing declared
    assert rules(hh, [8, 6, 0], disallowed=[200.0, np.nan, np.nan]) == {"wash_sale_declared"}


def test_the_disallowed_loss_is_never_above_the_realized_loss(two_losses):
    hh = two_losses
    # 2 shares sold, 10 replacement shares: 2 x $25 = $50, the whole realized loss, not 10 x 25
    assert washes(hh, [2, 0, 0]).disallowed.tolist() == [50.0, 0.0, 0.0]
    assert "wash_sale_declared" in rules(hh, [2, 0, 0], disallowed=[250.0, 0.0, 0.0])
    assert "wash_sale_declared" not in rules(hh, [2, 0, 0], disallowed=[50.0, 0.0, 0.0])
    assert washes(hh, [0, 6, 0]).disallowed.tolist() == [0.0, 240.0, 0.0]


def test_selling_the_replacement_too_leaves_nothing_washed(two_losses):
    # L2 is at a gain ($2/sh); sold with the loss lots, no replacement shares remain
    assert washes(two_losses, [8, 6, 10]).disallowed.tolist() == [0.0, 0.0, 0.0]
    assert washes(two_losses, [8, 6, 7]).disallowed.tolist() == [75.0, 0.0, 0.0]  # 3 left


def test_earlier_replacement_shares_go_first_and_todays_buys_last(book):
    # L0 (2020) and L1 (2021) sold at a loss; L2 (5 sh, 2026-11-15) and today's IRA buy of
    # 5 STK2 replace them: L0 takes L2's shares, L1 today's buy
    hh = book(("L0", TAX, STK, 5, 750, "2020-01-02"), ("L1", TAX, STK, 5, 550, "2021-01-04"),
              ("L2", TAX, STK, 5, 500, "2026-11-15"))
    ws = washes(hh, [5, 5, 0], buys=[(IRA, STK2, 5.0)])
    assert ws.disallowed.tolist() == [250.0, 50.0, 0.0]
    assert "lot L2" in ws.replacement[0] and "today's buy of 5 STK2 in ira" in ws.replacement[1]


# -- every account of the household (Rev. Rul. 2008-5) -------------------------------------------
def test_an_ira_repurchase_today_washes_a_taxable_loss_and_breaks_w3(book):
    # 10 STK at $150 sold at $100 in taxable ($500 loss); the IRA buys 5 STK today
    hh = book(("L0", TAX, STK, 10, 1_500, "2020-01-02"))
    kw = dict(buys=[(IRA, STK, 5.0)])
    assert washes(hh, [10], **kw).disallowed.tolist() == [250.0]  # 5 x $50
    assert rules(hh, [10], **kw, disallowed=[250.0]) == {"wash_sale_w1", "wash_sale_w3"}
    forced = dataclasses.replace(hh, withdrawal=np.array([1_000.0, 0.0]))
    assert rules(forced, [10], **kw, disallowed=[250.0]) == {"wash_sale_w3"}  # W3 is strict


def test_an_ira_lot_bought_10_days_ago_washes_a_taxable_loss(book):
    hh = book(("L0", TAX, STK, 10, 1_500, "2020-01-02"), ("L1", IRA, STK, 4, 400, "2026-11-10"))
    assert washes(hh, [10, 0]).disallowed.tolist() == [200.0, 0.0]  # 4 x $50
    found = violations(hh, [10, 0], disallowed=[200.0, 0.0])
    assert [v.rule for v in found] == ["wash_sale_w1"]
    assert "lot L1 (ira, acquired 2026-11-10)" in found[0].message
    forced = dataclasses.replace(hh, withdrawal=np.array([1_000.0, 0.0]))
    assert rules(forced, [10, 0], disallowed=[200.0, 0.0]) == set()
    assert rules(forced, [10, 0], disallowed=[500.0, 0.0]) == {"wash_sale_declared"}


def test_a_no_hold_sale_is_a_forced_washed_sale(book):
    hh = book(("L0", TAX, STK, 10, 1_500, "2020-01-02"), ("L1", IRA, STK, 4, 400, "2026-11-10"),
              restrictions=(Restriction("no_hold", account=TAX, security="STK"),))
    assert rules(hh, [10, 0], disallowed=[200.0, 0.0]) == set()
    assert rules(hh, [10, 0]) == {"wash_sale_declared"}


def test_cash_below_min_cash_forces_a_washed_sale(book):
    hh = book(("L0", TAX, STK, 10, 1_500, "2020-01-02"), ("L1", IRA, STK, 4, 400, "2026-11-10"),
              cash=[50.0, 0.0], min_cash=[100.0, 0.0])
    assert rules(hh, [1, 0], disallowed=[50.0, 0.0]) == set()  # 1 share washed, $50


# -- replacement shares from transactions -----------------------------------------------------------
@pytest.fixture
def drip(book):
    """L0 10 STK at $150 in taxable (loss $50/sh); L1 20 STK in the IRA since 2020; the
    transactions show 4 STK bought in the IRA on 2026-11-10 (no lot of the window)."""
    return book(("L0", TAX, STK, 10, 1_500, "2020-01-02"), ("L1", IRA, STK, 20, 2_000, "2020-01-02"),
                **txns((IRA, STK, "2026-11-10", "buy", 4, np.nan)))


def test_a_buy_in_the_transactions_washes_up_to_its_quantity(drip):
    assert washes(drip, [10, 0]).disallowed.tolist() == [200.0, 0.0]  # 4 x $50
    assert rules(drip, [10, 0], disallowed=[200.0, 0.0]) == {"wash_sale_w1"}


def test_a_buy_in_the_transactions_washes_only_shares_still_held(drip):
    assert washes(drip, [10, 20]).disallowed.tolist() == [0.0, 0.0]  # the IRA sold them all
    assert washes(drip, [10, 18]).disallowed.tolist() == [100.0, 0.0]  # 2 shares left


def test_unknown_transaction_fields(drip):
    unknown_qty = dataclasses.replace(drip, txn_quantity=np.array([np.nan]))
    assert washes(unknown_qty, [10, 0]).disallowed.tolist() == [500.0, 0.0]  # up to 20 held
    unknown_acct = dataclasses.replace(drip, txn_account=np.array([-1]))
    assert washes(unknown_acct, [10, 0]).disallowed.tolist() == [0.0, 0.0]  # (c) skipped


@pytest.mark.parametrize("date, washed", [("2026-10-21", 4.0), ("2026-10-20", 0.0)])
def test_the_window_starts_30_days_before_the_run(drip, date, washed):
    hh = dataclasses.replace(drip, txn_date=np.array([date], dtype="datetime64[D]"))
    assert washes(hh, [10, 0]).washed.tolist() == [washed, 0.0]


# -- W2: a recent loss sale blocks buying the group ---------------------------------------------------
@pytest.mark.parametrize("account, gain, date, blocked", [
    (TAX, np.nan, "2026-11-10", True),  # null realized gain counts as a loss
    (-1, np.nan, "2026-11-10", True),  # account unknown too
    (TAX, -1.0, "2026-11-10", True),
    (TAX, 100.0, "2026-11-10", False),  # a gain
    (IRA, np.nan, "2026-11-10", False),  # a sale in the IRA is no loss sale
    (TAX, np.nan, "2026-10-20", False),  # 31 days ago
])
def test_w2_a_loss_sale_in_the_window_blocks_an_ira_buy(book, account, gain, date, blocked):
    # STK sold 10 days ago; the IRA buys 275 STK ($27,500 of its $30,000)
    hh = book(("L0", IRA, BND, 10, 1_000, "2020-01-02"),
              **txns((account, STK, date, "sell", 50, gain)))
    assert ("wash_sale_w2" in rules(hh, [0], buys=[(IRA, STK, 275.0)])) is blocked


def test_a_basis_equal_to_the_price_up_to_float_noise_is_no_loss(book):
    # 3 shares at a $300.0000000003 basis: -1e-10 per share is noise, not a loss sale
    hh = book(("L0", TAX, STK, 3, 300.0000000003, "2020-01-02"))
    assert washes(hh, [3], buys=[(IRA, STK, 1.0)]).loss_sale.tolist() == [False]
    assert rules(hh, [3], buys=[(IRA, STK, 1.0)]) == set()  # no W3
    # a cent a share is a loss (W3), though its 1-share wash ($0.01) is within tolerance
    cent = book(("L0", TAX, STK, 3, 300.03, "2020-01-02"))
    assert rules(cent, [3], buys=[(IRA, STK, 1.0)]) == {"wash_sale_w3"}
