"""The Wan2.2 System 2 backbone on its tiny random-weight config (CPU, about 10 s)."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import JOINTS, REPO
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


# --- Weights in the original Wan2.2 layout (the official robot fine-tune's). ---

ORIGINAL = Path(__file__).parent / "fixtures" / "wan_original"


def original_backbone(**options) -> WanBackbone:
    """The fixture's tiny original-layout checkpoint, into the diffusers models its configs describe."""
    configs = json.loads((ORIGINAL / "configs.json").read_text())
    options = {
        "type": "wan",
        "original_transformer": str(ORIGINAL / "transformer.safetensors"),
        "original_vae": str(ORIGINAL / "Wan2.2_VAE.pth"),
        "transformer": configs["transformer"],
        "vae": configs["vae"],
        "num_blocks": configs["num_blocks"],
        **options,
    }
    return build_backbone(options).eval()


@torch.no_grad()
def test_original_layout_weights_compute_what_the_original_code_computed():
    """Latents, the features after the first block and the whole forward
    pass, against Wan2.2's own WanVAE_ and WanModel on the same weights
    (test/fixtures/wan_original/write_fixture.py)."""
    backbone, reference = original_backbone(), load_file(ORIGINAL / "reference.safetensors")
    latents = backbone.encode(reference["frames"])
    torch.testing.assert_close(latents.transpose(1, 2), reference["latents"], rtol=1e-5, atol=1e-5)
    features = backbone.features(latents)  # (1, t, C, h', w'); the original's tokens run (t, h', w')
    expected = reference["features"].unflatten(1, (2, 2, 2)).permute(0, 1, 4, 2, 3)
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)
    output = backbone.transformer(
        reference["latents"],
        timestep=torch.full((1,), 500.0),
        encoder_hidden_states=reference["context"][None],
        return_dict=False,
    )[0]
    torch.testing.assert_close(output[0], reference["output"], rtol=1e-5, atol=1e-5)


def test_original_layout_files_that_do_not_fit_the_configured_model_are_refused(tmp_path):
    vae = torch.load(ORIGINAL / "Wan2.2_VAE.pth", weights_only=True)
    vae.pop("decoder.head.2.weight")
    torch.save(vae, tmp_path / "vae.pth")
    with pytest.raises(ValueError, match=r"vae.pth does not fit the configured model: 1 weights missing"):
        original_backbone(original_vae=str(tmp_path / "vae.pth"))
    with pytest.raises(ValueError, match=r"backbone.original_vae='': expected a path"):
        original_backbone(original_vae="")
    with pytest.raises(ValueError, match=r"backbone.pretrained_path='/x': expected '' with original_transformer"):
        original_backbone(pretrained_path="/x")


def test_a_checkpoint_keeps_original_layout_weights_in_diffusers_layout(tmp_path):
    """Saved with the checkpoint, the backbone reloads from its own copy: the
    original files' paths are cleared from the manifest."""
    from video2act_core.checkpoint import init_checkpoint, load_policy, read_manifest

    config = yaml.safe_load((REPO / "config" / "model_tiny_wan.yaml").read_text())
    configs = json.loads((ORIGINAL / "configs.json").read_text())
    config["system2"]["backbone"] = {
        "type": "wan",
        "original_transformer": str(ORIGINAL / "transformer.safetensors"),
        "original_vae": str(ORIGINAL / "Wan2.2_VAE.pth"),
        "transformer": configs["transformer"],
        "vae": configs["vae"],
        "num_blocks": 1,
    }
    init_checkpoint(tmp_path / "ckpt", config, JOINTS)
    backbone = read_manifest(tmp_path / "ckpt").vdm.backbone
    assert backbone["original_transformer"] == backbone["original_vae"] == ""
    loaded = load_policy(tmp_path / "ckpt", device="cpu").system2.encoder.backbone
    original = original_backbone()
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), original.state_dict().values()))
