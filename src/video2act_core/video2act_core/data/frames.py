"""Camera frames: decoding sensor_msgs/Image payloads and the clip buffer."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

# encoding -> (channels, indices of R, G, B); mono is replicated to RGB.
_ENCODINGS = {
    "rgb8": (3, (0, 1, 2)),
    "bgr8": (3, (2, 1, 0)),
    "rgba8": (4, (0, 1, 2)),
    "bgra8": (4, (2, 1, 0)),
    "mono8": (1, (0, 0, 0)),
}
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)


class ImageDecodeError(ValueError):
    pass


def decode_image(encoding: str, height: int, width: int, step: int, data: bytes | memoryview) -> np.ndarray:
    """An Image message's fields -> (H, W, 3) uint8 RGB, honouring row padding."""
    if encoding not in _ENCODINGS:
        raise ImageDecodeError(f"unsupported image encoding '{encoding}'; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    channels, rgb = _ENCODINGS[encoding]
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"empty image {width}x{height}")
    if step < width * channels:
        raise ImageDecodeError(f"row step {step} is shorter than {width} px x {channels} channels")
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size < step * height:
        raise ImageDecodeError(f"image data has {buffer.size} bytes, {step * height} expected for {width}x{height}")
    rows = buffer[: step * height].reshape(height, step)[:, : width * channels]
    pixels = rows.reshape(height, width, channels)
    return np.ascontiguousarray(pixels[:, :, list(rgb)])


def encode_rgb8(frame: np.ndarray) -> tuple[int, int, int, bytes]:
    """(H, W, 3) uint8 -> (height, width, step, data) for an rgb8 Image."""
    height, width, _ = frame.shape
    return height, width, width * 3, np.ascontiguousarray(frame, dtype=np.uint8).tobytes()


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
