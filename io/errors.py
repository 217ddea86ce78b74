"""Re-export of the errors ``hearth.io`` raises."""

from hearth.errors import InputError

__all__ = ["InputError"]
