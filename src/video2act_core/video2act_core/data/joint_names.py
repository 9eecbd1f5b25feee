"""Joint names: mapping them as a recording spells them to the names this
project uses, so that recordings from other robot stacks (a dataset that
writes `shoulder_pan.pos`, a bag whose arm says `joint_1`) line up with the
configured joints; and picking and ordering the policy's joints out of a
robot's JointState.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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


class JointStateError(ValueError):
    pass


def reorder_joint_state(names: list[str], positions: list[float], joint_names: list[str]) -> np.ndarray:
    """Positions in `joint_names` order from a JointState that may carry
    other joints too (grippers, a mobile base) in any order.

    Raises:
        JointStateError: names and positions differ in length, a name
            repeats (which value is meant?), a joint is missing, or one of
            ours is not finite.
    """
    if len(names) != len(positions):
        raise JointStateError(f"{len(names)} joint names but {len(positions)} positions")
    index = {name: i for i, name in enumerate(names)}
    if len(index) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise JointStateError(f"joint state names joints {repeated} more than once")
    missing = [name for name in joint_names if name not in index]
    if missing:
        raise JointStateError(f"joint state lacks joints {missing} (has {list(names)})")
    ordered = np.array([positions[index[name]] for name in joint_names], dtype=np.float64)
    if not np.all(np.isfinite(ordered)):
        raise JointStateError(f"joint state has non-finite positions {ordered.tolist()}")
    return ordered
