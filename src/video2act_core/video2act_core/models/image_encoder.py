"""SigLIP image tokens, as RDT's System 1 reads them (SigLIP-so400m's 27 x 27
patch tokens of each camera and history frame, `last_hidden_state`), from a
local `transformers` SiglipVisionModel directory. Frozen; its weights stay
out of System 2's state dict (the checkpoint stores the path, as it does for
a pretrained text encoder)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SiglipImageEncoder(nn.Module):
    """Frames (N, 3, H, W) in [0, 1] -> patch features (N, C, g, g)."""

    def __init__(self, path: str):
        super().__init__()
        try:
            from transformers import SiglipVisionModel
        except ImportError as error:
            raise RuntimeError("SigLIP image tokens need the transformers package: pip install transformers") from error
        model = SiglipVisionModel.from_pretrained(path, local_files_only=True).requires_grad_(False).eval()
        self._models = [model]  # a list: not registered, not saved, moved by `_apply`
        config = model.config
        self.image_size = config.image_size
        self.grid = config.image_size // config.patch_size
        self.channels = config.hidden_size

    def _apply(self, fn, recurse=True):
        self._models[0]._apply(fn)
        return super()._apply(fn, recurse)

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        model = self._models[0]
        # SiglipImageProcessor's steps: resize to the model's square input
        # (bicubic; here with antialiasing, not PIL's), then mean 0.5, std 0.5.
        pixels = F.interpolate(
            frames.float(), size=(self.image_size, self.image_size), mode="bicubic", antialias=True
        ).clamp(0.0, 1.0)
        pixels = ((pixels - 0.5) / 0.5).to(next(model.parameters()))
        hidden = model(pixel_values=pixels).last_hidden_state  # (N, g*g, C), row-major patches
        return hidden.transpose(1, 2).unflatten(2, (self.grid, self.grid))
