"""Checkpoint round-trips and refusal of bad checkpoints."""

import json
import shutil

import numpy as np
import pytest
import torch

from conftest import JOINTS, tiny_model_config
from video2act_core.checkpoint import (
    CheckpointError,
    build_models,
    load_policy,
    load_system1,
    read_manifest,
    save_checkpoint,
)
from video2act_core.normalization import NormalizationStats

FRAMES = (np.random.default_rng(1).random((32, 64, 64, 3)) * 255).astype(np.uint8)  # the tiny config's clip


def outputs(policy):
    latents = policy.system2.encode(FRAMES)
    return latents, policy.system1.act(latents, np.zeros(len(JOINTS)))


def test_round_trip_gives_identical_outputs(tmp_path):
    encoder, action = build_models(tiny_model_config(), JOINTS, seed=5)
    stats = NormalizationStats(JOINTS, [0.1] * 6, [0.5] * 6, [0.2] * 6, [0.7] * 6)
    save_checkpoint(tmp_path / "a", encoder, action, stats)
    first = load_policy(tmp_path / "a", device="cpu", seed=0)
    # Saving what was loaded must reproduce the same weights and id.
    save_checkpoint(tmp_path / "b", first.system2.encoder, first.system1.action, first.system1.stats)
    second = load_policy(tmp_path / "b", device="cpu", seed=0)
    assert first.system1.model_id == second.system1.model_id
    (lat1, act1), (lat2, act2) = outputs(first), outputs(second)
    np.testing.assert_array_equal(lat1.spatial, lat2.spatial)
    np.testing.assert_array_equal(lat1.motion, lat2.motion)
    np.testing.assert_array_equal(act1, act2)
    assert read_manifest(tmp_path / "b").stats == stats


def test_pretrained_backbone_directory_loads_through_from_pretrained(tmp_path):
    """A diffusers SVD directory written by save_pretrained (as a user's
    download is laid out) is used by reference, not copied."""
    encoder, action = build_models(tiny_model_config(), JOINTS, seed=2)
    encoder.backbone.save(tmp_path / "svd")
    encoder.config.backbone["pretrained_path"] = str(tmp_path / "svd")
    save_checkpoint(tmp_path / "ckpt", encoder, action, NormalizationStats.identity(JOINTS), include_backbone=False)
    assert not (tmp_path / "ckpt" / "backbone").exists()
    policy = load_policy(tmp_path / "ckpt", device="cpu")
    # The weights come from the user's directory, bit for bit.
    loaded = policy.system2.encoder.backbone.state_dict()
    for name, weight in encoder.backbone.state_dict().items():
        assert torch.equal(loaded[name], weight), name
    with torch.no_grad():
        reference = encoder.eval()(torch.from_numpy(FRAMES).permute(0, 3, 1, 2)[None].float() / 255).spatial[0].numpy()
    # The node's path batches and resizes its own way: float32 rounding then
    # differs with the CPU's kernels (1.2e-6 seen on one EPYC), so the
    # tolerance scales with the features, not a fixed atol.
    np.testing.assert_allclose(
        policy.system2.encode(FRAMES).spatial, reference, rtol=1e-5, atol=1e-5 * np.abs(reference).max()
    )


def test_missing_pretrained_directory_is_a_clear_error(tmp_path, tiny_checkpoint):
    copy = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, copy)
    shutil.rmtree(copy / "backbone")
    manifest = json.loads((copy / "checkpoint.json").read_text())
    manifest["has_backbone"] = False
    manifest["system2"]["backbone"]["pretrained_path"] = str(tmp_path / "nowhere")
    manifest["sha256"] = {k: v for k, v in manifest["sha256"].items() if not k.startswith("backbone")}
    (copy / "checkpoint.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="not a diffusers SVD directory"):
        load_policy(copy, device="cpu")


def corrupt_copy(tmp_path, tiny_checkpoint):
    copy = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, copy)
    return copy


def test_flipped_byte_is_refused(tmp_path, tiny_checkpoint):
    copy = corrupt_copy(tmp_path, tiny_checkpoint)
    weights = copy / "system1.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_system1(copy, device="cpu")


def test_truncated_manifest_is_refused(tmp_path, tiny_checkpoint):
    copy = corrupt_copy(tmp_path, tiny_checkpoint)
    manifest = copy / "checkpoint.json"
    manifest.write_text(manifest.read_text()[:100])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_system1(copy, device="cpu")


def test_other_format_version_is_refused(tmp_path, tiny_checkpoint):
    copy = corrupt_copy(tmp_path, tiny_checkpoint)
    manifest = json.loads((copy / "checkpoint.json").read_text())
    manifest["format_version"] = 99
    (copy / "checkpoint.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="version 99"):
        load_system1(copy, device="cpu")
    manifest["format_version"] = 1  # the one-stream System 2 of earlier releases
    (copy / "checkpoint.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="version 1 checkpoints .* retrain them"):
        load_system1(copy, device="cpu")


def test_config_that_does_not_match_the_weights_is_refused(tmp_path, tiny_checkpoint):
    copy = corrupt_copy(tmp_path, tiny_checkpoint)
    manifest = json.loads((copy / "checkpoint.json").read_text())
    manifest["system1"]["num_layers"] += 1
    (copy / "checkpoint.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="does not match"):
        load_system1(copy, device="cpu")


def test_missing_weight_file_is_refused(tmp_path, tiny_checkpoint):
    copy = corrupt_copy(tmp_path, tiny_checkpoint)
    (copy / "system2_head.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_policy(copy, device="cpu")


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not a Video2Act checkpoint"):
        load_system1(tmp_path, device="cpu")


def test_existing_checkpoint_is_not_overwritten_by_default(tmp_path, tiny_checkpoint):
    encoder, action = build_models(tiny_model_config(), JOINTS)
    with pytest.raises(CheckpointError, match="exists"):
        save_checkpoint(tiny_checkpoint, encoder, action, NormalizationStats.identity(JOINTS))
    read_manifest(tiny_checkpoint)  # still intact


def test_cuda_request_without_cuda_is_a_clear_error(tiny_checkpoint):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        load_system1(tiny_checkpoint, device="cuda")
