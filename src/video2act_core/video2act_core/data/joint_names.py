"""Mapping of joint names as a recording spells them to the names this
project uses, so that recordings from other robot stacks (a dataset that
writes `shoulder_pan.pos`, a bag whose arm says `joint_1`) line up with the
configured joints.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class JointNameMap:
    """`explicit` renames single joints and wins over `strip_suffix`, which
    is cut off the end of any other name that carries it."""

    strip_suffix: str = ""
    explicit: dict[str, str] = field(default_factory=dict)

    def name(self, recorded: str) -> str:
        if recorded in self.explicit:
            return self.explicit[recorded]
        if self.strip_suffix and recorded.endswith(self.strip_suffix):
            return recorded[: -len(self.strip_suffix)]
        return recorded

    def names(self, recorded: list[str]) -> list[str]:
        return [self.name(n) for n in recorded]
