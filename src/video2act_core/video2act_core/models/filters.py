"""Fixed (not learned) refinements of video-diffusion features.

Both work on per-frame feature maps shaped (B, T, C, H, W):
- the spatial filter turns Sobel gradient magnitude into a [0, 1] weight
  map that is high on foreground boundaries and ~0 on flat background;
- the motion filter keeps the temporally changing FFT components of each
  feature, so a static scene maps to zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(features: torch.Tensor) -> torch.Tensor:
    """Per-channel Sobel gradient magnitude of (N, C, H, W) maps.

    Replicate padding: zero padding would invent an edge at every border.
    """
    channels = features.shape[1]
    kx = _SOBEL_X.to(features.device, features.dtype)
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1).repeat(channels, 1, 1, 1)
    padded = F.pad(features, (1, 1, 1, 1), mode="replicate")
    grads = F.conv2d(padded, kernels, groups=channels)  # (N, 2C, H, W): gx, gy per channel
    gx, gy = grads[:, 0::2], grads[:, 1::2]
    return torch.sqrt(gx * gx + gy * gy + 1e-12)


def boundary_weights(features: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(N, C, H, W) -> (N, 1, H, W) weights in [0, 1], peaking on boundaries.

    Channel magnitudes are averaged after normalising each channel by its own
    spatial maximum, so a few high-variance channels cannot drown the rest.
    """
    magnitude = sobel_magnitude(features.float())
    per_channel_max = magnitude.amax(dim=(2, 3), keepdim=True)
    weights = (magnitude / (per_channel_max + eps)).mean(dim=1, keepdim=True)
    return weights / (weights.amax(dim=(2, 3), keepdim=True) + eps)


def temporal_highpass(features: torch.Tensor, band: tuple[int, int] | None = None) -> torch.Tensor:
    """Keep the changing components of (B, T, ...) along T.

    rFFT over time, zero the DC bin (the static part) and bins outside
    `band` = (lowest, highest) kept frequency index, inverse FFT back to T
    frames. `None` keeps every non-DC bin.
    """
    frames = features.shape[1]
    spectrum = torch.fft.rfft(features.float(), dim=1)
    low, high = band if band is not None else (1, spectrum.shape[1] - 1)
    if not 1 <= low <= high:
        raise ValueError(f"motion band must satisfy 1 <= low <= high, got {band}")
    keep = torch.zeros(spectrum.shape[1], device=features.device, dtype=torch.bool)
    keep[low : high + 1] = True
    shape = [1, spectrum.shape[1]] + [1] * (features.dim() - 2)
    spectrum = spectrum * keep.view(shape)
    return torch.fft.irfft(spectrum, n=frames, dim=1)


def motion_magnitude(changing: torch.Tensor) -> torch.Tensor:
    """RMS over time of the changing components: (B, T, C, H, W) -> (B, C, H, W)."""
    return torch.sqrt((changing * changing).mean(dim=1) + 1e-12) - 1e-6
