"""Model configs refuse a bad value when they are made, in one line naming
the field, the value given and what is expected (one test per check), and
every shipped config still loads.

The full-size configs name local downloads that are not here: their
feature-map geometry comes from the downloads' configs, written out below."""

import json
import math
import warnings

import pytest
import torch
import yaml

from conftest import JOINTS, REPO
from video2act_core.models.backbones import build_backbone
from video2act_core.models.backbones.svd import TINY_UNET, TINY_VAE, latent_size, unet_block_size
from video2act_core.models.backbones.wan import feature_cell
from video2act_core.models.backbones.wan_original import WAN22_TI2V_5B_TRANSFORMER, WAN22_VAE
from video2act_core.models.dit import DiTConfig
from video2act_core.models.factory import build_models, system1_config
from video2act_core.models.vdm_encoder import GridRepeatsCellsWarning, VDMEncoderConfig, tiny_svd_backbone

MODEL_CONFIGS = sorted((REPO / "config").glob("model_*.yaml"))
CHECKPOINT = REPO / "checkpoints" / "sim_demo"


def refused(make, match: str) -> str:
    """`make()` raises a one-line ValueError matching `match`; its message."""
    with pytest.raises(ValueError, match=match) as error:
        make()
    message = str(error.value)
    assert "\n" not in message
    return message


# SigLIP-so400m's width, the image encoder the full-size configs name.
SIGLIP_CHANNELS = 1152


def sections(path) -> tuple[VDMEncoderConfig, DiTConfig]:
    """Both configs of a `config/model_*.yaml`, System 1's derived widths filled in as `build_models` does."""
    config = yaml.safe_load(path.read_text())
    vdm = VDMEncoderConfig.from_dict(config["system2"])
    return vdm, system1_config(config["system1"], vdm, JOINTS, SIGLIP_CHANNELS if vdm.image_encoder_path else 0)


# --- Every shipped config loads. ---

# Pixels per feature cell of the downloads the full-size configs name (their
# vae/ and transformer/ config.json): Wan2.2-TI2V-5B's VAE is 16x with 2x2
# patches (models/backbones/wan_original.py WAN22_VAE, WAN22_TI2V_5B_TRANSFORMER),
# HunyuanVideo's 8x with 2x2 patches; SVD-xt's VAE and UNet have 4 levels each.
WAN22_CELL = feature_cell(WAN22_TI2V_5B_TRANSFORMER, WAN22_VAE)
DOWNLOAD_GEOMETRY = {
    "wan": (lambda height, width: (height // WAN22_CELL[0], width // WAN22_CELL[1]), math.lcm(*WAN22_CELL)),
    "hunyuan": (lambda height, width: (height // 16, width // 16), 16),
}


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=lambda path: path.name)
def test_every_shipped_model_config_loads(path):
    vdm, dit = sections(path)
    assert dit.hidden_dim % dit.num_heads == 0
    if vdm.backbone.get("pretrained_path"):
        kind = vdm.backbone["type"]
        if kind == "svd":
            block = vdm.backbone["feature_blocks"][0]
            geometry = (
                lambda height, width: (
                    unet_block_size(latent_size(height, 4), 4, block),
                    unet_block_size(latent_size(width, 4), 4, block),
                ),
                1,
            )
        else:
            geometry = DOWNLOAD_GEOMETRY[kind]
        vdm.check_feature_grids(*geometry)
    else:  # tiny: built for real, which checks the grids against the backbone itself
        encoder, action = build_models(yaml.safe_load(path.read_text()), JOINTS)
        assert encoder.config == vdm and action.config == dit


def test_the_shipped_checkpoints_configs_load():
    manifest = json.loads((CHECKPOINT / "checkpoint.json").read_text())
    vdm, dit = VDMEncoderConfig.from_dict(manifest["system2"]), DiTConfig.from_dict(manifest["system1"])
    assert dit.context_dim == vdm.token_dim and dit.view_tokens == (vdm.view_cameras > 0)
    backbone = build_backbone({**vdm.backbone, "pretrained_path": str(CHECKPOINT / "backbone")})
    vdm.check_feature_grids(backbone.feature_grid, backbone.size_multiple)


# --- ConfigDict: every field holds its declared type. ---


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: DiTConfig(hidden_dim="128"), r"DiTConfig.hidden_dim='128': expected an int$"),
        (lambda: DiTConfig(num_layers=True), r"DiTConfig.num_layers=True: expected an int$"),
        (lambda: DiTConfig(hidden_dim=128.0), r"DiTConfig.hidden_dim=128.0: expected an int$"),
        (lambda: DiTConfig(use_spatial=1), r"DiTConfig.use_spatial=1: expected a bool$"),
        (lambda: DiTConfig(language=[]), r"DiTConfig.language=\[\]: expected a mapping$"),
        (lambda: VDMEncoderConfig(motion_fps="15"), r"VDMEncoderConfig.motion_fps='15': expected a number$"),
        (
            lambda: VDMEncoderConfig(motion_band_hz=[1.5, "4"]),
            r"VDMEncoderConfig.motion_band_hz=\[1.5, '4'\]: expected a list of numbers$",
        ),
        (lambda: VDMEncoderConfig(spatial_filter=None), r"VDMEncoderConfig.spatial_filter=None: expected a string$"),
    ],
    ids=[
        "str-for-int",
        "bool-for-int",
        "float-for-int",
        "int-for-bool",
        "list-for-dict",
        "str-for-float",
        "str-in-list",
        "none-for-str",
    ],
)
def test_a_value_of_the_wrong_type_is_refused(make, match):
    refused(make, match)


def test_numbers_of_another_kind_are_accepted_where_they_mean_the_same():
    assert DiTConfig(mlp_ratio=4, dropout=0).mlp_ratio == 4  # an int where a float is declared
    assert VDMEncoderConfig(motion_band_hz=(1.5, 4)).motion_band_hz == (1.5, 4)  # a tuple for a list


# --- DiTConfig ---


@pytest.mark.parametrize(
    "name",
    [
        "action_dim",
        "state_dim",
        "horizon",
        "context_dim",
        "hidden_dim",
        "num_layers",
        "num_heads",
        "num_train_timesteps",
    ],
)
def test_dit_sizes_must_be_positive(name):
    refused(lambda: DiTConfig(**{name: 0}), rf"DiTConfig.{name}=0: expected an int >= 1$")


def test_dit_width_must_be_even_for_the_timestep_embedding():
    refused(lambda: DiTConfig(hidden_dim=9, num_heads=3), r"DiTConfig.hidden_dim=9: expected an even width")


def test_dit_width_must_split_evenly_across_heads():
    refused(
        lambda: DiTConfig(hidden_dim=128, num_heads=5),
        r"DiTConfig.num_heads=5: expected a divisor of "
        r"hidden_dim=128",
    )


@pytest.mark.parametrize("steps", [0, 101])
def test_inference_steps_lie_within_the_training_timesteps(steps):
    refused(
        lambda: DiTConfig(num_train_timesteps=100, num_inference_steps=steps),
        rf"DiTConfig.num_inference_steps={steps}: expected 1..num_train_timesteps=100",
    )
    assert DiTConfig(num_train_timesteps=100, num_inference_steps=100).num_inference_steps == 100


@pytest.mark.parametrize("ratio", [0.0, -1.0, 0.001])
def test_the_mlp_keeps_at_least_one_unit(ratio):
    refused(lambda: DiTConfig(mlp_ratio=ratio), rf"DiTConfig.mlp_ratio={ratio}: expected > 0")


@pytest.mark.parametrize("dropout", [-0.1, 1.0])
def test_dropout_is_a_probability_below_one(dropout):
    refused(lambda: DiTConfig(dropout=dropout), rf"DiTConfig.dropout={dropout}: expected a probability in \[0, 1\)")


def test_prediction_type_is_one_of_the_choices():
    refused(
        lambda: DiTConfig(prediction_type="v_prediction"),
        r"DiTConfig.prediction_type='v_prediction': expected one of \('epsilon', 'sample'\)",
    )


def test_beta_schedule_is_one_diffusers_builds():
    refused(
        lambda: DiTConfig(beta_schedule="cosine"),
        r"DiTConfig.beta_schedule='cosine': expected one of "
        r"\('linear', 'scaled_linear', 'squaredcos_cap_v2'\)",
    )


@pytest.mark.parametrize(
    "language, match",
    [
        ({"type": "bert"}, r"DiTConfig.language.type='bert': expected one of \('learned', 'pretrained'\)"),
        ({"type": "learned", "size": 8}, r"DiTConfig.language.size=8: expected one of the learned text encoder's keys"),
        ({"type": "learned", "vocab_size": 1}, r"DiTConfig.language.vocab_size=1: expected an int >= 2"),
        ({"type": "learned", "dim": 0}, r"DiTConfig.language.dim=0: expected an int >= 1"),
        (
            {"type": "pretrained", "max_tokens": 8},
            r"DiTConfig.language.path=None: a pretrained text encoder needs "
            r"`path`, expected a local model directory",
        ),
    ],
    ids=["type", "unknown-key", "vocab-size", "dim", "path"],
)
def test_language_options_are_checked_with_the_config(language, match):
    refused(lambda: DiTConfig(language=language), match)


# --- VDMEncoderConfig: the backbone section, checked without building it. ---


@pytest.mark.parametrize(
    "backbone, match",
    [
        ("svd", r"VDMEncoderConfig.backbone='svd': expected a mapping"),  # caught by the field's type
        (
            {"type": "cogvideo"},
            r"VDMEncoderConfig.backbone.type='cogvideo': expected one of \('svd', 'wan', 'hunyuan', "
            r"'resnet'\)",
        ),
        (
            {"type": "wan", "num_block": 2},
            r"VDMEncoderConfig.backbone.num_block=2: expected one of the wan backbone's "
            r"options \['pretrained_path'",
        ),
        ({"type": "svd", "sigma": "0.05"}, r"VDMEncoderConfig.backbone.sigma='0.05': expected a number$"),
        ({"type": "svd", "sigma": 0.0}, r"VDMEncoderConfig.backbone.sigma=0.0: expected > 0$"),
        (
            {"type": "svd", "vae_scaling_factor": -1.0},
            r"VDMEncoderConfig.backbone.vae_scaling_factor=-1.0: expected > 0$",
        ),
        (
            {"type": "svd", "feature_blocks": []},
            r"VDMEncoderConfig.backbone.feature_blocks=\[\]: expected at least one "
            r"UNet block",
        ),
        ({"type": "wan", "timestep": 2000}, r"VDMEncoderConfig.backbone.timestep=2000: expected 0..1000$"),
        (
            {"type": "hunyuan", "loss_timestep_sampling": "gaussian"},
            r"VDMEncoderConfig.backbone.loss_timestep_sampling='gaussian': expected one of "
            r"\('uniform', 'logit_normal'\)",
        ),
        ({"type": "hunyuan", "num_blocks": -1}, r"VDMEncoderConfig.backbone.num_blocks=-1: expected >= 0"),
        ({"type": "wan", "text_tokens": 0}, r"VDMEncoderConfig.backbone.text_tokens=0: expected >= 1$"),
        (
            {"type": "resnet", "pretrained_path": "/models/resnet"},
            r"VDMEncoderConfig.backbone.pretrained_path='/models/resnet': expected none; the ResNet baseline is "
            r"trained from scratch",
        ),
        ({"type": "resnet", "blocks_per_stage": 0}, r"VDMEncoderConfig.backbone.blocks_per_stage=0: expected >= 1$"),
        (
            {"type": "resnet", "widths": [32, 60], "groups": 8},
            r"VDMEncoderConfig.backbone.widths=\[32, 60\]: expected one or more stage widths, each a multiple "
            r"of groups=8",
        ),
    ],
    ids=[
        "not-a-mapping",
        "type",
        "unknown-option",
        "option-type",
        "svd-sigma",
        "svd-vae-scale",
        "svd-feature-blocks",
        "timestep",
        "timestep-sampling",
        "num-blocks",
        "wan-text-tokens",
        "resnet-pretrained",
        "resnet-blocks",
        "resnet-widths",
    ],
)
def test_backbone_options_are_checked_with_the_config(backbone, match):
    refused(lambda: VDMEncoderConfig(backbone=backbone, motion_filter="none"), match)


def test_building_a_backbone_checks_its_options_too():
    refused(lambda: build_backbone({"type": "wan", "timestep": -1.0}), r"backbone.timestep=-1.0: expected 0..1000")


def test_svd_feature_blocks_must_name_blocks_of_the_unet():
    refused(
        lambda: build_backbone({**tiny_svd_backbone(), "feature_blocks": ["up_blocks.1", "up_blocks.7"]}),
        r"backbone.feature_blocks=\['up_blocks.1', 'up_blocks.7'\]: 'up_blocks.7' is not a block of the UNet; "
        r"expected names such as down_blocks.0..1, mid_block, up_blocks.0..1",
    )


# --- VDMEncoderConfig: sizes, choices and the motion band. ---


@pytest.mark.parametrize(
    "name",
    [
        "image_height",
        "image_width",
        "motion_height",
        "motion_width",
        "view_grid",
        "token_dim",
        "former_hidden",
    ],
)
def test_system2_sizes_must_be_positive(name):
    refused(lambda: VDMEncoderConfig(**{name: 0}), rf"VDMEncoderConfig.{name}=0: expected an int >= 1$")


@pytest.mark.parametrize("name", ["spatial_grid", "motion_grid"])
def test_pooling_grids_are_positive_or_the_backbones_own_in_the_paper_form(name):
    refused(
        lambda: VDMEncoderConfig(**{name: 0}),
        rf"VDMEncoderConfig.{name}=0: expected an int >= 1, or None for the backbone's own grid$",
    )
    refused(
        lambda: VDMEncoderConfig(**{name: None}),
        rf"VDMEncoderConfig.{name}=None: expected an int >= 1 \(the backbone's own grid, None, is for "
        r"stream_form: paper\)$",
    )
    assert getattr(VDMEncoderConfig(stream_form="paper", filter_at="latents", **{name: None}), name) is None


def test_the_stream_form_is_paper_or_energy_and_the_paper_filters_the_latents():
    refused(
        lambda: VDMEncoderConfig(stream_form="signed"),
        r"VDMEncoderConfig.stream_form='signed': expected one of \('paper', 'energy'\)$",
    )
    refused(
        lambda: VDMEncoderConfig(stream_form="paper"),
        r"VDMEncoderConfig.filter_at='features': expected 'latents' with stream_form: paper",
    )


def test_a_siglip_image_encoder_needs_cameras_to_make_tokens_of():
    refused(
        lambda: VDMEncoderConfig(image_encoder_path="/models/siglip"),
        r"VDMEncoderConfig.image_encoder_path='/models/siglip': expected '' with view_cameras=0",
    )


def test_the_full_size_wan_config_builds_the_papers_token_counts():
    """390 spatial and 784 motion tokens (../shared/PAPER.md), built by the
    encoder itself on the config's frames, with a random backbone of
    Wan2.2-TI2V-5B's geometry (16x VAE, 4x in time, 2x2 patches) instead of
    the download."""
    from video2act_core.models.backbones.wan import TINY_VAE
    from video2act_core.models.vdm_encoder import SpatioMotionEncoder

    system2 = yaml.safe_load((REPO / "config" / "model_wan2.2_ti2v_5b.yaml").read_text())["system2"]
    vae = TINY_VAE | {"base_dim": 4, "dim_mult": [1, 1, 1, 1], "temperal_downsample": [False, True, True]}
    vae |= {"scale_factor_spatial": 16}
    system2 |= {"backbone": {"type": "wan", "num_blocks": 1, "vae": vae}, "token_dim": 16}
    system2 |= {"view_cameras": 0, "image_encoder_path": ""}  # the streams only
    encoder = SpatioMotionEncoder(VDMEncoderConfig.from_dict(system2 | {"former_hidden": 16})).eval()
    with torch.no_grad():
        tokens = encoder(torch.rand(1, system2["num_frames"], 3, 480, 832))
    assert (tokens.spatial.shape[1], tokens.motion.shape[1]) == (15 * 26, 16 * 7 * 7) == (390, 784)


def test_token_width_suits_the_2d_positions():
    refused(lambda: VDMEncoderConfig(token_dim=66), r"VDMEncoderConfig.token_dim=66: expected a multiple of 4")


@pytest.mark.parametrize(
    "overrides, match",
    [
        (
            {"spatial_filter": "canny"},
            r"VDMEncoderConfig.spatial_filter='canny': expected one of \('sobel', 'scharr', "
            r"'laplacian', 'none'\)",
        ),
        ({"motion_filter": "lowpass"}, r"VDMEncoderConfig.motion_filter='lowpass': expected one of \('band', 'none'\)"),
        ({"filter_at": "pixels"}, r"VDMEncoderConfig.filter_at='pixels': expected one of \('features', 'latents'\)"),
    ],
    ids=["spatial", "motion", "filter-at"],
)
def test_filters_are_one_of_the_choices(overrides, match):
    refused(lambda: VDMEncoderConfig(**overrides), match)


def test_filtering_the_latents_needs_both_filters():
    refused(
        lambda: VDMEncoderConfig(filter_at="latents", spatial_filter="none"),
        r"VDMEncoderConfig.filter_at='latents': expected 'features' with spatial_filter='none' and "
        r"motion_filter='band' \(filter_at: latents needs both filters",
    )


def test_the_motion_clip_has_at_least_two_frames():
    refused(
        lambda: VDMEncoderConfig(num_frames=1, motion_filter="none"),
        r"VDMEncoderConfig.num_frames=1: expected at least 2 frames",
    )


@pytest.mark.parametrize("fps", [0.0, -15.0, float("nan")])
def test_the_motion_frame_rate_is_positive(fps):
    refused(
        lambda: VDMEncoderConfig(motion_fps=fps, motion_filter="none"),
        r"VDMEncoderConfig.motion_fps=.*: "
        r"expected > 0$",
    )


@pytest.mark.parametrize("band", [[4.0, 1.5], [0.0, 1.0], [1.5], [1.0, 2.0, 3.0]])
def test_the_motion_band_is_low_then_high(band):
    refused(
        lambda: VDMEncoderConfig(motion_band_hz=band, motion_filter="none"),
        r"VDMEncoderConfig.motion_band_hz=.*: expected \[low, high\] in Hz with 0 < low < high$",
    )


def test_the_motion_band_lies_under_the_latent_frames_nyquist_frequency():
    refused(
        lambda: VDMEncoderConfig(motion_band_hz=[1.5, 9.0]),
        r"VDMEncoderConfig.motion_band_hz=\[1.5, 9.0\]: expected high <= 7.5 Hz, the Nyquist frequency of the svd "
        r"backbone's 32 latent frames at 15 fps",
    )
    # Wan packs 4 frames into a latent frame: 33 frames at 15 fps are 9 at 3.75 fps.
    refused(
        lambda: VDMEncoderConfig(backbone={"type": "wan"}, num_frames=33, motion_band_hz=[0.5, 4.0]),
        r"expected high <= 1.875 Hz, the Nyquist frequency of the wan backbone's 9 latent frames at 3.75 fps",
    )
    # Unfiltered, the band is not used.
    assert VDMEncoderConfig(num_frames=2, motion_band_hz=[1.5, 9.0], motion_filter="none").num_frames == 2


def test_the_motion_band_holds_a_frequency_the_clip_resolves():
    # 4 frames at 15 fps resolve 3.75 and 7.5 Hz; nothing lies between 4 and 7 Hz.
    refused(
        lambda: VDMEncoderConfig(num_frames=4, motion_band_hz=[4.0, 7.0]),
        r"VDMEncoderConfig.motion_band_hz=\[4.0, 7.0\]: expected a band holding one of the frequencies of the svd "
        r"backbone's 4 latent frames at 15 fps \(their bins are 3.75 Hz apart\)",
    )


@pytest.mark.parametrize("quantile", [-0.1, 1.5])
def test_the_noise_floor_quantile_is_a_quantile(quantile):
    refused(
        lambda: VDMEncoderConfig(noise_floor_quantile=quantile),
        rf"VDMEncoderConfig.noise_floor_quantile={quantile}: expected a quantile in \[0, 1\]",
    )


def test_the_noise_floor_factor_is_not_negative():
    refused(
        lambda: VDMEncoderConfig(noise_floor_factor=-1.0), r"VDMEncoderConfig.noise_floor_factor=-1.0: expected >= 0"
    )


def test_view_cameras_are_not_negative():
    refused(lambda: VDMEncoderConfig(view_cameras=-1), r"VDMEncoderConfig.view_cameras=-1: expected >= 0")


def test_image_tokens_need_a_history_frame_per_camera():
    refused(
        lambda: VDMEncoderConfig(view_cameras=1, view_history=0),
        r"VDMEncoderConfig.view_history=0: expected >= 1 frame per camera with view_cameras=1",
    )
    assert VDMEncoderConfig(view_cameras=0, view_history=0).view_history == 0  # no image tokens: unused


def test_image_token_frames_are_spaced_forward_in_time():
    refused(
        lambda: VDMEncoderConfig(view_cameras=2, view_spacing_s=-0.2),
        r"VDMEncoderConfig.view_spacing_s=-0.2: expected >= 0 s with view_cameras=2",
    )


# --- VDMEncoderConfig against the backbone's feature maps. ---


def test_frame_sides_are_multiples_of_the_backbones_feature_cell():
    config = VDMEncoderConfig(image_height=72)
    refused(
        lambda: config.check_feature_grids(lambda height, width: (height // 16, width // 16), 16),
        r"VDMEncoderConfig.image_height=72: expected a multiple of 16, the svd backbone's pixels per feature cell",
    )


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("spatial_grid", {"spatial_grid": 9}),
        ("motion_grid", {"motion_grid": 5}),
        ("view_grid", {"view_grid": 9, "view_cameras": 1}),
    ],
)
def test_a_pooling_grid_larger_than_the_feature_maps_is_warned_of(name, overrides):
    fitting = {"image_height": 64, "image_width": 80, "motion_grid": 4, "view_cameras": 1}

    def cells(height, width):  # 8x10 cells of the image, 4x4 of the motion clip
        return height // 8, width // 8

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        VDMEncoderConfig(**fitting).check_feature_grids(cells)
    config = VDMEncoderConfig(**{**fitting, **overrides})
    with pytest.warns(
        GridRepeatsCellsWarning,
        match=rf"VDMEncoderConfig.{name}={overrides[name]} repeats cells: "
        r"the svd backbone's features of a \d+x\d+ frame are \d+x\d+ cells",
    ):
        config.check_feature_grids(cells)


def test_building_system2_checks_its_grids_against_the_backbone():
    """The ResNet leaves 4x4 cells of the shipped DP config's 32x32 motion
    clip: its 8x8 grid repeats them (kept: its benchmark rows were measured so)."""
    config = yaml.safe_load((REPO / "config" / "model_tiny_dp.yaml").read_text())
    with pytest.warns(
        GridRepeatsCellsWarning,
        match=r"VDMEncoderConfig.motion_grid=8 repeats cells: the resnet "
        r"backbone's features of a 32x32 frame are 4x4 cells",
    ):
        build_models(config, JOINTS)


# --- The geometry the grid check judges with, against real forward passes. ---


@torch.no_grad()
@pytest.mark.parametrize(
    "options",
    [
        {"type": "resnet"},
        {"type": "wan", "num_blocks": 1},
        {"type": "hunyuan", "num_blocks": 1},
        tiny_svd_backbone(),
    ],
    ids=["resnet", "wan", "hunyuan", "svd"],
)
def test_each_backbone_predicts_its_feature_grid(options):
    backbone = build_backbone(options).eval()
    for height, width in [(64, 64), (48, 80)]:
        features = backbone.features(backbone.encode(torch.rand(1, 1, 3, height, width)))
        assert backbone.feature_grid(height, width) == tuple(features.shape[-2:])
    if backbone.size_multiple > 1:  # the transformers: a side off the cell fails in the forward pass
        with pytest.raises(ValueError, match="not divisible"):
            backbone.features(backbone.encode(torch.rand(1, 1, 3, 48 + backbone.size_multiple // 2, 80)))


@torch.no_grad()
def test_svd_block_sizes_follow_the_unet_for_odd_sizes_and_every_block():
    """A 3-level UNet and VAE on a frame whose latents are odd: every block's
    output grid is the one `unet_block_size` predicts."""
    unet = dict(
        TINY_UNET,
        block_out_channels=[32, 64, 64],
        num_attention_heads=[2, 2, 2],
        down_block_types=["CrossAttnDownBlockSpatioTemporal"] * 2 + ["DownBlockSpatioTemporal"],
        up_block_types=["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 2,
    )
    vae = dict(TINY_VAE, down_block_types=["DownEncoderBlock2D"] * 3, block_out_channels=[32, 64, 64])
    blocks = [
        "up_blocks.1",
        "down_blocks.0",
        "down_blocks.1",
        "down_blocks.2",
        "mid_block",
        "up_blocks.0",
        "up_blocks.2",
    ]
    backbone = build_backbone({"type": "svd", "unet": unet, "vae": vae, "feature_blocks": blocks}).eval()
    height, width = 36, 52  # 9x13 latents: every UNet level rounds
    backbone.features(backbone.encode(torch.rand(1, 1, 3, height, width)))
    for block in blocks:
        predicted = tuple(unet_block_size(latent_size(side, 3), 3, block) for side in (height, width))
        assert predicted == tuple(backbone._features[block].shape[-2:]), block
    assert backbone.feature_grid(height, width) == (9, 13)  # the first block's, up_blocks.1
    assert unet_block_size(9, 3, "up_blocks.1.attentions.0") is None  # a sub-module: not predicted
