"""rosbag2 episodes with standard message types, without a ROS install.

An episode bag holds camera `sensor_msgs/Image`, `sensor_msgs/JointState`,
the commanded `trajectory_msgs/JointTrajectory` (what the controller was
asked to do: the action labels), `std_msgs/Bool` task success,
`rosgraph_msgs/Clock` and `/tf_static` (the camera's pose in the base
frame). Bags recorded on a robot with `ros2 bag record` of
the same topics read the same way; mcap and sqlite3 storage both work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from video2act_core.camera_pose import CameraPose, compose_static_tree
from video2act_core.data.episode import CameraRecording, Episode, EpisodeError, EpisodeTopics
from video2act_core.data.images import (
    COMPRESSED_SUFFIX,
    ImageDecodeError,
    decode_image_message,
    encode_compressed,
    encode_rgb8,
    resize_frame,
)
from video2act_core.data.joint_names import JointNameMap, JointStateError, reorder_joint_state

TF_STATIC = "/tf_static"
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")  # raw, compressed


def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def _to_time(typestore, nanoseconds: int):
    sec, nanosec = divmod(int(nanoseconds), 1_000_000_000)
    return typestore.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


class EpisodeRecorder:
    """Writes one episode as a rosbag2 directory (mcap by default), camera
    frames (the video camera's and each of `topics.extra_cameras`) as raw
    rgb8 Images or, with `image_format` jpeg or png, as CompressedImage on
    `<image topic>/compressed`, as a robot's image_transport records them."""

    def __init__(
        self,
        path: str | Path,
        topics: EpisodeTopics,
        joint_names: list[str],
        storage: str = "mcap",
        image_format: str = "raw",
    ):
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
        if storage not in plugins:
            raise ValueError(f"storage must be one of {sorted(plugins)}, got '{storage}'")
        self.store = _typestore()
        self.joint_names = list(joint_names)
        self.writer = Writer(Path(path), version=9, storage_plugin=plugins[storage])
        if image_format not in ("raw", "jpeg", "png"):
            raise ValueError(f"image_format must be raw, jpeg or png, got '{image_format}'")
        self.image_format = image_format
        self.image_topics = [
            topic if image_format == "raw" else topic.rstrip("/") + COMPRESSED_SUFFIX
            for topic in (topics.image, *topics.extra_cameras)
        ]
        self.writer.open()
        types = {
            **{topic: IMAGE_TYPES[image_format != "raw"] for topic in self.image_topics},
            topics.joint_states: "sensor_msgs/msg/JointState",
            topics.trajectory: "trajectory_msgs/msg/JointTrajectory",
            topics.success: "std_msgs/msg/Bool",
            "/clock": "rosgraph_msgs/msg/Clock",
            TF_STATIC: "tf2_msgs/msg/TFMessage",
        }
        if topics.instruction:
            types[topics.instruction] = "std_msgs/msg/String"
        self.connections = {
            topic: self.writer.add_connection(topic, msgtype, typestore=self.store) for topic, msgtype in types.items()
        }
        self.topics = topics
        self.camera_frame = ""

    def _write(self, topic: str, stamp_ns: int, message) -> None:
        connection = self.connections[topic]
        self.writer.write(connection, stamp_ns, self.store.serialize_cdr(message, connection.msgtype))

    def _header(self, stamp_ns: int, frame_id: str = ""):
        return self.store.types["std_msgs/msg/Header"](stamp=_to_time(self.store, stamp_ns), frame_id=frame_id)

    def clock(self, stamp_ns: int) -> None:
        self._write(
            "/clock", stamp_ns, self.store.types["rosgraph_msgs/msg/Clock"](clock=_to_time(self.store, stamp_ns))
        )

    def camera_pose(self, stamp_ns: int, pose: CameraPose) -> None:
        """The camera's place on /tf_static, as robot_state_publisher puts it
        in a robot's bag; images are then stamped with its frame."""
        types = self.store.types
        transform = types["geometry_msgs/msg/TransformStamped"](
            header=self._header(stamp_ns, pose.parent),
            child_frame_id=pose.child,
            transform=types["geometry_msgs/msg/Transform"](
                translation=types["geometry_msgs/msg/Vector3"](*pose.translation),
                rotation=types["geometry_msgs/msg/Quaternion"](*pose.rotation),
            ),
        )
        self._write(TF_STATIC, stamp_ns, types["tf2_msgs/msg/TFMessage"](transforms=[transform]))
        self.camera_frame = pose.child

    def image(self, stamp_ns: int, frame: np.ndarray, camera: int = 0) -> None:
        """A frame of the video camera (0) or of extra camera `camera`."""
        if camera >= len(self.image_topics):
            return  # a camera this bag does not record
        header = self._header(stamp_ns, self.camera_frame if camera == 0 else "")
        if self.image_format == "raw":
            height, width, step, data = encode_rgb8(frame)
            message = self.store.types["sensor_msgs/msg/Image"](
                header=header,
                height=height,
                width=width,
                encoding="rgb8",
                is_bigendian=0,
                step=step,
                data=np.frombuffer(data, np.uint8),
            )
        else:
            format, data = encode_compressed(frame, self.image_format)
            message = self.store.types["sensor_msgs/msg/CompressedImage"](
                header=header, format=format, data=np.frombuffer(data, np.uint8)
            )
        self._write(self.image_topics[camera], stamp_ns, message)

    def joint_state(self, stamp_ns: int, positions: np.ndarray, velocities: np.ndarray) -> None:
        message = self.store.types["sensor_msgs/msg/JointState"](
            header=self._header(stamp_ns),
            name=self.joint_names,
            position=np.asarray(positions, np.float64),
            velocity=np.asarray(velocities, np.float64),
            effort=np.zeros(0, np.float64),
        )
        self._write(self.topics.joint_states, stamp_ns, message)

    def command(self, stamp_ns: int, points: np.ndarray, period_s: float) -> None:
        types = self.store.types
        message = types["trajectory_msgs/msg/JointTrajectory"](
            header=self._header(0),
            joint_names=self.joint_names,
            points=[
                types["trajectory_msgs/msg/JointTrajectoryPoint"](
                    positions=np.asarray(row, np.float64),
                    velocities=np.zeros(0),
                    accelerations=np.zeros(0),
                    effort=np.zeros(0),
                    time_from_start=types["builtin_interfaces/msg/Duration"](
                        sec=int((i + 1) * period_s), nanosec=int(round(((i + 1) * period_s % 1) * 1e9))
                    ),
                )
                for i, row in enumerate(points)
            ],
        )
        self._write(self.topics.trajectory, stamp_ns, message)

    def instruction(self, stamp_ns: int, text: str) -> None:
        """The task instruction (the topic is latched on a robot, so a bag
        records it once, near its start)."""
        self._write(self.topics.instruction, stamp_ns, self.store.types["std_msgs/msg/String"](data=text))

    def success(self, stamp_ns: int, value: bool) -> None:
        self._write(self.topics.success, stamp_ns, self.store.types["std_msgs/msg/Bool"](data=bool(value)))

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> EpisodeRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _stamp_ns(message, receive_ns: int) -> int:
    """The header stamp, or the bag's receive time where a driver left it empty."""
    header = getattr(message, "header", None)
    if header is None:
        return receive_ns
    stamp = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
    return stamp if stamp > 0 else receive_ns


def find_image_connection(connections, topic: str, where: str):
    """The bag connection carrying the camera `topic`: raw or compressed on
    that topic, or compressed on `<topic>/compressed` as image_transport
    records it. Otherwise an error naming the image topics the bag has."""
    by_topic = {c.topic: c for c in connections if c.msgtype in IMAGE_TYPES}
    for candidate in (topic, topic.rstrip("/") + COMPRESSED_SUFFIX):
        if candidate in by_topic:
            return by_topic[candidate]
    found = ", ".join(f"{c.topic} ({c.msgtype.rsplit('/', 1)[-1]})" for c in by_topic.values()) or "none"
    raise EpisodeError(
        f"{where}: no camera images on {topic} or {topic.rstrip('/')}{COMPRESSED_SUFFIX}; "
        f"image topics in the bag: {found}"
    )


@dataclass
class _Decoded:
    """What `read_episode` keeps of a bag's messages as it reads them."""

    topics: EpisodeTopics
    joint_names: list[str]
    rename: Callable[[list[str]], list[str]]
    frame_size: tuple[int, int] | None
    frames_by_topic: dict[str, list]  # camera topic -> [(stamp ns, frame)]
    states: list = field(default_factory=list)
    commands: list = field(default_factory=list)
    success: bool = False
    static_links: list = field(default_factory=list)
    instructions: list = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)

    def wanted(self) -> set[str | None]:
        topics = self.topics
        return {
            *self.frames_by_topic,
            topics.joint_states,
            topics.trajectory,
            topics.success,
            TF_STATIC,
            topics.instruction or None,
        }

    def take(self, topic: str, message, receive_ns: int) -> None:
        """Keep one message; raises what makes it unusable (counted by the caller)."""
        if topic in self.frames_by_topic:
            frame = decode_image_message(message)
            frame = resize_frame(frame, self.frame_size) if self.frame_size else frame
            self.frames_by_topic[topic].append((_stamp_ns(message, receive_ns), frame))
        elif topic == self.topics.joint_states:
            positions = reorder_joint_state(self.rename(list(message.name)), list(message.position), self.joint_names)
            self.states.append((_stamp_ns(message, receive_ns), positions))
        elif topic == self.topics.trajectory:
            if message.points:
                self.commands.append((receive_ns, self.first_point(message)))
        elif topic == TF_STATIC:
            self.static_links.extend(CameraPose.from_transform_stamped(t) for t in message.transforms)
        elif topic == self.topics.instruction:
            self.instructions.append(message.data)
        else:
            self.success |= bool(message.data)

    def first_point(self, message) -> np.ndarray:
        """A trajectory's first point in our joint order: what it asked for."""
        names = self.rename(list(message.joint_names))
        missing = [n for n in self.joint_names if n not in names]
        if missing:
            raise JointStateError(f"trajectory lacks joints {missing} (has {names})")
        order = [names.index(n) for n in self.joint_names]
        return np.asarray(message.points[0].positions, np.float64)[order]

    def check_complete(self, path) -> None:
        """Raises EpisodeError naming what is missing and why (the commonest skip reasons)."""
        needed = [("images", self.frames_by_topic[topic], topic) for topic in self.frames_by_topic]
        needed += [
            ("joint states", self.states, self.topics.joint_states),
            ("commands", self.commands, self.topics.trajectory),
        ]
        for name, items, topic in needed:
            if not items:
                reasons = "; ".join(
                    f"{count} x {reason}"
                    for reason, count in self.skipped.most_common(3)
                    if reason.startswith(f"{topic}:")
                )
                raise EpisodeError(f"{path}: no usable {name} on {topic} ({reasons or 'no messages on it'})")
        if len(set(self.instructions)) > 1:
            raise EpisodeError(
                f"{path}: more than one task instruction on {self.topics.instruction}: "
                f"{sorted(set(self.instructions))}; split the bag into one episode per task"
            )

    def episode(self, camera_frames: tuple[str, str] | None) -> Episode:
        def stacked(items):
            items.sort(key=lambda item: item[0])
            return np.array([s for s, _ in items], np.int64), np.stack([v for _, v in items])

        recordings = [CameraRecording(*stacked(frames)) for frames in self.frames_by_topic.values()]
        image_stamps, image_values = (
            (recordings[0].stamps_ns, recordings[0].images)
            if recordings
            else (np.zeros(0, np.int64), np.zeros((0, 0, 0, 3), np.uint8))
        )
        camera_pose = compose_static_tree(self.static_links, *camera_frames) if camera_frames else None
        return Episode(
            image_stamps,
            image_values,
            *stacked(self.states),
            *stacked(self.commands),
            self.success,
            camera_pose,
            self.instructions[0] if self.instructions else "",
            recordings[1:],
        )


def read_episode(
    path: str | Path,
    topics: EpisodeTopics,
    joint_names: list[str],
    camera_frames: tuple[str, str] | None = None,
    images: bool = True,
    joint_name_map: JointNameMap | None = None,
    frame_size: tuple[int, int] | None = None,
) -> Episode:
    """Decode one episode bag; undecodable messages are skipped (and named
    with their reasons if nothing usable is left), a bag without images,
    joint states or commands is an error. With `camera_frames` (base,
    camera) the camera pose is composed from the bag's /tf_static, when it
    holds both frames; the task instruction is read from
    `topics.instruction` when set, the extra cameras' frames from
    `topics.extra_cameras`. `images=False` reads no image at all (replay only
    needs the commands); `joint_name_map` renames recorded joints;
    `frame_size` (H, W) resizes each frame as it is decoded."""
    from rosbags.highlevel import AnyReader

    rename = joint_name_map.names if joint_name_map else list
    try:
        with AnyReader([Path(path)], default_typestore=_typestore()) as reader:
            cameras = (
                [
                    find_image_connection(reader.connections, topic, str(path)).topic
                    for topic in (topics.image, *topics.extra_cameras)
                ]
                if images
                else []
            )
            decoded = _Decoded(topics, joint_names, rename, frame_size, {topic: [] for topic in cameras})
            connections = [c for c in reader.connections if c.topic in decoded.wanted()]
            for connection, receive_ns, raw in reader.messages(connections=connections):
                message = reader.deserialize(raw, connection.msgtype)
                try:
                    decoded.take(connection.topic, message, receive_ns)
                except (ImageDecodeError, JointStateError, ValueError, IndexError) as error:
                    decoded.skipped[f"{connection.topic}: {error}"] += 1
    except EpisodeError:
        raise
    except Exception as error:  # rosbags raises several unrelated types for damaged bags
        raise EpisodeError(f"{path}: cannot read bag: {error}") from error
    decoded.check_complete(path)
    return decoded.episode(camera_frames)
