"""The code's layers: imports point one way and run in no circle, and the
layers that handle data and control load neither torch nor the models (the
bag reader, the simulated arm and a monitor need no seconds of torch
import). Read from the sources (every import, function-level ones too,
those only for type checkers aside)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGES = sorted(p.name for p in SRC.iterdir() if (p / p.name / "__init__.py").is_file())

# Lowest first: a module may import its own layer and the ones before it.
LAYERS = [
    (
        "foundation",
        [
            "video2act_core.params",
            "video2act_core.trajectory",
            "video2act_core.camera_pose",
            "video2act_core.clock_offset",
            "video2act_core.metrics",
            "video2act_core.normalization",
            "video2act_core.model_thread",
            "video2act_core.process",
            "video2act_core.latents",
            "video2act_core.bringup",
            "video2act_core.visualize",
        ],
    ),
    ("data", ["video2act_core.data"]),
    ("control", ["video2act_core.control", "video2act_core.messages"]),
    ("models", ["video2act_core.models", "video2act_core.devices", "video2act_core.processing"]),
    ("systems", ["video2act_core.systems", "video2act_core.checkpoint"]),
    ("training", ["video2act_core.train", "video2act_core.training"]),
    ("ros", ["video2act_core.ros", "video2act_core"]),
    ("simulators", ["video2act_sim"]),
    ("tools", ["video2act_eval"]),
    ("nodes", ["video2act_perception", "video2act_policy"]),
]
# What the torch-free layers must never load.
HEAVY = ("torch", "diffusers", "transformers", "safetensors")
TORCH_FREE = ["foundation", "data", "control"]


def modules() -> dict[str, Path]:
    """module name -> source file, for every module of the workspace's packages."""
    found = {}
    for package in PACKAGES:
        for path in (SRC / package / package).rglob("*.py"):
            found[".".join(path.relative_to(SRC / package).with_suffix("").parts).removesuffix(".__init__")] = path
    return found


def type_checking_lines(tree) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for child in node.body:
                lines |= set(range(child.lineno, child.end_lineno + 1))
    return lines


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The workspace modules `path` imports (a package import counts as its
    __init__; `from package import module` as that module)."""
    tree = ast.parse(path.read_text())
    skip = type_checking_lines(tree)
    found = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for imported in names:
            while imported and imported not in known:
                imported = imported.rpartition(".")[0]
            if imported:
                found.add(imported)
    found.discard(name)
    return found


def layer_of(module: str) -> int:
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


GRAPH = {name: imports_of(name, path, modules()) for name, path in modules().items()}


def test_every_module_has_a_layer_and_imports_only_its_own_or_lower_ones():
    upward = [
        f"{module} ({LAYERS[layer_of(module)][0]}) -> {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in GRAPH.items()
        for target in targets
        if layer_of(target) > layer_of(module) and not module.startswith(target + ".")
    ]
    assert not upward, "\n".join(sorted(upward))


def test_no_two_modules_import_each_other_through_any_chain():
    """Depth-first search for a cycle, package __init__ imports of their own
    submodules aside (a package re-exporting what it holds)."""
    edges = {m: {t for t in targets if not t.startswith(m + ".")} for m, targets in GRAPH.items()}
    state, cycles = {}, []

    def visit(module, path):
        state[module] = "open"
        for target in sorted(edges.get(module, ())):
            if state.get(target) == "open":
                cycles.append(path[path.index(target) :] + [target] if target in path else [module, target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


@pytest.mark.parametrize("layer", TORCH_FREE)
def test_the_data_and_control_layers_import_with_torch_blocked(layer):
    """Import every module of the layer in a fresh interpreter where torch,
    diffusers, transformers and safetensors cannot be imported."""
    names = sorted(m for m in GRAPH if LAYERS[layer_of(m)][0] == layer)
    assert names
    program = (
        f"import sys\nfor heavy in {HEAVY!r}:\n    sys.modules[heavy] = None\n"
        + "".join(f"import {name}\n" for name in names)
        + f"assert not [m for m in sys.modules if m.split('.')[0] in {HEAVY!r} and sys.modules[m]]\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_function_is_longer_than_80_lines():
    """A function that long is several steps that want names of their own."""
    long = [
        f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for name, path in modules().items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80
    ]
    assert not long, long
