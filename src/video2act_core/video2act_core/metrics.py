"""Rates and latency percentiles for benchmarks, the demo report and tests."""

from __future__ import annotations

import threading
import time

import numpy as np


class StreamStats:
    """Arrival times and optional per-message values (latencies, ages) of one stream."""

    def __init__(self, name: str):
        self.name = name
        self._arrivals: list[float] = []
        self._values: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def record(self, **values: float) -> None:
        with self._lock:
            self._arrivals.append(time.monotonic())
            for key, value in values.items():
                self._values.setdefault(key, []).append(float(value))

    @property
    def count(self) -> int:
        return len(self._arrivals)

    def rate_hz(self) -> float:
        with self._lock:
            arrivals = list(self._arrivals)
        if len(arrivals) < 2 or arrivals[-1] <= arrivals[0]:
            return 0.0
        return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])

    def values(self, key: str) -> np.ndarray:
        with self._lock:
            return np.asarray(self._values.get(key, []), dtype=np.float64)

    def summary(self) -> str:
        parts = [f"{self.name:<16} n={self.count:<5} rate={self.rate_hz():6.2f} Hz"]
        for key in sorted(self._values):
            parts.append(describe_ms(key, self.values(key)))
        return "  ".join(parts)


def percentiles_ms(seconds: np.ndarray) -> tuple[float, float]:
    finite = seconds[np.isfinite(seconds)]
    if finite.size == 0:
        return float("nan"), float("nan")
    return float(np.percentile(finite, 50) * 1e3), float(np.percentile(finite, 99) * 1e3)


def describe_ms(key: str, seconds: np.ndarray) -> str:
    p50, p99 = percentiles_ms(seconds)
    return f"{key} p50={p50:.1f} ms p99={p99:.1f} ms"


class RecentStats:
    """Events and values of the last `window_s` seconds only, for figures a
    long-running node reports (diagnostics) without growing without bound."""

    def __init__(self, window_s: float = 10.0):
        self.window_s = window_s
        self._events: list[tuple[float, dict[str, float]]] = []
        self._lock = threading.Lock()

    def record(self, **values: float) -> None:
        now = time.monotonic()
        with self._lock:
            self._events.append((now, values))
            self._forget(now)

    def _forget(self, now: float) -> None:
        cutoff = now - self.window_s
        while self._events and self._events[0][0] < cutoff:
            self._events.pop(0)

    def rate_hz(self) -> float:
        with self._lock:
            self._forget(time.monotonic())
            return len(self._events) / self.window_s

    def percentiles_ms(self, key: str) -> tuple[float, float]:
        with self._lock:
            values = np.asarray([v[key] for _, v in self._events if key in v], dtype=np.float64)
        return percentiles_ms(values)
