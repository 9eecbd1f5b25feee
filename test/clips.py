"""Synthetic camera clips with known motion, for System 2's property tests:
a textured background and a square that is static, oscillates at a given
frequency and amplitude, or drifts; with sensor noise or brightness flicker.
Frames are (T, H, W, 3) uint8, `fps` apart."""

from __future__ import annotations

import numpy as np

SIZE, FPS, FRAMES = 64, 15.0, 32
SQUARE = 12  # side (px)
CENTRE = (32, 32)  # the square's resting centre (row, column)


def background(size: int = SIZE) -> np.ndarray:
    """A fixed mid-grey texture: blocks of 8 px, so edges exist everywhere but weakly."""
    rng = np.random.default_rng(7)
    blocks = rng.integers(70, 110, (size // 8, size // 8, 3))
    return np.kron(blocks, np.ones((8, 8, 1))).astype(np.float32)


def square_clip(
    frequency_hz: float = 0.0,
    amplitude_px: float = 0.0,
    drift_px_per_s: float = 0.0,
    noise_std: float = 0.0,
    flicker: float = 0.0,
    square: int = SQUARE,
    frames: int = FRAMES,
    fps: float = FPS,
    size: int = SIZE,
    seed: int = 0,
) -> np.ndarray:
    """The square moves horizontally by amplitude * sin(2 pi f t) + drift * t."""
    rng = np.random.default_rng(seed)
    scene = background(size)
    clip = []
    for index in range(frames):
        t = index / fps
        offset = amplitude_px * np.sin(2 * np.pi * frequency_hz * t) + drift_px_per_s * t
        top = CENTRE[0] - square // 2
        left = CENTRE[1] - square / 2 + offset
        # Sub-pixel rendering: each column covered by its share, so slow and
        # small motions are smooth, not steps of a whole pixel.
        columns = np.arange(size)
        cover = np.clip(np.minimum(columns + 1, left + square) - np.maximum(columns, left), 0.0, 1.0)
        mask = np.zeros((size, size, 1), np.float32)
        mask[top : top + square, :, 0] = cover
        frame = scene * (1.0 - mask) + mask * np.array([200.0, 60.0, 50.0], np.float32)
        if flicker:
            frame *= 1.0 + flicker * (1 if index % 2 else -1)
        if noise_std:
            frame += rng.normal(0.0, noise_std, frame.shape)
        clip.append(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
    return np.stack(clip)


def swept_columns(amplitude_px: float, square: int = SQUARE) -> tuple[int, int]:
    """Columns (px) the oscillating square covers at some time."""
    return int(CENTRE[1] - square // 2 - amplitude_px), int(CENTRE[1] + square // 2 + amplitude_px)
