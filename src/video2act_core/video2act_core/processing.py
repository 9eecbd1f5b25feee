"""Pre-processing of camera frames into the models' input tensors, the one
way training, the nodes and evaluation do it."""

from __future__ import annotations

import numpy as np
import torch

from video2act_core.data.images import resize_frame


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 RGB -> (1, T, 3, H, W) float in [0, 1]."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 RGB frames, got {frames.shape} {frames.dtype}")
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).unsqueeze(0).float() / 255.0


def views_to_tensor(views: list[np.ndarray]) -> torch.Tensor:
    """Each camera's (K, H, W, 3) uint8 RGB frames -> (1, V, K, 3, H, W) in [0, 1]."""
    return torch.cat([frames_to_tensor(camera) for camera in views]).unsqueeze(0)


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB of any size -> (T, *size, 3), as training resized them."""
    return np.stack([resize_frame(frame, size) for frame in frames])
