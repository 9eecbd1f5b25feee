"""Camera buffers: the newest frames, from which System 2 takes its clip
(the video camera's) and, for image tokens, each camera's recent frames;
and the rules both training and the live nodes pick frames by."""

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


def view_frame_indices(stamps_ns: np.ndarray, newest_ns: int, history: int, spacing_ns: int) -> np.ndarray | None:
    """Indices of one camera's `history` frames for the image tokens, oldest
    first: the newest frame at or before `newest_ns - k * spacing_ns` for
    k = history-1 .. 0 (the camera's first frame before it has any); None
    when the camera has no frame at or before `newest_ns`. Training picks
    by the same rule, at the video camera's newest frame, as the live node."""
    wanted = newest_ns - spacing_ns * np.arange(history - 1, -1, -1, dtype=np.int64)
    indices = np.searchsorted(np.asarray(stamps_ns, np.int64), wanted, side="right") - 1
    if indices[-1] < 0:
        return None
    return np.maximum(indices, 0)


@dataclass(frozen=True)
class ViewSpec:
    """Which frames give the image tokens: the first `cameras` cameras (the
    video camera, then the extra cameras in order), `history` frames each,
    `spacing_ns` apart (`view_frame_indices`)."""

    cameras: int
    history: int
    spacing_ns: int

    @classmethod
    def of(cls, config) -> ViewSpec | None:
        """From a System 2 config (`VDMEncoderConfig`); None without image tokens."""
        if not config.view_cameras:
            return None
        return cls(config.view_cameras, config.view_history, int(round(config.view_spacing_s * 1e9)))


class ViewBuffer:
    """One camera's recent frames for the image tokens, thread-safe; keeps
    what `history` frames `spacing_ns` apart need, plus `margin_ns` for a
    camera that runs ahead of the video camera."""

    def __init__(self, history: int, spacing_ns: int, margin_ns: int = 1_000_000_000):
        self.history, self.spacing_ns = history, spacing_ns
        self.keep_ns = (history - 1) * spacing_ns + margin_ns
        self._frames: deque[tuple[int, np.ndarray]] = deque()
        self._lock = threading.Lock()

    def push(self, stamp_ns: int, frame: np.ndarray) -> None:
        with self._lock:
            if self._frames and (stamp_ns < self._frames[-1][0] or frame.shape != self._frames[-1][1].shape):
                self._frames.clear()  # time went backwards or the camera changed: start again
            self._frames.append((stamp_ns, frame))
            # Keep the newest frame at or before the oldest time still needed.
            while len(self._frames) > 1 and self._frames[1][0] <= stamp_ns - self.keep_ns:
                self._frames.popleft()

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()

    def frames_at(self, newest_ns: int) -> Clip | None:
        """The history frames for the video camera's newest frame at
        `newest_ns` (`view_frame_indices`), or None without a frame then."""
        with self._lock:
            frames = list(self._frames)
        indices = view_frame_indices([s for s, _ in frames], newest_ns, self.history, self.spacing_ns)
        if indices is None:
            return None
        return Clip(np.stack([frames[i][1] for i in indices]), [frames[i][0] for i in indices])


class CameraInputs:
    """Every camera's frames as System 2 reads them: the video camera's clip
    and, for image tokens, each camera's recent frames (the video camera's
    first); `names` say which camera is which in messages."""

    def __init__(self, num_frames: int, stride: int = 1, views: ViewSpec | None = None, names: list[str] | None = None):
        self.clips = FrameBuffer(num_frames, stride)
        self.views = [ViewBuffer(views.history, views.spacing_ns) for _ in range(views.cameras)] if views else []
        self.names = names or [f"camera {i}" for i in range(max(1, len(self.views)))]

    def push(self, camera: int, stamp_ns: int, frame: np.ndarray) -> None:
        if camera < len(self.views):
            self.views[camera].push(stamp_ns, frame)
        if camera == 0:
            self.clips.push(stamp_ns, frame)

    def clear(self) -> None:
        self.clips.clear()
        for buffer in self.views:
            buffer.clear()

    def read(self, max_lag_s: float = float("inf")) -> tuple[Clip | None, list[Clip], str]:
        """(the video camera's clip, each camera's frames for the image
        tokens, '') or (None, [], why not): no frame yet, or a camera
        without a frame within `max_lag_s` before the video camera's newest."""
        clip = self.clips.clip()
        if clip is None:
            return None, [], f"waiting for the first frame on {self.names[0]}"
        newest = clip.stamps_ns[-1]
        views = []
        for name, buffer in zip(self.names, self.views):
            frames = buffer.frames_at(newest)
            if frames is None:
                return None, [], f"waiting for a frame on {name} at or before the newest on {self.names[0]}"
            lag = (newest - frames.stamps_ns[-1]) * 1e-9
            if lag > max_lag_s:
                return (
                    None,
                    [],
                    (
                        f"camera {name} stalled: its newest frame is {lag:.2f} s older than "
                        f"{self.names[0]}'s (max {max_lag_s}); not publishing stale latents"
                    ),
                )
            views.append(frames)
        return clip, views, ""
