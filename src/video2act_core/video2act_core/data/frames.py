"""The clip buffer: the newest camera frames, from which System 2 takes clips."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

def clip_frame_indices(newest: int, num_frames: int, stride: int) -> np.ndarray:
    """Indices of the clip ending at frame `newest`, oldest first. Before an
    episode has enough frames its first one repeats: training builds its
    early clips this way, so the live loop does too instead of waiting."""
    return np.maximum(newest - stride * np.arange(num_frames - 1, -1, -1), 0)


@dataclass
class Clip:
    frames: np.ndarray  # (T, H, W, 3) uint8, oldest first
    stamps_ns: list[int]


class FrameBuffer:
    """The newest camera frames, thread-safe: a camera callback pushes while
    the System 2 timer reads clips."""

    def __init__(self, num_frames: int, stride: int = 1):
        if num_frames < 2 or stride < 1:
            raise ValueError("a clip needs at least 2 frames and a stride >= 1")
        self.num_frames = num_frames
        self.stride = stride
        self._frames: deque[tuple[int, np.ndarray]] = deque(maxlen=(num_frames - 1) * stride + 1)
        self._lock = threading.Lock()

    def push(self, stamp_ns: int, frame: np.ndarray) -> None:
        with self._lock:
            if self._frames and stamp_ns < self._frames[-1][0]:
                # Time went backwards (bag loop, sim reset): start a new clip.
                self._frames.clear()
            if self._frames and frame.shape != self._frames[-1][1].shape:
                self._frames.clear()
            self._frames.append((stamp_ns, frame))

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()

    def clip(self) -> Clip | None:
        """The newest clip, or None before the first frame (see clip_frame_indices)."""
        with self._lock:
            frames = list(self._frames)
        if not frames:
            return None
        chosen = [frames[i] for i in clip_frame_indices(len(frames) - 1, self.num_frames, self.stride)]
        return Clip(np.stack([f for _, f in chosen]), [s for s, _ in chosen])
