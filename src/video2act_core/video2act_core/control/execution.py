"""How consecutive action chunks become one motion: the execution strategy.

System 1 plans a chunk from the state at `planned_s`; it takes over from
the command in force only after inference (and transport) delay, and then
need not agree with it, so the commanded motion can jump at every seam.

- replace: the new chunk replaces the running one (the envelope drops the
  points that elapsed during inference).
- temporal_ensemble: ACT's temporal ensembling: each future step is the
  weighted mean of every chunk that predicted it, weights exp(-m i) with
  i = 0 the oldest (m = `ensemble_weight_decay`; ACT uses 0.01, smaller m
  takes in new observations faster).
- rtc: real-time chunking: the steps that execute while the new chunk is
  being computed are frozen to the command in force, and the next ones are
  inpainted toward it with a decaying soft mask (Black et al., 2025), so
  the new chunk continues the old one. The frozen length comes from the
  delay measured between planning and take-over, online.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from video2act_core.trajectory import TrajectoryTracker, setpoints_ahead

STRATEGIES = ("replace", "temporal_ensemble", "rtc")


@dataclass
class ChunkPrior:
    """What a new chunk must agree with (RTC's inpainting target)."""

    positions: np.ndarray  # (H, J) absolute targets at the new chunk's times
    weights: np.ndarray  # (H,) 1: frozen, then decaying to 0
    frozen_steps: int


def soft_mask(horizon: int, frozen: int, overlap: int) -> np.ndarray:
    """RTC's guidance weights: 1 for the `frozen` steps, an exponential decay
    over the rest of the `overlap` with the previous chunk, 0 beyond it."""
    weights = np.zeros(horizon)
    overlap = min(overlap, horizon)
    frozen = min(frozen, overlap)
    weights[:frozen] = 1.0
    span = overlap - frozen + 1
    for i in range(frozen, overlap):
        c = (overlap - i) / span
        weights[i] = c * (math.exp(c) - 1) / (math.e - 1)
    return weights


class LatencyEstimator:
    """Delay from planning a chunk to its take-over, from the last
    `window` measurements: a high quantile, so a slow cycle is covered too."""

    def __init__(self, window: int = 20, quantile: float = 0.9):
        self._delays: deque[float] = deque(maxlen=window)
        self.quantile = quantile

    def record(self, delay_s: float) -> None:
        if math.isfinite(delay_s) and delay_s >= 0:
            self._delays.append(delay_s)

    def estimate_s(self) -> float:
        return float(np.quantile(self._delays, self.quantile)) if self._delays else 0.0


class ExecutionStrategy:
    def __init__(
        self, name: str, period_s: float, horizon: int, lead_s: float = 0.0, ensemble_weight_decay: float = 0.01
    ):
        if name not in STRATEGIES:
            raise ValueError(f"execution_strategy must be one of {STRATEGIES}, got '{name}'")
        self.name, self.period_s, self.horizon, self.lead_s = name, period_s, horizon, lead_s
        self.ensemble_weight_decay = ensemble_weight_decay
        self.latency = LatencyEstimator()
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []  # (times, positions) of running chunks, oldest first

    def times(self, planned_s: float) -> np.ndarray:
        """Absolute times of a chunk planned at `planned_s`."""
        return planned_s + self.period_s * np.arange(1, self.horizon + 1)

    def reset(self) -> None:
        """Nothing planned before carries over (a reset, a hold, re-arming)."""
        self._chunks.clear()

    def prior(
        self, command_in_force: TrajectoryTracker | None, command_end_s: float, planned_s: float
    ) -> ChunkPrior | None:
        """RTC's target for a chunk planned at `planned_s`: the command in
        force sampled at the chunk's times, frozen for the steps due before
        the estimated take-over, softly after, free once it has ended."""
        if self.name != "rtc" or command_in_force is None:
            return None
        times = self.times(planned_s)
        overlap = int(np.sum(times <= command_end_s + 1e-9))
        if overlap == 0:
            return None
        positions = setpoints_ahead(command_in_force, times)
        take_over = planned_s + self.latency.estimate_s() + self.lead_s
        frozen = int(np.sum(times < take_over))
        return ChunkPrior(positions, soft_mask(self.horizon, frozen, overlap), frozen)

    def combine(self, targets: np.ndarray, planned_s: float) -> np.ndarray:
        """The targets to execute: temporal ensembling averages them with the
        earlier chunks' predictions for the same times; the others pass."""
        if self.name != "temporal_ensemble":
            return targets
        times = self.times(planned_s)
        self._chunks = [(t, p) for t, p in self._chunks if t[-1] >= times[0] - 1e-9]
        self._chunks.append((times, targets))
        predictions = np.zeros((len(self._chunks), *targets.shape))
        log_weights = np.full((len(self._chunks), len(times)), -np.inf)
        for index, (chunk_times, positions) in enumerate(self._chunks):
            covered = (times >= chunk_times[0] - 1e-9) & (times <= chunk_times[-1] + 1e-9)
            for j in range(targets.shape[1]):
                predictions[index, covered, j] = np.interp(times[covered], chunk_times, positions[:, j])
            log_weights[index, covered] = -self.ensemble_weight_decay * index
        # Normalised per step in log space: with many chunks and a steep
        # decay the raw weights of a step's newest chunks would underflow.
        weights = np.exp(log_weights - log_weights.max(axis=0))
        return np.einsum("ct,ctj->tj", weights, predictions) / weights.sum(axis=0)[:, None]
