"""Imports every dataset source so it registers itself."""

from . import digits  # noqa: F401
