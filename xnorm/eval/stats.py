"""Uncertainty of mention-level metrics: bootstrap confidence intervals and paired significance tests.

All resampling is seeded (``numpy.random.default_rng(seed)``) and vectorised: one matrix of resampled indices
(or sign flips) per chunk of resamples, applied to every metric column at once. The inputs are per-mention
values, e.g. the columns of :func:`xnorm.eval.ranking.per_mention_values` (0/1 hits, reciprocal ranks), whose
means are the metrics.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# Resamples drawn per chunk: bounds memory at chunk x n indices whatever n_resamples is.
_CHUNK = 256


def _as_matrix(values: np.ndarray) -> tuple[np.ndarray, bool]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        return arr[:, None], True
    if arr.ndim != 2:
        raise ValueError(f"expected per-item values of shape [n] or [n, m], got {arr.shape}")
    return arr, False


def bootstrap_means(values: np.ndarray, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Means of ``n_resamples`` bootstrap resamples of the rows: ``[n_resamples]`` or ``[n_resamples, m]``."""
    arr, flat = _as_matrix(values)
    n = arr.shape[0]
    if n == 0:
        raise ValueError("cannot bootstrap zero items")
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, arr.shape[1]))
    for start in range(0, n_resamples, _CHUNK):
        b = min(_CHUNK, n_resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        # How often each item was drawn in each resample, then one matrix product for every column at once:
        # far cheaper than gathering a [b, n, m] array.
        counts = np.bincount((idx + (np.arange(b) * n)[:, None]).ravel(), minlength=b * n).reshape(b, n)
        out[start:start + b] = counts @ arr / n
    return out[:, 0] if flat else out


def bootstrap_ci(
    values: np.ndarray, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean of each column: ``(low, high)``, scalars for 1-D input."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie strictly between 0 and 1")
    means = bootstrap_means(values, n_resamples, seed)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha], axis=0)
    return low, high


@dataclass
class PairedTest:
    """Result of a paired test of run B against run A on the same items (``delta`` = mean(B) - mean(A))."""

    method: str
    delta: float
    p_value: float  # two-sided
    n_resamples: int
    n: int
    ci_low: float | None = None  # bootstrap interval of delta (paired bootstrap only)
    ci_high: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _paired_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired runs need two 1-D arrays of one length, got {a.shape} and {b.shape}")
    if len(a) == 0:
        raise ValueError("cannot test zero items")
    return b - a


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, n_resamples: int = 10000, seed: int = 0, confidence: float = 0.95
) -> PairedTest:
    """Paired bootstrap over items: resample item indices once for both runs.

    p-value: share of resampled deltas, centred on the observed delta, at least as far from 0 as the observed
    one (the shift method of Berg-Kirkpatrick et al., 2012, two-sided), with the +1 correction.
    """
    d = _paired_diff(a, b)
    observed = float(d.mean())
    deltas = bootstrap_means(d, n_resamples, seed)
    extreme = np.count_nonzero(np.abs(deltas - observed) >= abs(observed) - 1e-12)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(deltas, [alpha, 1 - alpha])
    return PairedTest("paired-bootstrap", observed, (extreme + 1) / (n_resamples + 1), n_resamples, len(d),
                      float(low), float(high))


def approximate_randomization(a: np.ndarray, b: np.ndarray, n_resamples: int = 10000, seed: int = 0) -> PairedTest:
    """Approximate randomization: swap the two runs' values per item at random (a sign flip of the difference).

    p-value: share of shuffles whose |mean difference| reaches the observed one, with the +1 correction.
    """
    d = _paired_diff(a, b)
    observed = float(d.mean())
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, n_resamples, _CHUNK):
        size = min(_CHUNK, n_resamples - start)
        signs = rng.integers(0, 2, size=(size, len(d))) * 2 - 1
        stats = np.abs((signs * d).mean(axis=1))
        extreme += int(np.count_nonzero(stats >= abs(observed) - 1e-12))
    return PairedTest("approximate-randomization", observed, (extreme + 1) / (n_resamples + 1), n_resamples, len(d))


def won_lost(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """For 0/1 hits of runs A and B on the same items: items B gets right and A not (won), and the reverse (lost)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    return int((b & ~a).sum()), int((a & ~b).sum())


def format_p(p: float) -> str:
    """A p-value for a table: three decimals, "< 0.001" below (10,000 shuffles cannot say more)."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


PAIRED_TESTS = {"bootstrap": paired_bootstrap, "randomization": approximate_randomization}
