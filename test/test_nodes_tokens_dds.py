"""System 2's streams as System 1 receives them: synthetic clips with known
motion published on the camera topic to the perception node (a separate
process), the tokens decoded from the SpatioMotionLatents it publishes.

With the tiny untrained config and with the shipped checkpoint (our energy
streams): a static scene gives the static tokens, the change grows with
motion, motion in the band stands out from sensor noise, flicker and motion
outside the band, it shows where the object moves, and a large object's
boundary carries more spatial energy than its inside. The same ratios are
printed for the paper's streams (a tiny untrained checkpoint), and both
forms are asked which way a thing moves."""

import numpy as np
import pytest
import rclpy
from perception_probe import Camera, start_perception

from clips import CENTRE, SIZE, SQUARE, square_clip, swept_columns
from conftest import JOINTS, PARAMS_FILE, tiny_model_config
from video2act_core.checkpoint import init_checkpoint, read_manifest
from video2act_core.params import CommonParams, node_params
from video2act_core.ros import resolve_resource
from video2act_eval.launcher import stop_nodes

pytestmark = pytest.mark.dds

SHIPPED = resolve_resource(node_params(CommonParams, PARAMS_FILE, "/**").checkpoint_path)


# The paper's streams on the tiny backbone, pooled to 8x8 spatial and 4x4
# motion cells per latent frame.
PAPER_FORM = dict(stream_form="paper", filter_at="latents", spatial_grid=8, motion_grid=4)


@pytest.fixture(scope="module", params=["tiny", "shipped", "tiny-paper"])
def camera(request, tiny_checkpoint, tmp_path_factory):
    checkpoint = {"tiny": tiny_checkpoint, "shipped": SHIPPED}.get(request.param)
    if checkpoint is None:
        checkpoint = tmp_path_factory.mktemp("checkpoints") / "paper"
        init_checkpoint(checkpoint, tiny_model_config(**PAPER_FORM), JOINTS, seed=0)
    log = open(tmp_path_factory.mktemp("logs") / "perception.log", "w")
    process = start_perception(checkpoint, log)
    probe = None
    try:
        rclpy.init()
        probe = Camera()
        probe.ready()
        yield request.param, probe, read_manifest(checkpoint).vdm
    finally:
        codes = stop_nodes([process])
        if probe is not None:
            probe.node.destroy_node()
        rclpy.try_shutdown()
        log.close()
    assert codes == [0]


def change(tokens: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return ((tokens - reference) ** 2).sum(axis=-1)


def test_tokens_as_published_keep_where_and_how_much_things_move(camera):
    name, probe, config = camera
    frames = config.num_frames
    clip = lambda **kw: square_clip(frames=frames, **kw)
    _, static = probe.tokens(clip())
    # Another static scene (the square elsewhere) gives the same motion tokens.
    _, elsewhere = probe.tokens(clip(drift_px_per_s=0.0, amplitude_px=0.0, frequency_hz=0.0, square=20))
    np.testing.assert_array_equal(static, elsewhere)

    moving = lambda **kw: change(probe.tokens(clip(**kw))[1], static)
    in_band = moving(frequency_hz=2.5, amplitude_px=6)
    ratios = {
        "sensor noise 2/255": in_band.mean() / moving(noise_std=2).mean(),
        "sensor noise 5/255": in_band.mean() / moving(noise_std=5).mean(),
        "flicker +-20%": in_band.mean() / max(moving(flicker=0.2).mean(), 1e-30),
        "drift 0.1 Hz, 3 px per clip": in_band.mean() / moving(frequency_hz=0.1, amplitude_px=3).mean(),
        "7 Hz against 2.5 Hz, both +-1 px": (
            moving(frequency_hz=2.5, amplitude_px=1).mean() / moving(frequency_hz=7, amplitude_px=1).mean()
        ),
        "7 Hz against 2.5 Hz, both +-6 px": in_band.mean() / moving(frequency_hz=7, amplitude_px=6).mean(),
    }
    growth = [moving(frequency_hz=2.5, amplitude_px=a).mean() for a in (0.5, 1, 2)]

    grid = config.motion_grid
    cell = SIZE // grid
    first, last = swept_columns(6)
    swept = np.zeros((grid, grid), bool)
    swept[
        (CENTRE[0] - SQUARE // 2) // cell : (CENTRE[0] + SQUARE // 2 - 1) // cell + 1,
        first // cell : (last - 1) // cell + 1,
    ] = True
    per_cell = in_band.reshape(-1, grid, grid).sum(axis=0)  # the paper form: summed over latent frames
    ratios["swept cells against the others"] = per_cell[swept].mean() / per_cell[~swept].mean()

    flat = np.full((frames, SIZE, SIZE, 3), 90, np.uint8)
    nothing, _ = probe.tokens(flat)
    large = flat.copy()
    large[:, 8:56, 8:56] = (200, 60, 50)
    spatial = change(probe.tokens(large)[0], nothing).reshape(config.spatial_grid, config.spatial_grid)
    boundary = np.concatenate([spatial[1, 1:7], spatial[6, 1:7], spatial[2:6, 1], spatial[2:6, 6]]).mean()
    ratios["boundary cells against interior cells (spatial)"] = boundary / spatial[2:6, 2:6].mean()

    print(
        f"\n{name} checkpoint, tokens as published: "
        + ", ".join(f"{key} {value:.1f}x" for key, value in ratios.items())
        + "; motion-token change at +-0.5, 1, 2 px: "
        + ", ".join(f"{g:.3g}" for g in growth)
    )
    if config.stream_form == "paper":
        return  # printed only: these are the energy form's properties (docs/models.md)
    assert growth == sorted(growth)
    for key in (
        "sensor noise 2/255",
        "sensor noise 5/255",
        "flicker +-20%",
        "drift 0.1 Hz, 3 px per clip",
        "7 Hz against 2.5 Hz, both +-1 px",
        "swept cells against the others",
    ):
        assert ratios[key] >= 5, key
    assert ratios["boundary cells against interior cells (spatial)"] >= 2


def test_tokens_as_published_tell_which_way_a_thing_moves(camera):
    """A square drifting right against the same clip run backwards, and an
    oscillation against the same one in opposite phase (the same cells, the
    same energy), each compared with what sensor noise (2/255) changes in the
    motion tokens. Every form tells the drift from its reverse (where the
    square ends differs too); only signed per-frame tokens keep the phase."""
    name, probe, config = camera
    clip = lambda **kw: square_clip(frames=config.num_frames, **kw)
    drift = clip(drift_px_per_s=10.0)
    _, forward = probe.tokens(drift)
    _, backward = probe.tokens(drift[::-1].copy())
    _, noisy = probe.tokens(clip(drift_px_per_s=10.0, noise_std=2, seed=1))
    reversed_ratio = change(backward, forward).mean() / change(noisy, forward).mean()
    _, swinging = probe.tokens(clip(frequency_hz=2.5, amplitude_px=6))
    _, opposite = probe.tokens(clip(frequency_hz=2.5, amplitude_px=-6))
    _, noisy = probe.tokens(clip(frequency_hz=2.5, amplitude_px=6, noise_std=2, seed=1))
    phase_ratio = change(opposite, swinging).mean() / change(noisy, swinging).mean()
    print(
        f"\n{name} checkpoint ({config.stream_form} form), motion tokens against sensor noise: "
        f"run backwards {reversed_ratio:.1f}x, opposite phase {phase_ratio:.2f}x"
    )
    assert reversed_ratio >= 5
    if config.stream_form == "paper":
        assert phase_ratio >= 5
