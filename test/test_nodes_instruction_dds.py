"""A language-conditioned checkpoint over real DDS: the policy holds, saying
why, until a task instruction arrives on the latched instruction topic, then
drives the arm."""

import time

import pytest
import yaml
from std_msgs.msg import String

from conftest import JOINTS, MODEL_TINY
from dds_harness import PARAMS, run_stack
from video2act_core.ros import latched_qos
from video2act_msgs.msg import ActionChunk

pytestmark = pytest.mark.dds


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from video2act_core.checkpoint import init_checkpoint

    config = yaml.safe_load(MODEL_TINY.read_text())
    config["system1"]["language"] = {"type": "learned", "vocab_size": 256, "max_tokens": 8, "dim": 16}
    checkpoint = tmp_path_factory.mktemp("checkpoints") / "language"
    init_checkpoint(checkpoint, config, JOINTS)  # untrained: it knows no instruction of its own
    yield from run_stack(checkpoint, tmp_path_factory.mktemp("logs"))


def test_the_policy_holds_without_an_instruction_and_acts_once_one_is_latched(stack):
    harness, processes, logs = stack
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (harness.latents and harness.chunks):
        harness.run(0.5)
        assert all(p.poll() is None for p in processes), [p.read_text()[-2000:] for p in logs.iterdir()]
    harness.run(1.0)
    assert harness.latents and harness.chunks
    assert all(c.mode != ActionChunk.MODE_ACTIVE for c in harness.chunks)
    assert any("no task instruction" in c.reason for c in harness.chunks), {c.reason for c in harness.chunks}
    assert not harness.trajectories

    latched = latched_qos()
    publisher = harness.node.create_publisher(String, PARAMS.instruction_topic, latched)
    publisher.publish(String(data="reach the red square"))
    harness.clear()
    deadline = time.monotonic() + 30
    active = lambda: [c for c in harness.chunks if c.mode == ActionChunk.MODE_ACTIVE]
    while time.monotonic() < deadline and not active():
        harness.run(0.5)
    assert active() and harness.trajectories
