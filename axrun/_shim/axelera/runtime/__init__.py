"""``axelera.runtime`` under ``axrun exec``: axrun's software Metis (``axrun.emulator``)."""

from axrun.emulator import *  # noqa: F403 - the same public names as the real module
from axrun.emulator import __all__  # noqa: F401

__axrun_emulator__ = True
