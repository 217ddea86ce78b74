"""Warm starts by stable identity: a household's saved basis is keyed by what its
columns and rows mean (lot id, account x security, class and drift part, goal,
class and drift part, row family and key), never by their position, so the next night, with new lots, lots
sold, aged lots and moved prices, still starts from last night's basis where the
variables are the same.

The statuses come from HiGHS's list of basic variables and the answer
(``basis_statuses``), which costs microseconds where reading HiGHS's whole basis
back costs milliseconds on a household of thousands of lots. Two bases are
saved, stage one's and the location stage's (each stage solves in its own HiGHS
instance, ``hearth.model.highs``), on the same rows. Only the basic
columns are saved (a household LP has a few rows, so a few), and every row: a lot
sold whole tonight is gone tomorrow, so its bound status would name nothing. A mapped basis is made the right
size (as many basic variables as rows) before HiGHS sees it; HiGHS repairs a
singular one by swapping in slacks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from hearth.model.household import Household
from hearth.model.lp import LinearProgram

# HighsBasisStatus values
LOWER, BASIC, UPPER, ZERO = 0, 1, 2, 3

SEP = "\x1f"
_NONE = np.zeros(0, dtype=np.int8)


@dataclass(frozen=True)
class WarmStart:
    """A basis by identity: the keys of the columns saved (the basic ones) with
    their status, and every row's key with its status; and, where the household
    has a location stage, that stage's basis on the same rows (set on that stage's
    own instance, ``Solver.set_basis``)."""

    col_keys: tuple[str, ...]
    col_status: np.ndarray  # int8, one per col key
    row_keys: tuple[str, ...]
    row_status: np.ndarray  # int8, one per row key
    location_col_keys: tuple[str, ...] = ()
    location_col_status: np.ndarray = dataclasses.field(default_factory=lambda: _NONE)
    location_row_status: np.ndarray = dataclasses.field(default_factory=lambda: _NONE)

    def location(self) -> WarmStart | None:
        """The location stage's basis as a warm start of its own, if one was saved."""
        if not len(self.location_row_status):
            return None
        return WarmStart(self.location_col_keys, self.location_col_status, self.row_keys,
                         self.location_row_status)


def column_key(hh: Household, lp: LinearProgram, j: int) -> str:
    """What column ``j`` means, in terms that survive a night."""
    lay = lp.layout
    if j < lay.n_sell:
        kind = "s" if lay.sell_mult[j] == 1.0 else "r"  # r: a lot's fractional rest
        return f"{kind}{SEP}{hh.lot_ids[lay.sell_lot[j]]}"
    if j < lay.cash0:
        b = j - lay.buy0
        return (f"b{SEP}{hh.account_ids[lay.buy_account[b]]}"
                f"{SEP}{hh.security_ids[lay.buy_security[b]]}")
    if j < lay.drift0:
        return f"c{SEP}{hh.account_ids[j - lay.cash0]}"
    if j < lay.goal_drift0:
        k, part = divmod(j - lay.drift0, 4)
        return f"d{SEP}{hh.classes[k]}{SEP}{part}"
    if j < lay.n_base:  # a goal's drift (hearth.model.goals)
        gk, part = divmod(j - lay.goal_drift0, 4)
        g, k = divmod(gk, lay.n_classes)
        return f"g{SEP}{hh.goal_ids[g]}{SEP}{hh.classes[k]}{SEP}{part}"
    for family, cols in lay.elastic.items():
        hit = np.flatnonzero(cols == j)
        if len(hit):
            return f"e{SEP}{family}{SEP}{int(hit[0])}"
    return f"x{SEP}{j}"


def row_keys(hh: Household, lp: LinearProgram) -> list[str]:
    """What every row means: its family, and the account, class or lot it is for."""
    keys = [""] * lp.n_row
    lay = lp.layout
    rest_lots = lay.sell_lot[lay.sell_mult != 1.0]
    for family, (start, stop) in lay.rows.items():
        for i in range(stop - start):
            if family == "cash_balance":
                what = hh.account_ids[i]
            elif family == "exposure":
                what = hh.classes[i]
            elif family == "goal_exposure":
                g, k = divmod(i, len(hh.classes))
                what = f"{hh.goal_ids[g]}{SEP}{hh.classes[k]}"
            elif family == "whole_lot":
                what = hh.lot_ids[rest_lots[i]]
            else:
                what = str(i)
            keys[start + i] = f"{family}{SEP}{what}"
    return keys


def basis_statuses(lp: LinearProgram, basic: np.ndarray, x: np.ndarray,
                   row_activity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Full basis statuses from the basic variables (columns >= 0, row i's slack as
    -1 - i) and the answer: a nonbasic column or row sits at its nearer bound."""
    x, act = x[: lp.n_col], row_activity[: lp.n_row]
    col = np.where(np.abs(x - lp.upper) < np.abs(x - lp.lower), UPPER, LOWER).astype(np.int8)
    row = np.where(np.abs(act - lp.row_upper) < np.abs(act - lp.row_lower), UPPER,
                   LOWER).astype(np.int8)
    cols = basic[(basic >= 0) & (basic < lp.n_col)]
    rows = -1 - basic[(basic < 0) & (-1 - basic < lp.n_row)]
    col[cols] = BASIC
    row[rows] = BASIC
    return col, row


def save_basis(hh: Household, lp: LinearProgram, first: tuple[np.ndarray, np.ndarray],
               location: tuple[np.ndarray, np.ndarray] | None = None) -> WarmStart | None:
    """Stage one's basis (``first``: column and row statuses) of ``lp`` as a warm
    start for tomorrow, with the location stage's (``location``) where there is one:
    the basic columns and every row of each."""
    if len(first[0]) < lp.n_col or len(first[1]) < lp.n_row:
        return None
    keys, status = _basic_columns(hh, lp, first[0])
    warm = WarmStart(col_keys=keys, col_status=status, row_keys=tuple(row_keys(hh, lp)),
                     row_status=first[1][: lp.n_row].astype(np.int8))
    if location is None or len(location[0]) < lp.n_col or len(location[1]) < lp.n_row:
        return warm
    keys, status = _basic_columns(hh, lp, location[0])
    return dataclasses.replace(warm, location_col_keys=keys, location_col_status=status,
                               location_row_status=location[1][: lp.n_row].astype(np.int8))


def _basic_columns(hh: Household, lp: LinearProgram, col_status: np.ndarray
                   ) -> tuple[tuple[str, ...], np.ndarray]:
    cols = np.flatnonzero(col_status[: lp.n_col] == BASIC)
    return tuple(column_key(hh, lp, int(j)) for j in cols), col_status[cols].astype(np.int8)


class _Columns:
    """Key -> column on tonight's model, for the few keys a saved basis names."""

    def __init__(self, hh: Household, lp: LinearProgram) -> None:
        lay = lp.layout
        self.hh, self.lay = hh, lay
        self._lot: dict[str, int] | None = None
        self._sell = {}
        for whole in (True, False):
            m = (lay.sell_mult == 1.0) if whole else (lay.sell_mult != 1.0)
            col_of_lot = np.full(hh.n_lots, -1, dtype=np.int64)
            col_of_lot[lay.sell_lot[m]] = np.flatnonzero(m)
            self._sell["s" if whole else "r"] = col_of_lot
        self._account = {a: i for i, a in enumerate(hh.account_ids)}
        self._security = {s: i for i, s in enumerate(hh.security_ids)}
        self._class = {c: i for i, c in enumerate(hh.classes)}
        self._goal = {g: i for i, g in enumerate(hh.goal_ids)}
        self._buy = {(int(a), int(s)): lay.buy0 + b for b, (a, s) in
                     enumerate(zip(lay.buy_account.tolist(), lay.buy_security.tolist()))}

    def find(self, key: str) -> int | None:
        kind, *what = key.split(SEP)
        lay = self.lay
        if kind in ("s", "r"):
            if self._lot is None:
                self._lot = dict(zip(self.hh.lot_ids, range(len(self.hh.lot_ids))))
            lot = self._lot.get(what[0])
            j = -1 if lot is None else int(self._sell[kind][lot])
            return j if j >= 0 else None
        if kind == "b":
            a, s = self._account.get(what[0]), self._security.get(what[1])
            return None if a is None or s is None else self._buy.get((a, s))
        if kind == "c":
            a = self._account.get(what[0])
            return None if a is None else lay.cash0 + a
        if kind == "d":
            k = self._class.get(what[0])
            return None if k is None else lay.drift0 + 4 * k + int(what[1])
        if kind == "g":
            g, k = self._goal.get(what[0]), self._class.get(what[1])
            return (None if g is None or k is None
                    else lay.goal_drift0 + 4 * (g * lay.n_classes + k) + int(what[2]))
        if kind == "e":
            cols = lay.elastic.get(what[0])
            i = int(what[1])
            return int(cols[i]) if cols is not None and i < len(cols) else None
        return None


def map_basis(hh: Household, lp: LinearProgram, warm: WarmStart
              ) -> tuple[np.ndarray, np.ndarray, float]:
    """Last night's basis on tonight's model: (col_status, row_status, share of
    saved statuses that found their variable). Unknown columns start nonbasic at
    their lower bound, unknown rows basic; then the count of basic variables is
    made equal to the number of rows."""
    return _map(lp, warm, _Columns(hh, lp), row_keys(hh, lp))


def map_bases(hh: Household, lp: LinearProgram, warm: WarmStart
              ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray] | None,
                         float]:
    """``map_basis`` of stage one's basis and of the location stage's (None where
    none was saved), looking tonight's variables up once: (stage one's statuses,
    the location stage's, the share of stage one's that found their variable)."""
    index, keys = _Columns(hh, lp), row_keys(hh, lp)
    col, row, matched = _map(lp, warm, index, keys)
    saved = warm.location()
    location = None if saved is None else _map(lp, saved, index, keys)[:2]
    return (col, row), location, matched


def _map(lp: LinearProgram, warm: WarmStart, index: _Columns, keys: list[str]
         ) -> tuple[np.ndarray, np.ndarray, float]:
    col = np.full(lp.n_col, LOWER, dtype=np.int8)
    col[~np.isfinite(lp.lower) & np.isfinite(lp.upper)] = UPPER
    col[~np.isfinite(lp.lower) & ~np.isfinite(lp.upper)] = ZERO
    found = 0
    for key, status in zip(warm.col_keys, warm.col_status.tolist()):
        j = index.find(key)
        if j is None:
            continue
        found += 1
        if status == UPPER and not np.isfinite(lp.upper[j]):
            status = LOWER
        if status == LOWER and not np.isfinite(lp.lower[j]):
            continue
        col[j] = status
    saved_rows = dict(zip(warm.row_keys, warm.row_status.tolist()))
    row = np.full(lp.n_row, BASIC, dtype=np.int8)
    known = np.zeros(lp.n_row, dtype=bool)
    for i, key in enumerate(keys):
        status = saved_rows.get(key)
        if status is None:
            continue
        found += 1
        known[i] = True
        row[i] = _row_status(lp, i, status)
    _right_size(lp, col, row, known)
    total = len(warm.col_keys) + len(warm.row_keys)
    return col, row, (found / total if total else 0.0)


def _row_status(lp: LinearProgram, i: int, status: int) -> int:
    if status == BASIC:
        return BASIC
    lo, up = lp.row_lower[i], lp.row_upper[i]
    if status == UPPER and np.isfinite(up):
        return UPPER
    if np.isfinite(lo):
        return LOWER
    return UPPER if np.isfinite(up) else BASIC


def _right_size(lp: LinearProgram, col: np.ndarray, row: np.ndarray, known: np.ndarray) -> None:
    """As many basic variables as rows: extra basics leave (new rows' slacks first,
    then columns), missing ones come from rows' slacks."""
    excess = int((col == BASIC).sum() + (row == BASIC).sum()) - lp.n_row
    if excess > 0:
        for i in [*np.flatnonzero((row == BASIC) & ~known), *np.flatnonzero((row == BASIC) & known)]:
            if excess == 0:
                break
            st = _row_status(lp, int(i), LOWER)
            if st == BASIC:  # a free row keeps its slack basic
                continue
            row[i] = st
            excess -= 1
        for j in np.flatnonzero(col == BASIC)[::-1]:
            if excess == 0:
                break
            col[j] = LOWER if np.isfinite(lp.lower[j]) else (UPPER if np.isfinite(lp.upper[j]) else ZERO)
            excess -= 1
    elif excess < 0:
        for i in np.flatnonzero(row != BASIC):
            if excess == 0:
                break
            row[i] = BASIC
            excess += 1
