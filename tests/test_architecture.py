"""The shape of the code that docs/design.md promises: no import cycle between the project's modules
(function-level imports included), ``train.py`` as orchestration, no private names of an entry point."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
PACKAGES = ("configs", "datamodules", "inference", "lightning_modules", "losses", "metrics", "training")
ENTRY_POINTS = ("train", "predict", "evaluate", "export")
TOP_LEVEL = (*ENTRY_POINTS, "errors", "atomic_output", "untrusted")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    files = [ROOT / f"{name}.py" for name in TOP_LEVEL]
    for package in PACKAGES:
        files += sorted((ROOT / package).rglob("*.py"))
    return {_module_name(f): f for f in files}


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports anywhere in its body (``from a.b import c`` counts as ``a.b.c``
    when that is a module, else ``a.b``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of two or more modules (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def _package_inits(module: str) -> set[str]:
    """Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first: not arrows of their own."""
    parts = module.split(".")
    return {".".join(parts[:k]) for k in range(1, len(parts))}


def project_import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {m: imported_modules(p, known) - {m} - _package_inits(m) for m, p in modules.items()}


def test_the_cycle_finder_finds_a_cycle():
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_project_modules():
    assert import_cycles(project_import_graph()) == []


def test_train_py_is_orchestration():
    source = (ROOT / "train.py").read_text()
    assert len(source.splitlines()) <= 150
    tree = ast.parse(source)
    nested = [
        node.lineno
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef)
        for node in ast.walk(function)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    assert nested == []  # every dependency of train.py is in view at the top


def test_no_module_uses_a_private_name_of_an_entry_point():
    offenders = []
    for path in [*ROOT.glob("*.py"), *ROOT.glob("*/**/*.py")]:
        if ".venv" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in ENTRY_POINTS:
                offenders += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in ENTRY_POINTS
                and node.attr.startswith("_")
                and path.stem != node.value.id
            ):
                offenders.append(f"{path.name}: {node.value.id}.{node.attr}")
    assert offenders == []


# lower layers never import higher ones; the same layer may import itself
LAYERS = {
    "errors": 0,
    "atomic_output": 0,
    "untrusted": 1,
    "datamodules": 2,
    "losses": 2,
    "metrics": 3,
    "lightning_modules": 4,
    "inference": 5,
    "configs": 5,
    "training": 6,
    **dict.fromkeys(ENTRY_POINTS, 7),
}


def test_imports_point_down_the_layers():
    def package(module: str) -> str:
        return module.split(".")[0]

    upward = sorted(
        f"{module} -> {imported}"
        for module, imports in project_import_graph().items()
        for imported in imports
        if package(imported) != package(module) and LAYERS[package(imported)] >= LAYERS[package(module)]
    )
    assert upward == []


def _callback_classes(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                text = ast.unparse(base)
                if text.endswith("Callback") or text.endswith("CheckpointIO"):
                    names.append(node.name)
    return names


def test_how_a_job_runs_lives_in_training():
    """Callbacks and checkpoint IO are job control: ``training/`` holds every one of them."""
    outside = {
        f"{module}.{name}"
        for module, path in project_modules().items()
        if not module.startswith("training")
        for name in _callback_classes(path)
    }
    assert outside == set()
    inside = {
        n for m, p in project_modules().items() if m.startswith("training") for n in _callback_classes(p)
    }
    assert {"AgreedStop", "AtomicCheckpointIO", "ValidationHistory", "UnannotatedRecall"} <= inside


def test_lightning_modules_holds_the_contract_the_registry_and_the_models():
    from lightning_modules.registry import BUILTIN_MODELS

    packages = sorted(p.name for p in (ROOT / "lightning_modules").iterdir() if (p / "__init__.py").is_file())
    assert sorted(name.rpartition(".")[2] for name in BUILTIN_MODELS) == packages


def test_only_the_sru_head_knows_its_layer_order():
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in (ROOT / "lightning_modules").rglob("*.py")
        if path.name != "network.py" or path.parent.name != "sru_ner"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "mlp[" in line or "mlp." in line
    ]
    assert offenders == []


def test_every_model_package_has_the_same_five_files():
    layout = {"__init__.py", "config.py", "network.py", "codec.py", "targets.py", "module.py"}
    packages = [p for p in (ROOT / "lightning_modules").iterdir() if (p / "__init__.py").is_file()]
    assert len(packages) == 3
    missing = {p.name: sorted(layout - {f.name for f in p.glob("*.py")}) for p in packages}
    assert missing == {p.name: [] for p in packages}


CUT_RUN_CONFIGS = ("lightning_modules/settings.py", "lightning_modules/registry.py")


def test_a_model_reads_its_settings_not_the_run_config_or_the_data_module():
    """The model gets its typed sections and its schedule's length when it is built
    (``lightning_modules/settings.py``, ``training/schedule.py``): nothing in ``lightning_modules/`` reaches
    the data module through the Trainer or reads a section out of the recorded run config, apart from
    the two places that take a run config apart: ``settings.py`` and the registry's lookup by model name."""
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in (ROOT / "lightning_modules").rglob("*.py")
        if path.relative_to(ROOT).as_posix()
        not in ("lightning_modules/settings.py", "lightning_modules/registry.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if ".datamodule" in line or "run_config[" in line or "run_config.get" in line or 'cfg["' in line
    ]
    assert offenders == []


def test_the_label_space_is_below_the_corpus_catalog():
    graph = project_import_graph()
    assert not {m for m in graph["datamodules.label_space"] if m.startswith("datamodules")}
    names = [p.name for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    assert names.count("registry.py") == 1  # the model registry; the corpora are datamodules/catalog.py


@pytest.mark.parametrize("model", ["sru_ner", "baseline", "tabert_cnn"])
def test_the_setup_and_step_routes_keep_their_rules(model):
    """``scripts/trace_routes.py``: split setup returns to no file it left, a training step enters each
    file once (apart from the model's loss); the routes ``docs/design.md`` shows."""
    import trace_routes

    routes = trace_routes.trace(model)
    assert set(routes) == {"setup", "step"}
    for route in routes.values():
        assert route.breaks() == [], route.name
    assert "datamodules/cache.py" in routes["setup"].files()
    assert "datamodules/readers.py" in routes["setup"].files()
    assert f"lightning_modules/{model}/network.py" in routes["step"].files()


PRIVATE_LIGHTNING = (
    "_signal_connector", "_broadcast_sigterm_tensor", "_should_accumulate", "strategy._timeout",
    "_last_global_step_saved", "_get_rank",
)  # fmt: skip


def test_lightning_internals_are_reached_from_one_module():
    adapter = ROOT / "training" / "lightning_internals.py"
    offenders = []
    for module, path in project_modules().items():
        text = path.read_text()
        if path == adapter:
            continue
        offenders += [f"{module}: {name}" for name in PRIVATE_LIGHTNING if name in text]
        tree = ast.parse(text)
        offenders += [
            f"{module}: {node.module}.{alias.name}"
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lightning")
            for alias in node.names
            if alias.name.startswith("_")
        ]
    assert offenders == []


def test_no_test_file_imports_another():
    """Shared helpers live in helper modules and fixtures in ``conftest.py``, not in other test files."""
    offenders = [
        f"{path.name}: {node.module}"
        for path in (ROOT / "tests").glob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("test_")
    ]
    assert offenders == []
