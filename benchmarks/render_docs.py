"""Render the documentation's benchmark tables from the results files.

The docs quote no measured number by hand: each table they show is a section
of a results file that ``benchmarks/run.py`` wrote, rendered here into an
reStructuredText fragment under ``docs/user_guide/_benchmarks/`` that the pages
include, with the command that produced it. ``python benchmarks/run.py --docs``
(or ``python benchmarks/render_docs.py``) renders them again; a full benchmark
run that writes into ``benchmarks/`` does so by itself, and the test suite
checks that the fragments match the results files.
"""

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FRAGMENTS = ROOT / "docs" / "user_guide" / "_benchmarks"

# fragment -> (results file, headings of the sections it shows)
SOURCES = {
    "first_fit.inc": ("results_machine.md", ["First fit in a fresh process"]),
    "batched_search.inc": (
        "results_batched_search.md",
        ["Batched-product peak", "Batched searches against scikit-learn"],
    ),
    "small_products.inc": (
        "results_machine.md",
        ["Small products with and without a second process"],
    ),
    "batched_products.inc": (
        "results_machine.md",
        ["Batched products", "Arithmetic of the batched digits search"],
    ),
    "compile.inc": ("results_machine.md", ["torch.compile of a training step"]),
    "regression.inc": (
        "results_regression.md",
        ["TorchMLPRegressor against MLPRegressor"],
    ),
    "cluster_search.inc": (
        "results_cluster_search.md",
        ["Batched search over joblib workers", "What a task ships"],
    ),
    "own_module.inc": (
        "results_own_module.md",
        [
            "TorchClassifier against skorch, single fits",
            "Time per step against a plain PyTorch loop",
            "BatchedGridSearchCV against GridSearchCV on skorch",
        ],
    ),
}


def parse(text):
    """The command, the machine and ``{heading: (note, header, rows)}``."""
    command = re.search(r"^Command: `([^`]+)`", text, re.M)
    machine = re.search(r"^Machine: (.+?)\.?$", text, re.M)
    sections = {}
    for block in re.split(r"^### ", text, flags=re.M)[1:]:
        heading, _, body = block.partition("\n")
        paragraphs = [p.strip() for p in body.strip().split("\n\n")]
        table = [p for p in paragraphs if p.startswith("|")]
        note = " ".join(p for p in paragraphs if not p.startswith("|"))
        rows = [
            [cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in table[0].splitlines()
            if not re.fullmatch(r"\|(-+\|)+", line.strip())
        ]
        sections[heading.strip()] = (note, rows[0], rows[1:])
    return (
        command.group(1) if command else None,
        machine.group(1) if machine else None,
        sections,
    )


def _cell(text):
    # Python reprs (best params) read as code, and their underscores must not
    # turn into reST references.
    return f"``{text}``" if text.startswith("{") else text


def _list_table(header, rows):
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {_cell(row[0])}")
        lines += [f"     - {_cell(cell)}" for cell in row[1:]]
    return lines


def render_fragment(results_name, headings, results_dir=HERE):
    text = (results_dir / results_name).read_text(encoding="utf-8")
    command, machine, sections = parse(text)
    if command is None:
        raise ValueError(f"{results_name} does not say which command wrote it")
    lines = [
        f".. Generated from benchmarks/{results_name} by "
        "``python benchmarks/run.py --docs``; do not edit.",
        "",
        f"Measured with ``{command}`` (``benchmarks/{results_name}``) on {machine}.",
    ]
    for wanted in headings:
        matches = [name for name in sections if name.startswith(wanted)]
        if len(matches) != 1:
            raise ValueError(f"{results_name} has no single section {wanted!r}")
        note, header, rows = sections[matches[0]]
        lines += ["", f"**{matches[0]}.** {note}".rstrip(), ""]
        lines += _list_table(header, rows)
    return "\n".join(lines) + "\n"


def render(results_dir=HERE):
    """``{fragment path: text}`` for every fragment."""
    return {
        FRAGMENTS / name: render_fragment(results, headings, results_dir)
        for name, (results, headings) in SOURCES.items()
    }


def main():
    FRAGMENTS.mkdir(parents=True, exist_ok=True)
    written = []
    for path, text in render().items():
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in main():
        print(f"wrote {path.relative_to(ROOT)}")
