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


def safe_sqrt(values: torch.Tensor) -> torch.Tensor:
    """sqrt that is exactly 0 at 0 with a finite (zero) gradient there."""
    positive = values > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, values, torch.ones_like(values))), 0.0)


def sobel_magnitude(features: torch.Tensor) -> torch.Tensor:
    """Per-channel Sobel gradient magnitude of (N, C, H, W) maps.

    Replicate padding: zero padding would invent an edge at every border.
    A flat map gives exactly zero.
    """
    channels = features.shape[1]
    kx = _SOBEL_X.to(features.device, features.dtype)
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1).repeat(channels, 1, 1, 1)
    padded = F.pad(features, (1, 1, 1, 1), mode="replicate")
    grads = F.conv2d(padded, kernels, groups=channels)  # (N, 2C, H, W): gx, gy per channel
    gx, gy = grads[:, 0::2], grads[:, 1::2]
    return safe_sqrt(gx * gx + gy * gy)


def boundary_weights(features: torch.Tensor, relative_floor: float = 1e-3) -> torch.Tensor:
    """(N, C, H, W) -> (N, 1, H, W) weights in [0, 1], peaking on boundaries.

    Each channel's magnitude is normalised by its own spatial maximum, so a
    few high-variance channels cannot drown the rest, then channels are
    averaged. The normaliser never drops below `relative_floor` times the
    channel's amplitude: float residue on a flat channel stays ~0 instead of
    being blown up to 1.
    """
    features = features.float()
    magnitude = sobel_magnitude(features)
    amplitude = features.abs().amax(dim=(2, 3), keepdim=True)
    scale = torch.maximum(magnitude.amax(dim=(2, 3), keepdim=True), relative_floor * amplitude + 1e-12)
    return (magnitude / scale).mean(dim=1, keepdim=True)


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
    return safe_sqrt((changing * changing).mean(dim=1))
