"""System 2 and System 1 end to end on the tiny CPU config."""

import numpy as np
import pytest
import torch
import yaml

from clips import CENTRE, FRAMES, SIZE, SQUARE, square_clip, swept_columns
from conftest import JOINTS, REPO, tiny_model_config
from video2act_core.models.factory import build_models, system1_config
from video2act_core.models.vdm_encoder import StreamFormer, VDMEncoderConfig, sincos_2d_positions
from video2act_core.processing import frames_to_tensor


@pytest.fixture(scope="module", params=["features", "latents"])
def models(request):
    """The tiny models, filtering the backbone's features or (the official code's order) the VAE latents."""
    encoder, action = build_models(tiny_model_config(filter_at=request.param), JOINTS, seed=0)
    return encoder.eval(), action


@torch.no_grad()
def streams(encoder, clip: np.ndarray):
    """(maps, spatial tokens, motion tokens) of one (T, H, W, 3) uint8 clip."""
    maps = encoder.refine(frames_to_tensor(clip))
    spatial, motion, _ = encoder.tokens(maps.spatial, maps.motion, maps.views)
    return maps, spatial[0], motion[0]


def change(tokens, reference) -> torch.Tensor:
    """Per-cell squared distance between two token sets."""
    return (tokens - reference).pow(2).sum(-1)


def test_token_shapes_per_stream(models):
    encoder, _ = models
    cfg = encoder.config
    with torch.no_grad():
        tokens = encoder(torch.rand(2, cfg.num_frames, 3, 48, 80))  # resized to the configured 64x64
    assert tokens.spatial.shape == (2, cfg.spatial_grid**2, cfg.token_dim)
    assert tokens.motion.shape == (2, cfg.motion_grid**2, cfg.token_dim)
    assert tokens.motion_energy.shape == (2,)


def test_wrong_clip_length_is_refused(models):
    encoder, _ = models
    with pytest.raises(ValueError, match="expected frames"):
        encoder(torch.rand(1, encoder.config.num_frames - 1, 3, 64, 64))


def test_a_band_the_clip_cannot_resolve_is_refused_when_the_model_is_built():
    with pytest.raises(ValueError, match="Nyquist"):
        build_models(tiny_model_config(motion_band_hz=[1.5, 9.0]), JOINTS)


def test_a_static_scene_gives_exactly_the_static_tokens(models):
    encoder, _ = models
    maps, _, motion = streams(encoder, square_clip())
    zero = encoder.motion_former(torch.zeros_like(maps.motion))[0]
    assert float(maps.motion.abs().max()) == 0.0 and float(maps.motion_energy) == 0.0
    assert torch.equal(motion, zero)


def test_motion_in_the_band_stands_out_from_noise_flicker_and_motion_outside_it(models):
    encoder, _ = models
    _, _, static = streams(encoder, square_clip())
    energy = lambda **clip: float(change(streams(encoder, square_clip(**clip))[2], static).mean())
    in_band = energy(frequency_hz=2.5, amplitude_px=6)
    others = {
        "sensor noise 2/255": energy(noise_std=2),
        "sensor noise 5/255": energy(noise_std=5),
        "flicker +-20%": energy(flicker=0.2),
        "drift 0.1 Hz, 3 px per clip": energy(frequency_hz=0.1, amplitude_px=3),
        "7 Hz, 1 px": energy(frequency_hz=7, amplitude_px=1) * in_band / energy(frequency_hz=2.5, amplitude_px=1),
    }
    print(
        "\nmotion-token change of 2.5 Hz +-6 px over:",
        ", ".join(f"{name} {in_band / max(value, 1e-30):.0f}x" for name, value in others.items()),
    )
    for name, value in others.items():
        assert in_band >= 5 * value, name


def test_motion_tokens_grow_with_the_amplitude(models):
    encoder, _ = models
    if encoder.config.filter_at == "latents":
        # Measured: +-0.5, 1, 2, 4 px give 2.2e-4, 4.7e-4, 6.2e-4, 5.4e-4: the
        # denoiser's response to band-passed latents saturates.
        pytest.xfail("filtering the latents keeps the growth only up to +-2 px on the tiny backbone")
    _, _, static = streams(encoder, square_clip())
    energies = [
        float(change(streams(encoder, square_clip(frequency_hz=2.5, amplitude_px=a))[2], static).mean())
        for a in (0.5, 1, 2, 4)
    ]
    print("\nmotion-token change at +-0.5, 1, 2, 4 px:", ", ".join(f"{e:.2e}" for e in energies))
    assert energies == sorted(energies) and energies[-1] > 2 * energies[0]


def test_motion_shows_where_the_square_moves(models):
    encoder, _ = models
    _, _, static = streams(encoder, square_clip())
    amplitude = 6
    per_cell = change(streams(encoder, square_clip(frequency_hz=2.5, amplitude_px=amplitude))[2], static)
    grid = encoder.config.motion_grid
    per_cell = per_cell.view(grid, grid)
    cell = SIZE // grid
    first, last = swept_columns(amplitude)
    rows = slice((CENTRE[0] - SQUARE // 2) // cell, (CENTRE[0] + SQUARE // 2 - 1) // cell + 1)
    columns = slice(first // cell, (last - 1) // cell + 1)
    swept = torch.zeros(grid, grid, dtype=torch.bool)
    swept[rows, columns] = True
    ratio = float(per_cell[swept].mean() / per_cell[~swept].mean())
    print(f"\nswept cells carry {ratio:.0f}x the motion-token change of the others")
    assert ratio >= 5


def test_boundaries_of_a_large_object_carry_more_spatial_energy_than_its_interior(models):
    encoder, _ = models
    flat = np.full((encoder.config.num_frames, SIZE, SIZE, 3), 90, np.uint8)
    _, nothing, _ = streams(encoder, flat)
    clip = flat.copy()
    clip[:, 8:56, 8:56] = (200, 60, 50)  # a 48 px square: cells 1..6, its interior cells 2..5
    _, spatial, _ = streams(encoder, clip)
    grid = encoder.config.spatial_grid
    energy = change(spatial, nothing).view(grid, grid)
    interior = energy[2:6, 2:6].mean()
    boundary = torch.cat([energy[1, 1:7], energy[6, 1:7], energy[2:6, 1], energy[2:6, 6]]).mean()
    print(f"\nboundary cells carry {float(boundary / interior):.1f}x the spatial energy of interior cells")
    assert boundary >= 2 * interior


def test_without_bias_cancellation_a_static_clip_shows_spurious_motion():
    """Why cancel_frame_position_bias exists: SVD's frame-position embedding."""
    encoder, _ = build_models(tiny_model_config(cancel_frame_position_bias=False), JOINTS, seed=0)
    maps, _, _ = streams(encoder.eval(), square_clip())
    assert float(maps.motion_energy) > 1e-5  # exactly 0 with the cancellation


def test_formers_keep_each_cells_magnitude():
    """A fixed scale, not a per-token LayerNorm: a cell's token moves away from
    the static token in proportion to its map, and a fitted scale is the data's RMS."""
    former = StreamFormer(channels=6, token_dim=8, hidden=16, grid=2)
    maps = torch.rand(1, 6, 2, 2)
    maps[..., 0, 0] = 0.0
    with torch.no_grad():
        static = former(torch.zeros_like(maps))[0]
        small, large = (change(former(scale * maps)[0], static) for scale in (1e-3, 2e-3))
    assert float(small[0]) == 0.0
    assert torch.allclose(large[1:] / small[1:], torch.full((3,), 4.0), rtol=0.05)
    former.fit_scale(torch.full((5, 6, 2, 2), 3.0))
    assert torch.allclose(former.scale, torch.full((6,), 3.0))


def test_token_positions_start_distinct_and_closer_for_neighbouring_cells():
    grid = 8
    codes = sincos_2d_positions(grid, 128)
    distance = torch.cdist(codes, codes)
    cell = lambda row, column: row * grid + column
    assert distance[~torch.eye(grid * grid, dtype=torch.bool)].min() > 0.1
    assert distance[cell(3, 3), cell(3, 4)] < distance[cell(3, 3), cell(3, 7)]
    assert distance[cell(3, 3), cell(4, 3)] < distance[cell(3, 3), cell(7, 3)]


# The paper's streams on the tiny backbone, pooled to 8x8 spatial cells and
# 4x4 motion cells per latent frame (its own grid would be 32x32).
PAPER_FORM = dict(stream_form="paper", filter_at="latents", spatial_grid=8, motion_grid=4)


@pytest.fixture(scope="module")
def paper_encoder():
    encoder, _ = build_models(tiny_model_config(**PAPER_FORM), JOINTS, seed=0)
    return encoder.eval()


def test_the_paper_form_gives_a_token_per_cell_of_every_latent_frame(paper_encoder):
    maps, spatial, motion = streams(paper_encoder, square_clip(frequency_hz=2.5, amplitude_px=6))
    # SVD's VAE keeps every frame: one latent frame per frame, oldest first.
    assert maps.motion.shape[1:] == (paper_encoder.backbone.feature_channels, FRAMES, 4, 4)
    assert spatial.shape == (64, 128) and motion.shape == (FRAMES * 16, 128)
    assert (maps.spatial < 0).any() and (maps.motion < 0).any()  # signed features, not magnitudes


def test_in_the_paper_form_a_still_scene_gives_the_still_tokens_wherever_things_stand(paper_encoder):
    _, _, still = streams(paper_encoder, square_clip())
    _, _, elsewhere = streams(paper_encoder, square_clip(square=20))
    torch.testing.assert_close(still, elsewhere)


@pytest.mark.parametrize("form", ["paper", "energy"])
def test_only_the_paper_form_tells_a_motion_from_the_same_motion_in_opposite_phase(form, paper_encoder):
    """A square oscillating +-6 px against the same oscillation starting the
    other way (same cells, same energy, opposite phase), compared with what
    sensor noise (2/255) changes: the paper form's signed per-frame tokens
    keep the phase; our energies, one value over time per cell, drop it."""
    encoder = paper_encoder if form == "paper" else build_models(tiny_model_config(filter_at="latents"), JOINTS)[0]
    motion = lambda **kw: streams(encoder.eval(), square_clip(frequency_hz=2.5, **kw))[2]
    reference = motion(amplitude_px=6)
    opposite = change(motion(amplitude_px=-6), reference).mean()
    noise = change(motion(amplitude_px=6, noise_std=2, seed=1), reference).mean()
    print(f"\n{form} form: opposite phase changes the motion tokens {opposite / noise:.2f}x as much as noise")
    if form == "paper":
        assert opposite > 10 * noise
    else:
        assert opposite < 2 * noise


def test_dit_sample_shape_and_gradient_reaches_every_input(models):
    _, action = models
    cfg = action.config
    assert cfg.view_tokens  # the tiny config reads image tokens too
    spatial = torch.randn(2, 16, cfg.context_dim, requires_grad=True)
    motion = torch.randn(2, 16, cfg.context_dim, requires_grad=True)
    views = torch.randn(2, 32, cfg.context_dim, requires_grad=True)
    state = torch.randn(2, cfg.state_dim, requires_grad=True)
    actions = torch.randn(2, cfg.horizon, cfg.action_dim)
    # adaLN-Zero starts every block as identity and the output at zero; one
    # step makes the gradient reach the conditioning inputs.
    optimizer = torch.optim.SGD(action.parameters(), lr=0.1)
    action.loss(actions, state.detach(), spatial.detach(), motion.detach(), views=views.detach()).backward()
    optimizer.step()
    optimizer.zero_grad()
    action.loss(actions, state, spatial, motion, views=views).backward()
    for name, tensor in (("spatial", spatial), ("motion", motion), ("image", views), ("state", state)):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0, name
    sample = action.sample(
        state.detach(),
        spatial.detach(),
        motion.detach(),
        generator=torch.Generator().manual_seed(0),
        views=views.detach(),
    )
    assert sample.shape == (2, cfg.horizon, cfg.action_dim)


def test_ablations_drop_their_tokens_from_the_context():
    from video2act_core.models.dit import DiTActionHead, DiTConfig

    tokens = torch.randn(1, 16, 128), torch.randn(1, 16, 128), torch.randn(1, 128)
    lengths = {}
    for spatial, motion in ((True, True), (True, False), (False, True)):
        head = DiTActionHead(DiTConfig(use_spatial=spatial, use_motion=motion))
        lengths[(spatial, motion)] = head.context_tokens(*tokens)[0].shape[1]
    assert lengths == {(True, True): 33, (True, False): 17, (False, True): 17}


@pytest.mark.parametrize(
    "prediction_type, sampler", [("epsilon", "ddim"), ("sample", "ddim"), ("sample", "dpmsolver++")]
)
def test_dit_overfits_one_batch(prediction_type, sampler):
    from video2act_core.models.dit import ActionDiffusion, DiTConfig

    torch.manual_seed(0)
    config = DiTConfig(
        action_dim=3,
        state_dim=3,
        horizon=8,
        context_dim=32,
        hidden_dim=64,
        num_layers=2,
        num_inference_steps=10,
        prediction_type=prediction_type,
        sampler=sampler,
    )
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


@pytest.mark.parametrize(
    "sampler, spacing, first",
    [
        ("ddim", "leading", 80),
        ("ddim", "trailing", 99),
        ("dpmsolver++", "linspace", 99),
        ("dpmsolver++", "leading", 80),
    ],
)
def test_the_sampler_starts_where_its_spacing_says(sampler, spacing, first):
    """Leading spacing's first step lies a step short of pure noise (t = 80
    of 100 in 5 steps); trailing and linspace start at the last timestep."""
    from video2act_core.models.dit import ActionDiffusion, DiTConfig

    action = ActionDiffusion(DiTConfig(num_train_timesteps=100, sampler=sampler, timestep_spacing=spacing))
    action.sampler.set_timesteps(5)
    assert (
        type(action.sampler).__name__
        == {"ddim": "DDIMScheduler", "dpmsolver++": "DPMSolverMultistepScheduler"}[sampler]
    )
    assert int(action.sampler.timesteps[0]) == first and len(action.sampler.timesteps) == 5


def test_condition_dropout_leaves_each_condition_out_of_its_share_of_the_samples_in_training_only():
    from video2act_core.models.conditions import Instruction
    from video2act_core.models.dit import DiTActionHead, DiTConfig

    torch.manual_seed(0)
    language = {"type": "learned", "vocab_size": 16, "max_tokens": 4, "dim": 8}
    config = dict(action_dim=3, state_dim=3, context_dim=8, hidden_dim=16, num_layers=1, num_heads=2, view_tokens=True)
    inputs = (torch.randn(1, 3), torch.randn(1, 4, 8), torch.randn(1, 4, 8))
    words = Instruction(torch.tensor([[1, 2, 3, 0]]), torch.tensor([[True, True, True, False]]))
    views = torch.randn(1, 4, 8)

    def context(head, state, spatial, motion, views):
        conditioning = head.conditioning(state, spatial, motion, words, views)
        return torch.cat([keys for keys, _ in conditioning.keys_values], dim=-1), conditioning.state_embedding

    plain = DiTActionHead(DiTConfig(**config, language=language))
    dropping = DiTActionHead(DiTConfig(**config, language=language, condition_dropout=0.999999))
    dropping.load_state_dict(plain.state_dict())
    # In evaluation nothing is left out.
    torch.testing.assert_close(context(dropping.eval(), *inputs, views), context(plain.eval(), *inputs, views))
    # In training (almost) everything is: the state at its mean, every token zeroed.
    nothing = context(plain.eval(), *(torch.zeros_like(x) for x in inputs), torch.zeros_like(views))
    left_out = context(dropping.train(), *inputs, views)
    torch.testing.assert_close(left_out[1], nothing[1])
    language_part = slice(1 + 4 + 4 + 4, None)  # after the state, spatial, motion and view tokens
    assert not torch.allclose(
        left_out[0][:, :, language_part], context(plain.eval(), *inputs, views)[0][:, :, language_part]
    )
    torch.testing.assert_close(left_out[0][:, :, : language_part.start], nothing[0][:, :, : language_part.start])
    # Each condition on its own draw: a share of 0.3 of a large batch.
    share = DiTActionHead(DiTConfig(**config, condition_dropout=0.3)).train()
    batch = 4000
    embedding = share.conditioning(
        torch.ones(batch, 3), torch.ones(batch, 4, 8), torch.ones(batch, 4, 8), views=torch.ones(batch, 4, 8)
    ).state_embedding
    at_mean = torch.all(torch.isclose(embedding, share.state_in(torch.zeros(1, 3))), dim=-1)
    assert 0.27 < at_mean.float().mean() < 0.33


def test_sampling_is_deterministic_with_a_seed(tiny_checkpoint):
    from video2act_core.checkpoint import load_policy

    frames = (np.random.default_rng(0).random((FRAMES, SIZE, SIZE, 3)) * 255).astype(np.uint8)
    chunks = []
    for _ in range(2):
        policy = load_policy(tiny_checkpoint, device="cpu", seed=3)
        chunks.append(policy.system1.act(policy.system2.encode(frames), np.zeros(len(JOINTS))))
    np.testing.assert_array_equal(chunks[0], chunks[1])


def test_the_wan_backbone_gives_both_streams_through_the_same_encoder(tmp_path):
    """Wan's VAE packs 4 frames into a latent frame: 32 frames at 15 Hz are 8
    latent frames at 3.75 Hz, so the band must lie under 1.875 Hz."""
    from video2act_core.checkpoint import init_checkpoint, load_policy

    # Its tiny VAE and patches leave a 4x4 feature grid at 64x64: enough
    # cells for the noise floor to tell a moving square from the rest.
    config = tiny_model_config(
        backbone={"type": "wan", "num_blocks": 2},
        motion_band_hz=[0.5, 1.8],
        motion_height=64,
        motion_width=64,
        spatial_grid=4,
        motion_grid=4,
    )
    with pytest.raises(ValueError, match="Nyquist"):
        build_models(tiny_model_config(backbone={"type": "wan"}), JOINTS)
    init_checkpoint(tmp_path / "wan", config, JOINTS)
    policy = load_policy(tmp_path / "wan", device="cpu")
    static = policy.system2.encode(square_clip())
    moving = policy.system2.encode(square_clip(frequency_hz=1.2, amplitude_px=6))
    assert static.spatial.shape == (16, 128) and static.motion.shape == (16, 128)
    assert static.motion_energy == 0.0 and moving.motion_energy > 0.0
    assert policy.system1.act(moving, np.zeros(len(JOINTS))).shape == (policy.system1.config.horizon, len(JOINTS))


@pytest.mark.parametrize("name", ["model_wan2.2_ti2v_5b.yaml", "model_svd_xt.yaml", "model_hunyuan_video.yaml"])
def test_full_size_configs_are_consistent_without_their_weights(name):
    """The GPU configs name local downloads that are not here; everything
    that can be checked without them is: both sections parse, the motion
    band fits the clip at the backbone's latent frame rate, and the derived
    System 1 widths build."""
    from video2act_core.models.backbones import hunyuan, svd, wan
    from video2act_core.models.filters import band_bins

    config = yaml.safe_load((REPO / "config" / name).read_text())
    vdm = VDMEncoderConfig.from_dict(config["system2"])
    backbone = {"svd": svd.SVDBackbone, "wan": wan.WanBackbone, "hunyuan": hunyuan.HunyuanVideoBackbone}
    compression = backbone[vdm.backbone["type"]].temporal_compression
    band_bins(*vdm.latent_frames_and_rate(compression), tuple(vdm.motion_band_hz))
    # SigLIP-so400m's 1152 channels where an image encoder is named.
    dit = system1_config(config["system1"], vdm, JOINTS, 1152 if vdm.image_encoder_path else 0)
    assert dit.hidden_dim % dit.num_heads == 0 and vdm.token_dim % 4 == 0


def test_the_still_clip_takes_the_clips_own_latents_and_gives_the_features_encoding_it_gives(monkeypatch):
    """SVD's VAE encodes frame by frame: the clip standing still on its newest
    frame (the frame-position bias cancelled against it) is that frame's
    latents repeated, not a second pass of the VAE over as many frames."""
    encoder, _ = build_models(tiny_model_config(), JOINTS, seed=0)
    encoder.eval()
    with torch.no_grad():
        clip = encoder.motion_clip(encoder._checked(frames_to_tensor(square_clip(frequency_hz=2.0, amplitude_px=6.0))))
        encoded = []
        vae_encode = encoder.backbone.vae.encode
        monkeypatch.setattr(
            encoder.backbone.vae, "encode", lambda pixels: encoded.append(len(pixels)) or vae_encode(pixels)
        )
        reused = encoder._features_and_still(clip)
        assert encoded == [clip.shape[1]]
        encoded.clear()
        monkeypatch.undo()
        encoded_again = encoder._features(torch.cat([clip, clip[:, -1:].expand_as(clip)]))
    # As equal as the VAE's convolutions in a batch of another size are (measured 4.5e-5 on the motion maps).
    assert float((reused - encoded_again).norm() / encoded_again.norm()) < 1e-4


def test_a_bf16_head_denoises_its_chunk_in_float32():
    """CUDA runs the head in bf16 (the dtype parameter; inputs follow the
    weights' dtype, the timestep table included); the chunk it denoises and
    the sampler's steps stay float32, close to a float32 head's."""
    from video2act_core.checkpoint import load_system1

    action = load_system1(REPO / "checkpoints" / "sim_demo", "cpu").action  # trained: its output is not zero
    cfg = action.config
    generator = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    conditions = torch.randn(1, 6), torch.randn(1, 64, cfg.context_dim), torch.randn(1, 64, cfg.context_dim)
    views = torch.randn(1, 128, cfg.context_dim)
    full = action.sample(*conditions, generator(), views=views)
    half = action.to(torch.bfloat16).sample(*(c.bfloat16() for c in conditions), generator(), views=views.bfloat16())
    assert half.dtype == torch.float32
    assert float((half - full).norm() / full.norm()) < 0.02  # measured 0.003 on the shipped head


def test_the_spatial_stream_reuses_the_image_tokens_features_of_the_newest_frame(monkeypatch):
    """The video camera's newest image-token frame is the spatial stream's
    frame: one backbone pass serves both (the same features as a pass of
    its own), not two."""
    encoder, _ = build_models(tiny_model_config(), JOINTS, seed=0)
    encoder.eval()
    frames = frames_to_tensor(square_clip(frequency_hz=2.0, amplitude_px=6.0))
    passes = []
    features = encoder.backbone.features
    with torch.no_grad():
        monkeypatch.setattr(
            encoder.backbone,
            "features",
            lambda latents, context=None: passes.append(latents.shape[:2]) or features(latents, context),
        )
        encoder.refine(frames)
        monkeypatch.undo()
        assert len(passes) == 2  # the image-token frames, then the motion clip with its still copy
        checked = encoder._checked(frames)
        view_frames, view_features = encoder._view_features(encoder._views_from_clip(frames))
        shared = encoder._newest_features(checked, view_frames, view_features)
        own = encoder._newest_features(checked, None, None)
    # As equal as the UNet's convolutions in a batch of two and of one (measured 4.2e-4).
    assert float((shared - own).norm() / own.norm()) < 1e-3


@pytest.mark.parametrize("name", ["model_tiny", "model_tiny_wan"])
def test_a_clip_standing_still_skips_the_motion_pass_and_gives_what_the_pass_gives(name, monkeypatch):
    """The first clip after a reset is one frame repeated: its own still
    copy, so its motion energy is exactly zero. Once a pass has shown the
    energy's shape, such a clip skips the motion pass; every map is the
    pass's, bit for bit."""
    encoder, _ = build_models(yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text()), JOINTS, seed=0)
    encoder.eval()
    frame = np.random.default_rng(0).integers(0, 255, (1, SIZE, SIZE, 3), dtype=np.uint8)
    still = frames_to_tensor(np.repeat(frame, encoder.config.num_frames, axis=0))
    passes = []
    features = encoder.backbone.features
    monkeypatch.setattr(
        encoder.backbone, "features", lambda latents, context=None: passes.append(1) or features(latents, context)
    )
    with torch.no_grad():
        computed = encoder.refine(still)
        first_passes, passes[:] = len(passes), []
        skipped = encoder.refine(still)
        assert len(passes) == first_passes - 1
        for field in ("spatial", "motion", "motion_energy", "boundary_map", "motion_map", "views"):
            ours, theirs = getattr(skipped, field), getattr(computed, field)
            assert (ours is None and theirs is None) or torch.equal(ours, theirs), field
        # A clip that moves still takes the pass.
        passes[:] = []
        moving = square_clip(frequency_hz=2.0, amplitude_px=6.0, frames=encoder.config.num_frames)
        encoder.refine(frames_to_tensor(moving))
        assert len(passes) == first_passes
