"""Bootstrap intervals and paired tests: seeded, reproducible, and right on cases with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from xnorm.eval.stats import approximate_randomization, bootstrap_ci, bootstrap_means, format_p, paired_bootstrap


def test_bootstrap_is_reproducible_with_a_seed():
    rng = np.random.default_rng(42)
    hits = (rng.random(300) < 0.7).astype(float)
    a = bootstrap_ci(hits, n_resamples=500, seed=7)
    b = bootstrap_ci(hits, n_resamples=500, seed=7)
    c = bootstrap_ci(hits, n_resamples=500, seed=8)
    assert a == b
    assert a != c
    low, high = a
    assert low < hits.mean() < high
    # Normal approximation of the interval of a proportion: the bootstrap lands close to it.
    se = np.sqrt(hits.mean() * (1 - hits.mean()) / len(hits))
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.2)


def test_bootstrap_resamples_rows_as_documented():
    values = np.arange(10, dtype=float)
    means = bootstrap_means(values, n_resamples=5, seed=1)
    idx = np.random.default_rng(1).integers(0, 10, size=(5, 10))
    assert means == pytest.approx(values[idx].mean(axis=1), abs=1e-12)


def test_bootstrap_columns_share_resamples_and_constant_columns_have_zero_width():
    values = np.stack([np.ones(50), np.r_[np.ones(25), np.zeros(25)]], axis=1)
    low, high = bootstrap_ci(values, n_resamples=300, seed=0)
    assert low[0] == high[0] == 1.0
    assert low[1] < 0.5 < high[1]
    # More resamples than one chunk gives the same distribution shape ([B, m]).
    assert bootstrap_means(values, n_resamples=600, seed=0).shape == (600, 2)
    with pytest.raises(ValueError):
        bootstrap_ci(np.array([]), n_resamples=10)


def test_paired_tests_identical_runs():
    a = (np.random.default_rng(0).random(100) < 0.5).astype(float)
    for test in (paired_bootstrap(a, a.copy(), 500, seed=1), approximate_randomization(a, a.copy(), 500, seed=1)):
        assert test.delta == 0.0
        assert test.p_value == 1.0


def test_paired_tests_clear_difference():
    a = np.zeros(60)
    b = np.ones(60)
    boot = paired_bootstrap(a, b, 999, seed=0)
    ar = approximate_randomization(a, b, 999, seed=0)
    assert boot.delta == ar.delta == 1.0
    assert boot.p_value == ar.p_value == pytest.approx(1 / 1000)
    assert boot.ci_low == boot.ci_high == 1.0
    # In a table: the smallest p 10,000 shuffles can give is not shown as "0.000".
    assert format_p(approximate_randomization(a, b, 10_000).p_value) == "< 0.001" and format_p(0.2304) == "0.230"


def test_approximate_randomization_known_distribution():
    # Two items, both improved by 1: sign flips give means 1, 0, 0, -1, so P(|mean| >= 1) = 1/2.
    test = approximate_randomization(np.zeros(2), np.ones(2), 4000, seed=5)
    assert test.p_value == pytest.approx(0.5, abs=0.03)
    assert test == approximate_randomization(np.zeros(2), np.ones(2), 4000, seed=5)
    with pytest.raises(ValueError):
        approximate_randomization(np.zeros(2), np.ones(3))
