"""Fixed (not learned) refinements of video-diffusion features (or, as the
official code applies them, of the VAE latents before the denoiser).

- Spatial: per-channel gradient magnitude (Sobel, Scharr or Laplacian) of
  the newest frame's feature maps: high on foreground boundaries, ~0 on
  flat background and inside uniform objects.
- Motion: the energy of each feature in a frequency band given in Hz
  (Hann-windowed rFFT along time), above a noise floor estimated from the
  clip itself, of a clip whose frames were brought to one brightness first:
  a static scene, sensor noise and a global lighting change give (almost)
  nothing, an object moving in the band shows where it moves.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_DERIVATIVES = {
    "sobel": torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]),
    "scharr": torch.tensor([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]]) / 16.0 * 4.0,
}
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
SPATIAL_FILTERS = ("sobel", "scharr", "laplacian")


def safe_sqrt(values: torch.Tensor) -> torch.Tensor:
    """sqrt that is exactly 0 at 0 with a finite (zero) gradient there."""
    positive = values > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, values, torch.ones_like(values))), 0.0)


def gradient_magnitude(
    features: torch.Tensor, kind: str = "sobel", padding: str = "replicate", epsilon: float = 0.0
) -> torch.Tensor:
    """Per-channel edge strength of (N, C, H, W) maps: the gradient magnitude
    (Sobel, Scharr) or the absolute Laplacian. Replicate padding by default:
    zero padding (the official code's) invents an edge at every border. With
    `epsilon` (the official 1e-6) the magnitude is sqrt(gx^2 + gy^2 + epsilon);
    without, a flat map gives exactly zero."""
    if kind not in SPATIAL_FILTERS:
        raise ValueError(f"spatial filter must be one of {SPATIAL_FILTERS}, got '{kind}'")
    if padding not in ("replicate", "zeros"):
        raise ValueError(f"padding must be 'replicate' or 'zeros', got '{padding}'")
    channels = features.shape[1]
    padded = F.pad(features, (1, 1, 1, 1), mode="replicate") if padding == "replicate" else F.pad(features, (1,) * 4)
    if kind == "laplacian":
        kernel = _LAPLACIAN.to(features.device, features.dtype).expand(channels, 1, 3, 3)
        return F.conv2d(padded, kernel, groups=channels).abs()
    kx = _DERIVATIVES[kind].to(features.device, features.dtype)
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1).repeat(channels, 1, 1, 1)
    grads = F.conv2d(padded, kernels, groups=channels)  # (N, 2C, H, W): gx, gy per channel
    gx, gy = grads[:, 0::2], grads[:, 1::2]
    return safe_sqrt(gx * gx + gy * gy + epsilon)


def band_bins(frames: int, fps: float, band_hz: tuple[float, float]) -> tuple[int, int]:
    """The rFFT bins (first, last) of `frames` samples at `fps` inside
    `band_hz`; an error when the band cannot be seen in such a clip (above
    Nyquist, below the lowest non-DC frequency, or between two bins)."""
    low, high = band_hz
    nyquist, resolution = fps / 2.0, fps / frames
    if not 0.0 < low < high:
        raise ValueError(f"motion band must satisfy 0 < low < high Hz, got {list(band_hz)}")
    if high > nyquist + 1e-9:
        raise ValueError(
            f"motion band {list(band_hz)} Hz reaches above the Nyquist frequency {nyquist:g} Hz of a {fps:g} fps clip"
        )
    first, last = max(1, math.ceil(low / resolution - 1e-9)), math.floor(high / resolution + 1e-9)
    if first > last:
        raise ValueError(
            f"motion band {list(band_hz)} Hz holds no frequency a {frames}-frame clip at {fps:g} fps "
            f"resolves (its bins are {resolution:.3g} Hz apart): lengthen the clip or widen the band"
        )
    return first, last


def windowed_spectrum(series: torch.Tensor, fps: float, band_hz: tuple[float, float]):
    """rFFT along T of (B, T, ...) detrended and Hann-windowed (so that motion
    outside the band leaks little into it): (spectrum, window, band bins)."""
    frames = series.shape[1]
    bins = band_bins(frames, fps, band_hz)
    window = torch.hann_window(frames, periodic=False, dtype=torch.float32, device=series.device)
    spectrum = torch.fft.rfft(detrended(series.float()) * window.view(-1, *[1] * (series.dim() - 2)), dim=1)
    return spectrum, window, bins


def band_magnitude(changing: torch.Tensor, fps: float, band_hz: tuple[float, float]) -> torch.Tensor:
    """(B, T, ...) along T -> (B, ...): the RMS amplitude of the components
    inside `band_hz`, detrended and Hann-windowed so that motion outside the
    band leaks little into it. A sinusoid of amplitude A on a band bin gives ~A/sqrt(2)."""
    frames = changing.shape[1]
    spectrum, window, (first, last) = windowed_spectrum(changing, fps, band_hz)
    power = spectrum[:, first : last + 1].abs().pow(2).sum(dim=1)
    # Parseval: the windowed signal's mean square, per unit of window energy.
    return safe_sqrt(2.0 * power / (frames * window.pow(2).sum()))


def band_pass(series: torch.Tensor, fps: float, band_hz: tuple[float, float], windowed: bool = True) -> torch.Tensor:
    """(B, T, ...) -> the same series holding only its components inside
    `band_hz` (rFFT, bins outside the band zeroed, inverse rFFT): the
    official code's motion filter, applied to latents. `windowed` first
    detrends the series and applies a Hann window, so that a drift does not
    leak into the band (the window also weighs the oldest and newest frames
    down to nothing); the official code does neither."""
    frames = series.shape[1]
    if windowed:
        spectrum, _, (first, last) = windowed_spectrum(series, fps, band_hz)
    else:
        first, last = band_bins(frames, fps, band_hz)
        spectrum = torch.fft.rfft(series.float(), dim=1)
    keep = torch.zeros(spectrum.shape[1], device=series.device)
    keep[first : last + 1] = 1.0
    return torch.fft.irfft(spectrum * keep.view(-1, *[1] * (series.dim() - 2)), n=frames, dim=1)


def detrended(series: torch.Tensor) -> torch.Tensor:
    """(B, T, ...) minus its least-squares line along T: a slow drift (far
    below the band) is removed instead of leaking into the lowest bins."""
    steps = series.shape[1]
    time = torch.linspace(-1.0, 1.0, steps, device=series.device, dtype=series.dtype).view(
        -1, *[1] * (series.dim() - 2)
    )
    mean = series.mean(dim=1, keepdim=True)
    slope = ((series - mean) * time).sum(dim=1, keepdim=True) / time.pow(2).sum()
    return series - mean - slope * time


def above_noise_floor(magnitude: torch.Tensor, quantile: float, factor: float) -> torch.Tensor:
    """(B, C, H, W) -> the part of each cell's magnitude above `factor` x the
    `quantile` of that channel over the image. Sensor noise moves every
    cell alike and a moving object few of them, so the low quantile is the
    noise (as long as motion covers less than 1 - quantile of the image)."""
    if factor <= 0:
        return magnitude
    floor = torch.quantile(magnitude.flatten(2).float(), quantile, dim=2)[..., None, None]
    return F.relu(magnitude - factor * floor.to(magnitude.dtype))


def equalise_brightness(frames: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, H, W) in [0, 1]: each frame's channels scaled to the clip's
    mean level, so a global gain or white-balance change (flicker, auto
    exposure) is not motion."""
    frame_mean = frames.mean(dim=(3, 4), keepdim=True)
    clip_mean = frame_mean.mean(dim=1, keepdim=True)
    return (frames * (clip_mean / frame_mean.clamp_min(1e-3))).clamp(0.0, 1.0)
