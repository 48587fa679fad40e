"""Docs are code: every docstring example and every ```python block of README.md and docs/*.md runs here.

- Docstrings: one doctest run per module under ``fnn/`` (ELLIPSIS, NORMALIZE_WHITESPACE), so a failure names it.
- Pages: the ```python blocks of one page run in order, in one namespace, with the working directory in a temporary
  directory. A block that demonstrates an error starts with ``# raises ErrorType: message``: it must raise that
  error, with a message that contains the text (``...`` stands for any text; the message may run on over the
  following comment lines, each continuing after the ``#`` and the indentation). A block that needs Fashion-MNIST
  skips the page when the data set is absent.
- Names: every ``fnn/...py`` (and ``examples/``, ``benchmarks/``, ``tests/``) path and every dotted ``fnn.x.y``
  name that README.md and docs/*.md mention exists.

The suite's strict settings (warnings as errors, ``jax_numpy_rank_promotion="raise"``) apply to all of it.
"""
import builtins
import doctest
import importlib
import os
import pkgutil
import re
from pathlib import Path

import pytest

import fnn

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MODULES = ["fnn", *sorted(m.name for m in pkgutil.walk_packages(fnn.__path__, prefix="fnn."))]
FASHION_MNIST = "fashion"  # a block mentioning it (fashion-mnist, load_fashion_mnist) needs the data set
RAISES = re.compile(r"#\s*raises\s+([A-Za-z_][\w.]*)\s*:\s*(.*)")
BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def python_blocks(page):
    """The ```python blocks of a page, as (first line number, source) pairs, in order."""
    text = page.read_text()
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in BLOCK.finditer(text)]


def fashion_mnist_available():
    from fnn.data.datasets import FASHION_MNIST_DIR

    directory = os.environ.get("FNN_FASHION_MNIST_DIR") or FASHION_MNIST_DIR
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return all(any(os.path.isfile(os.path.join(directory, s + ext)) for ext in (".gz", "")) for s in stems)


# ---------------------------------------------------------------------------------------------------------------------
# Docstring examples


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    tests = [t for t in finder.find(module, name) if t.examples]
    if not tests:
        pytest.skip(f"{name} has no docstring examples")
    failures = []
    for test in sorted(tests, key=lambda t: t.name):
        out = []
        result = runner.run(test, out=out.append, clear_globs=True)
        if result.failed:
            failures.append("".join(out))
    if failures:
        pytest.fail(f"{name}: failing docstring examples:\n" + "\n".join(failures), pytrace=False)


def test_every_module_is_found():
    # walk_packages must see into every sub-package, else the test above silently checks less.
    for package in ("fnn.layers", "fnn.optimizers", "fnn.train", "fnn.data", "fnn.debug", "fnn.classic", "fnn.cli"):
        assert package in MODULES and any(m.startswith(package + ".") for m in MODULES), package
    assert "fnn.activations" in MODULES and "fnn.debug.backprop" in MODULES


# ---------------------------------------------------------------------------------------------------------------------
# ```python blocks of README.md and docs/*.md


def expected_error(source):
    """``(ErrorType, message)`` of a block starting ``# raises ErrorType: message`` (continued on the comment lines
    right after it), else None."""
    lines = source.strip().splitlines()
    first = RAISES.fullmatch(lines[0].strip()) if lines else None
    if first is None:
        return None
    message = first.group(2).strip()
    for line in lines[1:]:
        if not line.startswith("#"):
            break
        message += " " + line[1:].strip()
    return first.group(1), message


def run_page(page, blocks):
    namespace = {"__name__": f"docs_{page.stem}", "__builtins__": builtins}
    for line, source in blocks:
        where = f"{page.name}, block at line {line}"
        if FASHION_MNIST in source.lower() and not fashion_mnist_available():
            pytest.skip(f"{where} needs Fashion-MNIST, absent on this machine (see docs/data.md)")
        code = compile(source, str(page), "exec")
        expected = expected_error(source)
        if expected is None:
            try:
                exec(code, namespace)
            except Exception as e:
                raise AssertionError(f"{where} raised {type(e).__name__}: {e}") from e
            continue
        error_name, message = expected
        error = getattr(builtins, error_name, None) or eval(error_name, namespace)
        pattern = ".*".join(re.escape(part) for part in message.split("...")) if message else None
        with pytest.raises(error, match=pattern):
            exec(code, namespace)


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_page_code_runs(page, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # blocks that write files write them here
    run_page(page, python_blocks(page))


def test_python_blocks_are_found():
    # If the block pattern broke, the page test would check nothing: the README's first model must be seen.
    readme = python_blocks(ROOT / "README.md")
    assert readme and "fit(" in readme[0][1]
    assert sum(len(python_blocks(p)) for p in PAGES) >= 20


def test_error_demonstrations_are_checked(tmp_path):
    page = tmp_path / "demo.md"
    page.write_text("```python\n# raises ValueError: expected 3\nraise ValueError('got 2')\n```\n")
    with pytest.raises(AssertionError, match="Regex pattern did not match"):
        run_page(page, python_blocks(page))
    page.write_text("```python\n# raises ValueError: shape (5,) ... [0, 4), got\n#   label 4\n"
                    "raise ValueError('shape (5,) and [0, 4), got label 4')\n```\n")
    run_page(page, python_blocks(page))  # literal text, `...` for anything, continued on the next comment line
    page.write_text("```python\n# raises ValueError: shape (5,)\nraise TypeError('shape (5,)')\n```\n")
    with pytest.raises(TypeError):
        run_page(page, python_blocks(page))
    page.write_text("```python\n# raises ValueError: expected\nx = 1\n```\n")
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        run_page(page, python_blocks(page))
    page.write_text("```python\nx = 1\n```\n\n```python\n# raises KeyError: 'y'\n{}['y' * x]\n```\n")
    run_page(page, python_blocks(page))


def test_fashion_mnist_blocks_skip_when_the_data_is_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("FNN_FASHION_MNIST_DIR", str(tmp_path))  # an empty directory: the data set is "absent"
    assert not fashion_mnist_available()
    page = tmp_path / "demo.md"
    page.write_text("```python\nx = 1\n```\n\n```python\nfrom fnn.data import load_fashion_mnist\n```\n")
    with pytest.raises(pytest.skip.Exception, match="needs Fashion-MNIST"):
        run_page(page, python_blocks(page))


# ---------------------------------------------------------------------------------------------------------------------
# Module paths and dotted names in the docs

PATH = re.compile(r"(?<![\w/.])((?:fnn|examples|benchmarks|tests)/[\w/]+\.py)\b")  # repository files
DOTTED = re.compile(r"(?<![\w.])(fnn(?:\.[A-Za-z_]\w*)+)")


def resolve(dotted):
    """Import the longest module prefix of ``dotted`` and getattr the rest; raise if any part is missing."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def mentioned(pattern):
    found = {}
    for page in PAGES:
        for m in pattern.finditer(page.read_text()):
            found.setdefault(m.group(1).rstrip("."), page.relative_to(ROOT))
    return found


def test_module_paths_in_docs_exist():
    paths = mentioned(PATH)
    assert any(p.startswith("fnn/") for p in paths), "no fnn/...py path found in the docs: the pattern is broken"
    missing = [f"{path} ({page})" for path, page in sorted(paths.items()) if not (ROOT / path).is_file()]
    assert not missing, "docs mention files that do not exist: " + ", ".join(missing)


def test_dotted_names_in_docs_resolve():
    names = mentioned(DOTTED)
    assert len(names) > 10, "few fnn.x names found in the docs: the pattern is broken"
    missing = []
    for name, page in sorted(names.items()):
        try:
            resolve(name)
        except (ImportError, AttributeError) as e:
            missing.append(f"{name} ({page}: {type(e).__name__}: {e})")
    assert not missing, "docs mention names that do not resolve: " + "; ".join(missing)


def test_dotted_names_in_docstrings_resolve():
    # ``fnn.x.y`` in the library's own docstrings and comments: the re-layout must not leave stale module paths.
    quoted = re.compile(r"``(fnn(?:\.[A-Za-z_]\w*)+)")
    names = {}
    for path in sorted((ROOT / "fnn").rglob("*.py")):
        for m in quoted.finditer(path.read_text()):
            names.setdefault(m.group(1), path.relative_to(ROOT))
    assert len(names) > 10, "few ``fnn.x`` names found in the docstrings: the pattern is broken"
    missing = []
    for name, path in sorted(names.items()):
        try:
            resolve(name)
        except (ImportError, AttributeError) as e:
            missing.append(f"{name} ({path}: {type(e).__name__}: {e})")
    assert not missing, "docstrings mention names that do not resolve: " + "; ".join(missing)


def test_name_check_can_fail():
    with pytest.raises(AttributeError):
        resolve("fnn.layers.NoSuchLayer")
    with pytest.raises((ImportError, AttributeError)):
        resolve("fnn.core")
    assert resolve("fnn.optimizers.schedules.cosine") is not None
    assert os.path.isfile(ROOT / "fnn/debug/backprop.py")
