"""A video model conditioned on the task instruction (Wan's umT5 context,
as the official code runs it) in the perception node over DDS. Its own
module: each module's rclpy context is torn down before the next starts."""

import numpy as np
import pytest
import rclpy
import yaml
from perception_probe import TOPICS, Camera, start_perception
from std_msgs.msg import String

from clips import square_clip
from conftest import JOINTS, REPO
from video2act_core.checkpoint import init_checkpoint
from video2act_core.ros import latched_qos
from video2act_eval.launcher import stop_nodes

pytestmark = pytest.mark.dds


def test_a_video_model_conditioned_on_the_instruction_follows_the_latched_topic(umt5, tmp_path):
    """The perception node reads the task instruction (latched, as the
    simulator and recorded bags publish it): the same clip gives other
    tokens once another instruction is published."""
    config = yaml.safe_load((REPO / "config" / "model_tiny_wan.yaml").read_text())
    config["system2"]["backbone"].update(text_encoder_path=str(umt5), instruction_context=True, text_tokens=8)
    init_checkpoint(tmp_path / "ckpt", config, JOINTS, seed=0)
    log = open(tmp_path / "perception.log", "w")
    process = start_perception(tmp_path / "ckpt", log)
    probe = None
    try:
        rclpy.init()
        probe = Camera()
        latched = latched_qos()
        instructions = probe.node.create_publisher(String, TOPICS.instruction_topic, latched)
        probe.ready()
        clip = square_clip(frames=config["system2"]["num_frames"], frequency_hz=1.0, amplitude_px=4)
        tokens = {"": np.concatenate(probe.tokens(clip))}  # no instruction yet: the zero context
        previous = ""
        for text in ("pick the red cube", "place the blue square"):
            instructions.publish(String(data=text))
            # The node takes the instruction between two updates: wait for the tokens to change.
            for _ in range(20):
                tokens[text] = np.concatenate(probe.tokens(clip))
                if not np.array_equal(tokens[text], tokens[previous]):
                    break
            previous = text
        assert len({array.tobytes() for array in tokens.values()}) == 3, "an instruction left the tokens as they were"
    finally:
        codes = stop_nodes([process])
        if probe is not None:
            probe.node.destroy_node()
        rclpy.try_shutdown()
        log.close()
    assert codes == [0]
