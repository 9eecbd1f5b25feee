"""The benchmark: the moving-target task, the baselines' System 2 variants
(unfiltered video features, a ResNet trained end to end) and the script
that trains and evaluates every method, in its quick mode."""

import csv
import json

import numpy as np
import pytest
import torch
import yaml

from conftest import JOINTS, PARAMS_FILE, REPO
from video2act_core.checkpoint import load_policy, read_manifest
from video2act_core.models.factory import build_models
from video2act_core.models.vdm_encoder import VDMEncoderConfig
from video2act_core.params import PolicyParams, SimArmParams, node_params
from video2act_sim import arm as arm_module
from video2act_sim.arm import SCENES, TRACK_ARC, TRACK_HOLD_S, KinematicArm
from video2act_sim.episode import run_episode
from video2act_sim.expert import ScriptedReacher

pytestmark = pytest.mark.sim

POLICY = node_params(PolicyParams, PARAMS_FILE, "video2act_policy")
TRACK = node_params(SimArmParams, PARAMS_FILE, "video2act_sim_arm", {"task": "track"})


def test_the_tracked_block_moves_along_its_arc_and_turns_back():
    arm = KinematicArm(seed=3, task="track")
    radius = np.linalg.norm(arm.target)
    angles = []
    for _ in range(400):  # 8 s: longer than it takes to cross the arc
        arm.step(0.02)
        angles.append(np.arctan2(*arm.target))
        assert np.linalg.norm(arm.target) == pytest.approx(radius)
    assert max(np.abs(angles)) <= TRACK_ARC + 1e-9
    assert np.ptp(angles) > 1.0 and (np.diff(np.sign(np.diff(angles))) != 0).any()  # it moved and came back


def test_the_same_seed_gives_both_tasks_the_same_start():
    reach, track = KinematicArm(seed=7), KinematicArm(seed=7, task="track")
    np.testing.assert_array_equal(reach.target, track.target)
    np.testing.assert_array_equal(reach.state.positions, track.state.positions)


def test_tracking_succeeds_only_after_staying_on_the_block():
    from video2act_core.trajectory import Trajectory

    arm = KinematicArm(seed=0, task="track")
    arm.slide.speed = 0.0  # a block held still, for the hold time alone
    arm.command(Trajectory(arm.time_s, [1.0], [arm.expert_goal()]))
    while arm.distance() >= 0.06:
        arm.step(0.02)
        assert arm.time_s < 3.0
    arrived = arm.time_s
    while not arm.success():
        arm.step(0.02)
        assert arm.distance() < 0.06
    assert arm.time_s - arrived == pytest.approx(TRACK_HOLD_S, abs=0.021)


def test_motion_matters_in_the_track_task(monkeypatch):
    """The expert that aims where the block will be succeeds; the same
    expert aiming where it is now (what one frame shows) mostly does not."""
    expert = ScriptedReacher(16, POLICY.action_period_s, 0.8 * np.asarray(POLICY.max_joint_velocity))
    seeds = range(1000, 1010)
    leading = np.mean([run_episode(expert, seed, TRACK, POLICY.action_period_s, 2).success for seed in seeds])
    monkeypatch.setattr(arm_module, "TRACK_LEAD_S", 0.0)
    lagging = np.mean([run_episode(expert, seed, TRACK, POLICY.action_period_s, 2).success for seed in seeds])
    print(f"track task: expert success {leading:.1f} aiming ahead, {lagging:.1f} aiming at the newest position")
    assert leading == 1.0 and lagging <= 0.5


def test_unknown_tasks_are_refused():
    from video2act_sim.arms import make_arm

    with pytest.raises(ValueError, match="unknown task 'stack'"):
        make_arm("kinematic", 6, 0, task="stack")


def test_each_split_changes_what_the_camera_sees_not_the_task():
    original = KinematicArm(seed=4)
    frame = original.render(64, 64).astype(int)
    for scene in SCENES[1:]:
        arm = KinematicArm(seed=4, scene=scene)
        np.testing.assert_array_equal(arm.target, original.target)
        np.testing.assert_array_equal(arm.state.positions, original.state.positions)
        changed = np.abs(arm.render(64, 64).astype(int) - frame).max(axis=2) > 0
        print(f"{scene}: {changed.mean():.2f} of the pixels changed")
        # Lighting and the table change most of the image, the object only itself.
        assert changed.mean() > (0.005 if scene == "object" else 0.5)


def baseline_config(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / f"model_tiny_{name}.yaml").read_text())


def test_unfiltered_streams_are_the_backbones_features():
    encoder, _ = build_models(baseline_config("vpp"), JOINTS)
    still = torch.rand(1, 1, 3, 64, 64).expand(1, encoder.config.num_frames, 3, 64, 64).contiguous()
    with torch.no_grad():
        maps = encoder.refine(still)
        newest = encoder.backbone.features(encoder.backbone.encode(still[:, -1:]))[:, -1]
    np.testing.assert_allclose(maps.spatial, torch.nn.functional.adaptive_avg_pool2d(newest, 8), atol=1e-5)
    # No band-pass: a still clip's features are there, not zero as in the filtered stream.
    assert maps.motion.abs().mean() > 0


def test_unfiltered_configs_are_checked():
    assert VDMEncoderConfig(num_frames=2, motion_filter="none").num_frames == 2  # no band to fit in 2 frames
    with pytest.raises(ValueError, match="filter_at: latents needs both filters"):
        VDMEncoderConfig(filter_at="latents", spatial_filter="none")
    with pytest.raises(ValueError, match="motion_filter"):
        VDMEncoderConfig(motion_filter="lowpass")


def test_the_resnet_baseline_trains_end_to_end_and_round_trips(expert_bags, tmp_path):
    from video2act_core.train import main as train

    config = baseline_config("dp")
    config["system1"].update(horizon=8, hidden_dim=32, num_layers=1, num_heads=2, num_inference_steps=4)
    (tmp_path / "dp.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "dp"
    arguments = [
        "--data",
        str(expert_bags),
        "--out",
        str(out),
        "--model-config",
        str(tmp_path / "dp.yaml"),
        "--params",
        str(PARAMS_FILE),
        "--batch-size",
        "4",
        "--steps",
        "3",
        "--device",
        "cpu",
    ]
    with pytest.raises(SystemExit, match="no denoising objective"):
        train(arguments + ["--stage1-steps", "1"])
    assert train(arguments) == 0
    manifest = read_manifest(out)
    assert not manifest.has_backbone and not (out / "backbone").exists()  # its weights are System 2's head
    untrained, _ = build_models(config, JOINTS)
    policy = load_policy(out, device="cpu")
    trained_stem = policy.system2.encoder.backbone.stem[0].weight
    assert not torch.allclose(trained_stem, untrained.backbone.stem[0].weight)  # stage 2 trained it
    clip = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    first, second = policy.system2.encode(clip), load_policy(out, device="cpu").system2.encode(clip)
    torch.testing.assert_close(first.spatial, second.spatial)


def test_each_seed_of_a_model_config_fills_its_own_feature_cache_before_its_ablations_read_it():
    from video2act_eval.benchmark import cache_fillers

    trainings = [(method, seed) for method in ("video2act", "no_spatial", "vpp") for seed in (0, 1)]
    assert cache_fillers(trainings) == {
        ("video2act", 0): ("video2act", 0),
        ("video2act", 1): ("video2act", 1),
        ("no_spatial", 0): ("video2act", 0),
        ("no_spatial", 1): ("video2act", 1),
        ("vpp", 0): ("vpp", 0),
        ("vpp", 1): ("vpp", 1),
    }
    # video2act trained in an earlier run: both ablations read its cache at once.
    ablations = [("no_spatial", 0), ("no_motion", 0)]
    assert cache_fillers(ablations, trained=[("dp", 0), ("video2act", 0)]) == {
        ("no_spatial", 0): ("video2act", 0),
        ("no_motion", 0): ("video2act", 0),
    }
    assert cache_fillers(ablations) == {("no_spatial", 0): ("no_spatial", 0), ("no_motion", 0): ("no_spatial", 0)}


def test_quick_benchmark_fills_every_row_and_resumes(tmp_path, capsys):
    from video2act_eval.benchmark import METHODS, QUICK
    from video2act_eval.benchmark import main as benchmark

    arguments = ["--quick", "--out", str(tmp_path), "--splits", "original", "lighting", "--params", str(PARAMS_FILE)]
    # Rows split in two shards each, trainings side by side, each system on
    # its own device: what a many-core machine with a GPU runs.
    assert (
        benchmark(
            arguments
            + [
                "--jobs",
                "2",
                "--shards",
                "2",
                "--train-jobs",
                "2",
                "--system2-device",
                "cpu",
                "--system1-device",
                "cpu",
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert all(int(row["episodes"]) == QUICK.episodes for row in rows)
    episodes = list(csv.DictReader(open(tmp_path / "episodes.csv")))
    assert sorted(int(e["seed"]) for e in episodes if e["method"] == "dp" and e["split"] == "original") == list(
        range(QUICK.episodes)
    )
    assert sorted((row["split"], row["method"]) for row in rows) == sorted(
        (split, method) for split in ("original", "lighting") for method in METHODS
    )
    assert all(row["task"] == "reach" and 0.0 <= float(row["success_rate"]) <= 1.0 for row in rows)
    assert {row["mode"] for row in rows if row["method"] == "synchronous"} == {"sync"}
    table = (tmp_path / "table.md").read_text()
    assert all(f"| {method} |" in table for method in METHODS) and "| reach | reach (lighting) |" in table
    assert (
        f"- reach (lighting): {QUICK.demos} demonstrations, {QUICK.steps} training steps, "
        f"{QUICK.episodes} evaluation episodes per method; training seeds [0]"
    ) in table
    compute = json.loads((tmp_path / "compute.json").read_text())
    assert len([key for key in compute if key.startswith("train/")]) == len(METHODS) - 1  # synchronous reuses
    capsys.readouterr()
    # A rerun reuses the demonstrations, checkpoints and evaluated rows.
    assert benchmark(arguments) == 0
    assert "wrote" in capsys.readouterr().out
    assert json.loads((tmp_path / "compute.json").read_text()) == compute
    assert list(csv.DictReader(open(tmp_path / "results.csv"))) == rows
    # The table again from the saved rows alone (rows gathered from other machines), into a doc too.
    doc = tmp_path / "benchmark.md"
    doc.write_text("Results:\n<!-- results:benchmark -->\n<!-- /results:benchmark -->\n")
    assert benchmark(arguments + ["--report-only", "--docs", str(doc)]) == 0
    assert list(csv.DictReader(open(tmp_path / "results.csv"))) == rows
    assert table in doc.read_text() and "Written by `python -m video2act_eval.benchmark --quick" in doc.read_text()
    # Or into a block of its own (a study beside the main table).
    doc.write_text("<!-- results:streams -->\n<!-- /results:streams -->\n")
    assert benchmark(arguments + ["--report-only", "--docs", f"{doc}#streams"]) == 0
    assert table in doc.read_text()


def test_a_local_pretrained_backbone_replaces_the_video_model_of_every_method_that_reads_one(tmp_path):
    from video2act_eval.benchmark import METHODS, model_config

    saved, _ = build_models(baseline_config("vpp"), JOINTS, seed=5)
    saved.backbone.save(tmp_path / "svd")
    for name in ("video2act", "vpp"):
        config = yaml.safe_load(
            model_config(METHODS[name], ("svd", str(tmp_path / "svd")), tmp_path / "out").read_text()
        )
        assert config["system2"]["backbone"] == {"type": "svd", "pretrained_path": str(tmp_path / "svd")}
        loaded, _ = build_models(config, JOINTS, seed=0)
        torch.testing.assert_close(loaded.backbone.unet.state_dict(), saved.backbone.unet.state_dict())
    assert (
        model_config(METHODS["dp"], ("svd", str(tmp_path / "svd")), tmp_path / "out")
        == REPO / "config" / "model_tiny_dp.yaml"
    )


def test_a_docs_table_is_written_between_its_markers_and_nowhere_else(tmp_path):
    from video2act_eval.tables import write_block

    doc = tmp_path / "doc.md"
    doc.write_text("# Results\n\nBefore.\n<!-- results:bench -->\nold table\n<!-- /results:bench -->\nAfter.\n")
    write_block(doc, "bench", "| a |\n| - |\n| 1 |\n", ["python", "-m", "tool", "--out", "x y"])
    text = doc.read_text()
    assert text.startswith("# Results\n\nBefore.\n<!-- results:bench -->\nWritten by `python -m tool --out 'x y'` on ")
    assert "| a |\n| - |\n| 1 |\n<!-- /results:bench -->\nAfter.\n" in text and "old table" not in text
    with pytest.raises(ValueError, match="needs one block `<!-- results:other -->`"):
        write_block(doc, "other", "x", ["tool"])
