"""The README's main job, short: sim arm + both nodes closed-loop."""

import re
import subprocess
import sys

import pytest

from conftest import PARAMS_FILE
from video2act_sim.arm import KinematicArm

pytestmark = pytest.mark.dds


@pytest.mark.parametrize("backbone", ["svd", "wan"])
def test_demo_closes_the_loop(backbone, tiny_checkpoint, tiny_wan_checkpoint, tmp_path):
    checkpoint = {"svd": tiny_checkpoint, "wan": tiny_wan_checkpoint}[backbone]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "video2act_eval.demo",
            "--duration",
            "15",
            "--params",
            str(PARAMS_FILE),
            "--checkpoint",
            str(checkpoint),
            "--logs",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rates = {
        m.group(1): float(m.group(2)) for m in re.finditer(r"^(\w+)\s+n=\d+\s+rate=\s*([\d.]+) Hz", result.stdout, re.M)
    }
    print(result.stdout)
    # Every stream of the loop flowed: sim -> perception -> policy -> sim.
    assert set(rates) == {"camera", "joint_states", "latents", "system1_ticks", "action_chunk", "trajectory"}
    assert all(rate > 0 for rate in rates.values()), rates
    assert "active=" in result.stdout
    assert re.search(r"chunk seams \(rtc\): position jump [\d.]+ rad", result.stdout)
    # The sim node ends each episode at its task's own limit, as evaluation does.
    longest = float(re.search(r"simulated arm: \d+ episodes of up to ([\d.]+) s", result.stdout).group(1))
    assert longest <= KinematicArm.time_limit_s + 0.05, longest
