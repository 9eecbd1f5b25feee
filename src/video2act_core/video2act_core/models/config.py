"""Model configs are dataclasses serialised into checkpoint manifests.

Each config checks its values when it is made (`__post_init__`, so
`from_dict`, direct construction and `dataclasses.replace` alike), as
LeRobot's policy configs do: a bad value fails there, in one line naming
the field, the value given and what is expected, instead of as a shape
mismatch deep in a forward pass. Subclasses call `super().__post_init__()`
(every field holds its declared type) and then check their ranges,
choices and cross-field constraints with `invalid`.
"""

from __future__ import annotations

import numbers
import types
import typing
from dataclasses import asdict, fields
from typing import Any


def type_error(value: Any, hint: Any) -> str | None:
    """What `hint` expects, when `value` does not hold it; None when it does.
    Understands the hints model configs and backbone options use: bool, int
    (not bool), float (any real but bool), str, list/tuple (either, element
    types checked), dict, unions/Optional and Any."""
    if hint is Any:
        return None
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        failures = [type_error(value, option) for option in arguments]
        return None if None in failures else " or ".join(failures)
    if hint is type(None):
        return None if value is None else "None"
    if hint is bool:
        return None if isinstance(value, bool) else "a bool"
    if hint is int:
        return None if isinstance(value, numbers.Integral) and not isinstance(value, bool) else "an int"
    if hint is float:
        return None if isinstance(value, numbers.Real) and not isinstance(value, bool) else "a number"
    if hint is str:
        return None if isinstance(value, str) else "a string"
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return "a list"
        element = arguments[0] if arguments else Any
        wrong = [item for item in value if type_error(item, element) is not None]
        return f"a list of {type_error(wrong[0], element).removeprefix('a ').removeprefix('an ')}s" if wrong else None
    if origin is dict or hint is dict:
        return None if isinstance(value, dict) else "a mapping"
    return None  # any other hint: not checked here


class ConfigDict:
    """from_dict refuses unknown keys, so a typo or a newer checkpoint's
    option fails loudly instead of being silently ignored; every field must
    hold its declared type."""

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            expected = type_error(getattr(self, f.name), hints[f.name])
            if expected is not None:
                raise self.invalid(f.name, expected)

    def invalid(self, name: str, expected: str) -> ValueError:
        """The error for field `name`: its value and what is expected, in one line."""
        return ValueError(f"{type(self).__name__}.{name}={getattr(self, name)!r}: expected {expected}")
