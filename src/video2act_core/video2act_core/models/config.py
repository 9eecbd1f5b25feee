"""Model configs are dataclasses serialised into checkpoint manifests."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any


class ConfigDict:
    """from_dict refuses unknown keys, so a typo or a newer checkpoint's
    option fails loudly instead of being silently ignored."""

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
