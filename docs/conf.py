"""Sphinx configuration of the skorchlite documentation.

Build the full site, running every example for the gallery::

    python -m sphinx -W -b html docs docs/_build/html

Add ``-D plot_gallery=0`` to render the gallery without running the examples
(the test suite does that: the examples have their own tests).
"""

import os
import urllib.request
from pathlib import Path

import skorchlite

project = "skorchlite"
author = "the skorchlite developers"
copyright = "the skorchlite developers"
release = version = skorchlite.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
default_role = "literal"

# autodoc / autosummary / numpydoc
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# Links to the projects whose names the pages use. Builds without a network
# (the test suite) set SKORCHLITE_DOCS_OFFLINE=1: the inventories cannot be
# fetched there, which sphinx -W would turn into an error.
intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
    "torch": ("https://docs.pytorch.org/docs/stable", None),
}


def _online(url, timeout=3):
    try:
        with urllib.request.urlopen(f"{url}/objects.inv", timeout=timeout):
            return True
    except OSError:
        return False


if os.environ.get("SKORCHLITE_DOCS_OFFLINE") or not _online(
    intersphinx_mapping["python"][0]
):
    # Without a network the build still passes -W: links to other projects'
    # docs become plain text.
    print("skorchlite docs: no network, building without links to other docs")
    intersphinx_mapping = {}

# sphinx-gallery: examples/plot_*.py become auto_examples/.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    # The quickstart is shown on the getting-started page instead.
    "ignore_pattern": r"quickstart\.py",
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("skorchlite",),
    "backreferences_dir": "generated/backreferences",
    "download_all_examples": False,
    "remove_config_comments": True,
}

# HTML
html_theme = "pydata_sphinx_theme"
html_title = f"skorchlite {version}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path = []


def _skip_metadata_request_methods(app, what, name, obj, skip, options):
    # scikit-learn generates set_fit_request & co. on every estimator class;
    # their docstrings point into scikit-learn's own glossary.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def _example_output_in_the_build(app):
    # The figures the examples save themselves go next to the build's
    # doctrees, wherever the HTML goes, never into the source tree.
    os.environ.setdefault(
        "SKORCHLITE_EXAMPLE_OUTPUT", str(Path(app.doctreedir) / "example_output")
    )


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_request_methods)
    # Before sphinx-gallery runs the examples (also on builder-inited).
    app.connect("builder-inited", _example_output_in_the_build, priority=100)
