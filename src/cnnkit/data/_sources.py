"""Imports every dataset source so it registers itself."""

from . import digits, files, shards, torchvision_sets  # noqa: F401
