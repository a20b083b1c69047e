"""benchmarks/gpu_check.py stays runnable where no GPU is: it skips the CUDA
checks with their reason, and its checks pass when run on the CPU instead."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPT = BENCHMARKS / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check(import_benchmark):
    return import_benchmark("gpu_check")


def _statuses(output):
    """{check name: (status, detail)} from the script's progress lines."""
    found = re.findall(r"^(PASS|FAIL|SKIP)  ([^:]+): (.*) \([\d.]+ s\)$", output, re.M)
    return {name: (status, detail) for status, name, detail in found}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_every_cuda_check_is_skipped_with_its_reason(gpu_check, tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    statuses = _statuses(done.stdout)
    names = [name for name, _ in gpu_check.CHECKS]
    assert list(statuses) == names
    for name in names:
        status, detail = statuses[name]
        if name in gpu_check.WITHOUT_DEVICE:
            assert status == "PASS"
            assert "CUDA column skipped: CUDA is not available" in detail
        else:
            assert (status, detail) == ("SKIP", gpu_check.cuda_missing())
    assert re.search(r"^gpu_check: 1 PASS, 0 FAIL, \d+ SKIP", done.stdout, re.M)
    report = (tmp_path / "gpu_check.md").read_text(encoding="utf-8")
    assert "| timing | PASS |" in report
    assert "| skorchlite CPU | skorchlite CUDA |" in report


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_require_cuda_makes_a_missing_gpu_a_failure(gpu_check, tmp_path, capsys):
    # No timing: only the verdict matters here.
    code = gpu_check.main(
        ["--quick", "--require-cuda", "--out", str(tmp_path), "--budget", "0"]
    )
    assert code == 1
    status, detail = _statuses(capsys.readouterr().out)["cuda"]
    assert status == "FAIL" and detail.startswith("--require-cuda: CUDA is not")


def test_every_check_passes_when_run_on_the_cpu(gpu_check, tmp_path, capsys):
    # The CUDA code paths of the checks, with device="cpu": what can be tested
    # of them before a GPU runs them. The suite's own device tests run in it.
    code = gpu_check.main(
        ["--quick", "--device", "cpu", "--out", str(tmp_path), "--tests"]
    )
    output = capsys.readouterr().out
    assert code == 0, output
    statuses = _statuses(output)
    assert statuses.pop("device tests") == (
        "SKIP",
        "no device tests selected (--tests)",
    )
    assert {status for status, _ in statuses.values()} == {"PASS"}, statuses
    assert "CPU-only load" in statuses  # the child process without a GPU ran


def test_the_device_tests_exist(gpu_check):
    # A renamed test would leave the GPU machine's run a collection error.
    for node in gpu_check.DEVICE_TESTS:
        path, name = node.split("::")
        function = name.split("[")[0]
        source = (BENCHMARKS.parent / path).read_text(encoding="utf-8")
        assert re.search(rf"^def {function}\(", source, re.M), node
