"""From one shard's Arrow tables to :class:`hearth.model.household.Household`
objects: columns are turned into numpy arrays once per shard, and each household
is a set of contiguous slices of them (every per-household table is sorted by
household). A household's target is resolved here, where the run date is known:
custom targets, else its own glide path, else its model's, else its model's targets.
So are its goals' weights (``goals``: their goal_targets, model glide path or model),
its overrides in force tonight (``household_overrides``: skip, hold a security,
ignore the tax budget, no harvesting) and its product preferences (``preferred_ranks``):
data in, a plain Household out, so ``model`` never learns they exist."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute

from hearth.io.shards import ShardTables
from hearth.model.household import (
    ACCOUNT_TYPES,
    CASH_CLASS,
    Household,
    Restriction,
    make_household,
)

_TYPE_INDEX = {t: i for i, t in enumerate(ACCOUNT_TYPES)}


def _np(table: pa.Table, column: str) -> np.ndarray:
    return table.column(column).to_numpy(zero_copy_only=False)


def _runs(keys: np.ndarray, names: list | None = None) -> dict[str, tuple[int, int]]:
    """household_id -> [start, stop) over an array sorted by household. With ``names``,
    ``keys`` are integer codes into it (``_codes``; -1, a null, has no run)."""
    if len(keys) == 0:
        return {}
    edges = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [len(keys)]])
    if names is None:
        return {keys[s]: (int(s), int(e)) for s, e in zip(starts, stops)}
    return {names[keys[s]]: (int(s), int(e)) for s, e in zip(starts, stops) if keys[s] >= 0}


def _codes(table: pa.Table, column: str) -> tuple[np.ndarray, list]:
    """A string column as (an integer code per row, the distinct values by code)."""
    col = table.column(column)
    if len(col) == 0:
        return np.zeros(0, dtype=np.int64), []
    enc = col.combine_chunks().dictionary_encode()
    codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, enc.dictionary.to_pylist()


def _rows_in(values: pa.ChunkedArray, of: pa.ChunkedArray) -> np.ndarray:
    """Each value's row in ``of`` (-1 where it has none)."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    rows = pa.compute.index_in(values, value_set=of.combine_chunks())
    return rows.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _lot_accounts(rows: np.ndarray, a0: int, a1: int) -> np.ndarray:
    """A household's lots' account indices from their rows in ``accounts``."""
    if ((rows < a0) | (rows >= a1)).any():  # validation sets such a household aside
        raise KeyError("a lot's account is not one of the household's accounts")
    return rows - a0


def _local(rows: np.ndarray, ref_rows: np.ndarray) -> np.ndarray:
    """The index in ``rows`` (reference rows of the household's securities, distinct)
    of each of ``ref_rows`` (all of which are in it)."""
    order = np.argsort(rows, kind="stable")
    return order[np.searchsorted(rows[order], ref_rows)].astype(np.int64)


_NO_DAY = np.iinfo(np.int64)


def glide_targets(paths: pa.Table, owner: str, run_date: np.datetime64
                  ) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """Each owner's target weights on ``run_date`` from its glide path: owner ->
    (asset classes, weights). ``paths`` holds ``owner`` (``model_id`` or
    ``household_id``), ``effective_date``, ``asset_class`` and ``weight``.

    The weights are linear in time between the two effective dates around the run date
    (on an effective date, that date's; before the first, the first date's; after the
    last, the last's); a class missing from one of the two dates weighs 0 there, so
    two dates that each sum to 1 give weights that sum to 1. Every owner is resolved
    at once: each row gets its date's share of the interpolation, and the shares are
    summed per owner and class. Rows without an owner, a date, a class or a finite
    weight count for nothing (validation has set their owners' households aside)."""
    if paths.num_rows == 0:
        return {}
    who, klass = _np(paths, owner), _np(paths, "asset_class")
    weight = paths.column("weight").fill_null(np.nan).to_numpy(zero_copy_only=False)
    weight = np.asarray(weight, dtype=np.float64)
    date = _np(paths, "effective_date").astype("datetime64[D]")
    keep = (np.array([w is not None for w in who], dtype=bool)
            & np.array([k is not None and k != "" for k in klass], dtype=bool)
            & np.isfinite(weight) & ~np.isnat(date))
    if not keep.any():
        return {}
    owners, o = np.unique(who[keep].astype(str), return_inverse=True)
    # days from the run date: the run date is day 0
    day = (date[keep] - np.datetime64(run_date, "D")).astype(np.int64)  # type: ignore[call-overload]  # noqa: E501
    weight, klass = weight[keep], klass[keep].astype(str)
    n = len(owners)
    first = np.full(n, _NO_DAY.max)
    np.minimum.at(first, o, day)
    last = np.full(n, _NO_DAY.min)
    np.maximum.at(last, o, day)
    lo = np.full(n, _NO_DAY.min)  # the last effective date on or before the run date ...
    np.maximum.at(lo, o[day <= 0], day[day <= 0])
    lo = np.where(lo == _NO_DAY.min, first, lo)  # ... or the first when there is none
    hi = np.full(n, _NO_DAY.max)  # the first on or after it, or the last
    np.minimum.at(hi, o[day >= 0], day[day >= 0])
    hi = np.where(hi == _NO_DAY.max, last, hi)
    span = hi - lo
    along = np.where(span > 0, -lo / np.maximum(span, 1), 0.0)  # (0 - lo) / (hi - lo)
    share = (np.where(day == lo[o], 1.0 - along[o], 0.0)
             + np.where((day == hi[o]) & (span[o] > 0), along[o], 0.0))
    used = share > 0
    classes, k = np.unique(klass[used], return_inverse=True)
    pair, at = np.unique(o[used] * len(classes) + k, return_inverse=True)
    summed = np.bincount(at, weights=share[used] * weight[used])
    pair_owner, pair_class = pair // len(classes), pair % len(classes)
    edges = np.flatnonzero(np.diff(pair_owner)) + 1
    starts, stops = np.concatenate([[0], edges]), np.concatenate([edges, [len(pair)]])
    return {str(owners[pair_owner[a]]): (tuple(classes[pair_class[a:b]].tolist()), summed[a:b])
            for a, b in zip(starts.tolist(), stops.tolist())}


@dataclass(frozen=True, eq=False)
class Reference:
    """The shared tables, indexed for lookups."""

    security_index: dict[str, int]
    asset_class: np.ndarray
    price: np.ndarray
    wash_group: np.ndarray  # object (str)
    income_yield: np.ndarray
    qualified_fraction: np.ndarray
    tax_exempt_fraction: np.ndarray
    foreign_tax_fraction: np.ndarray
    cg_distribution: np.ndarray
    expected_return: np.ndarray
    cost_rate: np.ndarray
    sector: np.ndarray
    tags: list[frozenset[str]]
    vehicle: np.ndarray  # object (str or None): etf, mutual_fund, ...
    issuer: np.ndarray  # object (str or None): securities limited together
    targets: dict[str, tuple[tuple[str, ...], np.ndarray]]
    model_ranks: dict[str, dict[str, int]]
    menus: dict[str, frozenset[str]]


def reference(tables: dict[str, pa.Table], default_cost_bps: float) -> Reference:
    sec = tables["securities"]
    ids = _np(sec, "security_id")
    wash = _np(sec, "wash_group")
    wash = np.where(np.array([w is None for w in wash], dtype=bool), ids, wash)
    cost_bps = sec.column("cost_bps").fill_null(default_cost_bps).to_numpy(zero_copy_only=False)
    tags = [frozenset(t) if t is not None else frozenset() for t in sec.column("tags").to_pylist()]
    targets: dict[str, tuple[list[str], list[float]]] = {}
    # Rows with a null key or value are validation exceptions that set their model's
    # households aside; they are skipped here so the shard's other households still run.
    for m, k, w in zip(*(tables["targets"].column(c).to_pylist()
                         for c in ("model_id", "asset_class", "weight"))):
        if m is None or k is None or w is None:
            continue
        targets.setdefault(m, ([], []))
        targets[m][0].append(k)
        targets[m][1].append(w)
    ranks: dict[str, dict[str, int]] = {}
    ms = tables["model_securities"]
    for m, s, r in zip(*(ms.column(c).to_pylist() for c in ("model_id", "security_id", "rank"))):
        if m is None or s is None or r is None:
            continue
        d = ranks.setdefault(m, {})
        d[s] = min(r, d.get(s, r))
    menus: dict[str, set[str]] = {}
    for m, s in zip(*(tables["menus"].column(c).to_pylist() for c in ("menu_id", "security_id"))):
        if m is not None and s is not None:
            menus.setdefault(m, set()).add(s)
    return Reference(
        security_index={s: i for i, s in enumerate(ids)},
        asset_class=_np(sec, "asset_class"), price=_np(sec, "price").astype(np.float64),
        wash_group=wash,
        income_yield=_np(sec, "income_yield"), qualified_fraction=_np(sec, "qualified_fraction"),
        tax_exempt_fraction=_np(sec, "tax_exempt_fraction"),
        foreign_tax_fraction=_np(sec, "foreign_tax_fraction"),
        cg_distribution=_np(sec, "cg_distribution"), expected_return=_np(sec, "expected_return"),
        cost_rate=np.asarray(cost_bps, dtype=np.float64) / 10_000.0,
        sector=_np(sec, "sector"), tags=tags, vehicle=_np(sec, "vehicle"),
        issuer=_np(sec, "issuer"),
        targets={m: (tuple(k), np.array(w)) for m, (k, w) in targets.items()},
        model_ranks=ranks,
        menus={m: frozenset(s) for m, s in menus.items()},
    )


@dataclass(frozen=True)
class Notice:
    """An ``exceptions`` row that costs its household nothing (an expired override)."""

    source_table: str
    account_id: str | None
    record_id: str
    code: str
    message: str


@dataclass(frozen=True)
class Overrides:
    """A household's overrides in force on the run date (docs/data-contract.md, overrides)."""

    applied: tuple[str, ...] = ()  # override ids, in id order
    skip: str | None = None  # why the household is not traded tonight, naming the overrides
    holds: tuple[tuple[str | None, str], ...] = ()  # (account_id or None = every, security_id)
    no_tax_budget: bool = False
    no_harvest: bool = False
    expired: tuple[Notice, ...] = ()


def household_overrides(rows: dict[str, list], r0: int, r1: int, run_date: np.datetime64
                        ) -> Overrides:
    """The overrides of rows [r0, r1) of the shard's ``overrides`` columns: those whose
    ``expires_on`` is on or after the run date (or null) are applied; earlier ones are
    ignored, each with a notice. Validation has set aside the households whose rows
    in force are bad, so every row reaching here reads."""
    today = run_date.astype("datetime64[D]")
    applied: list[str] = []
    skips: list[str] = []
    holds: list[tuple[str | None, str]] = []
    flags: set[str] = set()
    expired: list[Notice] = []
    for j in range(r0, r1):
        oid, action, ends = rows["override_id"][j], rows["action"][j], rows["expires_on"][j]
        who = f"override {oid} ({action}, by {rows['author'][j]}: {rows['reason'][j]})"
        if ends is not None and np.datetime64(ends, "D") < today:
            expired.append(Notice(
                "overrides", rows["account_id"][j], oid, code="override_expired",
                message=f"{who} expired on {ends}, before the run date {today}: ignored; "
                        "drop the row or extend expires_on"))
            continue
        applied.append(oid)
        if action == "skip":
            skips.append(who)
        elif action == "hold_security":
            holds.append((rows["account_id"][j], rows["security_id"][j]))
        else:
            flags.add(action)
    return Overrides(
        applied=tuple(sorted(applied)),
        skip=("not traded tonight by " + "; ".join(skips)) if skips else None,
        holds=tuple(holds), no_tax_budget="no_tax_budget" in flags,
        no_harvest="no_harvest" in flags, expired=tuple(expired))


def held_first(restrictions: tuple[Restriction, ...], holds: tuple[tuple[str | None, str], ...],
               account_ids: tuple[str, ...], security_ids: tuple[str, ...],
               sector: tuple[str | None, ...], tags: tuple[frozenset[str], ...]
               ) -> tuple[Restriction, ...]:
    """The restrictions with each ``hold_security`` override added as a ``no_trade``
    restriction that outranks ``no_hold``: a person's decision to keep a position beats
    a standing screen. A ``no_hold`` that reaches a held account x security is replaced
    by ``no_hold`` restrictions of every other account x security it reaches (the
    model's own precedence, no_hold over no_trade, is left as it is)."""
    if not holds:
        return restrictions
    n_a = len(account_ids)
    acct_index = {a: j for j, a in enumerate(account_ids)}
    held = np.zeros((n_a, len(security_ids)), dtype=bool)
    for account, security in holds:
        rows = np.ones(n_a, dtype=bool) if account is None else np.arange(n_a) == acct_index[account]
        held |= np.outer(rows, np.array([s == security for s in security_ids], dtype=bool))
    out: list[Restriction] = []
    for r in restrictions:
        if r.rule == "no_hold":
            if r.security is not None:
                hit = np.array([s == r.security for s in security_ids], dtype=bool)
            elif r.sector is not None:
                hit = np.array([s == r.sector for s in sector], dtype=bool)
            else:
                hit = np.array([r.tag in t for t in tags], dtype=bool)
            reach = np.outer(np.ones(n_a, dtype=bool) if r.account < 0
                             else np.arange(n_a) == r.account, hit)
            if (reach & held).any():
                out.extend(Restriction("no_hold", account=int(a), security=security_ids[s])
                           for a, s in zip(*np.nonzero(reach & ~held)))
                continue
        out.append(r)
    out.extend(Restriction("no_trade", account=-1 if account is None else acct_index[account],
                           security=security) for account, security in holds)
    return tuple(out)


def preferred_ranks(model_ranks: dict[str, int], preferences: list[tuple[str, str | None,
                    str | None, int]], ref: Reference) -> dict[str, int]:
    """A household's ranks: its model's, re-ordered within each class it has
    ``product_preferences`` for. ``preferences`` holds (asset_class, security_id,
    vehicle, rank) rows; a vehicle names every security of the model's list for the
    class that has it. In such a class the preferred securities come first, by the
    preference's rank and then the model's, and the model's others follow in the
    model's order, so they stay acceptable equivalents (held, kept, sold only where
    the small preference cost beats tax and trading cost). Ranks are dense from 1 over
    (preferred or not, preference rank, model rank); a preferred security the model
    does not list becomes buyable. Classes without preferences keep the model's ranks."""
    if not preferences:
        return model_ranks
    ranks = dict(model_ranks)
    klass = {s: ref.asset_class[ref.security_index[s]] for s in model_ranks
             if s in ref.security_index}
    by_class: dict[str, dict[str, int]] = {}  # class -> preferred security -> its rank
    for k, security, vehicle, rank in preferences:
        chosen = ([security] if security is not None else
                  [s for s in model_ranks if klass.get(s) == k
                   and ref.vehicle[ref.security_index[s]] == vehicle])
        mine = by_class.setdefault(k, {})
        for s in chosen:
            mine[s] = min(int(rank), mine.get(s, int(rank)))
    no_rank = np.iinfo(np.int64).max  # the model does not list it
    for k, preferred in by_class.items():
        keys = {s: (0, r, model_ranks.get(s, no_rank)) for s, r in preferred.items()}
        keys.update({s: (1, 0, r) for s, r in model_ranks.items()
                     if klass.get(s) == k and s not in preferred})
        dense = {key: n + 1 for n, key in enumerate(sorted(set(keys.values())))}
        ranks.update({s: dense[key] for s, key in keys.items()})
    return ranks


# The Household fields that carry input numbers into the model, each of which must be
# finite (max_cash may be +inf: no cap; the optional ones may be None).
_FINITE_FIELDS = (
    "st_rate", "lt_rate", "ordinary_rate", "qualified_div_rate", "retirement_rate",
    "ytd_st_gain", "ytd_lt_gain", "loss_carryforward_st", "loss_carryforward_lt",
    "tax_budget", "turnover_limit", "drift_threshold", "max_position_share", "max_sector_share",
    "cash", "min_cash",
    "contribution", "withdrawal", "price", "target", "quantity", "cost_basis", "income_yield",
    "qualified_fraction", "tax_exempt_fraction", "foreign_tax_fraction", "cg_distribution",
    "expected_return", "cost_rate", "held_away", "need_amount", "goal_target",
)


def non_finite_fields(hh: Household) -> list[str]:
    """The input-number fields of ``hh`` that hold a NaN or an infinity."""
    bad = []
    for name in _FINITE_FIELDS:
        value = getattr(hh, name)
        if value is not None and not np.isfinite(np.asarray(value, dtype=np.float64)).all():
            bad.append(name)
    if np.isnan(np.asarray(hh.max_cash, dtype=np.float64)).any() or (hh.max_cash == -np.inf).any():
        bad.append("max_cash")
    return bad


def _goal_fields(goals: list[tuple[str, list[str], tuple[str, ...], np.ndarray, np.datetime64]],
                 acct_index: dict[str, int], class_index: dict[str, int]) -> dict[str, object]:
    """A household's goals as Household fields (hearth.model.goals); none: nothing."""
    if not goals:
        return {}
    account = np.full(len(acct_index), -1, dtype=np.int64)
    target = np.zeros((len(goals), len(class_index)))
    for g, (_, accounts, classes, weights, _) in enumerate(goals):
        account[[acct_index[a] for a in accounts]] = g
        for k, w in zip(classes, weights):
            target[g, class_index[k]] += w
    return dict(goal_ids=tuple(goal[0] for goal in goals), goal_account=account,
                goal_target=target,
                goal_horizon=np.array([goal[4] for goal in goals], dtype="datetime64[D]"))


@dataclass(frozen=True, eq=False)
class HouseholdInput:
    household_id: str
    household: Household | None
    error: str | None  # a data problem found by validation or while assembling
    code: str | None = None  # set when the problem is new here (validation already reported its own)
    overrides: Overrides = Overrides()  # in force tonight (skip, holds, ...) and expired ones


def _opt(v: object) -> float | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)  # type: ignore[arg-type]


def _at_least_zero(x):
    """Money validation let through within a cent below zero, read as 0."""
    return x if x is None or x >= 0 else 0.0


def households(shard: ShardTables, run_date: np.datetime64, ref: Reference
               ) -> Iterator[HouseholdInput]:
    t = shard.tables
    hh_t = t["households"]
    cols = {c: hh_t.column(c).to_pylist() for c in hh_t.column_names}
    acc = t["accounts"]
    a_hh = _np(acc, "household_id")
    a_id, a_type = _np(acc, "account_id"), _np(acc, "account_type")
    # money validation let through up to a cent below zero (float noise) is read as 0
    a_num = {c: np.maximum(_np(acc, c).astype(np.float64), 0.0) for c in
             ("cash", "min_cash", "contribution", "withdrawal")}
    a_max = acc.column("max_cash").fill_null(np.inf).to_numpy(zero_copy_only=False)
    a_tradable, a_menu = _np(acc, "tradable"), _np(acc, "menu_id")
    lots = t["lots"]
    l_id = _np(lots, "lot_id")
    # the lots' other keys as integers, never as millions of Python strings: the
    # household by dictionary code, the account as its row in ``accounts`` (a
    # household's accounts are rows a0..a1, so row - a0 is the account's index), the
    # security as its row in the reference table (-1 for one it does not have)
    l_hh_code, l_hh_names = _codes(lots, "household_id")
    l_acct_row = _rows_in(lots.column("account_id"), acc.column("account_id"))
    l_sec_code, l_sec_names = _codes(lots, "security_id")
    ref_ids: list[str] = [""] * len(ref.price)  # reference row -> security_id
    for sid, row in ref.security_index.items():
        ref_ids[row] = sid
    # (a null security has code -1: the appended -1 is its reference row)
    l_sec_ref = np.array([ref.security_index.get(x, -1) for x in l_sec_names] + [-1],
                         dtype=np.int64)[l_sec_code]
    l_qty = _np(lots, "quantity").astype(np.float64)
    l_basis = np.maximum(_np(lots, "cost_basis").astype(np.float64), 0.0)
    l_date = _np(lots, "acquired_date").astype("datetime64[D]")
    tx = t["transactions"]
    t_hh, t_acct, t_sec, t_side = (_np(tx, c) for c in
                                   ("household_id", "account_id", "security_id", "side"))
    t_date = _np(tx, "trade_date").astype("datetime64[D]")
    t_gain = tx.column("realized_gain").fill_null(np.nan).to_numpy(zero_copy_only=False)
    rs = t["restrictions"]
    r_cols = {c: rs.column(c).to_pylist() for c in rs.column_names}
    ov, pp = t["overrides"], t["product_preferences"]
    o_cols = {c: ov.column(c).to_pylist() for c in ov.column_names}
    p_cols = {c: pp.column(c).to_pylist() for c in pp.column_names}
    gl, gt = t["goals"], t["goal_targets"]
    g_cols = {c: gl.column(c).to_pylist() for c in ("household_id", "goal_id", "account_id",
                                                     "model_id")}
    g_horizon = _np(gl, "horizon_date").astype("datetime64[D]")
    gt_cols = {c: gt.column(c).to_pylist() for c in ("household_id", "goal_id", "asset_class",
                                                      "weight")}
    cn = t["cash_needs"]
    n_cols = {c: cn.column(c).to_pylist() for c in ("household_id", "account_id", "need_id")}
    n_due = _np(cn, "due_date").astype("datetime64[D]")
    n_amount = np.asarray(cn.column("amount").fill_null(np.nan).to_numpy(zero_copy_only=False),
                          dtype=np.float64)
    ha = t["held_away"]
    ha_hh, ha_class, ha_val = _np(ha, "household_id"), _np(ha, "asset_class"), _np(ha, "value")
    ht = t["household_targets"]
    ht_hh, ht_class, ht_w = _np(ht, "household_id"), _np(ht, "asset_class"), _np(ht, "weight")
    # glide paths resolved to the run date once per shard, every model and household at once
    model_glide = glide_targets(t["model_glide_paths"], "model_id", run_date)
    household_glide = glide_targets(t["household_glide_paths"], "household_id", run_date)
    runs = {name: _runs(keys) for name, keys in (
        ("accounts", a_hh), ("tx", t_hh), ("ha", ha_hh), ("ht", ht_hh),
        ("rs", np.asarray(r_cols["household_id"], dtype=object)),
        ("ov", np.asarray(o_cols["household_id"], dtype=object)),
        ("pp", np.asarray(p_cols["household_id"], dtype=object)),
        ("cn", np.asarray(n_cols["household_id"], dtype=object)),
        ("gl", np.asarray(g_cols["household_id"], dtype=object)),
        ("gt", np.asarray(gt_cols["household_id"], dtype=object)))}
    runs["lots"] = _runs(l_hh_code, l_hh_names)
    empty = (0, 0)

    def _cash_needs(hid: str, acct_index: dict[str, int]) -> dict[str, object]:
        """The household's cash_needs rows as Household fields (account -1: the
        household's choice); an unknown account was set aside by validation."""
        c0, c1 = runs["cn"].get(hid, empty)
        return dict(need_ids=tuple(n_cols["need_id"][c0:c1]),
                    need_account=np.array([-1 if a is None else acct_index[a]
                                           for a in n_cols["account_id"][c0:c1]], dtype=np.int64),
                    need_due=n_due[c0:c1], need_amount=n_amount[c0:c1])

    def _goals(hid: str) -> list[tuple[str, list[str], tuple[str, ...], np.ndarray,
                                       np.datetime64]]:
        """The household's goals: (goal_id, its accounts, classes, weights, horizon), the
        weights its goal_targets', else its model's glide path on the run date (which
        runs to its own dates: no horizon then), else its model's targets. Validation
        has set aside the households whose goal rows are bad."""
        r0, r1 = runs["gl"].get(hid, empty)
        q0, q1 = runs["gt"].get(hid, empty)
        own: dict[str, tuple[list[str], list[float]]] = {}
        for j in range(q0, q1):
            k, w = gt_cols["asset_class"][j], gt_cols["weight"][j]
            if k is not None and w is not None:
                mine = own.setdefault(gt_cols["goal_id"][j], ([], []))
                mine[0].append(k)
                mine[1].append(w)
        out: list[tuple[str, list[str], tuple[str, ...], np.ndarray, np.datetime64]] = []
        for j in range(r0, r1):
            gid, model = g_cols["goal_id"][j], g_cols["model_id"][j]
            if out and out[-1][0] == gid:
                out[-1][1].append(g_cols["account_id"][j])
                continue
            horizon = g_horizon[j]
            if gid in own:
                classes, weights = tuple(own[gid][0]), np.asarray(own[gid][1], dtype=np.float64)
            elif model in model_glide:
                (classes, weights), horizon = model_glide[model], np.datetime64("NaT", "D")
            else:
                classes, weights = ref.targets.get(model, ((), np.zeros(0)))
            out.append((gid, [g_cols["account_id"][j]], classes, weights, horizon))
        return out

    def _one(i: int, hid: str, overrides: Overrides) -> Household:
        """One household from its slices of the shard's arrays."""
        a0, a1 = runs["accounts"].get(hid, empty)
        l0, l1 = runs["lots"].get(hid, empty)
        t0, t1 = runs["tx"].get(hid, empty)
        account_ids = tuple(a_id[a0:a1])
        acct_index = {a: j for j, a in enumerate(account_ids)}
        model_id = cols["model_id"][i]
        p0, p1 = runs["pp"].get(hid, empty)
        ranks = preferred_ranks(ref.model_ranks.get(model_id, {}), [
            (p_cols["asset_class"][j], p_cols["security_id"][j], p_cols["vehicle"][j],
             p_cols["rank"][j]) for j in range(p0, p1)], ref)
        held_ref = l_sec_ref[l0:l1]
        if (held_ref < 0).any():  # validation sets such a household aside
            code = int(l_sec_code[l0 + int(np.argmax(held_ref < 0))])
            raise KeyError(f"security {l_sec_names[code] if code >= 0 else None!r} of a lot "
                           "is not in securities")
        held = [ref_ids[r] for r in np.unique(held_ref).tolist()]
        universe = sorted(set(held) | set(ranks) | set(t_sec[t0:t1]))  # preferred ones in ranks
        # unknown held securities were caught by validation; unknown transaction
        # securities cannot share a wash group with anything held, so they drop out
        universe = [s for s in universe if s in ref.security_index]
        sec_index = {s: j for j, s in enumerate(universe)}
        rows = np.array([ref.security_index[s] for s in universe], dtype=np.int64)
        # The target, most specific first: custom targets, the household's glide path,
        # its model's glide path, its model's targets (docs/data-contract.md, glide_paths).
        h0, h1 = runs["ht"].get(hid, empty)
        if h1 > h0:
            # a row without an asset_class counts for nothing (validation sums the others)
            has = np.array([k is not None for k in ht_class[h0:h1]], dtype=bool)
            tgt_classes = tuple(ht_class[h0:h1][has])
            tgt_w = np.asarray(ht_w[h0:h1], dtype=float)[has]
        elif hid in household_glide:
            tgt_classes, tgt_w = household_glide[hid]
        elif model_id in model_glide:
            tgt_classes, tgt_w = model_glide[model_id]
        else:
            tgt_classes, tgt_w = ref.targets.get(model_id, ((), np.zeros(0)))
        g0, g1 = runs["ha"].get(hid, empty)
        sec_class = ref.asset_class[rows] if len(rows) else np.zeros(0, dtype=object)
        goals = _goals(hid)
        classes = tuple(sorted(set(tgt_classes) | set(sec_class) | set(ha_class[g0:g1])
                               | {k for goal in goals for k in goal[2]} | {CASH_CLASS}))
        class_index = {k: j for j, k in enumerate(classes)}
        target = np.zeros(len(classes))
        for k, w in zip(tgt_classes, tgt_w):
            target[class_index[k]] += w
        held_away = np.zeros(len(classes))
        for k, v in zip(ha_class[g0:g1], np.maximum(ha_val[g0:g1].astype(np.float64), 0.0)):
            held_away[class_index[k]] += v
        groups = ref.wash_group[rows] if len(rows) else np.zeros(0, dtype=object)
        wash_groups = tuple(sorted(set(groups)))
        group_index = {g: j for j, g in enumerate(wash_groups)}
        menu = np.ones((len(account_ids), len(universe)), dtype=bool)
        for j in range(a0, a1):
            if a_menu[j] is not None:
                allowed = ref.menus.get(a_menu[j], frozenset())
                menu[j - a0] = [s in allowed for s in universe]
        r0, r1 = runs["rs"].get(hid, empty)
        restrictions = tuple(
            Restriction(rule=r_cols["rule"][j],
                        account=acct_index.get(r_cols["account_id"][j], -1)
                        if r_cols["account_id"][j] is not None else -1,
                        security=r_cols["security_id"][j], sector=r_cols["sector"][j],
                        tag=r_cols["tag"][j])
            for j in range(r0, r1))
        restrictions = held_first(restrictions, overrides.holds, account_ids, tuple(universe),
                                  tuple(ref.sector[rows]), tuple(ref.tags[r] for r in rows))
        tx_known = np.array([x in sec_index for x in t_sec[t0:t1]], dtype=bool)
        tx_sec = t_sec[t0:t1][tx_known]
        st_rate, lt_rate = cols["st_rate"][i], cols["lt_rate"][i]
        hh = make_household(
            hid, run_date, st_rate=st_rate, lt_rate=lt_rate,
            account_ids=account_ids,
            account_type=np.array([_TYPE_INDEX[x] for x in a_type[a0:a1]], dtype=np.int8),
            cash=a_num["cash"][a0:a1],
            security_ids=tuple(universe),
            asset_class=np.array([class_index[k] for k in sec_class], dtype=np.int64),
            price=ref.price[rows], classes=classes, target=target,
            lot_ids=tuple(l_id[l0:l1]),
            lot_account=_lot_accounts(l_acct_row[l0:l1], a0, a1),
            lot_security=_local(rows, held_ref),
            quantity=l_qty[l0:l1], cost_basis=l_basis[l0:l1], acquired=l_date[l0:l1],
            ordinary_rate=cols["ordinary_rate"][i], qualified_div_rate=cols["qualified_div_rate"][i],
            retirement_rate=cols["retirement_rate"][i],
            ytd_st_gain=cols["ytd_st_gain"][i], ytd_lt_gain=cols["ytd_lt_gain"][i],
            loss_carryforward_st=_at_least_zero(cols["loss_carryforward_st"][i]),
            loss_carryforward_lt=_at_least_zero(cols["loss_carryforward_lt"][i]),
            tax_budget=(None if overrides.no_tax_budget
                        else _opt(_at_least_zero(cols["tax_budget"][i]))),
            turnover_limit=_opt(cols["turnover_limit"][i]),
            drift_threshold=_opt(cols["drift_threshold"][i]),
            max_position_share=_opt(cols["max_position_share"][i]),
            max_sector_share=_opt(cols["max_sector_share"][i]), issuer=tuple(ref.issuer[rows]),
            tlh_enabled=bool(cols["tlh_enabled"][i]) and not overrides.no_harvest,
            filing_status=cols["filing_status"][i],
            min_cash=a_num["min_cash"][a0:a1], max_cash=a_max[a0:a1].astype(np.float64),
            contribution=a_num["contribution"][a0:a1], withdrawal=a_num["withdrawal"][a0:a1],
            tradable=a_tradable[a0:a1].astype(bool), menu=menu,
            wash_group=np.array([group_index[g] for g in groups], dtype=np.int64),
            wash_groups=wash_groups,
            rank=np.array([ranks.get(s, 0) for s in universe], dtype=np.int64),
            income_yield=ref.income_yield[rows], qualified_fraction=ref.qualified_fraction[rows],
            tax_exempt_fraction=ref.tax_exempt_fraction[rows],
            foreign_tax_fraction=ref.foreign_tax_fraction[rows],
            cg_distribution=ref.cg_distribution[rows], expected_return=ref.expected_return[rows],
            cost_rate=ref.cost_rate[rows], sector=tuple(ref.sector[rows]),
            tags=tuple(ref.tags[r] for r in rows), held_away=held_away,
            restrictions=restrictions,
            txn_group=np.array([group_index[ref.wash_group[ref.security_index[s]]]
                                for s in tx_sec], dtype=np.int64),
            txn_date=t_date[t0:t1][tx_known], txn_buy=t_side[t0:t1][tx_known] == "buy",
            txn_realized_gain=np.asarray(t_gain[t0:t1], dtype=np.float64)[tx_known],
            **_cash_needs(hid, acct_index),
            **_goal_fields(goals, acct_index, class_index),
        )
        bad = non_finite_fields(hh)
        if bad:  # validation should have caught it; a NaN must never reach HiGHS
            raise ValueError(f"non-finite numbers in {', '.join(bad)}")
        return hh

    for i, hid in enumerate(cols["household_id"]):
        overrides = household_overrides(o_cols, *runs["ov"].get(hid, empty), run_date)
        if cols["error_message"][i] is not None:  # its expired overrides are still noted
            yield HouseholdInput(hid, None, cols["error_message"][i],
                                 overrides=Overrides(expired=overrides.expired))
            continue
        try:
            yield HouseholdInput(hid, _one(i, hid, overrides), None, overrides=overrides)
        except Exception as e:  # noqa: BLE001 - validation missed something: cost this household only
            yield HouseholdInput(hid, None, f"could not assemble the household's records "
                                            f"({type(e).__name__}: {e}); check its rows",
                                 code="assembly_error",
                                 overrides=Overrides(expired=overrides.expired))
