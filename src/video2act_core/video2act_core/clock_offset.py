"""Is another machine's clock off? A camera or robot driver on another host
stamps its messages with that host's clock: unsynchronised, every input
looks stamped in the future (refused) or stale (the policy holds), and
nothing else says why. Inputs whose age at arrival (receipt - stamp) stays
beyond what transport explains, all by about the same amount, point at the
clocks rather than at the sender; chrony or PTP on every host fixes it.
"""

from __future__ import annotations

from collections import deque

import numpy as np

CLOCKS_HINT = "clocks of the hosts differ? sync them (chrony, PTP)"


class ClockOffsets:
    """The age at arrival of the last `window` messages of each input."""

    def __init__(self, window: int = 50):
        self.window = window
        self._ages: dict[str, deque[float]] = {}

    def record(self, source: str, received_s: float, stamp_s: float) -> None:
        """A message of `source` stamped `stamp_s`, received at `received_s` (node clock)."""
        self._ages.setdefault(source, deque(maxlen=self.window)).append(received_s - stamp_s)

    def offset(self, source: str) -> tuple[float, float] | None:
        """(median age at arrival, its spread p90 - p10) in s, or None
        before half a window of messages."""
        ages = self._ages.get(source)
        if ages is None or len(ages) < self.window // 2:
            return None
        values = np.asarray(ages)
        return float(np.median(values)), float(np.percentile(values, 90) - np.percentile(values, 10))

    def problem(self, source: str, max_lead_s: float, max_age_s: float) -> str:
        """Why `source`'s stamps look like another clock's, or '': stamped
        further ahead than `max_lead_s`, or older than `max_age_s` on
        arrival, consistently (a spread under a quarter of the offset: a
        slow or bursty sender spreads its ages, a clock offset shifts them)."""
        measured = self.offset(source)
        if measured is None:
            return ""
        median, spread = measured
        if not (median < -max_lead_s or median > max_age_s) or spread > abs(median) / 4:
            return ""
        way = f"{-median:.2f} s ahead of" if median < 0 else f"{median:.2f} s behind"
        return f"{source} is stamped {way} this node's clock, consistently (spread {spread:.3f} s): {CLOCKS_HINT}"

    def sources(self) -> list[str]:
        return list(self._ages)


def age_at_arrival(offsets: ClockOffsets) -> dict[str, str]:
    """Diagnostics values: each input's median age at arrival and its spread."""
    values = {}
    for source in offsets.sources():
        measured = offsets.offset(source)
        if measured is not None:
            values[f"age at arrival {source} (median / spread s)"] = f"{measured[0]:.3f} / {measured[1]:.3f}"
    return values
