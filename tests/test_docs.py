"""The documentation builds without warnings, and its code examples run.

The build renders the gallery without executing the examples
(``-D plot_gallery=0``): tests/test_examples.py runs them already, and running
them twice would double the time. The README's command builds the full
gallery.
"""

import doctest
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib
import pytest
from sklearn.exceptions import ConvergenceWarning

import skorchlite

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(
    path
    for path in DOCS.rglob("*.rst")
    if not {"_build", "auto_examples", "generated", "_templates"} & set(path.parts)
    and path.name != "sg_execution_times.rst"
)
BUILD_COMMAND = "python -m sphinx -W -b html docs docs/_build/html"


def _build_html(root):
    """Build the site from a copy of docs/ and examples/ under ``root``, so that
    the files sphinx-gallery and autosummary generate stay out of the source
    tree; return the HTML directory."""
    generated = shutil.ignore_patterns(
        "_build", "auto_examples", "generated", "sg_execution_times.rst", "output"
    )
    shutil.copytree(DOCS, root / "docs", ignore=generated)
    shutil.copytree(ROOT / "examples", root / "examples", ignore=generated)
    out = root / "html"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-D",
            "plot_gallery=0",
            "-d",
            str(root / "doctrees"),
            str(root / "docs"),
            str(out),
        ],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "MPLBACKEND": "Agg",
            "SKORCHLITE_EXAMPLE_OUTPUT": str(root / "figures"),
        },
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return out


# One test, so that pytest-xdist never builds the site twice.
def test_docs_build_without_warnings(tmp_path):
    for module in ("sphinx_gallery", "numpydoc", "pydata_sphinx_theme"):
        pytest.importorskip(module, reason="the docs extra is not installed")
    html = _build_html(tmp_path)

    for page in ["index", "getting_started", "api", "user_guide/index"]:
        assert (html / f"{page}.html").is_file(), page

    # every user-guide page is built (sphinx -W also fails on one in no toctree)
    for page in (DOCS / "user_guide").glob("*.rst"):
        assert (html / "user_guide" / f"{page.stem}.html").is_file(), page.name

    # the API reference documents every public name, through numpydoc
    for name in skorchlite.__all__:
        if name == "__version__":
            continue
        page = html / "generated" / f"skorchlite.{name}.html"
        assert page.is_file(), f"{name} is missing from docs/api.rst"
        assert "Parameters" in page.read_text(encoding="utf-8"), name

    # the gallery lists every example
    index = (html / "auto_examples" / "index.html").read_text(encoding="utf-8")
    for script in (ROOT / "examples").glob("plot_*.py"):
        assert (html / "auto_examples" / f"{script.stem}.html").is_file()
        assert f"{script.stem}.html" in index


def test_readme_gives_the_docs_build_command():
    assert BUILD_COMMAND in (ROOT / "README.md").read_text(encoding="utf-8")
    assert BUILD_COMMAND in (DOCS / "conf.py").read_text(encoding="utf-8")


@pytest.mark.parametrize("page", PAGES, ids=lambda path: str(path.relative_to(DOCS)))
def test_page_code_examples_run(page):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        warnings.simplefilter("error", UserWarning)
        result = doctest.testfile(
            str(page),
            module_relative=False,
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
            raise_on_error=False,
            verbose=False,
        )
    assert result.failed == 0, f"{result.failed} failing examples in {page.name}"
