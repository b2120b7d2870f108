"""The package layout holds: no import cycles, layers import only downwards, and the layers
that must run without torch (or without amaranth) import without them.

Imports are read from the AST of every module, including imports inside functions and module
names passed as strings (``importlib.import_module("filmqnn_hw....")``).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("filmqnn_hw", "filmqnn_quant", "boards", "hls_compat")

#: Layers of ``filmqnn_hw`` (its sub-packages) by rank: a module may import its own layer and
#: layers of lower rank only. Modules directly in ``filmqnn_hw/`` (``build``, ``report``,
#: ``evaluate``) are the command-line layer above all of them.
LAYERS = {
    "spec": 0,
    "gateware": 1,
    "models": 1,
    "search": 2,
    "compiler": 2,
    "flows": 2,
    "verify": 3,
    "sim": 3,
    "host": 4,
}
CLI_RANK = 5

_MODULE_STRING = re.compile(r"(?:filmqnn_hw|filmqnn_quant|boards|hls_compat)(?:\.\w+)*")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = f
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    """The project module ``name`` refers to (a dotted attribute resolves to its module)."""
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, anywhere in its source."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        targets: list[str] = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                targets += [src] + [f"{src}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if _MODULE_STRING.fullmatch(node.value):
                    targets.append(node.value)
        graph[mod] = {r for t in targets if (r := _resolve(t, mods)) and r != mod}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state and (c := visit(t)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (c := visit(m)):
            return c
    return None


def layer_of(mod: str) -> tuple[str, int] | None:
    parts = mod.split(".")
    if parts[0] != "filmqnn_hw" or len(parts) == 1:
        return None
    if parts[1] in LAYERS:
        return parts[1], LAYERS[parts[1]]
    return "cli", CLI_RANK


def test_finds_a_cycle_and_a_function_level_import():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(g) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    graph = import_graph()
    # filmqnn_quant.export imports the design search inside a function, by name
    assert "filmqnn_hw.search.dse" in graph["filmqnn_quant.export"]


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_hardware_never_imports_the_quantizer():
    bad = [f"{m} -> {t}" for m, ts in import_graph().items() if m.startswith("filmqnn_hw")
           for t in ts if t.startswith("filmqnn_quant")]
    assert not bad, "filmqnn_hw must not import filmqnn_quant: " + "; ".join(bad)


def test_every_module_has_a_layer():
    unknown = [m for m in import_graph() if m.startswith("filmqnn_hw.")
               and m.count(".") >= 2 and m.split(".")[1] not in LAYERS]
    assert not unknown, f"modules in a folder that is not a layer: {unknown}"


def test_layers_import_only_downwards():
    bad = []
    for m, ts in import_graph().items():
        lm = layer_of(m)
        if lm is None:
            continue
        for t in ts:
            lt = layer_of(t)
            if lt is None or lt[0] == lm[0]:
                continue
            if lt[1] >= lm[1]:
                bad.append(f"{m} ({lm[0]}) -> {t} ({lt[0]})")
    assert not bad, "imports against the layer order:\n" + "\n".join(sorted(bad))


def test_spec_imports_nothing_else_of_ours():
    bad = [f"{m} -> {t}" for m, ts in import_graph().items() if m.startswith("filmqnn_hw.spec")
           for t in ts if not t.startswith("filmqnn_hw.spec") and t != "filmqnn_hw"]
    assert not bad, "; ".join(bad)


_BLOCK = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is blocked in this test")
sys.meta_path.insert(0, _Block())
"""


def _run_blocked(blocked: set[str], code: str, timeout: float = 300) -> None:
    prog = _BLOCK.format(blocked=sorted(blocked)) + code
    r = subprocess.run([sys.executable, "-c", prog], cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]


def _modules_of(*layers: str) -> list[str]:
    return sorted(m for m in import_graph()
                  if m.startswith("filmqnn_hw.") and m.split(".")[1] in layers)


def test_pure_layers_import_without_torch_and_amaranth():
    mods = _modules_of("spec", "models", "search", "compiler")
    assert "filmqnn_hw.spec.config" in mods and "filmqnn_hw.search.dse" in mods
    _run_blocked({"torch", "amaranth"}, "\n".join(f"import {m}" for m in mods))


def test_hardware_imports_without_torch():
    mods = _modules_of(*LAYERS) + ["filmqnn_hw.build", "filmqnn_hw.report",
                                   "filmqnn_hw.evaluate"]
    _run_blocked({"torch"}, "\n".join(f"import {m}" for m in mods))


def test_build_runs_without_torch(tmp_path):
    out = tmp_path / "pynq"
    _run_blocked({"torch"}, f"""
from filmqnn_hw.build import main
assert main(["pynq_z2", "--no-rtl", "--out", {str(out)!r}]) == 0
""")
    assert (out / "config.json").is_file() and (out / "report.json").is_file()


@pytest.mark.parametrize("blocked", [{"torch"}])
def test_blocking_works(blocked):
    prog = _BLOCK.format(blocked=sorted(blocked)) + "import torch\n"
    r = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True)
    assert r.returncode != 0 and "blocked in this test" in r.stderr
