"""The layers of the package, checked statically: the engine imports no
scikit-learn, and no module reaches into an estimator's private members."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "skorchlite"
ENGINE = sorted((PACKAGE / "_engine").glob("*.py"))
ESTIMATOR_MODULES = {"_base.py", "_module.py", "_classifier.py", "_regressor.py"}


def _imports(path):
    """Every module ``path`` imports, relative ones resolved in the package."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ["skorchlite", *path.relative_to(PACKAGE).parent.parts]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            found.append(".".join([*base, *([node.module] if node.module else [])]))
    return found


@pytest.mark.parametrize("path", ENGINE, ids=[p.name for p in ENGINE])
def test_the_engine_imports_no_sklearn_and_nothing_above_it(path):
    for module in _imports(path):
        assert not module.startswith("sklearn"), module
        if module.startswith("skorchlite."):
            # The engine, and the device helpers (torch only).
            assert module.startswith(("skorchlite._engine", "skorchlite._device")), (
                module
            )


def _private_members():
    """The private methods and attributes the estimators define."""
    names = set()
    for name in ESTIMATOR_MODULES:
        text = (PACKAGE / name).read_text(encoding="utf-8")
        names |= set(re.findall(r"def (_[a-z]\w*)\(self", text))
        names |= set(re.findall(r"self\.(_[a-z]\w*) =", text))
    return names


def test_no_module_uses_an_estimators_private_members():
    # Any ``x._name`` but ``self._name``, for the estimators' private names,
    # outside the estimators' own modules (strings and comments aside).
    names = _private_members()
    assert {"_fit_spec", "_target", "_solver_state"} <= names  # the check sees them
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name in ESTIMATOR_MODULES and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in names
                and not (isinstance(node.value, ast.Name) and node.value.id == "self")
            ):
                where = f"{path.relative_to(PACKAGE)}:{node.lineno}"
                pytest.fail(f"{where} uses the estimators' private .{node.attr}")
