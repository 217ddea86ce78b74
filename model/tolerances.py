"""The one definition of "close enough" that every part of hearth uses.

Validation, the model, the checker and the reports compare money and share
quantities with these tolerances and nothing else, so a figure that one part
accepts is never rejected by another. Values within tolerance of a bound are
clamped to the bound, not reported as errors: float noise from an upstream sum
(a carryforward of -2.3e-13) or a reinvested-dividend sliver (0.00007 shares) is
not a data problem.
"""

from __future__ import annotations

import numpy as np

MONEY_TOL = 0.01  # dollars: the contract's tolerance for money
QTY_RTOL = 1e-9  # relative tolerance for share quantities (the contract's 1e-9)
DEFAULT_DUST_SHARES = 1e-3  # shares below which a position is dust (config `dust_shares`)
DEFAULT_SHARE_INCREMENT = 1e-6  # the broker's smallest share step (config `share_increment`)


def qty_tol(quantity: np.ndarray | float) -> np.ndarray:
    """Absolute tolerance for a share quantity: relative, with a floor at one share."""
    return QTY_RTOL * np.maximum(np.abs(quantity), 1.0)


def same_quantity(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """Quantities equal within the quantity tolerance."""
    return np.abs(np.asarray(a) - np.asarray(b)) <= qty_tol(np.maximum(np.abs(a), np.abs(b)))


def is_dust(shares: np.ndarray | float, dust_shares: float = DEFAULT_DUST_SHARES) -> np.ndarray:
    """A position this small counts as no position (a no_hold rule is met by it)."""
    return np.abs(np.asarray(shares)) < dust_shares + QTY_RTOL


def clamp_money(x: float, lower: float = 0.0) -> float:
    """A dollar figure within a cent below ``lower`` is ``lower`` (an upstream sum's
    noise); anything further below is left for validation to report."""
    return lower if lower - MONEY_TOL <= x < lower else x
