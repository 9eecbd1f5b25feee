"""Image decoding, the clip buffer, and JTC-style trajectory tracking."""

import numpy as np
import pytest

from video2act_core.data.frames import FrameBuffer, clip_frame_indices
from video2act_core.data.images import (
    ImageDecodeError,
    decode_compressed,
    decode_image,
    decode_image_message,
    encode_compressed,
    encode_rgb8,
    resize_frame,
)
from video2act_core.trajectory import Trajectory, TrajectoryTracker

RGB = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)


def test_rgb8_round_trip():
    np.testing.assert_array_equal(decode_image("rgb8", *encode_rgb8(RGB)), RGB)


def test_bgr_and_bgra_with_row_padding_decode_to_rgb():
    bgr = RGB[:, :, ::-1]
    padded = np.zeros((2, 12), np.uint8)  # 9 bytes of pixels + 3 of padding per row
    padded[:, :9] = bgr.reshape(2, 9)
    np.testing.assert_array_equal(decode_image("bgr8", 2, 3, 12, padded.tobytes()), RGB)
    bgra = np.concatenate([bgr, np.full((2, 3, 1), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(decode_image("bgra8", 2, 3, 12, bgra.tobytes()), RGB)


def test_mono_is_replicated():
    mono = np.array([[1, 2], [3, 4]], np.uint8)
    decoded = decode_image("mono8", 2, 2, 2, mono.tobytes())
    assert decoded.shape == (2, 2, 3) and np.all(decoded[..., 0] == mono) and np.all(decoded[..., 2] == mono)


def test_compressed_images_decode_to_rgb():
    rng = np.random.default_rng(0)
    frame = np.repeat(np.repeat(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), 8, 0), 8, 1)
    format, data = encode_compressed(frame, "png")
    assert format == "rgb8; compressed png"
    np.testing.assert_array_equal(decode_compressed(format, data), frame)
    format, data = encode_compressed(frame, "jpeg", quality=95)
    decoded = decode_compressed(format, data).astype(int)
    # Lossy (chroma subsampling on random colours), but far from swapped colours.
    assert np.abs(decoded - frame).mean() < 12 < np.abs(decoded - frame[..., ::-1]).mean()

    class Compressed:  # what rclpy and the bag reader both hand over
        def __init__(self, format, data):
            self.format, self.data = format, data

    # image_transport's format string says bgr8, the file holds its own order.
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    decoded = decode_image_message(Compressed("bgr8; jpeg compressed bgr8", encode_compressed(red, "jpeg")[1]))
    assert decoded[..., 0].min() > 200 and decoded[..., 2].max() < 50


def test_frames_resized_while_reading_match_what_system2_does_to_full_frames():
    import torch
    import torch.nn.functional as F

    frame = np.random.default_rng(1).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    full = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255
    at_run_time = F.interpolate(full, size=(24, 32), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
    assert np.abs(resize_frame(frame, (24, 32)) / 255 - at_run_time).max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize(
    "format, data, message",
    [
        ("jpeg", b"not an image", "cannot decode compressed image"),
        ("16UC1; compressedDepth", b"", "compressed depth image"),
    ],
)
def test_bad_compressed_images_are_refused(format, data, message):
    with pytest.raises(ImageDecodeError, match=message):
        decode_compressed(format, data)


@pytest.mark.parametrize(
    "encoding, height, width, step, size, message",
    [
        ("32FC1", 2, 3, 12, 24, "unsupported image encoding '32FC1'"),
        ("rgb8", 2, 3, 9, 10, "image data has 10 bytes"),
        ("rgb8", 2, 3, 6, 18, "row step 6"),
        ("rgb8", 0, 3, 9, 0, "empty image"),
    ],
)
def test_bad_images_are_refused(encoding, height, width, step, size, message):
    with pytest.raises(ImageDecodeError, match=message):
        decode_image(encoding, height, width, step, bytes(size))


def test_clip_honours_stride_and_repeats_the_first_frame_until_enough_arrived():
    buffer = FrameBuffer(num_frames=3, stride=2)
    assert buffer.clip() is None
    buffer.push(0, np.full((2, 2, 3), 0, np.uint8))
    assert buffer.clip().stamps_ns == [0, 0, 0]
    for i in range(1, 4):
        buffer.push(i, np.full((2, 2, 3), i, np.uint8))
    assert buffer.clip().stamps_ns == [0, 1, 3]
    buffer.push(4, np.full((2, 2, 3), 4, np.uint8))
    buffer.push(5, np.full((2, 2, 3), 5, np.uint8))
    clip = buffer.clip()
    assert clip.stamps_ns == [1, 3, 5]
    assert [int(f[0, 0, 0]) for f in clip.frames] == [1, 3, 5]


def test_live_clips_match_the_training_clips_of_the_same_frames():
    num_frames, stride = 4, 2
    buffer = FrameBuffer(num_frames, stride)
    for newest in range(10):
        buffer.push(newest, np.zeros((1, 1, 3), np.uint8))
        assert buffer.clip().stamps_ns == clip_frame_indices(newest, num_frames, stride).tolist()


def test_clip_restarts_when_time_goes_backwards_or_size_changes_or_on_reset():
    buffer = FrameBuffer(num_frames=2)
    buffer.push(5, np.zeros((2, 2, 3), np.uint8))
    buffer.push(1, np.zeros((2, 2, 3), np.uint8))  # bag looped
    assert buffer.clip().stamps_ns == [1, 1]
    buffer.push(2, np.zeros((4, 4, 3), np.uint8))  # camera reconfigured
    assert buffer.clip().stamps_ns == [2, 2]
    buffer.clear()  # episode reset
    assert buffer.clip() is None
    buffer.push(4, np.zeros((4, 4, 3), np.uint8))
    assert buffer.clip().stamps_ns == [4, 4]


def test_tracker_interpolates_from_the_current_reference():
    tracker = TrajectoryTracker(np.zeros(1))
    tracker.command(Trajectory(0.0, [1.0, 2.0], [[1.0], [3.0]]), now_s=10.0)
    assert tracker.reference(10.5)[0] == pytest.approx(0.5)
    assert tracker.reference(11.5)[0] == pytest.approx(2.0)
    assert tracker.reference(20.0)[0] == pytest.approx(3.0)  # holds the last point


def test_newer_trajectory_replaces_the_rest_of_the_older_one():
    tracker = TrajectoryTracker(np.zeros(1))
    tracker.command(Trajectory(0.0, [2.0], [[2.0]]), now_s=0.0)
    assert tracker.reference(1.0)[0] == pytest.approx(1.0)
    tracker.command(Trajectory(0.0, [1.0], [[-1.0]]), now_s=1.0)
    assert tracker.reference(1.5)[0] == pytest.approx(0.0)  # from 1.0 towards -1.0
    assert tracker.reference(3.0)[0] == pytest.approx(-1.0)


def test_a_future_stamp_takes_over_at_once_and_stretches_the_first_segment():
    # JTC on Jazzy: the new trajectory replaces the old one at the next update
    # whatever its stamp; the segment to its first point starts now.
    tracker = TrajectoryTracker(np.ones(1))
    tracker.command(Trajectory(5.0, [1.0], [[2.0]]), now_s=1.0)
    assert tracker.reference(4.0)[0] == pytest.approx(1.6)  # 1 -> 2 over 1 s .. 6 s
    assert tracker.reference(5.5)[0] == pytest.approx(1.9)


def test_a_future_stamped_trajectory_does_not_let_the_current_one_run_on():
    tracker = TrajectoryTracker(np.zeros(1))
    tracker.command(Trajectory(0.0, [4.0], [[4.0]]), now_s=0.0)
    tracker.command(Trajectory(2.0, [1.0], [[0.0]]), now_s=1.0)
    assert tracker.reference(1.5)[0] == pytest.approx(0.75)  # from 1.0 at 1 s to 0.0 at 3 s
    assert tracker.reference(2.5)[0] == pytest.approx(0.25)
    assert tracker.reference(3.0)[0] == pytest.approx(0.0)


def test_a_trajectory_received_after_its_first_point_jumps_onto_it():
    # JTC bridges from the setpoint only while the first point lies ahead;
    # later it samples between the message's own points (trajectory.cpp).
    tracker = TrajectoryTracker(np.zeros(1))
    tracker.command(Trajectory(10.0, [0.1, 0.2], [[1.0], [2.0]]), now_s=10.15)
    assert tracker.reference(10.15)[0] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="in the past"):
        tracker.command(Trajectory(10.0, [0.1, 0.2], [[1.0], [2.0]]), now_s=10.25)
    # Ending exactly now is still accepted (JTC refuses strictly earlier ends).
    tracker.command(Trajectory(10.0, [0.1, 0.2], [[1.0], [3.0]]), now_s=10.2)
    assert tracker.reference(10.2)[0] == pytest.approx(3.0)


@pytest.mark.parametrize(
    "times, positions", [([1.0, 0.5], [[0.0], [1.0]]), ([1.0], [[float("nan")]]), ([1.0], [[0.0, 1.0]])]
)
def test_bad_trajectories_are_refused(times, positions):
    with pytest.raises(ValueError):
        TrajectoryTracker(np.zeros(1)).command(Trajectory(0.0, times, positions), now_s=0.0)


def test_setpoint_log_sees_a_chunk_that_turns_at_its_seam_and_nothing_where_one_continues():
    from video2act_core.control.smoothness import SetpointLog

    dt = 0.02

    def run(second_target: float):
        log = SetpointLog(dt)
        log.command(0.0, Trajectory(0.0, np.array([1.0]), np.array([[0.5]])), initial_positions=np.zeros(1))
        for k in range(25):  # measured 0.01 rad behind a 0.5 rad/s ramp
            log.state(k * dt, np.array([0.5 * k * dt + 0.01]))
        # At 0.5 s (setpoint 0.25) a new command for 1.0 s takes over.
        log.command(0.5, Trajectory(0.5, np.array([0.5]), np.array([[second_target]])))
        return log.summary(until_s=0.9)

    steady = run(0.5)  # the ramp continued: 0.5 at 1.0 s
    assert steady.seam_position_jump == pytest.approx(0.0, abs=1e-9)
    assert steady.seam_velocity_jump == pytest.approx(0.0, abs=1e-6) and steady.setpoint_rms_jerk < 1e-3
    assert steady.tracking_rms == pytest.approx(0.01) and steady.commands == 2
    turned = run(0.1)  # 0.4 short of where the running chunk would be, at -0.3 rad/s
    assert turned.seam_position_jump == pytest.approx(0.4)
    assert turned.seam_velocity_jump == pytest.approx(0.8) and turned.setpoint_rms_jerk > 1.0
