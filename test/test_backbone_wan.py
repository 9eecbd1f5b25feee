"""The Wan2.2 System 2 backbone on its tiny random-weight config (CPU, about 10 s)."""

import pytest
import torch

from video2act_core.models.backbones import build_backbone
from video2act_core.models.backbones.wan import TINY_TRANSFORMER, WanBackbone


def tiny_backbone(**options) -> WanBackbone:
    torch.manual_seed(0)
    return build_backbone({"type": "wan", **options}).eval()


@pytest.fixture(scope="module")
def backbone() -> WanBackbone:
    return tiny_backbone()


def random_frames(steps: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, steps, 3, size, size, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
@pytest.mark.parametrize(("steps", "size", "latent_steps"), [(1, 64, 1), (9, 32, 3)])
def test_encode_and_features_shapes_follow_the_causal_vae_and_patch_grid(backbone, steps, size, latent_steps):
    latents = backbone.encode(random_frames(steps, size))
    # 8x VAE downsampling in the tiny config, then the transformer's 2x2 patches.
    assert latents.shape == (1, latent_steps, 8, size // 8, size // 8)
    features = backbone.features(latents)
    assert features.shape == (1, latent_steps, backbone.feature_channels, size // 16, size // 16)
    assert backbone.feature_channels == TINY_TRANSFORMER["num_attention_heads"] * TINY_TRANSFORMER["attention_head_dim"]


@torch.no_grad()
def test_encode_normalises_latent_means_with_the_vae_statistics(backbone):
    frames = random_frames(5, 32)
    raw = backbone.vae.encode(frames.transpose(1, 2) * 2 - 1).latent_dist.mode()
    mean = torch.tensor(backbone.vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(backbone.vae.config.latents_std).view(1, -1, 1, 1, 1)
    torch.testing.assert_close(backbone.encode(frames), ((raw - mean) / std).transpose(1, 2))


@torch.no_grad()
def test_encode_drops_surplus_frames_from_the_start_of_the_clip(backbone):
    frames = random_frames(11, 32)
    assert torch.equal(backbone.encode(frames), backbone.encode(frames[:, 2:]))


@torch.no_grad()
def test_features_are_deterministic(backbone):
    latents = backbone.encode(random_frames(9, 32))
    assert torch.equal(backbone.features(latents), backbone.features(latents))


@torch.no_grad()
def test_a_changed_pixel_region_changes_the_features_at_its_grid_cell_most(backbone):
    frames = random_frames(1, 128)
    changed = frames.clone()
    # Grid cell (row 2, column 5) of the 8x8 token grid: 16x16 pixels each.
    changed[..., 32:48, 80:96] = 1.0 - changed[..., 32:48, 80:96]
    change = (backbone.features(backbone.encode(changed)) - backbone.features(backbone.encode(frames))).norm(dim=2)
    change = change[0, 0]
    # Convolutions and attention spread some change to the neighbours; cells
    # further away (including the transposed cell (5, 2)) must change less.
    far = torch.ones_like(change, dtype=torch.bool)
    far[1:4, 4:7] = False
    assert change[2, 5] > 2 * change[far].max()


@torch.no_grad()
def test_all_blocks_match_the_transformer_forward_pass(backbone):
    latents = backbone.encode(random_frames(5, 32))
    transformer = backbone.transformer
    captured = {}
    handle = transformer.blocks[-1].register_forward_hook(lambda _m, _i, output: captured.update(last=output))
    try:
        transformer(
            latents.transpose(1, 2),
            timestep=torch.zeros(1),
            encoder_hidden_states=torch.zeros(1, 1, transformer.config.text_dim),
        )
    finally:
        handle.remove()
    grid = captured["last"].unflatten(1, latents.shape[1:2] + (latents.shape[3] // 2, latents.shape[4] // 2))
    assert backbone.num_blocks == len(transformer.blocks)
    torch.testing.assert_close(backbone.features(latents), grid.permute(0, 1, 4, 2, 3))


@torch.no_grad()
def test_fewer_blocks_give_other_features_and_run_only_those_blocks():
    first_block_only = tiny_backbone(num_blocks=1)
    all_blocks = tiny_backbone(num_blocks=0)
    calls = [0] * len(first_block_only.transformer.blocks)
    for index, block in enumerate(first_block_only.transformer.blocks):
        block.register_forward_hook(lambda *_args, index=index: calls.__setitem__(index, calls[index] + 1))
    latents = all_blocks.encode(random_frames(5, 32))
    features = first_block_only.features(latents)
    assert calls == [1, 0, 0]
    assert not torch.allclose(features, all_blocks.features(latents))


@torch.no_grad()
def test_the_null_text_context_gives_the_same_features_for_any_token_count(backbone):
    latents = backbone.encode(random_frames(1, 32))
    more_tokens = tiny_backbone(text_tokens=7)
    torch.testing.assert_close(more_tokens.features(latents), backbone.features(latents))


@torch.no_grad()
def test_save_then_pretrained_path_reloads_identical_features(backbone, tmp_path):
    backbone.save(tmp_path)
    reloaded = build_backbone({"type": "wan", "pretrained_path": str(tmp_path)}).eval()
    frames = random_frames(5, 32)
    assert torch.equal(reloaded.features(reloaded.encode(frames)), backbone.features(backbone.encode(frames)))


def test_a_directory_without_transformer_and_vae_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="transformer/ and vae/"):
        WanBackbone(pretrained_path=str(tmp_path))


@pytest.mark.parametrize("sampling", ["uniform", "logit_normal"])
def test_denoising_loss_is_finite_and_trains_the_transformer(sampling):
    model = tiny_backbone(loss_timestep_sampling=sampling).train()
    with torch.no_grad():
        latents = model.encode(random_frames(5, 32))
    loss = model.denoising_loss(latents, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    transformer = model.transformer
    for parameter in (
        transformer.patch_embedding.weight,
        transformer.blocks[-1].ffn.net[2].weight,
        transformer.proj_out.weight,
    ):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0
