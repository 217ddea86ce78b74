"""hearth: nightly household-level, tax-aware rebalancing across all of a household's accounts.

Subpackages (imports point down): ``cluster -> batch -> io -> model``.
"""

__version__ = "0.1.0"
CONTRACT_VERSION = 2
