"""Route-aware fusion: candidates found through another language's names can get other weights."""
import numpy as np
import pytest

from xnorm.candidates import fuse
from xnorm.candidates.config import normalize_config
from xnorm.errors import ConfigError
from xnorm.types import ROUTE_ENGLISH_FALLBACK, ROUTE_SAME_LANGUAGE, Candidates


def _list(concepts, scores, routes):
    c = np.array([concepts])
    return Candidates(c, np.array([scores], np.float32), np.zeros_like(c), np.array([routes]))


def test_fallback_weights_apply_to_cross_language_candidates_only():
    # TF-IDF ranks concept 1 first via the English fallback; the encoder ranks concept 2 first.
    sparse = _list([1, 2, 3], [0.9, 0.5, 0.1], [ROUTE_ENGLISH_FALLBACK] * 3)
    dense = _list([2, 1, 3], [0.8, 0.7, 0.1], [ROUTE_ENGLISH_FALLBACK] * 3)
    # minmax: sparse gives 1: 1.0, 2: 0.5, 3: 0; dense gives 2: 1.0, 1: 6/7, 3: 0.
    plain = fuse([sparse, dense], 3, method="minmax", weights=[1, 1])
    assert plain.concepts[0].tolist() == [1, 2, 3]  # 1 + 6/7 > 0.5 + 1
    routed = fuse([sparse, dense], 3, method="minmax", weights=[1, 1], fallback_weights=[0.25, 1])
    assert routed.concepts[0].tolist() == [2, 1, 3]  # 0.125 + 1 > 0.25 + 6/7
    assert np.isclose(routed.scores[0, 0], 0.25 * 0.5 + 1.0)
    # Same-language candidates keep the normal weights.
    same = _list([1, 2, 3], [0.9, 0.5, 0.1], [ROUTE_SAME_LANGUAGE] * 3)
    dense_same = _list([2, 1, 3], [0.8, 0.7, 0.1], [ROUTE_SAME_LANGUAGE] * 3)
    kept = fuse([same, dense_same], 3, method="minmax", weights=[1, 1], fallback_weights=[0.25, 1])
    assert kept.concepts[0].tolist() == [1, 2, 3]


def test_fallback_weights_config_is_checked():
    cfg = normalize_config({"generators": [{"type": "sparse"}, {"type": "sparse", "ngram_range": [3, 3]}],
                            "fusion": {"method": "minmax", "weights": [1, 2], "fallback_weights": [0.5, 2]}})
    assert cfg["fusion"]["fallback_weights"] == [0.5, 2.0]
    assert normalize_config({"generators": [{"type": "sparse"}]})["fusion"]["fallback_weights"] is None
    with pytest.raises(ConfigError, match="fallback_weights"):
        normalize_config({"generators": [{"type": "sparse"}, {"type": "sparse"}],
                          "fusion": {"fallback_weights": [1]}})
