"""The training recipe: the frozen video model in bf16 as diffusers keeps
it, stage 1's LoRA adapters (trained alone, merged into the same function)
and a bf16 recipe end to end, resumed in the middle of stage 1."""

import numpy as np
import pytest
import torch
import yaml

from conftest import JOINTS, MICRO, PARAMS_FILE, REPO
from video2act_core.models.factory import build_models
from video2act_core.training.recipe import TrainingRecipe
from video2act_core.training.stage1 import attach_adapters, merge_adapters


def tiny_encoder(name: str):
    return build_models(yaml.safe_load((REPO / "config" / name).read_text()), JOINTS)[0].eval()


def clip(encoder, seed: int = 0) -> torch.Tensor:
    """A clip with something moving through it."""
    generator = torch.Generator().manual_seed(seed)
    steps = encoder.config.num_frames
    phase = torch.rand(1, 1, 3, 64, 64, generator=generator) * 6.28
    time = torch.linspace(0, 1, steps).view(1, steps, 1, 1, 1)
    return (0.5 + 0.4 * torch.sin(6.28 * time + phase)).clamp(0, 1)


def test_a_recipe_that_cannot_work_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown training options.*'precison'"):
        TrainingRecipe.from_model_config({"training": {"precison": "bfloat16"}})
    with pytest.raises(ValueError, match="training.precision 'float16'"):
        TrainingRecipe.from_model_config({"training": {"precision": "float16"}})
    with pytest.raises(ValueError, match="training.stage1_adapter"):
        TrainingRecipe.from_model_config({"training": {"stage1_adapter": "dora"}})
    with pytest.raises(ValueError, match="training.lora_rank"):
        TrainingRecipe.from_model_config({"training": {"lora_rank": 0}})
    assert TrainingRecipe.from_model_config({}) == TrainingRecipe()  # the tiny configs: float32, full


def test_the_full_size_configs_train_in_bf16_with_lora_in_stage1():
    for name in ("model_wan2.2_ti2v_5b.yaml", "model_hunyuan_video.yaml", "model_svd_xt.yaml"):
        recipe = TrainingRecipe.from_model_config(yaml.safe_load((REPO / "config" / name).read_text()))
        assert (recipe.precision, recipe.stage1_adapter) == ("bfloat16", "lora"), name


def test_a_frozen_wan_in_bf16_keeps_what_diffusers_keeps_in_float32():
    """Wan's time embedding, norms and modulation table, and the VAE's
    latent statistics, stay float32; the features stay close to float32's."""
    encoder = tiny_encoder("model_tiny_wan.yaml")
    frames = clip(encoder)
    with torch.no_grad():
        before = encoder.refine(frames)
        encoder.backbone.cast_frozen(torch.bfloat16)
        after = encoder.refine(frames)
    kept = ("time_embedder", "scale_shift_table", "norm1", "norm2", "norm3")
    for name, parameter in encoder.backbone.transformer.named_parameters():
        expected = torch.float32 if set(name.split(".")) & set(kept) else torch.bfloat16
        assert parameter.dtype == expected, name
    assert {p.dtype for p in encoder.backbone.vae.parameters()} == {torch.bfloat16}
    assert encoder.backbone.latents_mean.dtype == torch.float32
    assert {p.dtype for p in encoder.spatial_former.parameters()} == {torch.float32}  # trained: float32
    relative = lambda a, b: ((a.float() - b.float()).norm() / b.float().norm()).item()  # noqa: E731
    # Measured 0.023 (spatial) and 0.19 (motion: a difference of features, where rounding adds up).
    assert relative(after.spatial, before.spatial) < 0.05
    assert relative(after.motion, before.motion) < 0.4


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
@pytest.mark.parametrize("config", ["model_tiny.yaml", "model_tiny_wan.yaml", "model_tiny_hunyuan.yaml"])
def test_lora_adapters_train_alone_and_merge_into_the_function_they_learned(config, precision):
    encoder = tiny_encoder(config)
    names = set(encoder.state_dict())
    adapters = attach_adapters(encoder, TrainingRecipe(precision, stage1_adapter="lora", lora_rank=4))
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    assert adapters and {id(p) for p in trainable} == {id(p) for p in adapters}
    assert {p.dtype for p in adapters} == {torch.float32}
    with torch.no_grad():
        for name, adapter in encoder.backbone.denoiser().named_parameters():
            if ".lora_B." in name:  # B starts at zero (no change): as if trained a few hundred steps
                adapter.normal_(0.0, 1e-3)
    frames = clip(encoder, seed=1)
    with torch.no_grad():
        adapted = encoder.refine(frames).spatial
        kept = merge_adapters(encoder)
        merged = encoder.refine(frames).spatial
    if precision == "float32":
        torch.testing.assert_close(merged, adapted, rtol=1e-4, atol=1e-5)
        assert kept == pytest.approx(1.0, abs=1e-3)
    else:  # bf16 weights round part of the update away, and the merge says how much (measured 0.75-0.78)
        assert ((merged - adapted).norm() / adapted.norm()).item() < 0.05
        assert 0.3 < kept < 0.95
    assert set(encoder.state_dict()) == names  # the model as it was built: its checkpoint loads anywhere


def test_lora_targets_that_match_nothing_are_refused_by_name():
    encoder = tiny_encoder("model_tiny_wan.yaml")
    with pytest.raises(ValueError, match=r"training.lora_targets .*query.*not found"):
        attach_adapters(encoder, TrainingRecipe(stage1_adapter="lora", lora_targets=r".*\.query"))


@pytest.mark.training
def test_a_bf16_recipe_with_lora_resumes_stage1_and_writes_a_checkpoint_that_acts(expert_bags, tmp_path, monkeypatch):
    """Stage 1's adapters saved with the state, the training stopped before
    the feature pass, resumed from the adapters, merged; the cache in bf16,
    stage 2 under autocast, the checkpoint loaded and sampled."""

    import video2act_core.train as train_module
    from video2act_core.checkpoint import load_policy, read_manifest

    micro = {**MICRO, "training": {"precision": "bfloat16", "stage1_adapter": "lora", "lora_rank": 2}}
    config = tmp_path / "bf16.yaml"
    config.write_text(yaml.safe_dump(micro))
    out = tmp_path / "ckpt"
    arguments = ["--data", str(expert_bags), "--out", str(out), "--model-config", str(config), "--device", "cpu"]
    arguments += ["--params", str(PARAMS_FILE), "--batch-size", "4", "--save-every", "2", "--steps", "2"]

    def stopped(*_, **__):
        raise KeyboardInterrupt

    def state():
        return torch.load(out.with_name("ckpt.train") / "state.pt", weights_only=False)

    with monkeypatch.context() as patch:  # stopped after stage 1's last step, before the merge
        patch.setattr(train_module, "merge_adapters", stopped)
        with pytest.raises(KeyboardInterrupt):
            train_module.main(arguments + ["--stage1-steps", "2"])
    assert (state()["stage"], state()["step"]) == (1, 2)
    assert any(".lora_A." in name for name in state()["encoder"])
    with monkeypatch.context() as patch:  # resumed, a step more, merged; stopped before the feature pass
        patch.setattr(train_module, "cached_features", stopped)
        with pytest.raises(KeyboardInterrupt):
            train_module.main(arguments + ["--stage1-steps", "3"])
    # The merged weights are saved: a rerun's feature pass runs on them, not on a replayed stage 1.
    assert (state()["stage"], state()["step"], state()["optimizer"]) == (2, 0, None)
    assert not any(".lora_" in name for name in state()["encoder"])
    assert train_module.main(arguments + ["--stage1-steps", "3"]) == 0
    caches = list(out.with_name("ckpt.train").glob("features-*.pt"))
    assert len(caches) == 1 and {m.dtype for m in torch.load(caches[0])[:2]} == {torch.bfloat16}
    assert state()["stage"] == 2 and state()["step"] == 2
    assert read_manifest(out).metadata["recipe"]["precision"] == "bfloat16"
    policy = load_policy(out, device="cpu")
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    assert np.isfinite(policy.system1.act(policy.system2.encode(frames), np.zeros(6))).all()


def test_a_bf16_system2_computes_the_tokens_of_what_the_bf16_recipe_cached():
    """The nodes load System 2 as training's bf16 recipe ran it (`freeze_in`:
    the video model cast, the formers not), so a clip's tokens on the robot
    are those of the cached maps it was trained on, up to the cache's bf16."""
    from video2act_core.systems import System2
    from video2act_core.training.features import refine_all

    encoder = tiny_encoder("model_tiny_wan.yaml").freeze_in(torch.bfloat16)
    assert {p.dtype for p in encoder.spatial_former.parameters()} == {torch.float32}
    config = encoder.config
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (config.num_frames, config.image_height, config.image_width, 3), dtype=np.uint8)
    spatial, motion, _ = refine_all(encoder, [clip], 1, lambda starts, **_: starts, dtype=torch.bfloat16)
    trained_on = encoder.tokens(spatial, motion)
    latents = System2(encoder, "tiny").encode(clip)
    for deployed, cached in ((latents.spatial, trained_on[0]), (latents.motion, trained_on[1])):
        cached = cached[0].detach().numpy()
        assert np.linalg.norm(deployed - cached) < 0.01 * np.linalg.norm(cached)
