"""A System 2 encode stops part-way when told to (perception's reset), in
every tiny model, and leaves nothing behind that changes the next encode."""

import numpy as np
import pytest
import yaml

from conftest import JOINTS, REPO
from video2act_core.models.factory import build_models
from video2act_core.systems import EncodeCancelled, System2


def asking_after(calls: int):
    """A `cancelled` that says True from its `calls`-th question on, and counts them."""
    asked = []

    def cancelled() -> bool:
        asked.append(len(asked) + 1 >= calls)
        return asked[-1]

    return cancelled, asked


@pytest.mark.parametrize("name", ["model_tiny", "model_tiny_paper", "model_tiny_wan", "model_tiny_hunyuan"])
def test_a_cancelled_encode_stops_at_once_and_the_next_one_is_unchanged(name):
    config = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
    encoder, _ = build_models(config, JOINTS)
    system2 = System2(encoder, name)
    clip = np.random.default_rng(0).integers(0, 255, (system2.config.num_frames, 64, 64, 3), dtype=np.uint8)
    expected = system2.encode(clip)

    never, asked = asking_after(10**9)
    system2.encode(clip, cancelled=never)
    blocks = len(asked)
    # The video model's denoiser asks, not only its VAE: a cancel lands mid-pass.
    assert blocks > 10
    for stop_at in (1, blocks // 2, blocks):
        cancelled, asked = asking_after(stop_at)
        with pytest.raises(EncodeCancelled):
            system2.encode(clip, cancelled=cancelled)
        assert len(asked) == stop_at  # not one block after the answer

    again = system2.encode(clip)
    for field in ("spatial", "motion", "boundary_map", "motion_map"):
        np.testing.assert_array_equal(getattr(again, field), getattr(expected, field))

    # Another System2 on the same encoder (training's --init does so) asks
    # through the same hooks: one per block, not one per wrapper.
    hooks = sum(len(module._forward_pre_hooks) for module in encoder.modules())
    System2(encoder, name)
    assert sum(len(module._forward_pre_hooks) for module in encoder.modules()) == hooks
