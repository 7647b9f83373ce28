"""Stopping rules."""

import doctest

from rlvr import stopping
from rlvr.stopping import converged, reached_target, wilson_lower_bound


def test_doctests():
    assert doctest.testmod(stopping).failed == 0


def test_more_evidence_raises_the_lower_bound():
    assert wilson_lower_bound(9, 10, 0.9) < wilson_lower_bound(90, 100, 0.9) < 0.9
    assert wilson_lower_bound(0, 0, 0.9) == 0.0


def test_target_needs_the_whole_window_not_a_lucky_step():
    assert not reached_target([0, 0, 16], [16, 16, 16], target=0.5, window=3, confidence=0.9)
    assert reached_target([16, 16, 16], [16, 16, 16], target=0.5, window=3, confidence=0.9)


def test_converged_compares_consecutive_windows():
    assert not converged([0.5] * 3, window=2, threshold=0.1)
    assert converged([0.5] * 4, window=2, threshold=0.1)
