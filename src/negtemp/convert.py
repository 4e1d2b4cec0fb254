"""Converting a caller's Python values into the types the rest of negtemp takes."""

from __future__ import annotations

import numbers

__all__ = ["int_in", "strict_int"]


def strict_int(name: str, value: object) -> int:
    """value as an int; numpy integers count (token ids often come from arrays), bools and floats do not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    return int(value)


def int_in(name: str, value: object, lo: int, hi: int) -> int:
    """strict_int(value), and ValueError unless lo <= value <= hi."""
    v = strict_int(name, value)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return v
