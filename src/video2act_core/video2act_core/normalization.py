"""Joint-state and action normalisation statistics, stored with checkpoints."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# A joint that never moved in the data would divide by ~0.
MIN_STD = 1e-3


@dataclass
class NormalizationStats:
    joint_names: list[str]
    state_mean: list[float]
    state_std: list[float]
    action_mean: list[float]
    action_std: list[float]

    def __post_init__(self) -> None:
        width = len(self.joint_names)
        for name in ("state_mean", "state_std", "action_mean", "action_std"):
            values = np.asarray(getattr(self, name), dtype=np.float64)
            if values.shape != (width,) or not np.all(np.isfinite(values)):
                raise ValueError(f"{name} must be {width} finite numbers (one per joint), got {values.tolist()}")
            setattr(self, name, values.tolist())

    @classmethod
    def identity(cls, joint_names: list[str]) -> NormalizationStats:
        zeros, ones = [0.0] * len(joint_names), [1.0] * len(joint_names)
        return cls(list(joint_names), zeros, ones, zeros, ones)

    @classmethod
    def from_data(cls, joint_names: list[str], states: np.ndarray, actions: np.ndarray) -> NormalizationStats:
        """From (N, J) joint states and (N, J) or (N, H, J) action targets."""
        actions = actions.reshape(-1, actions.shape[-1])
        return cls(
            list(joint_names),
            states.mean(0).tolist(),
            np.maximum(states.std(0), MIN_STD).tolist(),
            actions.mean(0).tolist(),
            np.maximum(actions.std(0), MIN_STD).tolist(),
        )

    @classmethod
    def in_rdt_units(
        cls, joint_names: list[str], grippers: list[bool], states: np.ndarray, actions: np.ndarray
    ) -> NormalizationStats:
        """RDT's convention (its README): joints as they are (radians), each
        gripper min-max scaled to [0, 1] over the (N, J) states and (N, J)
        or (N, H, J) actions."""
        values = np.concatenate([states, actions.reshape(-1, actions.shape[-1])])
        low, span = values.min(0), np.maximum(values.max(0) - values.min(0), MIN_STD)
        mean = np.where(grippers, low, 0.0).tolist()
        std = np.where(grippers, span, 1.0).tolist()
        return cls(list(joint_names), mean, std, mean, std)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NormalizationStats:
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def normalize_state(self, state: np.ndarray) -> np.ndarray:
        return (state - np.asarray(self.state_mean)) / np.asarray(self.state_std)

    def normalize_action(self, action: np.ndarray) -> np.ndarray:
        return (action - np.asarray(self.action_mean)) / np.asarray(self.action_std)

    def unnormalize_action(self, action: np.ndarray) -> np.ndarray:
        return action * np.asarray(self.action_std) + np.asarray(self.action_mean)
