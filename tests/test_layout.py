"""The package layout is the architecture: checked statically (imports parsed with ``ast``) and by importing fnn.

- ``import fnn`` loads the foundations, ``layers``, ``optimizers``, ``data`` and ``train``, and nothing of
  ``debug``, ``classic``, ``lab`` or ``cli`` (they load on first use);
- no import cycle between fnn's modules;
- a package imports only from the floors below it (foundations < layers, optimizers, data < train < debug,
  classic, lab < cli), never back up;
- no module imports another module's private (``_name``) helper;
- no module over 450 lines (the house aim is ~400).
"""
import ast
import pathlib
import subprocess
import sys

import pytest

import fnn

ROOT = pathlib.Path(fnn.__file__).parent
FOUNDATIONS = {"activations", "initializers", "losses", "metrics", "checks"}
FLOOR = {"foundations": 0, "layers": 1, "optimizers": 1, "data": 1, "train": 2, "debug": 3, "classic": 3, "lab": 3,
         "cli": 4}
EAGER = {"layers", "optimizers", "data", "train"}
LAZY = {"debug", "classic", "lab", "cli"}


def _modules():
    """``{dotted module name: path}`` for every module of the package."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _package(module: str) -> str:
    """The floor a module lives on: ``fnn.layers.conv`` -> ``layers``; ``fnn.losses`` -> ``foundations``."""
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    return "foundations" if parts[1] in FOUNDATIONS else parts[1]


def _imports(path, *, top_level_only: bool):
    """``[(imported fnn module, imported names, line)]`` of one file."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "fnn" and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                target = sub if sub in MODULES else node.module
                found.append((target, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "fnn":
                    found.append((alias.name, None, node.lineno))
    return found


def test_import_fnn_loads_exactly_the_eager_parts():
    code = "import sys, fnn; print(' '.join(sorted(m for m in sys.modules if m.startswith('fnn'))))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    packages = {m.split(".")[1] for m in loaded if m.count(".") >= 1}
    assert not packages & LAZY, f"import fnn loaded {sorted(packages & LAZY)}; they must load on first use"
    assert EAGER <= packages, f"import fnn did not load {sorted(EAGER - packages)}"
    for name in ("activations", "initializers", "losses", "metrics"):
        assert f"fnn.{name}" in loaded
    # and the lazy parts do load on first use
    assert fnn.debug.check_grads and fnn.classic.perceptron_train and fnn.cli.main and fnn.lab.__doc__


def test_no_import_cycle():
    graph = {m: {t for t, _, _ in _imports(p, top_level_only=True) if t in MODULES and t != m}
             for m, p in MODULES.items()}
    # a package's front importing its own modules is the one direction allowed; the reverse closes a cycle
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                cycle = stack[stack.index(t):] + [t]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "fnn"))
def test_imports_run_down_the_floors_only(module):
    mine = _package(module)
    for target, _, line in _imports(MODULES[module], top_level_only=False):
        theirs = _package(target)
        if theirs in ("root", mine):
            assert theirs != "root", f"{module}:{line} imports the root package fnn; import the part it needs"
            continue
        assert FLOOR[theirs] < FLOOR[mine], (f"{module}:{line} ({mine}, floor {FLOOR[mine]}) imports {target} "
                                             f"({theirs}, floor {FLOOR[theirs]}): imports must run down the floors")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_helper_is_imported_from_another_module(module):
    for target, name, line in _imports(MODULES[module], top_level_only=False):
        assert not (name and name.startswith("_")), (f"{module}:{line} imports the private {name} from {target}; "
                                                     f"make it public in one place")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_are_small(module):
    n = len(MODULES[module].read_text().splitlines())
    assert n <= 450, f"{module} has {n} lines; split it by topic (house aim: ~400)"


def test_the_layout_is_the_documented_one():
    folders = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert sorted(set(folders) - FOUNDATIONS) == sorted(EAGER | LAZY)  # a foundation may be a package (losses/)
    files = sorted(p.stem for p in ROOT.glob("*.py") if p.stem != "__init__")
    assert set(files) <= FOUNDATIONS, f"top-level modules {set(files) - FOUNDATIONS} belong in a folder"
    contributing = (ROOT.parent / "CONTRIBUTING.md").read_text()
    for folder in folders:
        assert f"{folder}/" in contributing, f"CONTRIBUTING.md's layout tree does not describe fnn/{folder}/"
