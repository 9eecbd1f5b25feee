"""Offline evaluation: a recorded bag replayed through both node processes."""

import json

from conftest import PARAMS_FILE
from video2act_core.data.dataset import find_episode_bags
from video2act_sim.replay import main as replay


def test_replay_compares_policy_chunks_with_recorded_commands(expert_bags, tiny_checkpoint, tmp_path):
    bag = find_episode_bags([expert_bags])[0]
    # A quarter speed: the episode is ~2 s of sim time and System 2 needs a
    # full clip plus ~1 s on a loaded CPU before the policy can act.
    assert replay(["--bag", str(bag), "--checkpoint", str(tiny_checkpoint), "--params", str(PARAMS_FILE),
                   "--rate", "0.25", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    # Playback under /clock from the bag: the policy acts and its chunks
    # line up in time with the recorded commands.
    assert report["active_chunks"] > 0 and report["chunks_compared"] > 0
    assert report["chunk_mae"] >= 0 and report["system1_latency_p50_ms"] > 0
    assert (tmp_path / "latency.png").stat().st_size > 0
