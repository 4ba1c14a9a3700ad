"""Render several envs side by side into one RGB frame, without any GUI toolkit.

One MjData is posed as each env in turn; env 0 fills the scene (floor, lights, robot) and the
others add their geoms too (floors hidden), each env's group shifted to its own place on a grid. The camera is
free (rotate/pan/zoom/move) or follows one robot. MUJOCO_GL=egl renders without a display.
"""

from __future__ import annotations

import copy
import math

import mujoco
import numpy as np

ROW = 8  # envs per row of the grid, rows stacked along -x


def grid_offsets(num_envs: int, spacing: float) -> np.ndarray:
    """[num_envs, 3] display offsets: rows of up to 8 along y, centred on the origin."""
    idx = np.arange(num_envs)
    per_row = min(num_envs, ROW)
    y = (idx % ROW - (per_row - 1) / 2) * spacing
    x = -(idx // ROW) * spacing
    return np.stack([x, y, np.zeros(num_envs)], axis=1)


SIZES = {"high": (960, 540), "fast": (640, 360)}
START_AZIMUTH, START_ELEVATION = 135.0, -20.0  # the window's and the web page's first view


def start_distance(offsets: np.ndarray) -> float:
    """Camera distance of the first view: every env of the grid in sight."""
    extent = float(np.abs(offsets[:, :2]).max()) + 2.0
    return 2.5 + 1.2 * extent


def framing_distance(points: np.ndarray, center: np.ndarray) -> float:
    """Camera distance that keeps every point (robots' roots) in view around `center`: trained
    robots run apart, and with a fixed distance only 2-3 of 4 Ants stayed in the picture."""
    spread = float(np.linalg.norm(points[:, :2] - center[:2], axis=1).max()) + 2.0
    return 2.5 + 1.2 * spread


def software_gl() -> bool:
    """True when the current GL context renders on the CPU (Mesa llvmpipe/softpipe)."""
    try:
        from OpenGL import GL

        name = (GL.glGetString(GL.GL_RENDERER) or b"").decode(errors="replace").lower()
    except Exception:  # no PyOpenGL or no context: assume hardware
        return False
    return "llvmpipe" in name or "softpipe" in name or "software" in name


def apply_fast_quality(model: mujoco.MjModel) -> None:
    """Cheaper drawing for software GL: no multisampling, coarser capsules and spheres."""
    model.vis.quality.offsamples = 0
    model.vis.quality.numslices = min(model.vis.quality.numslices, 12)
    model.vis.quality.numstacks = min(model.vis.quality.numstacks, 6)


# Fast quality draws each floor as a finite plane that follows the camera, its far part faded into
# the haze colour by fog, instead of MuJoCo's infinite plane (a fine grid of quads with a haze band
# at the horizon), which cost llvmpipe more than the robots (Ant, 4 envs, 640x360, 2-core CPU:
# 20 -> 13 ms a frame). Fog begins FOG_CLEAR metres beyond twice the first view's distance (robots
# that spread out, or a camera zoomed out, stay clear of it) and is complete FOG_DEPTH metres later;
# the plane reaches past that. The GL context tessellates planes and reads fog once, from the
# model, so both are fixed here (writing the context's fog fields per frame changes nothing).
FOG_CLEAR = 50.0
FOG_DEPTH = 40.0
FLOOR_SNAP = 10.0  # the plane moves in steps of whole texture periods near this, so its checks stay put


def floor_geoms(model: mujoco.MjModel) -> list[int]:
    """The model's infinite planes (size 0 in x or y): the floors drawn under the camera (fast
    quality: as finite planes)."""
    return [g for g in range(model.ngeom) if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE
            and min(model.geom_size[g][:2]) <= 0]  # fmt: skip


def floor_snap(model: mujoco.MjModel, geom: int) -> float:
    """A step of whole texture periods (a uniform texture repeats every 1/texrepeat metres) near FLOOR_SNAP."""
    material = model.geom_matid[geom]
    repeat = float(model.mat_texrepeat[material][0]) if material >= 0 else 0.0
    if repeat <= 0:
        return FLOOR_SNAP
    period = 1.0 / repeat
    return period * max(1, round(FLOOR_SNAP / period))


def apply_finite_floors(model: mujoco.MjModel, floors: list[int], view_distance: float) -> None:
    """Make `floors` finite planes of a 40 x 40 grid, with fog of the haze colour hiding their edge."""
    near = 2.0 * view_distance + FOG_CLEAR
    half = near + FOG_DEPTH + view_distance + 10.0
    for geom in floors:
        model.geom_size[geom] = (half, half, half / 20.0)
    model.vis.map.fogstart = near / model.stat.extent  # the model's fog is in units of its extent
    model.vis.map.fogend = (near + FOG_DEPTH) / model.stat.extent
    model.vis.rgba.fog[:] = model.vis.rgba.haze


# Velocity arrows above each robot (the player driving an Anymal): commanded green, measured blue and
# thinner, so that a robot that tracks its command shows a blue arrow inside a green one.
ARROW_COLOURS = (np.array([0.2, 0.9, 0.3, 1.0], np.float32), np.array([0.25, 0.55, 1.0, 1.0], np.float32))
ARROW_WIDTHS = (0.06, 0.035)
ARROW_HEIGHT = np.array([0.0, 0.0, 0.45])
ARROW_METRES_PER_MPS = 0.6
ARROW_MIN_SPEED = 0.02  # m/s: slower is standing still, drawn without an arrow (window, clips and page)


class MultiEnvRenderer:
    """Draw all envs' current qpos into one image with a controllable camera.

    quality: 'high' (shadows, reflections, multisampling, 960x540), 'fast' (none of those,
    640x360: what a 2-core machine without a GPU can draw at 60 fps) or 'auto' (fast on software GL).
    """

    def __init__(self, model: mujoco.MjModel, num_envs: int, spacing: float, quality: str = "auto") -> None:
        if quality == "auto":
            probe = mujoco.Renderer(model, 8, 8)
            quality = "fast" if software_gl() else "high"
            probe.close()
        if quality not in SIZES:
            raise ValueError(f"render quality {quality!r} is not auto, high or fast")
        width, height = SIZES[quality]
        model = copy.copy(model)  # the task's model stays untouched
        offsets = grid_offsets(num_envs, spacing)
        floors = floor_geoms(model)
        if quality == "fast":
            apply_fast_quality(model)
            apply_finite_floors(model, floors, start_distance(offsets))
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        self.model, self.quality = model, quality
        self.data = mujoco.MjData(model)
        self.offsets = offsets
        self.renderer = mujoco.Renderer(model, height, width, max_geom=max(10000, 200 * num_envs))
        if quality == "fast":
            flags = self.renderer.scene.flags
            flags[mujoco.mjtRndFlag.mjRND_SHADOW] = flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
            flags[mujoco.mjtRndFlag.mjRND_FOG] = bool(floors)
        # geom id -> its step. Every floor is drawn centred under the camera: fast quality's finite
        # plane, and high quality's infinite one too, which MuJoCo draws only so far around its own
        # position (an Ant 100 m from the origin stood at its edge, at 150 m on nothing).
        self.floor_snaps = {geom: floor_snap(model, geom) for geom in floors}
        self.option = mujoco.MjvOption()
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self.camera.lookat[:] = [self.offsets[:, 0].mean(), 0.0, 0.4]
        self.camera.distance = start_distance(self.offsets)
        self.camera.azimuth, self.camera.elevation = START_AZIMUTH, START_ELEVATION
        # "all": track the robots' centroid (locomotion tasks leave a fixed view in seconds);
        # an int: one robot; None: free camera.
        self.follow: int | str | None = "all"
        self.width, self.height = width, height

    # --- camera ------------------------------------------------------------------------------

    def rotate(self, dx: float, dy: float) -> None:
        self.camera.azimuth -= dx * 0.3
        self.camera.elevation = float(np.clip(self.camera.elevation - dy * 0.3, -89.0, 89.0))

    def pan(self, dx: float, dy: float) -> None:
        scale = self.camera.distance * 0.0015
        right, forward = self._axes()
        self.camera.lookat[:] += (-dx * right + dy * forward) * scale

    def zoom(self, steps: float) -> None:
        self.camera.distance = float(np.clip(self.camera.distance * 0.9**steps, 0.3, 500.0))

    def move(self, forward: float, right: float, up: float) -> None:
        """Keyboard motion (W/S, A/D, Q/E), in metres scaled by the view distance."""
        ax_right, ax_forward = self._axes()
        step = 0.05 * max(self.camera.distance, 1.0)
        self.camera.lookat[:] += (forward * ax_forward + right * ax_right + np.array([0, 0, up])) * step

    def _axes(self) -> tuple[np.ndarray, np.ndarray]:
        az = math.radians(self.camera.azimuth)
        forward = np.array([math.cos(az), math.sin(az), 0.0])
        right = np.array([math.sin(az), -math.cos(az), 0.0])
        return right, forward

    def cycle_follow(self) -> None:
        """All robots -> robot 0 -> robot 1 -> ... -> free camera -> all robots."""
        n = len(self.offsets)
        if self.follow == "all":
            self.follow = 0
        elif self.follow is None:
            self.follow = "all"
        else:
            self.follow = self.follow + 1 if self.follow + 1 < n else None

    def describe_follow(self) -> str:
        if self.follow is None:
            return "free camera"
        return "following all robots" if self.follow == "all" else f"following robot {self.follow}"

    # --- drawing -------------------------------------------------------------------------------

    def render(self, qpos: np.ndarray, arrows: np.ndarray | None = None) -> np.ndarray:
        """RGB uint8 [height, width, 3] of every env posed from qpos [num_envs, nq]; `arrows`
        [num_envs, k, 3] are velocities (m/s, world frame) drawn from above each robot's root body,
        in ARROW_COLOURS (Anymal: commanded, measured)."""
        self.follow_position(qpos)
        m, d, scene = self.model, self.data, self.renderer.scene
        anchors = []
        for i, q in enumerate(qpos):
            d.qpos[:] = q
            mujoco.mj_kinematics(m, d)
            anchors.append(d.xpos[1] + self.offsets[i] + ARROW_HEIGHT)
            if i == 0:
                self.renderer.update_scene(d, self.camera, self.option)
                start = 0
            else:
                start = scene.ngeom
                mujoco.mjv_addGeoms(m, d, self.option, mujoco.MjvPerturb(), mujoco.mjtCatBit.mjCAT_ALL, scene)
            for j in range(start, scene.ngeom):
                geom = scene.geoms[j]
                if geom.type != mujoco.mjtGeom.mjGEOM_PLANE:
                    geom.pos[:] += self.offsets[i]
                elif i > 0:  # one floor is enough: a geom typed NONE is not drawn at all
                    geom.type = mujoco.mjtGeom.mjGEOM_NONE  # (a transparent infinite plane still cost
                    # llvmpipe ~4 ms a copy: Ant's 4 envs 35 -> 22 ms a 640x360 frame on a 2-core CPU)
                elif geom.objtype == mujoco.mjtObj.mjOBJ_GEOM and geom.objid in self.floor_snaps:
                    # the floor, centred under the camera in whole texture periods (checks stay put)
                    snap = self.floor_snaps[geom.objid]
                    geom.pos[:2] += np.round(self.camera.lookat[:2] / snap) * snap
        if arrows is not None:
            self._add_arrows(anchors, arrows)
        return self.renderer.render()

    def _add_arrows(self, anchors: list[np.ndarray], arrows: np.ndarray) -> None:
        scene = self.renderer.scene
        for anchor, vectors in zip(anchors, arrows, strict=True):
            for vector, rgba, width in zip(vectors, ARROW_COLOURS, ARROW_WIDTHS, strict=False):
                if scene.ngeom >= scene.maxgeom or float(np.linalg.norm(vector)) < ARROW_MIN_SPEED:
                    continue  # no room, or standing still: no arrow
                geom = scene.geoms[scene.ngeom]
                mujoco.mjv_initGeom(geom, mujoco.mjtGeom.mjGEOM_ARROW, np.zeros(3), np.zeros(3), np.zeros(9), rgba)
                end = anchor + ARROW_METRES_PER_MPS * np.asarray(vector, dtype=np.float64)
                mujoco.mjv_connector(geom, mujoco.mjtGeom.mjGEOM_ARROW, width, anchor, end)
                scene.ngeom += 1

    def follow_position(self, qpos: np.ndarray) -> None:
        """Point the camera at the followed robot's root body (or all robots' centroid)."""
        if self.follow is None:
            return
        chosen = range(len(qpos)) if self.follow == "all" else [self.follow]
        points = []
        for i in chosen:
            self.data.qpos[:] = qpos[i]
            mujoco.mj_kinematics(self.model, self.data)
            points.append(self.data.xpos[1] + self.offsets[i])
        self.camera.lookat[:] = np.mean(points, axis=0)
        if self.follow == "all":  # zoom out as they spread (zooming out further stays possible)
            self.camera.distance = max(self.camera.distance, framing_distance(np.array(points), self.camera.lookat))

    def close(self) -> None:
        self.renderer.close()
