"""System 2 and System 1 end to end on the tiny CPU config."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import JOINTS, tiny_model_config
from video2act_core.checkpoint import build_models
from video2act_core.models.vdm_encoder import sincos_2d_positions

FRAMES, SIZE = 8, 64


@pytest.fixture(scope="module")
def models():
    encoder, action = build_models(tiny_model_config(), JOINTS, seed=0)
    return encoder.eval(), action


def square_clip(moving: bool) -> torch.Tensor:
    clip = torch.full((1, FRAMES, 3, SIZE, SIZE), 0.3)
    for t in range(FRAMES):
        left = 8 + (4 * t if moving else 0)
        clip[0, t, :, 24:40, left : left + 16] = 0.9
    return clip


def test_token_shapes(models):
    encoder, _ = models
    with torch.no_grad():
        tokens = encoder(torch.rand(2, FRAMES, 3, 48, 80))  # resized to the configured 64x64
    cells = encoder.config.token_grid**2
    assert tokens.spatial.shape == (2, cells, encoder.config.token_dim)
    assert tokens.motion.shape == (2, cells, encoder.config.token_dim)
    assert tokens.motion_energy.shape == (2,)


def test_wrong_clip_length_is_refused(models):
    encoder, _ = models
    with pytest.raises(ValueError, match="expected frames"):
        encoder(torch.rand(1, FRAMES - 1, 3, SIZE, SIZE))


def test_static_clip_gives_zero_motion_energy(models):
    encoder, _ = models
    with torch.no_grad():
        static = encoder(square_clip(moving=False))
        moving = encoder(square_clip(moving=True))
    assert float(static.motion_energy) < 1e-6
    assert float(static.motion_map.abs().max()) < 1e-6
    assert float(moving.motion_energy) > 0.05


def test_motion_shows_up_where_the_square_moves(models):
    encoder, _ = models
    with torch.no_grad():
        motion = F.adaptive_avg_pool2d(encoder(square_clip(moving=True)).motion_map, 8)[0, 0]
    # The square sweeps rows 24..40 of 64 (cells 3..4 of 8).
    on_path = motion[3:5, 1:6].mean()
    far_rows = torch.cat([motion[0], motion[7]]).mean()
    assert on_path > 3 * far_rows


def test_boundary_map_is_higher_at_the_square_than_on_background(models):
    encoder, _ = models
    with torch.no_grad():
        boundary = F.adaptive_avg_pool2d(encoder(square_clip(moving=False)).boundary_map, 8)[0, 0]
    # Square at columns 8..24 of 64 (cells 1..2), rows 24..40 (cells 3..4).
    at_square = boundary[3:5, 1:3].mean()
    background = boundary[3:5, 5:8].mean()
    assert at_square > 2 * background


def test_without_bias_cancellation_a_static_clip_shows_spurious_motion():
    """Why cancel_frame_position_bias exists: SVD's frame-position embedding."""
    encoder, _ = build_models(tiny_model_config(cancel_frame_position_bias=False), JOINTS, seed=0)
    with torch.no_grad():
        energy = encoder.eval()(square_clip(moving=False)).motion_energy
    assert float(energy) > 1e-3


def test_token_positions_start_distinct_and_closer_for_neighbouring_cells():
    grid = 8
    codes = sincos_2d_positions(grid, 128)
    distance = torch.cdist(codes, codes)
    cell = lambda row, column: row * grid + column
    assert distance[~torch.eye(grid * grid, dtype=torch.bool)].min() > 0.1
    assert distance[cell(3, 3), cell(3, 4)] < distance[cell(3, 3), cell(3, 7)]
    assert distance[cell(3, 3), cell(4, 3)] < distance[cell(3, 3), cell(7, 3)]


def test_dit_sample_shape_and_gradient_reaches_every_input(models):
    _, action = models
    cfg = action.config
    spatial = torch.randn(2, 16, cfg.context_dim, requires_grad=True)
    motion = torch.randn(2, 16, cfg.context_dim, requires_grad=True)
    state = torch.randn(2, cfg.state_dim, requires_grad=True)
    actions = torch.randn(2, cfg.horizon, cfg.action_dim)
    # adaLN-Zero starts every block as identity and the output at zero; one
    # step makes the gradient reach the conditioning inputs.
    optimizer = torch.optim.SGD(action.parameters(), lr=0.1)
    action.loss(actions, state.detach(), spatial.detach(), motion.detach()).backward()
    optimizer.step()
    optimizer.zero_grad()
    action.loss(actions, state, spatial, motion).backward()
    for name, tensor in (("spatial", spatial), ("motion", motion), ("state", state)):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0, name
    sample = action.sample(state.detach(), spatial.detach(), motion.detach(), generator=torch.Generator().manual_seed(0))
    assert sample.shape == (2, cfg.horizon, cfg.action_dim)


def test_ablations_drop_their_tokens_from_the_context():
    from video2act_core.models.dit import DiTActionHead, DiTConfig

    tokens = torch.randn(1, 16, 128), torch.randn(1, 16, 128), torch.randn(1, 128)
    lengths = {}
    for spatial, motion in ((True, True), (True, False), (False, True)):
        head = DiTActionHead(DiTConfig(use_spatial=spatial, use_motion=motion))
        lengths[(spatial, motion)] = head.context_tokens(*tokens).shape[1]
    assert lengths == {(True, True): 33, (True, False): 17, (False, True): 17}


def test_dit_overfits_one_batch():
    from video2act_core.models.dit import ActionDiffusion, DiTConfig

    torch.manual_seed(0)
    config = DiTConfig(action_dim=3, state_dim=3, horizon=8, context_dim=32, hidden_dim=64, num_layers=2,
                       num_inference_steps=10)
    action = ActionDiffusion(config)
    t = torch.linspace(0, 1, config.horizon)
    targets = torch.stack([torch.stack([torch.sin(3 * t + k), torch.cos(2 * t - k), t * k]).T for k in (0.0, 1.0)])
    state = targets[:, 0]
    spatial, motion = torch.randn(2, 4, 32), torch.randn(2, 4, 32)
    optimizer = torch.optim.AdamW(action.parameters(), lr=2e-3)
    # Several noise draws of the same two examples per step.
    batch = [x.repeat(8, *[1] * (x.dim() - 1)) for x in (targets, state, spatial, motion)]
    for _ in range(400):
        optimizer.zero_grad()
        action.loss(*batch).backward()
        optimizer.step()
    sample = action.sample(state, spatial, motion, generator=torch.Generator().manual_seed(0))
    error = (sample - targets).abs().mean()
    baseline = (targets - targets.mean()).abs().mean()
    assert error < 0.25 * baseline, (float(error), float(baseline))


def test_sampling_is_deterministic_with_a_seed(tiny_checkpoint):
    from video2act_core.checkpoint import load_policy

    frames = (np.random.default_rng(0).random((FRAMES, SIZE, SIZE, 3)) * 255).astype(np.uint8)
    chunks = []
    for _ in range(2):
        policy = load_policy(tiny_checkpoint, device="cpu", seed=3)
        chunks.append(policy.system1.act(policy.system2.encode(frames), np.zeros(len(JOINTS))))
    np.testing.assert_array_equal(chunks[0], chunks[1])
