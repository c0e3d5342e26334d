"""The reranker's generator weight (xnorm.rerank.calibrate): score fusion and its choice on dev, by hand-made logits."""
from __future__ import annotations

import numpy as np
import pytest

from xnorm.rerank.calibrate import choose_generator_weight, fuse, weights_for
from xnorm.types import Candidates

# Two candidates per mention; the generator prefers column 0 (min-max 1 vs 0), the reranker column 1 by 3 logits.
LOGITS = np.array([[0.0, 3.0]], dtype=np.float32)


def _set(gold_cols, langs):
    """(logits, candidates, gold rows, languages): mention i's candidates are concepts 2i (generator's first) and
    2i + 1 (the reranker's first); its gold is the one in column gold_cols[i]."""
    n = len(gold_cols)
    concepts = np.arange(2 * n).reshape(n, 2)
    cands = Candidates(concepts, np.tile([0.9, 0.2], (n, 1)).astype(np.float32), np.zeros((n, 2), np.int64),
                       np.zeros((n, 2), np.int8), "test", {})
    return np.repeat(LOGITS, n, axis=0), cands, concepts[np.arange(n), gold_cols], np.asarray(langs, dtype=object)


def test_fuse_weight_zero_is_the_reranker_large_weight_the_generator():
    logits = np.array([[0.0, 3.0, -np.inf]], dtype=np.float32)
    gen = np.array([[0.9, 0.2, -np.inf]], dtype=np.float32)
    np.testing.assert_array_equal(fuse(logits, gen, np.zeros(1, np.float32)), logits)
    fused = fuse(logits, gen, np.array([4.0], np.float32))
    np.testing.assert_allclose(fused[0, :2], [4.0, 3.0])  # + 4 · minmax (1, 0)
    assert np.isneginf(fused[0, 2])  # an empty slot stays empty


def test_per_language_weights_and_ties_go_to_the_generator():
    # es: the reranker is right (correct while w < 3); ja: the generator is right (correct once w > 3).
    logits, cands, gold, langs = _set([1, 1, 1, 0, 0], ["es", "es", "es", "ja", "ja"])
    gw = choose_generator_weight({"dev": (logits, cands, gold, langs)}, min_per_language=2)
    assert gw["languages"] == {"es": 2.0, "ja": 64.0}  # the largest of the equally good weights
    assert gw["default"] == 2.0  # pooled: 3/5 right for w <= 2, 2/5 from w = 4 on
    dev = gw["dev"]
    assert dev["sets"]["dev"] == {"n": 5, "candidates": 0.4, "reranker": 0.6, "chosen": 0.6}
    assert dev["languages"]["ja"] == {"n": 2, "candidates": 1.0, "reranker": 0.0, "chosen": 1.0}
    # Applied per mention; a language without its own weight (or none given) takes the default.
    np.testing.assert_array_equal(weights_for(gw, ["ja", "es", "de", ""]), [64.0, 2.0, 2.0, 2.0])
    np.testing.assert_array_equal(weights_for(None, ["ja"]), [0.0])
    # Too few dev mentions of a language: only the default.
    assert choose_generator_weight({"dev": (logits, cands, gold, langs)}, min_per_language=3)["languages"] == \
        {"es": 2.0}


def test_default_weight_by_the_worst_dev_set_not_the_pooled_accuracy():
    a = _set([1, 1, 1, 1], ["en"] * 4)  # the reranker helps here...
    b = _set([0], ["en"])  # ...and hurts here: pooled acc@1 prefers w <= 2 (4/5), the worst set w >= 4 (gain 0)
    gw = choose_generator_weight({"a": a, "b": b}, min_per_language=100)
    assert gw["default"] == 64.0 and gw["languages"] == {}
    with pytest.raises(ValueError):
        choose_generator_weight({})


def test_several_gold_rows_any_counts():
    # Mention 0's annotation maps to two concepts, the reranker's (1) and the generator's (0): both choices are right.
    logits, cands, _, langs = _set([0, 0], ["en", "en"])
    gold = np.array([[0, 1], [2, -1]])
    gw = choose_generator_weight({"dev": (logits, cands, gold, langs)}, min_per_language=100)
    assert gw["dev"]["sets"]["dev"] == {"n": 2, "candidates": 1.0, "reranker": 0.5, "chosen": 1.0}
