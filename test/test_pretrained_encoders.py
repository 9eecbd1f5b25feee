"""Pretrained encoders from local directories, as the downloads lay them
out, on tiny random-weight models written by `transformers` itself: SVD's
CLIP image encoder conditions the UNet, Wan's umT5 encodes the prompt once,
and a T5 gives System 1 its instruction tokens; each survives a checkpoint
round trip."""

import shutil

import numpy as np
import pytest
import torch
import yaml

from conftest import JOINTS, PARAMS_FILE, REPO, WORDS, tiny_model_config, write_tokenizer
from video2act_core.checkpoint import load_policy, save_checkpoint
from video2act_core.models.backbones import build_backbone
from video2act_core.models.conditions import Instruction
from video2act_core.models.factory import build_models
from video2act_core.normalization import NormalizationStats
from video2act_core.training.data import instruction_tokens

transformers = pytest.importorskip("transformers")


def frames(seed: int, steps: int = 2, size: int = 64) -> torch.Tensor:
    return torch.rand(1, steps, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def svd_with_clip(tmp_path_factory):
    """A tiny SVD download: unet/, vae/ and a CLIP image_encoder/ whose
    projection matches the UNet's cross-attention width."""
    root = tmp_path_factory.mktemp("svd_clip")
    encoder, _ = build_models(tiny_model_config(), JOINTS, seed=1)
    encoder.backbone.save(root)
    torch.manual_seed(1)
    clip = transformers.CLIPVisionModelWithProjection(
        transformers.CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
            projection_dim=encoder.backbone.unet.config.cross_attention_dim,
        )
    )
    clip.save_pretrained(root / "image_encoder")
    return root


def test_svd_conditions_on_clips_embedding_of_the_first_frame(svd_with_clip):
    backbone = build_backbone({"type": "svd", "pretrained_path": str(svd_with_clip)}).eval()
    assert backbone.image_encoder is not None
    assert not any(p.requires_grad for p in backbone.image_encoder.parameters())
    with torch.no_grad():
        clip = frames(0)
        context = backbone.context(clip)
        assert context.shape == (1, 1, backbone.unet.config.cross_attention_dim)
        latents = backbone.encode(clip)
        with_clip = backbone.features(latents, context)
        stand_in = backbone.features(latents)
        assert not torch.allclose(with_clip, stand_in)
        # The embedding is of the first frame: another last frame leaves it.
        other_last = torch.cat([clip[:, :1], frames(1)[:, 1:]], dim=1)
        torch.testing.assert_close(backbone.context(other_last), context)
        assert not torch.allclose(backbone.context(frames(2)), context)
    # Without image_encoder/ the learned stand-in conditions it, as before.
    plain = svd_with_clip.parent / "svd_plain"
    shutil.copytree(svd_with_clip, plain, ignore=shutil.ignore_patterns("image_encoder"))
    assert build_backbone({"type": "svd", "pretrained_path": str(plain)}).context(clip) is None


def test_a_checkpoint_keeps_the_clip_image_encoder(svd_with_clip, tmp_path):
    config = tiny_model_config()
    config["system2"]["backbone"] = {**config["system2"]["backbone"], "pretrained_path": str(svd_with_clip)}
    encoder, action = build_models(config, JOINTS, seed=3)
    save_checkpoint(tmp_path / "ckpt", encoder, action, NormalizationStats.identity(JOINTS))
    assert (tmp_path / "ckpt" / "backbone" / "image_encoder" / "config.json").is_file()
    shutil.rmtree(svd_with_clip / "image_encoder")  # the checkpoint has its own copy
    policy = load_policy(tmp_path / "ckpt", device="cpu")
    assert policy.system2.encoder.backbone.image_encoder is not None
    clip = (frames(4, steps=policy.system2.config.num_frames)[0].permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    with torch.no_grad():
        reference = encoder.eval()(torch.from_numpy(clip).permute(0, 3, 1, 2)[None].float() / 255)
    np.testing.assert_allclose(policy.system2.encode(clip).spatial, reference.spatial[0].numpy(), atol=1e-5)


def test_wan_encodes_its_prompt_once_with_umt5(umt5):
    wan = lambda **options: build_backbone({"type": "wan", "num_blocks": 2, "text_tokens": 8, **options}).eval()
    torch.manual_seed(0)
    picking = wan(text_encoder_path=str(umt5), prompt="pick the red cube")
    context = picking.text_context[0]
    # Four words (this tokenizer adds no end token), then zeros as WanPipeline pads.
    assert context[:4].abs().sum(dim=1).min() > 0 and context[4:].abs().sum() == 0
    torch.manual_seed(0)
    placing = wan(text_encoder_path=str(umt5), prompt="place the blue square")
    torch.manual_seed(0)
    silent = wan()  # no text encoder: the null context
    assert silent.text_context.abs().sum() == 0
    with torch.no_grad():
        latents = picking.encode(frames(5, steps=1, size=32))
        features = [backbone.features(latents) for backbone in (picking, placing, silent)]
    assert not torch.allclose(features[0], features[1]) and not torch.allclose(features[0], features[2])
    with pytest.raises(FileNotFoundError, match="expected text_encoder/"):
        wan(text_encoder_path=str(umt5 / "tokenizer"), prompt="pick")


def instruction_wan_config(umt5, **backbone) -> dict:
    """The tiny Wan config with the video model conditioned on the task instruction."""
    config = yaml.safe_load((REPO / "config" / "model_tiny_wan.yaml").read_text())
    config["system2"]["backbone"].update(
        text_encoder_path=str(umt5), instruction_context=True, text_tokens=8, **backbone
    )
    return config


@torch.no_grad()
def test_wan_conditions_on_each_instruction_encoding_each_once(umt5, tmp_path):
    """umT5 runs once per new instruction (the later ones come from what was
    kept: the text encoder can be gone by then); no instruction is the
    all-zero context; a batch may carry one instruction per clip."""
    shutil.copytree(umt5, tmp_path / "umt5")
    options = {"type": "wan", "num_blocks": 2, "text_tokens": 8}
    torch.manual_seed(0)
    backbone = build_backbone({**options, "text_encoder_path": str(tmp_path / "umt5"), "instruction_context": True})
    latents = backbone.eval().encode(frames(5, steps=1, size=32))
    features = {}
    for text in ["pick the red cube", "place the blue square"]:
        backbone.set_instructions([text])
        features[text] = backbone.features(latents)
    shutil.rmtree(tmp_path / "umt5")
    for text in ["pick the red cube", ""]:
        backbone.set_instructions([text])
        features[text + " again"] = backbone.features(latents)
    assert backbone.encoded_instructions == ["pick the red cube", "place the blue square"]
    torch.testing.assert_close(features["pick the red cube again"], features["pick the red cube"])
    assert not torch.allclose(features["pick the red cube"], features["place the blue square"])
    torch.manual_seed(0)
    silent = build_backbone(options).eval()  # the same weights without a text encoder: the zero context
    torch.testing.assert_close(features[" again"], silent.features(latents))
    backbone.set_instructions(["place the blue square", "pick the red cube"])
    both = backbone.features(torch.cat([latents, latents]))
    torch.testing.assert_close(both, torch.cat([features["place the blue square"], features["pick the red cube"]]))
    with pytest.raises(FileNotFoundError):
        backbone.set_instructions(["reach the left square"])  # a new one needs the umT5


@torch.no_grad()
@pytest.mark.parametrize("dropout", [0.0, 1.0])
def test_the_feature_cache_leaves_out_the_instruction_as_often_as_configured(umt5, dropout):
    from video2act_core.training.features import refine_all

    encoder, _ = build_models(instruction_wan_config(umt5, instruction_dropout=dropout), JOINTS, seed=0)
    clips = [(frames(seed, steps=33, size=64)[0].permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8) for seed in (1, 2)]
    maps = lambda texts: refine_all(encoder, clips, 2, lambda starts, **_: starts, instructions=texts)[0]
    instructed, silent = maps(["pick the red cube"] * 2), maps([""] * 2)
    assert torch.equal(instructed, silent) == (dropout == 1.0)


def test_a_video_model_conditioned_on_the_instruction_drives_a_closed_loop_episode(umt5, tmp_path):
    """The untrained policy through a checkpoint (which keeps the umT5 path:
    a new instruction needs it) for one evaluation episode of the simulated
    arm, whose task instruction System 2 encodes."""
    from video2act_core.checkpoint import init_checkpoint
    from video2act_eval.evaluate import main as evaluate

    init_checkpoint(tmp_path / "ckpt", instruction_wan_config(umt5), JOINTS)
    policy = load_policy(tmp_path / "ckpt", device="cpu")
    assert policy.system2.needs_instruction
    arguments = ["--checkpoint", str(tmp_path / "ckpt"), "--episodes", "1", "--ratios", "2"]
    assert evaluate(arguments + ["--params", str(PARAMS_FILE), "--out", str(tmp_path / "eval")]) == 0
    assert (tmp_path / "eval" / "results.csv").read_text().count("\n") == 2  # the header and the one row


def test_a_wan_checkpoint_runs_without_its_text_encoder(umt5, tmp_path):
    config = yaml.safe_load((REPO / "config" / "model_tiny_wan.yaml").read_text())
    config["system2"]["backbone"].update(
        text_encoder_path=str(umt5 / "copy"), prompt="reach the red square", text_tokens=8
    )
    shutil.copytree(umt5, umt5 / "copy")
    encoder, action = build_models(config, JOINTS, seed=4)
    save_checkpoint(tmp_path / "ckpt", encoder, action, NormalizationStats.identity(JOINTS))
    shutil.rmtree(umt5 / "copy")  # as on a robot without the 11 GB umT5-XXL
    policy = load_policy(tmp_path / "ckpt", device="cpu")
    torch.testing.assert_close(policy.system2.encoder.backbone.text_context, encoder.backbone.text_context)
    assert policy.system2.encoder.backbone.text_context.abs().sum() > 0


def test_system1_reads_instructions_through_a_local_t5(tmp_path):
    """The `pretrained` language option on a tiny T5 encoder-decoder: its
    encoder's tokens condition the chunk, and a checkpoint refers to it by path."""
    write_tokenizer(tmp_path / "t5")
    torch.manual_seed(3)
    transformers.T5ForConditionalGeneration(
        transformers.T5Config(
            vocab_size=len(WORDS) + 3,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=1,
            num_decoder_layers=1,
            num_heads=2,
            decoder_start_token_id=0,
        )
    ).save_pretrained(tmp_path / "t5")
    config = tiny_model_config()
    config["system1"]["language"] = {"type": "pretrained", "path": str(tmp_path / "t5"), "max_tokens": 8}
    encoder, action = build_models(config, JOINTS, seed=5)
    text = action.model.text_encoder
    assert text.dim == 32 and not any(True for _ in text.parameters())  # frozen, not in the state dict
    save_checkpoint(
        tmp_path / "ckpt",
        encoder,
        action,
        NormalizationStats.identity(JOINTS),
        metadata={"instructions": ["reach the red cube"]},
    )
    policy = load_policy(tmp_path / "ckpt", device="cpu")
    # The untrained head's output layer is zero: give it weights so the context shows.
    torch.manual_seed(6)
    torch.nn.init.normal_(policy.system1.action.model.action_out.weight)
    for block in policy.system1.action.model.blocks:
        torch.nn.init.normal_(block.modulation[-1].weight, std=0.1)
    clip = np.zeros((policy.system2.config.num_frames, 64, 64, 3), np.uint8)
    latents = policy.system2.encode(clip)
    chunk = lambda instruction: policy.system1.act(latents, np.zeros(len(JOINTS)), instruction=instruction)
    policy.system1._generator.manual_seed(0)
    red = chunk("reach the red cube")
    policy.system1._generator.manual_seed(0)
    blue = chunk("reach the blue cube")
    assert np.abs(red - blue).max() > 1e-4
    # The frozen T5 runs once per instruction: its words are kept with the
    # tokens, and the head reads them as it would have encoded them.
    cached = policy.system1._instruction("reach the blue cube")
    torch.testing.assert_close(cached.words, policy.system1.action.model.text_encoder(cached.ids, cached.mask))
    policy.system1._generator.manual_seed(0)
    policy.system1._tokenized = ("reach the blue cube", Instruction(cached.ids, cached.mask))  # no words: encoded now
    np.testing.assert_allclose(chunk("reach the blue cube"), blue, atol=1e-6)
    # Training encodes each distinct instruction once, one row per episode.
    episodes = ["reach the blue cube", "reach the red cube", "reach the blue cube"]
    tokens = instruction_tokens(action, episodes, "/instruction", quiet=True)
    for row, text in enumerate(episodes):
        ids, mask = action.model.text_encoder.tokenize([text])
        torch.testing.assert_close(tokens.words[row : row + 1], action.model.text_encoder(ids, mask))


@pytest.fixture(scope="module")
def siglip(tmp_path_factory):
    """A tiny SigLIP vision model as transformers saves one: 32x32 input, 4x4 patches of 8 px."""
    root = tmp_path_factory.mktemp("siglip")
    torch.manual_seed(5)
    transformers.SiglipVisionModel(
        transformers.SiglipVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        )
    ).save_pretrained(root)
    return root


def siglip_model_config(path) -> dict:
    return tiny_model_config(image_height=32, image_width=32, view_cameras=1, view_grid=4, image_encoder_path=str(path))


def test_image_tokens_from_siglip_are_its_patch_tokens_as_its_processor_feeds_it(siglip):
    """At SigLIP's own input size: the maps are the vision model's
    last_hidden_state on what SiglipImageProcessor makes of the frames."""
    encoder, _ = build_models(siglip_model_config(siglip), JOINTS, seed=0)
    images = (frames(6, steps=2, size=32)[0].permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    processor = transformers.SiglipImageProcessor(size={"height": 32, "width": 32})
    model = transformers.SiglipVisionModel.from_pretrained(siglip).eval()
    with torch.no_grad():
        expected = model(**processor(list(images), return_tensors="pt")).last_hidden_state
        views = torch.from_numpy(images).permute(0, 3, 1, 2)[None, None].float() / 255  # (1, 1 camera, 2 frames, ...)
        maps = encoder.eval().view_maps(views)
    assert maps.shape == (1, 2, 32, 4, 4)
    torch.testing.assert_close(maps[0].flatten(2).transpose(1, 2), expected, rtol=1e-4, atol=1e-4)


def test_a_wide_frame_is_padded_to_a_square_as_rdt_feeds_siglip_not_stretched(siglip):
    """RDT's expand2square (its agilex_model.py, verbatim in its steps) on a
    24x32 frame, then the processor: what the encoder's maps are computed on."""
    from PIL import Image

    from video2act_core.models.image_encoder import SiglipImageEncoder

    image = (frames(6, steps=1, size=32)[0, 0].permute(1, 2, 0).numpy()[4:28] * 255).astype(np.uint8)  # 24 x 32
    wide = Image.fromarray(image)
    square = Image.new(wide.mode, (32, 32), tuple(int(x * 255) for x in (0.5, 0.5, 0.5)))
    square.paste(wide, (0, (32 - 24) // 2))
    processor = transformers.SiglipImageProcessor(size={"height": 32, "width": 32})
    model = transformers.SiglipVisionModel.from_pretrained(siglip).eval()
    with torch.no_grad():
        expected = model(**processor([square], return_tensors="pt")).last_hidden_state
        maps = SiglipImageEncoder(str(siglip))(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255)
    torch.testing.assert_close(maps.flatten(2).transpose(1, 2), expected, rtol=1e-4, atol=1e-4)


def test_siglip_image_tokens_survive_a_checkpoint_and_drive_a_closed_loop_episode(siglip, tmp_path):
    """Referenced by path, not copied (as a pretrained text encoder); one
    evaluation episode of the simulated arm with the untrained policy."""
    from video2act_core.checkpoint import init_checkpoint
    from video2act_eval.evaluate import main as evaluate

    init_checkpoint(tmp_path / "ckpt", siglip_model_config(siglip), JOINTS)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir() if p.is_dir()) == ["backbone"]
    policy = load_policy(tmp_path / "ckpt", device="cpu")
    assert policy.system2.encoder.image_encoder is not None
    arguments = ["--checkpoint", str(tmp_path / "ckpt"), "--episodes", "1", "--ratios", "2"]
    assert evaluate(arguments + ["--params", str(PARAMS_FILE), "--out", str(tmp_path / "eval")]) == 0
    assert (tmp_path / "eval" / "results.csv").is_file()


def test_the_still_clip_is_conditioned_on_clips_embedding_of_its_own_first_frame(svd_with_clip):
    """The still clip (the newest frame standing still) reuses the clip's
    latents; its CLIP context is the newest frame's, as encoding it gave."""
    config = tiny_model_config()
    config["system2"]["backbone"] = {**config["system2"]["backbone"], "pretrained_path": str(svd_with_clip)}
    encoder, _ = build_models(config, JOINTS, seed=0)
    encoder.eval()
    with torch.no_grad():
        clip = encoder.motion_clip(encoder._checked(frames(3, steps=encoder.config.num_frames)))
        reused = encoder._features_and_still(clip)
        encoded = encoder._features(torch.cat([clip, clip[:, -1:].expand_as(clip)]))
    assert float((reused - encoded).norm() / encoded.norm()) < 1e-4
