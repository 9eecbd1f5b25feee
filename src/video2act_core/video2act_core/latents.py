"""One System 2 update as System 1 reads it and a message carries it:
plain numpy, so the control layer, the messages and the tools that handle
latents need no torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Latents:
    """One System 2 update, as numpy, ready for a message or System 1."""

    spatial: np.ndarray  # (N_spatial, token_dim) float32
    motion: np.ndarray  # (N_motion, token_dim) float32
    motion_energy: float
    # What System 2 saw, for display (not sent to System 1): (h, w) maps.
    boundary_map: np.ndarray | None = None
    motion_map: np.ndarray | None = None
    # Image tokens per camera and history frame (N_views, token_dim), when
    # the checkpoint has them.
    views: np.ndarray | None = None
