"""The package's import graph: imports only go down the layers, and there are no cycles.

Layers, bottom to top (a module may import its own layer's package and any lower layer):

0. ``observation`` (the layout of the 9 observation values)
1. ``common`` (errors, episode metrics, roll-outs, safe model files)
2. ``config`` (the farm configuration)
3. ``farm`` (the workload, the twin, the live backend, the farm functions) and ``reward``
4. ``env`` (the Gymnasium env over a farm backend) and the package face ``__init__``
5. ``policies`` (baselines)
6. ``algorithms`` (SARSA(lambda), DQN and their trained policies)
7. ``reporting`` (plots and tables from records)
8. ``training`` (harness, trainers, evaluation, comparison, agent registry, CLI helpers)
9. ``service`` (Tune, specs, KPIs, export, submission), ``deploy`` (the continuous
   controller, its metrics and KEDA service) and ``bench``
10. the entry points (``train_sarsa``, ``tune``, ... : ``python -m rl_autoscaling.<name>``;
    ``calibrate`` is a package with ``__main__``)

Every import is counted, including the ones inside functions (lazy imports are still
dependencies).
"""

from __future__ import annotations

import ast
from pathlib import Path

import rl_autoscaling

PACKAGE = Path(rl_autoscaling.__file__).resolve().parent
ENTRY_POINTS = {"train_sarsa", "train_dqn", "test_sarsa", "test_dqn", "plot_training",
                "compare_policies", "tune", "export", "submit", "calibrate", "serve"}
LAYERS = {
    "observation": 0,
    "common": 1,
    "config": 2,
    "farm": 3, "reward": 3,
    "env": 4, "__init__": 4,
    "policies": 5,
    "algorithms": 6,
    "reporting": 7,
    "training": 8,
    "service": 9, "deploy": 9, "bench": 9,
    **{name: 10 for name in ENTRY_POINTS},
}
MAX_TOP_LEVEL_MODULES = 15  # 14 + serve.py (the deploy entry point)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the rl_autoscaling modules ``path`` imports (anywhere in the file)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("rl_autoscaling"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("rl_autoscaling"):
                target = node.module
            else:
                continue
            # "from . import x" names modules: count each one
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if _is_module(candidate):
                    found.add(candidate)
                else:
                    found.add(target)
    return {m for m in found if m != name}


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    return LAYERS[top]


def top_package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_module_has_a_layer():
    assert {top_package(m) for m in graph()} <= set(LAYERS)


def test_imports_only_go_down():
    upward = [f"{src} -> {dst}" for src, dsts in graph().items() for dst in dsts
              if layer(dst) > layer(src)
              or (layer(dst) == layer(src) and top_package(dst) != top_package(src)
                  and top_package(src) != "__init__" and top_package(dst) != "__init__")]
    assert upward == []


def test_no_import_cycles():
    g = graph()
    # The package face (__init__) is imported implicitly by every submodule; ignore its edges.
    g = {m: {d for d in ds if d != "rl_autoscaling"} for m, ds in g.items()}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(g.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for start in sorted(g):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_top_level_stays_small():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top


def test_the_walker_sees_lazy_and_relative_imports():
    edges = graph()
    # a lazy import inside a function, two packages down
    assert "rl_autoscaling.farm.live" in edges["rl_autoscaling.training.cli"]
    # "from .. import" style relative imports resolve to absolute modules
    assert "rl_autoscaling.common.errors" in edges["rl_autoscaling.config"]


def test_no_spec_section_citations_in_code():
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*")
                 if p.is_file() and p.suffix in {".py", ".yml", ".yaml"}
                 and "SPEC §" in p.read_text(encoding="utf-8")]
    assert offenders == []
