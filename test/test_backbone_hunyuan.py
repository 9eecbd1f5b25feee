"""The HunyuanVideo System 2 backbone on its tiny random-weight config (CPU):
shapes through the causal VAE, features equal to the transformer's own
forward pass, only the blocks asked for run, a saved directory reloads, its
flow-matching loss trains it, and a policy on it runs a closed-loop episode."""

import csv

import pytest
import torch

from conftest import REPO
from video2act_core.models.backbones import build_backbone
from video2act_core.models.backbones.hunyuan import HunyuanVideoBackbone


def tiny_backbone(**options) -> HunyuanVideoBackbone:
    torch.manual_seed(0)
    return build_backbone({"type": "hunyuan", **options}).eval()


def random_frames(steps: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, steps, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def backbone() -> HunyuanVideoBackbone:
    return tiny_backbone(num_blocks=0)


@torch.no_grad()
@pytest.mark.parametrize(("steps", "latent_steps"), [(1, 1), (9, 3), (11, 3)])
def test_shapes_follow_the_causal_vae_and_the_patch_grid(backbone, steps, latent_steps):
    latents = backbone.encode(random_frames(steps, 32))
    assert latents.shape == (1, latent_steps, 4, 4, 4)
    assert backbone.features(latents).shape == (1, latent_steps, backbone.feature_channels, 2, 2)


@torch.no_grad()
def test_all_dual_stream_blocks_match_the_transformer_forward_pass(backbone):
    latents = backbone.encode(random_frames(5, 32))
    transformer = backbone.transformer
    captured = {}
    handle = transformer.transformer_blocks[-1].register_forward_hook(
        lambda _m, _i, output: captured.update(tokens=output[0])
    )
    try:
        config = transformer.config
        transformer(
            latents.transpose(1, 2),
            timestep=torch.zeros(1),
            encoder_hidden_states=torch.zeros(1, 1, config.text_embed_dim),
            encoder_attention_mask=torch.ones(1, 1),
            pooled_projections=torch.zeros(1, config.pooled_projection_dim),
            guidance=torch.tensor([6000.0]),
        )
    finally:
        handle.remove()
    grid = captured["tokens"].unflatten(1, (latents.shape[1], 2, 2))
    assert backbone.num_blocks == len(transformer.transformer_blocks)
    torch.testing.assert_close(backbone.features(latents), grid.permute(0, 1, 4, 2, 3))


@torch.no_grad()
def test_fewer_blocks_run_only_those_and_give_other_features(backbone):
    first_only = tiny_backbone(num_blocks=1)
    calls = [0] * len(first_only.transformer.transformer_blocks)
    for index, block in enumerate(first_only.transformer.transformer_blocks):
        block.register_forward_hook(lambda *_args, index=index: calls.__setitem__(index, calls[index] + 1))
    latents = backbone.encode(random_frames(5, 32))
    features = first_only.features(latents)
    assert calls == [1, 0]
    assert not torch.allclose(features, backbone.features(latents))


@torch.no_grad()
def test_save_then_pretrained_path_reloads_identical_features(backbone, tmp_path):
    backbone.save(tmp_path)
    reloaded = build_backbone({"type": "hunyuan", "pretrained_path": str(tmp_path), "num_blocks": 0}).eval()
    frames = random_frames(5, 32)
    assert torch.equal(reloaded.features(reloaded.encode(frames)), backbone.features(backbone.encode(frames)))
    with pytest.raises(FileNotFoundError, match="transformer/ and vae/"):
        HunyuanVideoBackbone(pretrained_path=str(tmp_path / "transformer"))


def test_denoising_loss_is_finite_and_trains_the_transformer():
    model = tiny_backbone().train()
    with torch.no_grad():
        latents = model.encode(random_frames(5, 32))
    loss = model.denoising_loss(latents, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert model.transformer.transformer_blocks[0].ff.net[2].weight.grad.abs().sum() > 0
    assert model.transformer.proj_out.weight.grad.abs().sum() > 0


def test_a_policy_on_hunyuan_runs_a_closed_loop_episode(tmp_path):
    import yaml

    from conftest import JOINTS
    from video2act_core.checkpoint import init_checkpoint
    from video2act_eval.evaluate import main as evaluate

    config = yaml.safe_load((REPO / "config" / "model_tiny_hunyuan.yaml").read_text())
    init_checkpoint(tmp_path / "ckpt", config, JOINTS)
    assert evaluate(["--checkpoint", str(tmp_path / "ckpt"), "--episodes", "1", "--out", str(tmp_path / "eval")]) == 0
    with open(tmp_path / "eval" / "episodes.csv") as f:
        (episode,) = list(csv.DictReader(f))
    assert int(episode["chunks"]) > 0
