"""Time two revisions of skorchlite against each other in one run, alternating.

Run ``python benchmarks/compare.py BEFORE_REV AFTER_REV`` (``--quick``: the
scripts' quick modes, 3 turns; ``--only run`` or ``--only batched``: one of the
two benchmarks; ``--turns N``; ``--output PATH``, by default
``benchmarks/results_compare.md``).

Each revision is checked out into a temporary ``git worktree`` (removed at the
end). Turn by turn, the benchmark scripts of *this* tree (``run.py`` and
``batched_search.py``, copied at the start) run once against each checkout: the
same interpreter, with ``PYTHONPATH`` set to the checkout, so that only the
package differs, and each writes its seconds per configuration with ``--json``.
The order alternates (before then after, after then before, ...) so that
neither revision always runs first on a machine whose speed drifts. Ratios
after/before are taken turn by turn, and the table gives their median and
range. The other libraries' times (scikit-learn's, skorch's) do not depend on
the revision: their ratios show this run's noise floor, and comparing a
revision with itself shows it for ours.
"""

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCHMARKS = {"run": "run.py", "batched": "batched_search.py"}
SNAPSHOT_SKIPS = shutil.ignore_patterns("*.md", "__pycache__")


def git(*args):
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def package_env(checkout):
    """The environment that imports skorchlite from ``checkout``, checked."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    spec = "import importlib.util as u; print(u.find_spec('skorchlite').origin)"
    origin = subprocess.run(
        [sys.executable, "-c", spec],
        env=env,
        cwd=checkout,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not origin.startswith(str(checkout)):
        sys.exit(f"PYTHONPATH={checkout} imports skorchlite from {origin or 'nowhere'}")
    return env


def benchmark_once(script, quick, checkout, folder, name):
    """Run ``script`` against the package in ``checkout``: ``{configuration:
    {side: seconds}}``, plus the whole process's wall time."""
    out = folder / name
    command = [sys.executable, str(script), "--output", f"{out}.md"]
    command += ["--json", f"{out}.json"] + (["--quick"] if quick else [])
    env = package_env(checkout)
    start = time.perf_counter()
    with open(f"{out}.log", "w") as log:
        done = subprocess.run(command, env=env, cwd=checkout, stdout=log, stderr=log)
    seconds = time.perf_counter() - start
    if done.returncode:
        tail = Path(f"{out}.log").read_text().splitlines()[-20:]
        sys.exit(f"{shlex.join(command)} failed:\n" + "\n".join(tail))
    times = json.loads(Path(f"{out}.json").read_text())["times"]
    return {**times, "whole process": {"process": seconds}}


def ratios(before, after):
    """``{configuration: {side: (before s, after s, median ratio, min, max)}}``
    from one ``{configuration: {side: seconds}}`` per turn and revision; the
    seconds are medians over the turns, the ratios after/before turn by turn."""
    summary = {}
    for config, sides in before[0].items():
        for side in sides:
            pairs = [
                (b[config][side], a[config][side])
                for b, a in zip(before, after, strict=True)
            ]
            turn_ratios = [a / b for b, a in pairs]
            summary.setdefault(config, {})[side] = (
                statistics.median(b for b, _ in pairs),
                statistics.median(a for _, a in pairs),
                statistics.median(turn_ratios),
                min(turn_ratios),
                max(turn_ratios),
            )
    return summary


def table(results):
    lines = [
        "| benchmark | configuration | side | before s | after s "
        "| after / before | range over turns |",
        "|---|---|---|---|---|---|---|",
    ]
    for benchmark, summary in results.items():
        for config, sides in summary.items():
            for side, (before, after, ratio, low, high) in sides.items():
                lines.append(
                    f"| {benchmark} | {config} | {side} | {before:.4g} | {after:.4g} "
                    f"| {ratio:.3f} | {low:.3f}-{high:.3f} |"
                )
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=sorted(BENCHMARKS))
    parser.add_argument("--turns", type=int, default=None, help="3 (--quick) or 5")
    parser.add_argument("--output", type=Path, default=HERE / "results_compare.md")
    args = parser.parse_args()
    turns = args.turns or (3 if args.quick else 5)
    benchmarks = [args.only] if args.only else list(BENCHMARKS)
    load = os.getloadavg()[0]
    revisions = {"before": args.before, "after": args.after}
    commits = {
        which: git("rev-parse", "--short", rev) for which, rev in revisions.items()
    }
    runs = {(b, which): [] for b in benchmarks for which in revisions}
    with tempfile.TemporaryDirectory(prefix="skorchlite-compare-") as temp:
        folder = Path(temp)
        # The scripts as they are now: editing the tree during the run changes
        # neither revision's benchmark.
        scripts = shutil.copytree(HERE, folder / "benchmarks", ignore=SNAPSHOT_SKIPS)
        checkouts = {which: folder / which for which in revisions}
        try:
            for which, path in checkouts.items():
                git("worktree", "add", "--detach", str(path), revisions[which])
            for turn in range(turns):
                order = list(revisions) if turn % 2 == 0 else list(revisions)[::-1]
                for benchmark in benchmarks:
                    for which in order:
                        print(
                            f"turn {turn + 1}/{turns}: {benchmark}, {which}",
                            file=sys.stderr,
                        )
                        runs[benchmark, which].append(
                            benchmark_once(
                                scripts / BENCHMARKS[benchmark],
                                args.quick,
                                checkouts[which],
                                folder,
                                f"{benchmark}-{which}-{turn}",
                            )
                        )
        finally:
            for path in checkouts.values():
                if path.exists():
                    git("worktree", "remove", "--force", str(path))
            git("worktree", "prune")
    results = {b: ratios(runs[b, "before"], runs[b, "after"]) for b in benchmarks}
    command = " ".join(
        ["python benchmarks/compare.py", *map(shlex.quote, sys.argv[1:])]
    )
    text = "\n".join(
        [
            f"Command: `{command}`",
            "",
            f"Before: {args.before} ({commits['before']}); after: {args.after} "
            f"({commits['after']}); {turns} turns, alternating; load average "
            f"{load:.1f} at start.",
            "",
            "### After / before",
            "",
            "Seconds are medians over the turns; after / before is the median of "
            "the turns' ratios. Only ours depends on the revision: the other "
            "libraries' ratios show the run's noise.",
            "",
            *table(results),
        ]
    )
    print(text)
    args.output.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
