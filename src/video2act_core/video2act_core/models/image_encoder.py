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
        # RDT's (and the official code's) image_aspect_ratio "pad": the frame
        # centred on a square of the processor's mean colour, not stretched;
        # then SiglipImageProcessor's steps: resize to the model's square
        # input (bicubic; here with antialiasing, not PIL's), mean 0.5, std 0.5.
        pixels = F.interpolate(
            padded_to_square(frames.float()), size=(self.image_size, self.image_size), mode="bicubic", antialias=True
        ).clamp(0.0, 1.0)
        pixels = ((pixels - 0.5) / 0.5).to(next(model.parameters()))
        hidden = model(pixel_values=pixels).last_hidden_state  # (N, g*g, C), row-major patches
        return hidden.transpose(1, 2).unflatten(2, (self.grid, self.grid))


def padded_to_square(frames: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] on a square of side max(H, W) filled with
    int(0.5 * 255) / 255 (SigLIP's mean as RDT's expand2square fills it),
    offset by (side - H) // 2 rows or (side - W) // 2 columns."""
    height, width = frames.shape[-2:]
    side = max(height, width)
    if height == width:
        return frames
    square = frames.new_full((*frames.shape[:-2], side, side), int(0.5 * 255) / 255)
    top, left = (side - height) // 2, (side - width) // 2
    square[..., top : top + height, left : left + width] = frames
    return square
