"""Pretraining the video model on videos alone: held-out loss against the
start, resuming, and the written model loaded as a pretrained backbone."""

import json

import numpy as np
import pytest
import torch
import yaml

from conftest import JOINTS, MICRO, PARAMS_FILE
from video2act_core.models.backbones import build_backbone
from video2act_core.models.factory import build_models

pytestmark = pytest.mark.training


@pytest.fixture(scope="module")
def activity(tmp_path_factory):
    """Eleven episodes of the recorder's --wander (every 10th is held out)."""
    from video2act_sim.expert import main as record

    out = tmp_path_factory.mktemp("activity") / "bags"
    assert record(["--out", str(out), "--episodes", "11", "--wander", "--params", str(PARAMS_FILE)]) == 0
    return out


def test_pretraining_lowers_the_held_out_loss_resumes_and_writes_a_loadable_backbone(activity, tmp_path, capsys):
    from video2act_core.pretrain import main as pretrain

    config = tmp_path / "micro.yaml"
    config.write_text(yaml.safe_dump(MICRO))
    out = tmp_path / "prior"
    arguments = [
        "--data",
        str(activity),
        "--out",
        str(out),
        "--model-config",
        str(config),
        "--params",
        str(PARAMS_FILE),
    ]
    arguments += ["--eval-every", "6", "--save-every", "6", "--held-out-clips", "8", "--clips-per-step", "2"]
    arguments += ["--device", "cpu", "--lr", "1e-3"]
    assert pretrain(arguments + ["--steps", "12"]) == 0
    first = json.loads((out / "pretraining.json").read_text())
    assert [point["step"] for point in first["curve"]] == [0, 6, 12]
    assert first["held_out_loss_end"] < first["held_out_loss_start"]
    capsys.readouterr()
    # Longer: resumed from the saved state, the curve extended from there.
    assert pretrain(arguments + ["--steps", "18", "--overwrite"]) == 0
    assert "resuming" in capsys.readouterr().out
    second = json.loads((out / "pretraining.json").read_text())
    assert [point["step"] for point in second["curve"]] == [0, 6, 12, 18]
    assert second["curve"][:3] == first["curve"]
    # What the model configs and --pretrained-backbone read: the same model.
    encoder, _ = build_models(MICRO, JOINTS)
    loaded = build_backbone({**encoder.config.backbone, "pretrained_path": str(out)}).eval()
    fresh = build_backbone(encoder.config.backbone).eval()
    latents = torch.randn(1, 4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.allclose(loaded.features(latents), fresh.features(latents))
    assert np.isfinite(second["held_out_loss_end"])
