"""The dependency direction of the tree (`temporal_rl/__init__.py`), read from the source with `ast`: every import,
at module level or inside a function, is checked, so the shape cannot drift back.

- the foundation never imports a method, evaluation or an experiment;
- a method imports the foundation (ViaRL also Temporal-RLT's GRPO trainer), never evaluation or an experiment;
- evaluation imports the foundation only (publishing also evaluation);
- nothing imports an experiment, and experiments do not import each other;
- `data_tools` imports only the records, the prompts, the rewards and the numpy-only video modules: never a trainer;
- the modules of `temporal_rl` form no import cycle.
"""

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FOUNDATION = {
    "data",
    "environment",
    "families",
    "prompts",
    "video",
    "rewards",
    "models",
    "generation",
    "advantages",
    "resumable",
    "configs",
    "sft",
    "training",
}
# The layer of each top-level unit of temporal_rl, and the units each layer may import.
LAYERS = {
    **dict.fromkeys(FOUNDATION, "foundation"),
    "grpo": "temporal-rlt",
    "filtering": "filter",
    "viarl": "viarl",
    "eval": "evaluation",
    "hub": "publishing",
    "experiments": "experiments",
}
MAY_IMPORT = {
    "foundation": FOUNDATION,
    "temporal-rlt": FOUNDATION,
    "filter": FOUNDATION,
    "viarl": FOUNDATION | {"grpo"},
    "evaluation": FOUNDATION,
    "publishing": FOUNDATION | {"eval"},
    "experiments": set(LAYERS),
}
# What data_tools may import from temporal_rl: light modules, no trainer, no decoder.
DATA_TOOLS_MAY_IMPORT = ("temporal_rl.data", "temporal_rl.prompts", "temporal_rl.rewards", "temporal_rl.video.labels",
                         "temporal_rl.video.sampling")  # fmt: skip


def imported_modules(source: str, module: str) -> set[str]:
    """Every module `source` imports (absolute names; `from pkg import name` counts as `pkg.name` too, since `name` may
    be a module), wherever the import statement sits."""
    package = module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str | None:
    """The top-level unit of a temporal_rl module (`temporal_rl.video.cache` -> `video`); None for the package root."""
    parts = module.split(".")
    return parts[1] if parts[0] == "temporal_rl" and len(parts) > 1 else None


def violations(sources: dict[str, str]) -> list[str]:
    """The imports of `sources` ({module name: source}) that break the rules, as readable lines."""
    found = []
    for module, source in sorted(sources.items()):
        targets = {t for t in imported_modules(source, module) if t.split(".")[0] == "temporal_rl" and unit(t)}
        # `from a.b import c` gives a.b and a.b.c: keep the deepest name of each import
        targets = {t for t in targets if not any(other.startswith(t + ".") for other in targets)}
        if module.startswith("data_tools"):
            found += [
                f"{module} imports {t} (data_tools may import only {', '.join(DATA_TOOLS_MAY_IMPORT)})"
                for t in sorted(targets)
                if not t.startswith(DATA_TOOLS_MAY_IMPORT)
            ]
            continue
        own = unit(module)
        if own is None or own not in LAYERS:
            if own is not None:
                found.append(f"{module}: unit {own!r} has no layer; add it to tests/test_architecture.py")
            continue
        layer = LAYERS[own]
        for target in sorted(targets):
            other = unit(target)
            if other == own:
                if layer == "experiments" and target != module and target != "temporal_rl.experiments":
                    if target.split(".")[:3] != module.split(".")[:3]:
                        found.append(f"{module} imports {target}: an experiment never imports another experiment")
                continue
            if other not in MAY_IMPORT[layer]:
                found.append(f"{module} ({layer}) imports {target} ({LAYERS.get(other, 'unknown')})")
    return found


@functools.cache
def _read_sources(folders: tuple[str, ...]) -> dict[str, str]:
    return {
        module_name(path): path.read_text(encoding="utf-8")
        for folder in folders
        for path in sorted((ROOT / folder).rglob("*.py"))
    }


def read_sources(*folders: str) -> dict[str, str]:
    """{module name: source} of every Python file under the folders (a copy: callers may add to it)."""
    return dict(_read_sources(folders))


def test_every_unit_of_the_package_has_a_layer():
    units = {path.stem if path.is_file() else path.name for path in (ROOT / "temporal_rl").iterdir()}
    units = {name for name in units if not name.startswith(("_", "."))}
    assert units == set(LAYERS), "a new top-level module or package needs a layer (temporal_rl/__init__.py)"


def test_imports_point_down_the_layers():
    assert violations(read_sources("temporal_rl", "data_tools")) == []


def find_cycle(sources: dict[str, str]) -> list[str]:
    """An import cycle among `sources` ({module: source}) as [m1, m2, ..., m1], or [] when there is none."""
    graph = {
        module: sorted(t for t in imported_modules(source, module) if t in sources and t != module)
        for module, source in sources.items()
    }
    state: dict[str, str] = {}

    def visit(path: list[str]) -> list[str]:
        state[path[-1]] = "open"
        for nxt in graph[path[-1]]:
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit([*path, nxt])):
                return cycle
        state[path[-1]] = "done"
        return []

    for module in sorted(graph):
        if module not in state and (cycle := visit([module])):
            return cycle
    return []


def test_the_package_has_no_import_cycle():
    assert find_cycle(read_sources("temporal_rl")) == []


def test_a_planted_cycle_is_caught():
    sources = read_sources("temporal_rl")
    sources["temporal_rl.resumable"] += "\nfrom temporal_rl.data import write_jsonl\n"  # data imports resumable
    assert find_cycle(sources) in (
        ["temporal_rl.data", "temporal_rl.resumable", "temporal_rl.data"],
        ["temporal_rl.resumable", "temporal_rl.data", "temporal_rl.resumable"],
    )


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        ("temporal_rl.rewards.extra", "from temporal_rl.viarl.selector import fallback_indices", "foundation"),
        ("temporal_rl.video.extra", "def f():\n    import temporal_rl.grpo.trainer", "foundation"),
        ("temporal_rl.grpo.extra", "from temporal_rl.experiments.demo import run_demo", "temporal-rlt"),
        ("temporal_rl.filtering.extra", "from temporal_rl.eval.run import evaluate_model", "filter"),
        ("temporal_rl.viarl.extra", "from temporal_rl import filtering", "viarl"),
        ("temporal_rl.eval.extra", "from temporal_rl.grpo.config import TemporalGRPOConfig", "evaluation"),
        ("temporal_rl.experiments.extra", "from temporal_rl.experiments.demo import swap_videos", "another"),
        ("data_tools.convert.extra", "from temporal_rl.training import train_sft", "data_tools"),
        ("data_tools.synth.extra", "from temporal_rl.video.decode import decode_video", "data_tools"),
    ],
)
def test_an_upward_import_is_caught(module, source, broken):
    """The check itself: each planted import breaks a rule and is reported."""
    found = violations({**read_sources("temporal_rl", "data_tools"), module: source})
    assert len(found) == 1 and module in found[0] and broken in found[0], found
