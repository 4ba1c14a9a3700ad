"""The layout is the architecture: rooms import only rooms below them, only the front ends import a
GUI toolkit, and no module grows past the size a reader can hold (napari's import-linter habit)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "isaacgymenvs"

# Every room of the package, lowest first. A room may import its own modules and any room of a
# lower rank, never one above: the trainer never reaches the player or a panel, the protocol
# reaches nothing but errors, and the entry points sit on top.
RANKS = {
    "errors": 0, "signals": 0, "console": 0,
    "display": 1, "gl": 1, "protocol": 1, "physics": 1, "libraries": 1, "skrl_config": 1,
    "tasks": 2,
    "policy": 3, "config": 3,
    "deployed": 4,
    "export": 5,
    "trainer": 6, "panel": 6,
    "player": 7,
    "cli": 8,
    "__main__": 9, "train_play": 9, "checkpoint_control_panel": 9, "<package>": 9,
}  # fmt: skip

# Only these modules may import a GUI toolkit (lazily or not); everything else also runs headless.
GUI_TOOLKITS = ("PySide6", "viser", "mjviser")
GUI_MODULES = {
    "isaacgymenvs.panel.app",  # the Qt panel's entry point
    "isaacgymenvs.panel.window",
    "isaacgymenvs.player.window",
    "isaacgymenvs.player.web",
    "isaacgymenvs.player.web_scene",
}
MAX_LINES = 450


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<package>"


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (lazy imports inside functions count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "isaacgymenvs":
                names.update(f"isaacgymenvs.{alias.name}" for alias in node.names)
            else:
                names.add(node.module)
    return names


def test_every_room_has_a_rank():
    assert {room(m) for m in modules()} <= set(RANKS), "a new room: give it a rank in RANKS"


def test_no_room_imports_a_room_above_it():
    upward = [
        f"{module} imports {target}"
        for module, path in modules().items()
        for target in imports(path)
        if target.startswith("isaacgymenvs") and RANKS[room(target)] > RANKS[room(module)]
    ]
    assert upward == []


def test_no_import_cycles_between_modules():
    mods = modules()
    graph = {m: {t for t in imports(p) if t in mods and t != m} for m, p in mods.items()}
    # a module's import of `isaacgymenvs.x.y` also runs the packages above it; they are not edges here
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_only_front_ends_import_a_gui_toolkit():
    offenders = [
        f"{module} imports {target}"
        for module, path in modules().items()
        for target in imports(path)
        if target.split(".")[0] in GUI_TOOLKITS and module not in GUI_MODULES
    ]
    assert offenders == []


def test_no_module_is_longer_than_a_reader_can_hold():
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in modules().values()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
