"""The player's envs as a viser (three.js) scene, built from the task's own MJCF.

Each moving body becomes one batched mesh with an instance per env, so a frame is a handful of
pose arrays, whatever the number of envs. Primitive geoms (all our tasks use) are tessellated
coarsely here, in the MJCF's colours: mjviser's finely tessellated capsules are too heavy for a
browser without a GPU (SwiftShader); draw rates in benchmarks/results_cpu/README.md (web page).
Mesh and heightfield geoms go through mjviser's conversion. mjviser's viewer class is not used: it
owns the simulation loop and stacks all worlds on one spot, while the player steps its own core
and lays the envs on the window's grid (render.grid_offsets).

Shadows and the environment map ("high" quality) cost a software-rendered page most of its frame
rate, so they are a switch in the page, on by default only with render_quality=high.

Following a robot shifts the world (robots and floor) under the browser's camera instead of moving
the camera, so each tab keeps its own orbit/pan/zoom while it follows.
"""

from __future__ import annotations

import math
import time

import mujoco
import numpy as np
import trimesh

from isaacgymenvs.player.render import (
    ARROW_COLOURS,
    ARROW_HEIGHT,
    ARROW_METRES_PER_MPS,
    ARROW_MIN_SPEED,
    ARROW_WIDTHS,
    START_AZIMUTH,
    START_ELEVATION,
    grid_offsets,
    start_distance,
)

FOLLOW_ALL = "all robots"
FOLLOW_FREE = "free camera"


def follow_choices(num_envs: int) -> list[str]:
    """The camera modes the window's F key cycles through, as a list for a dropdown."""
    return [FOLLOW_ALL, *(f"robot {i}" for i in range(num_envs)), FOLLOW_FREE]


def robot_index(follow: object, num_envs: int) -> int | None:
    """The env a 'robot N' choice names, or None (all robots) for anything else: never an exception."""
    if not isinstance(follow, str) or not follow.startswith("robot "):
        return None
    number = follow.removeprefix("robot ")
    if not number.isdigit() or not 0 <= int(number) < num_envs:
        return None
    return int(number)


def visible_geoms(model: mujoco.MjModel, body: int) -> list[int]:
    """Geoms of `body` that MuJoCo's viewer draws by default (groups 0-2, not fully transparent)."""
    return [
        g
        for g in range(model.ngeom)
        if model.geom_bodyid[g] == body and model.geom_group[g] < 3 and model.geom_rgba[g, 3] > 0
    ]


def geom_rgba(model: mujoco.MjModel, geom: int) -> np.ndarray:
    """uint8 RGBA of a geom as MuJoCo draws it: its material's colour, else its own."""
    mat = model.geom_matid[geom]
    rgba = model.mat_rgba[mat] if mat >= 0 else model.geom_rgba[geom]
    return (np.clip(rgba, 0.0, 1.0) * 255).astype(np.uint8)


def primitive_mesh(kind: int, size: np.ndarray) -> trimesh.Trimesh | None:
    """A coarse mesh of a MuJoCo primitive in its own frame (None: not a primitive)."""
    g = mujoco.mjtGeom
    if kind == g.mjGEOM_SPHERE:
        return trimesh.creation.icosphere(subdivisions=2, radius=size[0])
    if kind == g.mjGEOM_CAPSULE:
        return trimesh.creation.capsule(radius=size[0], height=2 * size[1], count=[16, 8])
    if kind == g.mjGEOM_CYLINDER:
        return trimesh.creation.cylinder(radius=size[0], height=2 * size[1], sections=16)
    if kind == g.mjGEOM_BOX:
        return trimesh.creation.box(extents=2 * size)
    if kind == g.mjGEOM_ELLIPSOID:
        mesh = trimesh.creation.icosphere(subdivisions=2, radius=1.0)
        mesh.apply_scale(size)
        return mesh
    return None


def geom_mesh(model: mujoco.MjModel, geom: int) -> trimesh.Trimesh:
    """One geom as a coloured mesh in its body's frame."""
    mesh = primitive_mesh(model.geom_type[geom], model.geom_size[geom])
    if mesh is None:  # mesh, heightfield: mjviser converts them (textures become vertex colours)
        from mjviser.conversions import create_primitive_mesh, mujoco_mesh_to_trimesh

        is_mesh = model.geom_type[geom] == mujoco.mjtGeom.mjGEOM_MESH
        mesh = mujoco_mesh_to_trimesh(model, geom) if is_mesh else create_primitive_mesh(model, geom)
    else:
        colours = np.tile(geom_rgba(model, geom), (len(mesh.vertices), 1))
        mesh.visual = trimesh.visual.ColorVisuals(vertex_colors=colours)
    transform = np.eye(4)
    rotation = np.zeros(9)
    mujoco.mju_quat2Mat(rotation, model.geom_quat[geom])
    transform[:3, :3] = rotation.reshape(3, 3)
    transform[:3, 3] = model.geom_pos[geom]
    mesh.apply_transform(transform)
    return mesh


def body_mesh(model: mujoco.MjModel, geoms: list[int]) -> trimesh.Trimesh:
    meshes = [geom_mesh(model, g) for g in geoms]
    return meshes[0] if len(meshes) == 1 else trimesh.util.concatenate(meshes)


def floor_colours(model: mujoco.MjModel, geom: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(plane, line) colours of a floor plane: its checker texture's two colours, else its rgba."""
    mat = model.geom_matid[geom]
    if mat >= 0:
        tex = model.mat_texid[mat][mujoco.mjtTextureRole.mjTEXROLE_RGB]
        if tex >= 0:
            adr, w, h = model.tex_adr[tex], model.tex_width[tex], model.tex_height[tex]
            pixels = model.tex_data[adr : adr + w * h * model.tex_nchannel[tex]].reshape(h, w, -1)[..., :3]
            dark = tuple(int(c) for c in pixels[h // 4, w // 4])
            light = tuple(int(c) for c in pixels[h // 4, 3 * w // 4])
            return min(dark, light, key=sum), max(dark, light, key=sum)
        rgba = model.mat_rgba[mat]
    else:
        rgba = model.geom_rgba[geom]
    plane = tuple(int(255 * c) for c in rgba[:3])
    return plane, tuple(min(255, c + 40) for c in plane)


FRAME_SECONDS = 0.5  # how often the "all robots" view checks that every tab still frames them
FRAME_MARGIN = 0.85  # of the half-width/half-height a root may use
ROBOT_RADIUS = 1.0  # metres around a root that must be in view too (an Ant's legs)


def distance_to_frame(roots: np.ndarray, eye: np.ndarray, look_at: np.ndarray, fov: float, aspect: float) -> float:
    """Smallest eye-to-look_at distance, along the current line of sight, at which every root (with
    ROBOT_RADIUS around it) projects inside the view with FRAME_MARGIN."""
    forward = look_at - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right = right / np.linalg.norm(right) if np.linalg.norm(right) > 1e-6 else np.array([1.0, 0.0, 0.0])
    up = np.cross(right, forward)
    tan_v = math.tan(fov / 2) * FRAME_MARGIN
    tan_h = tan_v * aspect
    rel = roots - look_at
    along = rel @ forward  # the point is (distance + along) in front of the eye
    need_h = (np.abs(rel @ right) + ROBOT_RADIUS) / tan_h - along
    need_v = (np.abs(rel @ up) + ROBOT_RADIUS) / tan_v - along
    return float(max(need_h.max(), need_v.max()))


def frame_all(camera, roots: np.ndarray) -> bool:
    """Zoom one tab's camera out (never in) until every robot is in view; True when it moved.

    The window's "all robots" camera does the same (render.framing_distance): trained robots run
    apart, and a fixed view kept only 2-3 of 4 Ants in the picture. The tab's own field of view and
    canvas shape count (the page's sidebar makes the canvas narrow); zooming out further, orbiting
    and panning stay the user's.
    """
    try:
        eye, look_at = np.array(camera.position, dtype=float), np.array(camera.look_at, dtype=float)
        fov, aspect = float(camera.fov), float(camera.aspect)
    except (AssertionError, ZeroDivisionError):  # viser: the tab has not reported its camera yet
        return False
    current = float(np.linalg.norm(eye - look_at))
    if not (math.isfinite(current) and current > 1e-6 and 0 < fov < math.pi and math.isfinite(aspect) and aspect > 0):
        return False
    needed = distance_to_frame(roots, eye, look_at, fov, aspect)
    if needed <= current:
        return False
    camera.position = look_at + (eye - look_at) * (needed / current)
    camera.look_at = look_at  # viser moves look_at along with the position: put it back
    return True


def unit_arrow(radius: float, rgba: np.ndarray) -> trimesh.Trimesh:
    """An arrow 1 m long from the origin along +z (shaft, then a cone of the last fifth), coloured."""
    shaft = trimesh.creation.cylinder(radius=radius, height=0.8, sections=8)
    shaft.apply_translation([0.0, 0.0, 0.4])
    head = trimesh.creation.cone(radius=2.2 * radius, height=0.2, sections=8)
    head.apply_translation([0.0, 0.0, 0.8])
    arrow = trimesh.util.concatenate([shaft, head])
    arrow.visual.face_colors = (np.asarray(rgba) * 255).astype(np.uint8)
    return arrow


def arrow_poses(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """wxyz quaternions turning +z onto each vector [N, 3], and per-axis scales (length along z;
    0 hides a zero vector)."""
    length = np.linalg.norm(vectors, axis=1)
    unit = np.where(length[:, None] > 1e-6, vectors / np.maximum(length, 1e-6)[:, None], [0.0, 0.0, 1.0])
    # the half-way quaternion between +z and the unit vector: (1 + z, -y, x, 0), normalised
    quat = np.stack([1.0 + unit[:, 2], -unit[:, 1], unit[:, 0], np.zeros(len(unit))], axis=1)
    flipped = quat[:, 0] < 1e-6  # straight down: half a turn about x
    quat[flipped] = [0.0, 1.0, 0.0, 0.0]
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    shown = length >= ARROW_MIN_SPEED  # standing still: no arrow
    scales = np.stack([shown, shown, ARROW_METRES_PER_MPS * length * shown], axis=1).astype(float)
    return quat, scales


class WebScene:
    """Moving bodies of every env, the floor, and the camera-follow shift; `update(qpos)` per frame."""

    def __init__(
        self, server, model: mujoco.MjModel, num_envs: int, spacing: float, high_quality: bool = False
    ) -> None:
        self.server, self.model = server, model
        self.data = mujoco.MjData(model)
        self.offsets = grid_offsets(num_envs, spacing)
        self.follow = FOLLOW_ALL
        self._framed_at = 0.0
        server.scene.set_up_direction("+z")
        self.set_high_quality(high_quality)
        self.world = server.scene.add_frame("/world", show_axes=False)  # floor and static geoms
        mujoco.mj_kinematics(model, self.data)
        self._add_static()
        self.bodies: list[int] = []
        self.handles = []
        self.arrow_handles: list = []  # add_velocity_arrows
        with server.atomic():
            for body in range(1, model.nbody):
                geoms = visible_geoms(model, body)
                if model.body_weldid[body] == 0 or not geoms:
                    continue
                self.bodies.append(body)
                self.handles.append(
                    server.scene.add_batched_meshes_trimesh(
                        f"/envs/{mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, body) or body}",
                        body_mesh(model, geoms),
                        batched_positions=np.zeros((num_envs, 3)),
                        batched_wxyzs=np.tile([1.0, 0.0, 0.0, 0.0], (num_envs, 1)),
                        lod="off",
                    )
                )
        self._set_initial_camera()

    def set_high_quality(self, on: bool) -> None:
        """Shadows and image-based lighting: easy for a GPU browser, slow in software WebGL."""
        self.high_quality = on
        self.server.scene.configure_default_lights(True, cast_shadow=on)
        self.server.scene.configure_environment_map("warehouse" if on else None, environment_intensity=0.8)

    def _add_static(self) -> None:
        """The floor as viser's infinite grid in the MJCF's colours; other world geoms as meshes."""
        m = self.model
        for g in visible_geoms(m, 0):
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or f"geom{g}"
            if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE:
                plane, line = floor_colours(m, g)
                self.server.scene.add_grid(
                    f"/world/{name}",
                    width=200.0,
                    height=200.0,
                    cell_size=1.0,
                    section_size=5.0,
                    plane_color=plane,
                    cell_color=line,
                    section_color=line,
                    plane_opacity=1.0,
                    shadow_opacity=0.3,  # receives shadows when they are on
                    position=m.geom_pos[g],
                    wxyz=m.geom_quat[g],
                )
            else:
                self.server.scene.add_mesh_trimesh(
                    f"/world/{name}", geom_mesh(m, g), position=self.data.xpos[0], wxyz=self.data.xquat[0]
                )

    def _set_initial_camera(self) -> None:
        """The window's starting view (MuJoCo's azimuth/elevation turned into an eye point)."""
        distance = start_distance(self.offsets)
        az, el = math.radians(START_AZIMUTH), math.radians(-START_ELEVATION)
        look = np.array([0.0, 0.0, 0.4])
        eye = look + distance * np.array([-math.cos(el) * math.cos(az), -math.cos(el) * math.sin(az), math.sin(el)])
        self.server.initial_camera.look_at = tuple(look)
        self.server.initial_camera.position = tuple(eye)
        self.server.initial_camera.up = (0.0, 0.0, 1.0)

    def poses(self, qpos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World positions [N, bodies, 3] (grid offsets added) and wxyz quaternions of the moving bodies."""
        n = len(qpos)
        pos = np.empty((n, len(self.bodies), 3))
        quat = np.empty((n, len(self.bodies), 4))
        for i, q in enumerate(qpos):
            self.data.qpos[:] = q
            mujoco.mj_kinematics(self.model, self.data)
            pos[i] = self.data.xpos[self.bodies]
            quat[i] = self.data.xquat[self.bodies]
        pos += self.offsets[:n, None, :]
        return pos, quat

    def focus(self, pos: np.ndarray) -> np.ndarray:
        """Horizontal point brought to the origin: the followed robot's root, all roots' centroid, or none."""
        if self.follow == FOLLOW_FREE or not self.bodies:
            return np.zeros(3)
        robot = robot_index(self.follow, len(pos))
        roots = pos[:, 0, :] if robot is None else pos[robot, 0][None]
        point = roots.mean(axis=0)
        point[2] = 0.0  # a bobbing torso must not bob the floor
        return point

    def add_velocity_arrows(self) -> None:
        """Commanded (green) and measured (blue, thinner) velocity arrows above each robot, as the
        window draws them (a task with velocity commands: Anymal); `update` poses them."""
        n = len(self.offsets)
        self.arrow_handles = [
            self.server.scene.add_batched_meshes_trimesh(
                f"/envs/velocity_{k}",
                unit_arrow(width, rgba),
                batched_wxyzs=np.tile([1.0, 0, 0, 0], (n, 1)),
                batched_positions=np.zeros((n, 3)),
                batched_scales=np.zeros((n, 3)),
                lod="off",
                cast_shadow=False,
            )  # fmt: skip
            for k, (rgba, width) in enumerate(zip(ARROW_COLOURS, ARROW_WIDTHS, strict=True))
        ]

    def update(self, qpos: np.ndarray, arrows: np.ndarray | None = None) -> None:
        """Send every env's pose (one message per moving body) to all connected tabs; `arrows`
        [num_envs, 2, 3]: commanded and measured velocities (world frame) after add_velocity_arrows."""
        pos, quat = self.poses(qpos)
        shift = -self.focus(pos)
        with self.server.atomic():
            self.world.position = tuple(shift)
            for k, handle in enumerate(self.handles):
                handle.batched_positions = pos[:, k, :] + shift
                handle.batched_wxyzs = quat[:, k, :]
            if arrows is not None and self.arrow_handles:
                anchors = pos[:, 0, :] + shift + ARROW_HEIGHT
                for k, handle in enumerate(self.arrow_handles):
                    handle.batched_positions = anchors
                    handle.batched_wxyzs, handle.batched_scales = arrow_poses(arrows[:, k, :])
        if self.follow == FOLLOW_ALL and self.bodies and time.monotonic() - self._framed_at >= FRAME_SECONDS:
            self._framed_at = time.monotonic()
            for client in list(self.server.get_clients().values()):
                frame_all(client.camera, pos[:, 0, :] + shift)
        self.server.flush()
