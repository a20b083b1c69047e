"""The documentation builds without warnings, and its code examples run.

The build renders the gallery without executing the examples
(``-D plot_gallery=0``): tests/test_examples.py runs them already, and running
them twice would double the time. The README's command builds the full
gallery.
"""

import doctest
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning

import skorchlite
from skorchlite._engine.activations import ACTIVATIONS
from skorchlite._engine.solvers import SOLVERS

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
            "SKORCHLITE_DOCS_OFFLINE": "1",  # no intersphinx inventories
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
        # numpydoc rendered its sections (a function without parameters has
        # none of those, but raises or returns)
        text = page.read_text(encoding="utf-8")
        assert any(section in text for section in ("Parameters", "Raises")), name

    # the gallery lists every example
    index = (html / "auto_examples" / "index.html").read_text(encoding="utf-8")
    for script in (ROOT / "examples").glob("plot_*.py"):
        assert (html / "auto_examples" / f"{script.stem}.html").is_file()
        assert f"{script.stem}.html" in index


def test_readme_gives_the_docs_build_command():
    assert BUILD_COMMAND in (ROOT / "README.md").read_text(encoding="utf-8")
    assert BUILD_COMMAND in (DOCS / "conf.py").read_text(encoding="utf-8")


# ``.. code-block:: python`` blocks that are not doctests (no ``>>>``) run too,
# as one example each, in document order with the page's doctests and in the
# same namespace. Names the blocks take as given (``X_train``, ``clf``, ...)
# come from the page's setup below. A block whose last lines are a comment
# like ``# ValueError: message`` must raise that error with that message.
# Blocks show no output, so a ConvergenceWarning (their max_iter are
# illustrations) is no failure there; in doctests, which show it, it is.
CODE_BLOCK = re.compile(
    r"^\.\. code-block:: python[ \t]*\n((?:[ \t]*\n|[ \t]+\S[^\n]*\n)+)", re.M
)
EXPECTED_ERROR = re.compile(r"((?:^# [^\n]*\n?)+)\Z", re.M)

MOONS = """
from sklearn.datasets import make_moons
from sklearn.model_selection import train_test_split
X, y = make_moons(300, noise=0.1, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
"""
SETUP = {
    "index.rst": MOONS,
    # 100 training rows keep the (256, 256) network of the page on one thread.
    "user_guide/devices.rst": MOONS
    + "X_train, X_test, y_train, y_test = train_test_split(\n"
    + "    X, y, train_size=100, random_state=0\n)\n",
    "user_guide/dask.rst": MOONS,
    "user_guide/persistence.rst": MOONS
    + """
from skorchlite import TorchMLPClassifier
clf = TorchMLPClassifier((8,), solver="lbfgs", random_state=0).fit(X, y)
X_huge = np.tile(X, (20, 1))
""",
}
# The own-module page defines its modules inline, standing for a module of the
# reader's, ``mynets.py``: pickle and skops refer to a class by its import
# path, so while the page runs its namespace is importable under that name.
SETUP["user_guide/own_module.rst"] = (
    MOONS
    + """
import sys
import types

class _PageModule(types.ModuleType):
    def __getattr__(self, name):
        try:
            return _page_namespace[name]
        except KeyError:
            raise AttributeError(name) from None

_page_namespace = globals()
sys.modules["mynets"] = _PageModule("mynets")
__name__ = "mynets"
"""
)
# mlflow warns about its own type hints when first imported: not the page's.
SETUP["user_guide/deploying.rst"] = "import mlflow.pyfunc\n"
TEARDOWN = {
    "user_guide/dask.rst": "client.close()\ncluster.close()",
    "user_guide/own_module.rst": 'sys.modules.pop("mynets")',
}
# Blocks that cannot run on every machine: (page, block number) -> reason.
SKIP_BLOCKS = {
    ("user_guide/devices.rst", 1): torch.cuda.is_available()
    and "shows the error of a machine without a GPU",
    ("user_guide/dask.rst", 3): (
        importlib.util.find_spec("ray") is None
        or importlib.util.find_spec("joblibspark") is None
    )
    and "needs ray and joblibspark (a Spark cluster)",
}


def _page_examples(page):
    """The page's doctest examples and code blocks, in document order.

    Returns the examples and the number of code blocks among them.
    """
    name = str(page.relative_to(DOCS))
    text = page.read_text(encoding="utf-8")
    line_starts = [0]
    for line in text.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    examples = [
        (line_starts[example.lineno], example)
        for example in doctest.DocTestParser().get_examples(text, name)
    ]
    blocks = [
        match for match in CODE_BLOCK.finditer(text) if ">>>" not in match.group(1)
    ]
    for number, match in enumerate(blocks):
        code = textwrap.dedent(match.group(1)).strip() + "\n"
        error = EXPECTED_ERROR.search(code)
        exc_msg = None
        if error and re.match(r"# \w+(Error|Exception): ", error.group(1)):
            lines = error.group(1).splitlines()
            exc_msg = " ".join(line[2:].strip() for line in lines) + "\n"
        example = doctest.Example(
            f"_run_block({code!r}, {f'{name}, block {number}'!r}, globals())\n",
            "Traceback (most recent call last):\n" if exc_msg else "",
            exc_msg=exc_msg,
            lineno=text.count("\n", 0, match.start()),
            options={doctest.SKIP: True} if SKIP_BLOCKS.get((name, number)) else {},
        )
        examples.append((match.start(), example))
    examples.sort(key=lambda item: item[0])
    return [example for _, example in examples], len(blocks)


def _claims_examples(page):
    text = page.read_text(encoding="utf-8")
    return ">>>" in text or CODE_BLOCK.search(text) is not None


PAGES_WITH_EXAMPLES = [page for page in PAGES if _claims_examples(page)]


def test_pages_without_examples_are_the_expected_ones():
    # A page that gains an example is tested below, automatically; this list
    # only keeps the parametrization below from shrinking unnoticed.
    without = sorted(
        str(page.relative_to(DOCS)) for page in PAGES if not _claims_examples(page)
    )
    assert without == [
        "api.rst",
        "development.rst",
        "user_guide/index.rst",
        "user_guide/performance.rst",
    ]


@pytest.mark.parametrize(
    "page", PAGES_WITH_EXAMPLES, ids=lambda path: str(path.relative_to(DOCS))
)
def test_page_code_examples_run(page, tmp_path, monkeypatch):
    name = str(page.relative_to(DOCS))
    examples, n_blocks = _page_examples(page)
    n_doctests = len(examples) - n_blocks
    assert examples, f"{name} claims examples but none were found"
    if name == "user_guide/dask.rst":
        _in_process_cluster(monkeypatch)
        _serve_zarr_stores(monkeypatch)
    monkeypatch.chdir(tmp_path)  # files the examples write go there
    globs = {"np": np, "_run_block": _run_block}
    exec(SETUP.get(name, ""), globs)
    test = doctest.DocTest(examples, globs, name, str(page), 0, None)
    test.globs = globs  # not DocTest's copy: the namespace the setup ran in
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            warnings.simplefilter("error", UserWarning)
            runner.run(test, clear_globs=False)
    finally:
        exec(TEARDOWN.get(name, ""), test.globs)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} failing examples in {name}"
    # Every example ran: none skipped by a doctest directive, and only the
    # blocks SKIP_BLOCKS names for this machine.
    skipped = sum(
        bool(reason)
        for (page_name, _), reason in SKIP_BLOCKS.items()
        if page_name == name
    )
    assert result.attempted == n_doctests + n_blocks - skipped > 0


def _run_block(code, filename, globs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        exec(compile(code, filename, "exec"), globs)


def _in_process_cluster(monkeypatch):
    """The dask page's cluster, with its workers in this process: four worker
    processes would each import torch again (seconds each, on two cores). Its
    dashboard takes a free port: 8787 may be another cluster's (a warning)."""
    distributed = pytest.importorskip("distributed")
    real = distributed.LocalCluster

    def in_process(*args, **kwargs):
        return real(*args, **{**kwargs, "processes": False, "dashboard_address": ":0"})

    monkeypatch.setattr(distributed, "LocalCluster", in_process)


def _serve_zarr_stores(monkeypatch):
    """The dask page reads its data with ``da.from_zarr``; zarr is no
    dependency of ours, so the test serves those stores from memory: a few
    blocks of 10-class data."""
    da = pytest.importorskip("dask.array")
    X, y = make_classification(
        600, n_features=8, n_informative=6, n_classes=10, random_state=0
    )
    stores = {
        "features.zarr": da.from_array(X, chunks=(150, 8)),
        "labels.zarr": da.from_array(y, chunks=150),
    }
    monkeypatch.setattr(da, "from_zarr", lambda path, *a, **k: stores[path])


# A measured quantity: a time, a throughput, a memory size, a speed-up ("5.3x",
# "400 times slower") or a measured percentage ("83.5%"); not a default
# ("10%"), a count ("3 times") or a formula ("6 x rows").
MEASUREMENT = re.compile(
    r"(?<![\w.])(?:\d[\d,.]*(?:\s?(?:s|ms|µs|us|seconds?|GFLOPS?|GFLOP|MB)(?!\w)"
    r"|x(?!\w)|\s?times (?:slower|faster))|\d+\.\d+\s?%)"
)


def test_benchmark_tables_are_rendered_from_the_results_files():
    # Every table of measurements in the docs is a section of a results file
    # that a script of benchmarks/ wrote, rendered with the command that wrote it.
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import render_docs
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    fragments = render_docs.render()
    for path, text in fragments.items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name} differs from its results file: run "
            "python benchmarks/run.py --docs"
        )
        assert re.search(r"Measured with ``python benchmarks/\w+\.py", text)
    included = {
        (page.parent / name).resolve()
        for page in PAGES
        for name in re.findall(r"^\.\. include:: (\S+)", page.read_text(), re.M)
    }
    assert {path.resolve() for path in fragments} <= included


def test_docs_type_no_measurement_by_hand():
    # Numbers measured on a machine come from the included fragments above;
    # the prose around them quotes none.
    typed = []
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            if line.lstrip().startswith((">>>", "...")):
                continue
            typed += [
                f"{page.relative_to(DOCS)}:{number}: {m}"
                for m in MEASUREMENT.findall(line)
            ]
    assert typed == []


def _pyproject():
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_getting_started_names_the_torch_version_and_extras_of_pyproject():
    project = _pyproject()["project"]
    torch_floor = next(
        d.split(">=")[1].split(",")[0].split()[0].strip('"')
        for d in project["dependencies"]
        if d.startswith("torch")
    )
    page = (ROOT / "docs" / "getting_started.rst").read_text()
    assert f"PyTorch {torch_floor} or newer" in page
    extras = set(project["optional-dependencies"]) - {"test"}
    listed = set(re.findall(r"``(\w+)``\s+\(", page.split("Optional extras:")[1]))
    assert listed == extras


def test_readme_examples_table_lists_every_example():
    readme = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"^\| `(plot_\w+\.py)` \|", readme, flags=re.M))
    assert listed == {path.name for path in (ROOT / "examples").glob("plot_*.py")}


# ------------------------------------------------ docs generated or checked
# against the registries

ESTIMATORS = [skorchlite.TorchMLPClassifier, skorchlite.TorchMLPRegressor]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_estimator_docstrings_are_valid_numpydoc(estimator):
    # _docstrings assembles them: numpydoc's validation (every check) and
    # scikit-learn's own parameter check see a plain, complete docstring.
    validate = pytest.importorskip("numpydoc.validate", reason="no docs extra")
    from sklearn.utils._testing import check_docstring_parameters

    assert validate.validate(f"skorchlite.{estimator.__name__}")["errors"] == []
    assert check_docstring_parameters(estimator) == []
    assert "%(" not in estimator.__doc__


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize(
    "parameter, registry", [("solver", SOLVERS), ("activation", ACTIVATIONS)]
)
def test_estimator_docstrings_list_the_registry(estimator, parameter, registry):
    from numpydoc.docscrape import ClassDoc

    (entry,) = [p for p in ClassDoc(estimator)["Parameters"] if p.name == parameter]
    options = entry.type.split("}")[0] + "}"
    assert options == "{" + ", ".join(f'"{name}"' for name in registry) + "}"
    description = " ".join(" ".join(entry.desc).split())
    for name, option in registry.items():
        assert option.doc and option.doc.endswith("."), name
        assert f'``"{name}"``: {option.doc}' in description, name


def test_a_parameter_without_an_entry_fails_at_class_definition():
    import inspect

    from skorchlite._docstrings import PARAMETERS, _names, assemble

    class Estimator:
        """Summary.

        Parameters
        ----------
        %(shared_parameters)s
        """

    names = [name for header in PARAMETERS for name in _names(header)]
    Estimator.__signature__ = inspect.Signature(
        [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY)
            for name in [*names, "undocumented"]
        ]
    )
    with pytest.raises(ValueError, match=r"without an entry: \['undocumented'\]"):
        assemble(sklearn="MLPClassifier")(Estimator)


# A hand-typed list of registry names in README.md or a page follows a marker,
# ``.. registry: SELECTION[; SELECTION]`` in reST, ``<!-- registry: ... -->``
# in Markdown, which names the selections the next paragraph (up to a blank
# line) lists. The names of a registry that the paragraph quotes (``"relu"``,
# ``adamw``, `"gelu"`) are its list, and must be the selection, in registry
# order: a new entry fails here, by page and selection, until the docs name it.
def _sklearn_options(parameter):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier._parameter_constraints[parameter][0].options


REGISTRY_SELECTIONS = {
    "solvers": (SOLVERS, lambda name, solver: True),
    "stochastic solvers": (
        SOLVERS,
        lambda name, solver: solver.partial_fit_error() is None,
    ),
    "solvers without a stacked update": (
        SOLVERS,
        lambda name, solver: solver.stack_error() is not None,
    ),
    "solvers beyond MLPClassifier": (
        SOLVERS,
        lambda name, solver: name not in _sklearn_options("solver"),
    ),
    "activations": (ACTIVATIONS, lambda name, activation: True),
    "activations beyond MLPClassifier": (
        ACTIVATIONS,
        lambda name, activation: name not in _sklearn_options("activation"),
    ),
}
REGISTRY_MARKER = re.compile(r"^(?:\.\. |<!-- )registry: (.+?)(?: -->)?[ \t]*$")
QUOTED_NAME = re.compile(r"""[`"']([a-z][a-z0-9_]*)[`"']""")


def _registry_lists():
    """(place, selection, the names its paragraph quotes) for every marker."""
    found = []
    for path in [ROOT / "README.md", *PAGES]:
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            marker = REGISTRY_MARKER.match(line)
            if not marker:
                continue
            rest = lines[number + 1 :]
            while rest and not rest[0].strip():
                rest = rest[1:]
            end = next((i for i, text in enumerate(rest) if not text.strip()), None)
            paragraph = "\n".join(rest[:end])
            place = f"{path.relative_to(ROOT)}:{number + 1}"
            for selection in marker.group(1).split(";"):
                found.append((place, selection.strip(), paragraph))
    return found


REGISTRY_LISTS = _registry_lists()


def test_the_docs_mark_their_registry_lists():
    # The places below hand-type lists of registry names; this keeps the
    # parametrization below from shrinking unnoticed (a marker dropped in an
    # edit). A new place is one more marker and one more line here.
    places = sorted(
        (place.split(":")[0], selection) for place, selection, _ in REGISTRY_LISTS
    )
    assert places == sorted(
        [
            ("README.md", "solvers beyond MLPClassifier"),
            ("README.md", "activations beyond MLPClassifier"),
            ("docs/getting_started.rst", "solvers beyond MLPClassifier"),
            ("docs/getting_started.rst", "activations beyond MLPClassifier"),
            ("docs/user_guide/differences.rst", "solvers beyond MLPClassifier"),
            ("docs/user_guide/differences.rst", "activations beyond MLPClassifier"),
            ("docs/user_guide/batched_search.rst", "solvers without a stacked update"),
            ("docs/user_guide/dask.rst", "stochastic solvers"),
        ]
    )


@pytest.mark.parametrize(
    "place, selection, paragraph",
    REGISTRY_LISTS,
    ids=[f"{place.split(':')[0]}-{sel}" for place, sel, _ in REGISTRY_LISTS],
)
def test_registry_lists_in_the_docs_are_the_registry(place, selection, paragraph):
    assert selection in REGISTRY_SELECTIONS, f"{place}: unknown {selection!r}"
    registry, keep = REGISTRY_SELECTIONS[selection]
    expected = [name for name, entry in registry.items() if keep(name, entry)]
    quoted = QUOTED_NAME.findall(paragraph)
    listed = list(dict.fromkeys(name for name in quoted if name in registry))
    assert listed == expected, f"{place} lists the {selection} as {listed}"
