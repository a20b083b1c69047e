"""benchmarks/compare.py's ratios: after/before turn by turn, then the median."""

import pytest


@pytest.fixture(scope="module")
def compare(import_benchmark):
    return import_benchmark("compare")


def test_ratios_are_medians_of_each_turns_ratio(compare):
    before = [{"fit": {"ours": 1.0, "sklearn": 2.0}} for _ in range(3)]
    after = [{"fit": {"ours": s, "sklearn": 2.0}} for s in (0.5, 2.0, 0.6)]
    # A slow turn of "after" (2.0) moves neither the median ratio nor the
    # median seconds; the sides whose time did not change read 1.
    assert compare.ratios(before, after) == {
        "fit": {"ours": (1.0, 0.6, 0.6, 0.5, 2.0), "sklearn": (2.0, 2.0, 1.0, 1.0, 1.0)}
    }


def test_ratios_pair_the_turns(compare):
    # The machine is twice as slow in the second turn: pairing each turn's
    # runs keeps the ratio at 0.5, where the ratio of the medians would not.
    before = [{"fit": {"ours": s}} for s in (1.0, 2.0, 2.0)]
    after = [{"fit": {"ours": s}} for s in (0.5, 1.0, 0.5)]
    (_, _, ratio, low, high) = compare.ratios(before, after)["fit"]["ours"]
    assert (ratio, low, high) == (0.5, 0.25, 0.5)
