"""Checks of the values of library parameters: each failure is a :class:`ParameterError`
naming the parameter (never a TypeError from deep inside, never a value taken as
something else, such as ``True`` for 1 or a string for a list of its characters)."""

from __future__ import annotations

import numbers

from axrun.errors import ParameterError


def integer(name: str, value: object, least: int | None = None) -> int:
    """``value`` as an int (numpy integers too; not bools, floats or strings)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(name, f"must be an integer, not {value!r}")
    if least is not None and value < least:
        raise ParameterError(name, f"must be at least {least} (got {value})")
    return int(value)


def number(name: str, value: object, low: float, high: float) -> float:
    """``value`` as a float in [low, high] (ints and floats; not bools or strings)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(name, f"must be a number, not {value!r}")
    result = float(value)
    if not low <= result <= high:
        raise ParameterError(name, f"must be between {low:g} and {high:g} (got {value})")
    return result


def flag(name: str, value: object) -> bool:
    """``value`` if it is a bool (a string such as ``"no"`` is not taken as true)."""
    if not isinstance(value, bool):
        raise ParameterError(name, f"must be True or False, not {value!r}")
    return value


def choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise ParameterError(name, f"must be one of {', '.join(allowed)}, not {value!r}")
    return str(value)
