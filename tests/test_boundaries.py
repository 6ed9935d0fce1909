"""image_core stays framework-free: checked by import-linter, an AST walk and a live import."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "packages" / "image_core" / "src" / "image_core"
CONTRACTS = CORE / "contracts"
CORE_MODULES = sorted(p for p in CORE.rglob("*.py") if CONTRACTS not in p.parents)
CONTRACT_MODULES = sorted(CONTRACTS.rglob("*.py"))

# What image_core may import besides the standard library and itself.
ALLOWED_THIRD_PARTY = frozenset({"attrs", "attr", "cattrs"})
# The shipped contract suites are test code: they may use the library user's test tools.
TEST_TOOLS = frozenset({"pytest", "hypothesis"})
# What must never be loaded as a side effect of importing image_core.
FORBIDDEN_AT_RUNTIME = frozenset(
    {
        "fastmcp",
        "mcp",
        "starlette",
        "PIL",
        "google",
        "httpx",
        "httpx2",
        "authlib",
        "uvicorn",
        "jinja2",
        "image_server",
    }
)


def foreign_imports(source: str, allowed: frozenset[str] = ALLOWED_THIRD_PARTY) -> list[str]:
    """Top-level names imported by ``source`` that image_core may not depend on.

    Relative imports are image_core itself. ``__import__`` and ``importlib.import_module``
    calls are reported too, so the walk cannot be sidestepped.
    """
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [] if node.level else [node.module or ""]
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            found.append(f"dynamic import at line {node.lineno}")
            continue
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            fine = top in sys.stdlib_module_names or top in allowed
            if not fine and top != "image_core":
                found.append(name)
    return found


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in {"__import__", "import_module"}
    return isinstance(func, ast.Attribute) and func.attr in {"import_module", "__import__"}


def test_import_linter_contract_is_kept() -> None:
    """lint-imports (the forbidden contract in pyproject.toml) passes from the repo root."""
    executable = Path(sys.executable).with_name("lint-imports")
    assert executable.exists(), "import-linter is not installed in this environment"
    completed = subprocess.run(
        [str(executable)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "image_core stays framework-free KEPT" in output
    assert "pytest" in _linter_contract()["forbidden_modules"]
    assert "0 broken" in output


def _linter_contract() -> dict[str, list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract: dict[str, list[str]] = config["tool"]["importlinter"]["contracts"][0]
    return contract


def test_only_the_contract_suites_are_exempt_from_the_test_tool_ban() -> None:
    """The linter's exceptions name image_core.contracts and the two test tools, no more."""
    ignored = _linter_contract()["ignore_imports"]
    assert {line.split(" -> ")[0] for line in ignored} == {"image_core.contracts.*"}
    assert {line.split(" -> ")[1] for line in ignored} == TEST_TOOLS


def test_the_core_package_has_modules_to_check() -> None:
    """The walk below really sees the package (a moved folder would make it vacuous)."""
    names = {path.name for path in CORE_MODULES}
    assert {"__init__.py", "domain.py", "catalog.py", "service.py", "testing.py"} <= names
    contracts = {path.name for path in CONTRACT_MODULES}
    assert {"image_store.py", "metadata.py", "prefs.py", "codec.py", "backend.py"} <= contracts


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: p.name)
def test_every_core_import_is_stdlib_attrs_cattrs_or_image_core(path: Path) -> None:
    """An AST walk over each module finds no import of anything else."""
    assert foreign_imports(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", CONTRACT_MODULES, ids=lambda p: p.name)
def test_the_contract_suites_import_only_the_core_and_the_test_tools(path: Path) -> None:
    """The shipped suites may add pytest and hypothesis, nothing else (no PIL, no server)."""
    source = path.read_text(encoding="utf-8")
    assert foreign_imports(source, ALLOWED_THIRD_PARTY | TEST_TOOLS) == []


def test_the_import_walk_flags_test_tools_outside_the_contract_suites() -> None:
    """pytest or hypothesis in any other core module is a foreign import."""
    assert foreign_imports("import pytest") == ["pytest"]
    assert foreign_imports("from hypothesis import given") == ["hypothesis"]


@pytest.mark.parametrize(
    ("source", "culprit"),
    [
        ("import PIL.Image", "PIL.Image"),
        ("from starlette.requests import Request", "starlette.requests"),
        ("def f():\n    import httpx2\n", "httpx2"),
        ("from google import genai", "google"),
        ("import json, fastmcp", "fastmcp"),
        ("try:\n    import numpy\nexcept ImportError:\n    pass\n", "numpy"),
        ("import importlib\nimportlib.import_module('PIL')", "dynamic import at line 2"),
        ("__import__('google')", "dynamic import at line 1"),
    ],
)
def test_the_import_walk_flags_foreign_imports(source: str, culprit: str) -> None:
    """The checker itself catches forbidden imports, even nested or dynamic ones."""
    assert culprit in foreign_imports(source)


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "import json, uuid, decimal",
        "from collections.abc import Mapping",
        "import attrs\nimport attr\nimport cattrs",
        "from cattrs.preconf.json import make_converter",
        "from image_core.domain import Generation",
        "from . import domain\nfrom .errors import StorageError",
    ],
)
def test_the_import_walk_accepts_what_the_core_may_use(source: str) -> None:
    """Standard library, attrs, cattrs and image_core pass."""
    assert foreign_imports(source) == []


def modules_loaded_by(probe: str) -> set[str]:
    """Run ``probe`` in a fresh interpreter; the module names it prints as JSON."""
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return set(json.loads(completed.stdout))


def test_image_core_imports_without_the_test_tools_installed() -> None:
    """With pytest and hypothesis unimportable, every module but the contracts loads."""
    probe = textwrap.dedent(
        """
        import importlib, importlib.abc, json, pkgutil, sys

        class NoTestTools(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"pytest", "_pytest", "hypothesis"}:
                    raise ModuleNotFoundError(f"No module named {name!r}")
                return None

        sys.meta_path.insert(0, NoTestTools())
        import image_core
        for info in pkgutil.walk_packages(image_core.__path__, "image_core."):
            if not info.name.startswith("image_core.contracts"):
                importlib.import_module(info.name)
        print(json.dumps(sorted(sys.modules)))
        """
    )
    loaded = modules_loaded_by(probe)
    assert {"image_core.service", "image_core.testing", "image_core.serialization"} <= loaded
    assert not any(m.split(".")[0] in TEST_TOOLS for m in loaded)


def test_importing_image_core_loads_no_framework() -> None:
    """A fresh interpreter that imports every core module has no framework in sys.modules."""
    probe = textwrap.dedent(
        """
        import importlib, json, pkgutil, sys
        import image_core
        for info in pkgutil.walk_packages(image_core.__path__, "image_core."):
            importlib.import_module(info.name)
        print(json.dumps(sorted(sys.modules)))
        """
    )
    loaded = modules_loaded_by(probe)
    assert {"image_core.service", "image_core.testing", "attrs", "cattrs"} <= loaded
    offenders = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN_AT_RUNTIME)
    assert offenders == []


DEPLOYMENT_WORDS = ("IMG_", "Google account", "/i/")


def test_the_core_says_nothing_of_the_deployment_in_its_strings() -> None:
    """No variable name, identity provider or URL shape in image_core's messages.

    Docstrings may explain the shell's use of a value; every other string literal (the
    messages people read) speaks domain words, and the shell adds its hints.
    """
    core = ROOT / "packages" / "image_core" / "src" / "image_core"
    found = []
    for path in sorted(core.rglob("*.py")):
        if "contracts" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        strings = [
            (node.lineno, node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ]
        found += [
            f"{path.name}:{line}: {text[:60]!r}"
            for line, text in strings
            if any(word in text for word in DEPLOYMENT_WORDS)
        ]
    assert found == []
