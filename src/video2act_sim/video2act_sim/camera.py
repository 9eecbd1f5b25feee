"""What a real camera adds to the simulator's clean render: per-pixel
sensor noise and a flickering gain (mains lighting, auto exposure), so the
closed loop can be evaluated with and without them; one noise stream per
simulated camera."""

from __future__ import annotations

import numpy as np


def camera_effects(frame: np.ndarray, rng: np.random.Generator, noise_std: float, flicker: float) -> np.ndarray:
    """(H, W, 3) uint8 -> the frame with gaussian noise of `noise_std` grey
    levels and a gain drawn in 1 +- `flicker`; unchanged when both are 0."""
    if noise_std <= 0 and flicker <= 0:
        return frame
    image = frame.astype(np.float32) * (1.0 + rng.uniform(-flicker, flicker))
    if noise_std > 0:
        image += rng.normal(0.0, noise_std, image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def camera_noise_streams(seed: int, arm, params) -> list[np.random.Generator]:
    """One noise stream per camera the params name (image_topic, then
    extra_camera_topics), apart from the arm's own draws; more cameras than
    the arm renders are refused."""
    topics = [params.image_topic, *params.extra_camera_topics]
    if len(topics) > len(arm.cameras):
        raise ValueError(
            f"the {params.backend} arm renders cameras {arm.cameras}; image_topic and "
            f"extra_camera_topics name {len(topics)}: {topics}"
        )
    return [np.random.default_rng([seed, 1 + camera]) for camera in range(len(topics))]
