"""The fixed spatial and motion filters on pixel-like maps."""

import math

import pytest
import torch

from video2act_core.models.filters import (
    SPATIAL_FILTERS,
    above_noise_floor,
    band_bins,
    band_magnitude,
    band_pass,
    equalise_brightness,
    gradient_magnitude,
)


def square_image(size=32, top=10, left=10, side=12):
    image = torch.full((1, 3, size, size), 0.2)
    image[..., top : top + side, left : left + side] = 0.9
    return image


@pytest.mark.parametrize("kind", SPATIAL_FILTERS)
def test_edges_show_on_the_square_outline_not_on_background_or_interior(kind):
    edges = gradient_magnitude(square_image(), kind)[0].mean(0)
    outline = torch.cat([edges[9:11, 12:20].flatten(), edges[12:20, 9:11].flatten()]).mean()
    background, interior = edges[0:6, 0:6].max(), edges[13:19, 13:19].max()
    assert outline > 0.1 and background < 1e-6 and interior < 1e-6


def test_a_uniform_image_has_no_edges_even_at_the_border():
    assert gradient_magnitude(torch.full((1, 4, 16, 16), 0.7)).abs().max() < 1e-6


def test_the_official_sobel_pads_with_zeros_and_adds_its_epsilon():
    """The paper form's Sobel: a uniform map shows its border (zero padding)
    and sqrt(1e-6) inside, as the official code computes it."""
    edges = gradient_magnitude(torch.full((1, 2, 8, 8), 0.5), "sobel", padding="zeros", epsilon=1e-6)
    torch.testing.assert_close(edges[..., 2:-2, 2:-2], torch.full((1, 2, 4, 4), 1e-3))
    corner = math.sqrt(2 * (3 * 0.5) ** 2 + 1e-6)  # gx and gy each see 3 of the 4 zeros' weights missing
    torch.testing.assert_close(edges[..., 0, 0], torch.full((1, 2), corner))


def test_an_unknown_spatial_filter_is_refused():
    with pytest.raises(ValueError, match="spatial filter must be one of"):
        gradient_magnitude(square_image(), "canny")


def sinusoid(frequency_hz, fps=15.0, frames=32, amplitude=1.0):
    t = torch.arange(frames, dtype=torch.float32) / fps
    return amplitude * torch.sin(2 * math.pi * frequency_hz * t).view(1, frames, 1) + 3.0


def test_band_magnitude_keeps_in_band_motion_and_drops_what_lies_outside():
    band = (1.5, 4.0)
    inside = float(band_magnitude(sinusoid(2.5), 15.0, band))
    assert inside == pytest.approx(1 / math.sqrt(2), rel=0.15)  # the RMS of a unit sinusoid
    for outside in (sinusoid(0.2), sinusoid(6.5), torch.linspace(0, 2, 32).view(1, 32, 1)):  # slow, fast, drift
        assert float(band_magnitude(outside, 15.0, band)) < 0.05 * inside
    assert float(band_magnitude(torch.full((1, 32, 1), 5.0), 15.0, band)) == 0.0


@pytest.mark.parametrize(
    "frames, fps, band, message",
    [
        (32, 15.0, (1.5, 8.0), "above the Nyquist frequency 7.5 Hz"),
        (8, 15.0, (1.0, 1.8), "holds no frequency"),
        (32, 15.0, (4.0, 2.0), "0 < low < high"),
    ],
)
def test_a_band_the_clip_cannot_see_is_a_clear_error(frames, fps, band, message):
    with pytest.raises(ValueError, match=message):
        band_bins(frames, fps, band)


def test_the_noise_floor_removes_noise_everywhere_and_keeps_a_moving_patch():
    generator = torch.Generator().manual_seed(0)
    noise = 0.1 + 0.02 * torch.rand(1, 4, 16, 16, generator=generator)
    moving = noise.clone()
    moving[..., 4:8, 4:8] += 1.0
    assert float(above_noise_floor(noise, 0.25, 2.5).max()) == 0.0
    kept = above_noise_floor(moving, 0.25, 2.5)[0]
    assert float(kept[:, 4:8, 4:8].min()) > 0.7 and float(kept[:, 10:, 10:].max()) == 0.0


def test_equalised_brightness_turns_flicker_into_a_static_clip():
    frame = square_image().unsqueeze(1).expand(1, 6, 3, 32, 32)
    gains = torch.tensor([1.0, 0.8, 1.2, 0.9, 1.1, 1.0]).view(1, 6, 1, 1, 1)
    equalised = equalise_brightness(frame * gains)
    assert float((equalised - equalised[:, :1]).abs().max()) < 1e-5


def test_the_unwindowed_band_pass_keeps_exactly_the_band_s_bins():
    """The official motion filter: rFFT, bins outside the band zeroed,
    inverse rFFT, no window. On 16 latent frames at 4 Hz the official band
    [0.25, 1.75] Hz keeps bins 1-7: a sum of in-band sinusoids comes back
    exactly, the constant (DC) and the Nyquist bin (2 Hz) are dropped, and
    the sign (which way a thing moved) is kept."""
    frames, fps = 16, 4.0
    t = torch.arange(frames) / fps
    in_band = torch.sin(2 * math.pi * 0.25 * t) + 0.5 * torch.cos(2 * math.pi * 1.75 * t + 0.3)
    outside = 3.0 + torch.cos(2 * math.pi * 2.0 * t)  # DC and Nyquist
    series = (in_band + outside).view(1, frames, 1)
    kept = band_pass(series, fps, (0.25, 1.75), windowed=False)
    torch.testing.assert_close(kept.view(-1), in_band, atol=1e-5, rtol=0)
    torch.testing.assert_close(band_pass(-series, fps, (0.25, 1.75), windowed=False), -kept)
