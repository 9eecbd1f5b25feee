"""The fixed spatial and motion filters on pixel-like maps."""

import torch

from video2act_core.models.filters import boundary_weights, motion_magnitude, temporal_highpass


def square_image(size=32, top=10, left=10, side=12):
    image = torch.full((1, 3, size, size), 0.2)
    image[..., top : top + side, left : left + side] = 0.9
    return image


def test_boundary_weights_peak_on_edges_not_background_or_interior():
    weights = boundary_weights(square_image())[0, 0]
    edge = weights[10, 12:20].mean()  # top edge of the square
    background = weights[0:6, 0:6].mean()
    interior = weights[13:19, 13:19].mean()
    assert abs(float(weights.max()) - 1.0) < 1e-3
    assert edge > 0.5
    assert background < 1e-3 and interior < 1e-3


def test_uniform_image_has_no_boundaries_even_at_the_border():
    weights = boundary_weights(torch.full((1, 4, 16, 16), 0.7))
    assert weights.abs().max() < 1e-3


def moving_square_clip(frames=8, moving=True):
    clip = torch.zeros(1, frames, 1, 32, 32)
    for t in range(frames):
        left = 2 + (3 * t if moving else 0)
        clip[0, t, :, 12:20, left : left + 6] = 1.0
    return clip


def test_static_clip_has_no_motion():
    motion = motion_magnitude(temporal_highpass(moving_square_clip(moving=False)))
    assert motion.abs().max() < 1e-5


def test_motion_appears_only_where_the_square_moves():
    motion = motion_magnitude(temporal_highpass(moving_square_clip()))[0, 0]
    on_path = motion[12:20, 2:29].mean()
    off_path = torch.cat([motion[:10].flatten(), motion[22:].flatten()]).abs().max()
    assert on_path > 0.1
    assert off_path < 1e-5


def test_motion_band_selects_frequencies():
    t = torch.arange(16, dtype=torch.float32)
    slow = torch.sin(2 * torch.pi * 1 * t / 16)
    fast = torch.sin(2 * torch.pi * 6 * t / 16)
    signal = (slow + fast + 3.0).view(1, 16, 1)
    kept = temporal_highpass(signal, band=(1, 2))[0, :, 0]
    assert torch.allclose(kept, slow, atol=1e-5)
