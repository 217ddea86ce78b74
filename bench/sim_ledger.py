"""The simulator's own books and tax accounting: lots, cash, the trade log,
dividends, IRC 1091 wash sales and year-end settlement.

Nothing here imports hearth: the judge keeps its own accounting so that a bug in
hearth's tax code cannot hide itself. Rules, as the simulator applies them:

- Sells: proceeds less trading cost (cost_bps) is the amount realized; a lot's
  basis is reduced pro rata; a taxable sell realizes gain = amount realized −
  basis share, short-term when held one year or less (the anniversary is still
  short-term), long-term otherwise. Buys: basis = price × quantity + cost.
- Wash sales (IRC 1091, Rev. Rul. 2008-5): a loss sale in a taxable account is
  washed to the extent that shares of the same wash group are bought in any
  account of the household within 30 days before or after it. Earlier purchases
  count while their shares are still held (and never the sold lot itself);
  purchases are matched to losses first come first served, each share once.
  The disallowed loss goes back into the year's realized gains and into the
  replacement lot's basis (taxable; the replacement's holding period includes
  the sold lot's), or is lost for good when the replacement is in an IRA, Roth or
  HSA. Dividend reinvestment is a purchase like any other.
- Income is paid on the dividend date as income_yield / 12 of value (and
  cg_distribution / 12). Taxable accounts are taxed on it at year end:
  qualified share at qualified_div_rate, the non-exempt rest at ordinary_rate,
  exempt share free; capital-gain distributions are long-term gains. Foreign
  withholding is lost in tax-advantaged accounts and credited in taxable ones.
- Settlement of a year: Schedule D netting (ST and LT net separately after
  their carryforwards, then against each other; a net loss offsets up to
  $3,000 of ordinary income, $1,500 married filing separately, short-term
  first; the rest carries forward by character) plus the dividend tax. Written
  here, not imported from hearth.model.tax, so the judge is independent.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np
from sim_book import CASH, TAXABLE, TRADITIONAL, Book

WASH_DAYS = 30
ORDINARY_OFFSET = {"married_separate": 1_500.0}
DEFAULT_OFFSET = 3_000.0
QTY_TOL = 1e-9
ADVANTAGED_MERGE_DAYS = 45  # older lots in IRA/Roth/HSA are merged: their basis and dates carry no tax


def day(d: np.datetime64 | str) -> int:
    return int(np.datetime64(d, "D").astype(np.int64))


def long_term_cutoff(sale_day: int) -> int:
    """Lots acquired before this day are long-term when sold on ``sale_day``."""
    d = datetime.date(1970, 1, 1) + datetime.timedelta(days=sale_day)
    try:
        cut = d.replace(year=d.year - 1)
    except ValueError:  # sold on Feb 29: Feb 28's anniversary is before it, Mar 1's is not
        cut = datetime.date(d.year - 1, 3, 1)
    return (cut - datetime.date(1970, 1, 1)).days


@dataclass(frozen=True)
class Netting:
    tax: float
    taxable_st: float
    taxable_lt: float
    offset: float
    carry_st: float
    carry_lt: float


def net_capital_gains(st: float, lt: float, carry_st: float, carry_lt: float, st_rate: float,
                      lt_rate: float, ordinary_rate: float, filing: str) -> Netting:
    """One year's capital-gain tax by Schedule D netting (gains positive, losses negative)."""
    st_net = st - carry_st
    lt_net = lt - carry_lt
    limit = ORDINARY_OFFSET.get(filing, DEFAULT_OFFSET)
    taxable_st = taxable_lt = loss_st = loss_lt = 0.0
    if st_net >= 0 and lt_net >= 0:
        taxable_st, taxable_lt = st_net, lt_net
    elif st_net < 0 and lt_net < 0:
        loss_st, loss_lt = -st_net, -lt_net
    elif st_net < 0:
        both = st_net + lt_net
        taxable_lt, loss_st = max(both, 0.0), max(-both, 0.0)
    else:
        both = st_net + lt_net
        taxable_st, loss_lt = max(both, 0.0), max(-both, 0.0)
    offset = min(loss_st + loss_lt, limit)
    used_st = min(loss_st, offset)
    used_lt = offset - used_st
    tax = taxable_st * st_rate + taxable_lt * lt_rate - offset * ordinary_rate
    return Netting(tax, taxable_st, taxable_lt, offset, loss_st - used_st, loss_lt - used_lt)


@dataclass
class LossSale:
    """A taxable loss sale whose loss may still be washed by a later purchase."""

    day: int
    hh: int
    group: int
    lot: int  # the lot sold (never its own replacement)
    unreplaced: float  # shares of the sale not yet matched to a replacement
    loss_per_share: float  # positive dollars
    held_days: int
    year: int
    long_term: bool
    washed: bool = False


@dataclass
class Counters:
    sells: int = 0
    buys: int = 0
    oversells: int = 0
    unknown_lots: int = 0
    cash_violations: int = 0
    cash_violation_dollars: float = 0.0
    unfunded_withdrawal_dollars: float = 0.0  # scheduled withdrawals beyond 95% of the account
    deferred_withdrawals: int = 0  # account-months left short (a failed run), raised next month
    wash_sales: int = 0
    disallowed_loss: float = 0.0
    disallowed_lost_in_ira: float = 0.0


@dataclass
class YearTotals:
    st: np.ndarray
    lt: np.ndarray
    gross_loss: np.ndarray  # allowed realized losses (positive dollars)
    div_qualified: np.ndarray
    div_ordinary: np.ndarray
    div_exempt: np.ndarray
    cg_dist: np.ndarray


class Ledger:
    """One strategy's state of the whole book."""

    def __init__(self, book: Book) -> None:
        self.book = book
        n_hh = book.n_hh
        self.cash = book.cash.astype(float).copy()
        self.pending_withdrawal = np.zeros(len(book.acct_ids))
        n = len(book.lot_qty)
        self.lot_ids = np.array([f"{book.acct_ids[a]}-L{i:06d}" for i, a in enumerate(book.lot_acct)],
                                dtype=object)
        self.next_lot = n
        self.lot_acct = book.lot_acct.copy()
        self.lot_sec = book.lot_sec.copy()
        self.lot_qty = book.lot_qty.astype(float).copy()
        self.lot_basis = book.lot_basis.astype(float).copy()
        self.lot_acquired = book.lot_acquired.astype(np.int64).copy()
        self.lot_bought = self.lot_acquired.copy()
        self.lot_repl = np.zeros(n)  # shares still available to replace a loss sale
        self._new: list[tuple] = []
        self.carry_st = np.zeros(n_hh)
        self.carry_lt = np.zeros(n_hh)
        self.years: dict[int, YearTotals] = {}
        self.pending_losses: list[LossSale] = []
        self.txlog: list[tuple[int, int, int, str, float, float]] = []  # acct, sec, day, side, qty, gain
        self.counters = Counters()
        self.taxes_paid = np.zeros(n_hh)
        self.cg_tax_paid = np.zeros(n_hh)
        self.div_tax_paid = np.zeros(n_hh)
        self.losses_realized = np.zeros(n_hh)
        self.losses_used = np.zeros(n_hh)
        self.buy_notional = np.zeros(n_hh)  # of the current run (reset by the caller)
        self.sell_notional = np.zeros(n_hh)

    # -- helpers -------------------------------------------------------------------------------
    def year(self, y: int) -> YearTotals:
        if y not in self.years:
            z = np.zeros(self.book.n_hh)
            self.years[y] = YearTotals(*(z.copy() for _ in range(7)))
        return self.years[y]

    def lot_hh(self) -> np.ndarray:
        return self.book.acct_hh[self.lot_acct]

    def positions(self, prices: np.ndarray) -> np.ndarray:
        """Value per household and class (cash last)."""
        b = self.book
        k = len(b.targets[0])
        val = self.lot_qty * prices[self.lot_sec]
        out = np.bincount(self.lot_hh() * k + b.sec_class[self.lot_sec], weights=val,
                          minlength=b.n_hh * k).reshape(b.n_hh, k)
        out[:, CASH] += np.bincount(b.acct_hh, weights=self.cash, minlength=b.n_hh)
        return out

    def account_values(self, prices: np.ndarray) -> np.ndarray:
        val = np.bincount(self.lot_acct, weights=self.lot_qty * prices[self.lot_sec],
                          minlength=len(self.cash))
        return val + self.cash

    def _new_lot(self, acct: int, sec: int, qty: float, basis: float, acquired: int, bought: int,
                 repl: float) -> int:
        lot = self.next_lot
        self.next_lot += 1
        self._new.append((f"{self.book.acct_ids[acct]}-L{lot:06d}", acct, sec, qty, basis, acquired,
                          bought, repl))
        return len(self.lot_qty) + len(self._new) - 1

    def _flush(self) -> None:
        if not self._new:
            return
        cols = list(zip(*self._new))
        self.lot_ids = np.concatenate([self.lot_ids, np.array(cols[0], dtype=object)])
        self.lot_acct = np.concatenate([self.lot_acct, np.array(cols[1], dtype=np.int64)])
        self.lot_sec = np.concatenate([self.lot_sec, np.array(cols[2], dtype=np.int64)])
        self.lot_qty = np.concatenate([self.lot_qty, np.array(cols[3], dtype=float)])
        self.lot_basis = np.concatenate([self.lot_basis, np.array(cols[4], dtype=float)])
        self.lot_acquired = np.concatenate([self.lot_acquired, np.array(cols[5], dtype=np.int64)])
        self.lot_bought = np.concatenate([self.lot_bought, np.array(cols[6], dtype=np.int64)])
        self.lot_repl = np.concatenate([self.lot_repl, np.array(cols[7], dtype=float)])
        self._new = []

    def _get(self, lot: int, field_name: str):
        n = len(self.lot_qty)
        if lot < n:
            return getattr(self, field_name)[lot]
        return self._new[lot - n][{"lot_acct": 1, "lot_sec": 2, "lot_qty": 3, "lot_basis": 4,
                                   "lot_acquired": 5, "lot_bought": 6, "lot_repl": 7}[field_name]]

    def _set(self, lot: int, field_name: str, value) -> None:
        n = len(self.lot_qty)
        if lot < n:
            getattr(self, field_name)[lot] = value
        else:
            pos = {"lot_qty": 3, "lot_basis": 4, "lot_acquired": 5, "lot_repl": 7}[field_name]
            row = list(self._new[lot - n])
            row[pos] = value
            self._new[lot - n] = tuple(row)

    def compact(self, today: int) -> None:
        """Drop closed lots and merge old lots of tax-advantaged accounts per security."""
        self._flush()
        keep = self.lot_qty > QTY_TOL
        adv = self.book.acct_type[self.lot_acct] != TAXABLE
        old = adv & keep & (self.lot_bought < today - ADVANTAGED_MERGE_DAYS)
        if old.any():
            idx = np.flatnonzero(old)
            key = self.lot_acct[idx] * len(self.book.sec_ids) + self.lot_sec[idx]
            order = np.lexsort((self.lot_acquired[idx], key))
            idx, key = idx[order], key[order]
            first = np.r_[True, key[1:] != key[:-1]]
            group = np.cumsum(first) - 1
            head = idx[first]
            self.lot_qty[head] = np.bincount(group, weights=self.lot_qty[idx])
            self.lot_basis[head] = np.bincount(group, weights=self.lot_basis[idx])
            keep[idx[~first]] = False
        for name in ("lot_ids", "lot_acct", "lot_sec", "lot_qty", "lot_basis", "lot_acquired",
                     "lot_bought", "lot_repl"):
            setattr(self, name, getattr(self, name)[keep])
        self.pending_losses = [p for p in self.pending_losses
                               if p.unreplaced > QTY_TOL and p.day >= today - WASH_DAYS]
        self.txlog = [t for t in self.txlog if t[2] >= today - 2 * WASH_DAYS - 5]

    # -- wash sales ----------------------------------------------------------------------------
    def _group(self, sec: int) -> int:
        return sec  # every security is its own wash group; primaries and substitutes differ

    def _disallow(self, loss: LossSale, lot: int, shares: float) -> None:
        """Wash ``shares`` of ``loss`` against replacement ``lot``."""
        d = loss.loss_per_share * shares
        yt = self.year(loss.year)
        if loss.long_term:
            yt.lt[loss.hh] += d
        else:
            yt.st[loss.hh] += d
        yt.gross_loss[loss.hh] -= d
        loss.unreplaced -= shares
        self.counters.disallowed_loss += d
        if not loss.washed:
            loss.washed = True
            self.counters.wash_sales += 1
        acct = int(self._get(lot, "lot_acct"))
        qty = float(self._get(lot, "lot_qty"))
        repl = float(self._get(lot, "lot_repl"))
        if self.book.acct_type[acct] != TAXABLE:
            self.counters.disallowed_lost_in_ira += d
            self._set(lot, "lot_repl", repl - shares)
            return
        bought = int(self._get(lot, "lot_bought"))
        basis = float(self._get(lot, "lot_basis"))
        part_basis = basis * shares / qty
        if shares < qty - QTY_TOL:  # split off the replacement shares as their own lot
            self._set(lot, "lot_qty", qty - shares)
            self._set(lot, "lot_basis", basis - part_basis)
            self._set(lot, "lot_repl", repl - shares)
            self._new_lot(acct, int(self._get(lot, "lot_sec")), shares, part_basis + d,
                          bought - loss.held_days, bought, 0.0)
        else:
            self._set(lot, "lot_basis", basis + d)
            self._set(lot, "lot_acquired", bought - loss.held_days)
            self._set(lot, "lot_repl", 0.0)

    def _match_earlier_purchases(self, loss: LossSale) -> None:
        hh = self.lot_hh()
        cand = np.flatnonzero((self.lot_bought >= loss.day - WASH_DAYS) & (self.lot_bought < loss.day)
                              & (hh == loss.hh) & (self.lot_sec == loss.group)
                              & (self.lot_repl > QTY_TOL) & (self.lot_qty > QTY_TOL))
        cand = cand[cand != loss.lot]
        for j in cand[np.argsort(self.lot_bought[cand], kind="stable")]:
            if loss.unreplaced <= QTY_TOL:
                break
            r = min(loss.unreplaced, float(self.lot_repl[j]), float(self.lot_qty[j]))
            self._disallow(loss, int(j), r)

    def _match_later_purchase(self, lot: int, hh: int, group: int, today: int) -> None:
        for loss in self.pending_losses:
            qty = float(self._get(lot, "lot_repl"))
            if qty <= QTY_TOL:
                return
            if (loss.hh == hh and loss.group == group and loss.unreplaced > QTY_TOL
                    and today - WASH_DAYS <= loss.day <= today):
                self._disallow(loss, lot, min(loss.unreplaced, qty))

    # -- trading -------------------------------------------------------------------------------
    def execute(self, today: int, prices: np.ndarray, sells: list[tuple[int, float]],
                buys: list[tuple[int, int, float]], *, drip: bool = False) -> None:
        """Sells (lot index, shares) first, then buys (account, security, shares), at today's
        prices and the securities' costs (none for dividend reinvestment)."""
        b = self.book
        cutoff = long_term_cutoff(today)
        yr = (datetime.date(1970, 1, 1) + datetime.timedelta(days=today)).year
        new_losses: list[LossSale] = []
        for lot, q in sells:
            have = float(self.lot_qty[lot])
            if q > have * (1 + 1e-9) + 1e-9:
                self.counters.oversells += 1
            q = min(q, have)
            if q <= 0:
                continue
            acct = int(self.lot_acct[lot])
            sec = int(self.lot_sec[lot])
            hh = int(b.acct_hh[acct])
            gross = q * prices[sec]
            cost = 0.0 if drip else gross * b.cost_bps[sec] / 1e4
            basis_part = self.lot_basis[lot] * q / have
            gain = gross - cost - basis_part
            self.cash[acct] += gross - cost
            close = q >= have * (1 - 1e-12)
            self.lot_qty[lot] = 0.0 if close else have - q
            self.lot_basis[lot] = 0.0 if close else self.lot_basis[lot] - basis_part
            self.lot_repl[lot] = min(self.lot_repl[lot], self.lot_qty[lot])
            self.sell_notional[hh] += gross
            self.counters.sells += 1
            self.txlog.append((acct, sec, today, "sell", q, gain))
            if b.acct_type[acct] != TAXABLE:
                continue
            lt = bool(self.lot_acquired[lot] < cutoff)
            yt = self.year(yr)
            if lt:
                yt.lt[hh] += gain
            else:
                yt.st[hh] += gain
            if gain < -0.005:
                yt.gross_loss[hh] += -gain
                new_losses.append(LossSale(today, hh, self._group(sec), lot, q, -gain / q,
                                           today - int(self.lot_acquired[lot]), yr, lt))
        for loss in new_losses:
            self._match_earlier_purchases(loss)
        self.pending_losses.extend(new_losses)
        for acct, sec, q in buys:
            if q <= 0:
                continue
            hh = int(b.acct_hh[acct])
            gross = q * prices[sec]
            cost = 0.0 if drip else gross * b.cost_bps[sec] / 1e4
            self.cash[acct] -= gross + cost
            lot = self._new_lot(acct, sec, q, gross + cost, today, today, q)
            if not drip:
                self.buy_notional[hh] += gross
                self.counters.buys += 1
            self.txlog.append((acct, sec, today, "buy", q, float("nan")))
            self._match_later_purchase(lot, hh, self._group(sec), today)
        self._flush()

    def settle_cash(self, accounts_traded: np.ndarray | None = None, *, after_run: bool = True) -> None:
        """Negative cash becomes a withdrawal the next run must raise. After a run it is
        counted: as a cash violation where the tool's own proposal should have funded it
        (``accounts_traded``), else as a deferred withdrawal. A tax larger than the cash
        (``after_run=False``) is simply raised by the next run."""
        short = self.cash < -0.01
        if after_run:
            bad = short & accounts_traded if accounts_traded is not None else np.zeros_like(short)
            self.counters.cash_violations += int(bad.sum())
            self.counters.cash_violation_dollars += float(-self.cash[bad].sum())
            self.counters.deferred_withdrawals += int((short & ~bad).sum())
        self.pending_withdrawal[short] += -self.cash[short]
        self.cash = np.maximum(self.cash, 0.0)

    # -- income --------------------------------------------------------------------------------
    def pay_income(self, today: int, prices: np.ndarray, reinvest: bool) -> None:
        """Monthly income on every lot; reinvested as new lots of the same security (the
        whole dividend, withholding credited in taxable accounts) or kept as cash."""
        b = self.book
        yr = (datetime.date(1970, 1, 1) + datetime.timedelta(days=today)).year
        value = self.lot_qty * prices[self.lot_sec]
        income = value * b.income_yield[self.lot_sec] / 12
        cg = value * b.cg_dist[self.lot_sec] / 12
        taxable = b.acct_type[self.lot_acct] == TAXABLE
        net = np.where(taxable, income, income * (1 - b.foreign[self.lot_sec])) + cg
        hh = self.lot_hh()
        yt = self.year(yr)
        n = b.n_hh
        q = b.qualified[self.lot_sec]
        x = b.exempt[self.lot_sec]
        yt.div_qualified += np.bincount(hh[taxable], weights=(income * q)[taxable], minlength=n)
        yt.div_ordinary += np.bincount(hh[taxable], weights=(income * (1 - q - x))[taxable],
                                       minlength=n)
        yt.div_exempt += np.bincount(hh[taxable], weights=(income * x)[taxable], minlength=n)
        yt.cg_dist += np.bincount(hh[taxable], weights=cg[taxable], minlength=n)
        yt.lt += np.bincount(hh[taxable], weights=cg[taxable], minlength=n)
        n_sec = len(b.sec_ids)
        key = self.lot_acct * n_sec + self.lot_sec
        per_pos = np.bincount(key, weights=net, minlength=len(self.cash) * n_sec)
        pos = np.flatnonzero(per_pos > 0.005)
        if not reinvest:
            self.cash += per_pos.reshape(len(self.cash), n_sec).sum(axis=1)
            return
        # the dividend arrives as cash and buys whole micro-shares; cents of rounding stay cash
        self.cash += per_pos.reshape(len(self.cash), n_sec).sum(axis=1)
        buys = [(int(k // n_sec), int(k % n_sec),
                 float(np.floor(per_pos[k] / prices[k % n_sec] * 1e6) / 1e6)) for k in pos]
        self.execute(today, prices, [], buys, drip=True)

    # -- taxes ---------------------------------------------------------------------------------
    def settle_year(self, y: int) -> np.ndarray:
        """Net year ``y`` for every household, pay the tax from the taxable account's cash
        (a refund is credited to it); return the tax per household."""
        b = self.book
        yt = self.year(y)
        tax = np.zeros(b.n_hh)
        taxable_acct = np.full(b.n_hh, -1)
        for a in range(len(b.acct_ids) - 1, -1, -1):
            if b.acct_type[a] == TAXABLE:
                taxable_acct[b.acct_hh[a]] = a
        for h in range(b.n_hh):
            carry_in = self.carry_st[h] + self.carry_lt[h]
            net = net_capital_gains(float(yt.st[h]), float(yt.lt[h]), float(self.carry_st[h]),
                                    float(self.carry_lt[h]), float(b.st_rate[h]), float(b.lt_rate[h]),
                                    float(b.ordinary_rate[h]), str(b.filing[h]))
            div_tax = (yt.div_qualified[h] * b.qualified_div_rate[h]
                       + yt.div_ordinary[h] * b.ordinary_rate[h])
            self.losses_used[h] += yt.gross_loss[h] + carry_in - net.carry_st - net.carry_lt
            self.losses_realized[h] += yt.gross_loss[h]
            self.carry_st[h], self.carry_lt[h] = net.carry_st, net.carry_lt
            tax[h] = net.tax + div_tax
            self.cg_tax_paid[h] += net.tax
            self.div_tax_paid[h] += div_tax
        self.taxes_paid += tax
        self.cash[taxable_acct] -= tax
        del self.years[y]
        return tax

    def after_tax_value(self, today: int, prices: np.ndarray) -> np.ndarray:
        """Per household: taxable at market less the tax a full liquidation would cost
        (netted with carryforwards), traditional after retirement_rate, Roth/HSA as is,
        less any withdrawal still owed. Call after the last year is settled."""
        b = self.book
        hh = self.lot_hh()
        taxable = b.acct_type[self.lot_acct] == TAXABLE
        gain = self.lot_qty * prices[self.lot_sec] - self.lot_basis
        lt = self.lot_acquired < long_term_cutoff(today)
        n = b.n_hh
        st_u = np.bincount(hh[taxable & ~lt], weights=gain[taxable & ~lt], minlength=n)
        lt_u = np.bincount(hh[taxable & lt], weights=gain[taxable & lt], minlength=n)
        acct_val = self.account_values(prices)
        keep = np.where(b.acct_type == TRADITIONAL, 1 - b.retirement_rate[b.acct_hh], 1.0)
        out = np.bincount(b.acct_hh, weights=acct_val * keep, minlength=n)
        out -= np.bincount(b.acct_hh, weights=self.pending_withdrawal, minlength=n)
        for h in range(n):
            out[h] -= net_capital_gains(float(st_u[h]), float(lt_u[h]), float(self.carry_st[h]),
                                        float(self.carry_lt[h]), float(b.st_rate[h]),
                                        float(b.lt_rate[h]), float(b.ordinary_rate[h]),
                                        str(b.filing[h])).tax
        return out

