"""Mention-level metrics against hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest

from xnorm.eval.breakdown import breakdown
from xnorm.eval.ranking import (
    DEFAULT_KS, as_prediction_array, first_hit_ranks, hit_matrix, mention_metrics, metric_names, metrics_from_ranks,
    per_mention_values, rank_by_score, resolve_aliases,
)


def test_hand_computed_accuracy_recall_mrr():
    preds = [["A", "B", "C"], ["X", "A", None], [None, None, None], ["Y", "Z", "A"]]
    gold = [{"A"}, {"A"}, {"A"}, {"Q"}]
    assert first_hit_ranks(preds, gold).tolist() == [1, 2, 0, 0]
    m = mention_metrics(preds, gold, ks=(1, 2, 3))
    assert m["accuracy@1"] == pytest.approx(1 / 4)
    assert m["recall@1"] == pytest.approx(1 / 4)
    assert m["recall@2"] == pytest.approx(2 / 4)
    assert m["recall@3"] == pytest.approx(2 / 4)
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 0 + 0) / 4)
    assert m["n_mentions"] == 4


def test_several_gold_ids_any_one_hits():
    # The first predicted id that is any of the gold ids decides the rank.
    preds = np.array([["B", "D", "C"], ["C", "D", "E"]], dtype=object)
    gold = [{"C", "D"}, ("E",)]
    assert first_hit_ranks(preds, gold).tolist() == [2, 3]
    assert mention_metrics(preds, gold, ks=(1, 2))["mrr"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    # A bare string is one id, not a set of characters.
    assert first_hit_ranks([["AB"], ["A"]], ["AB", "AB"]).tolist() == [1, 0]


def test_empty_predictions_are_misses():
    preds = [[], ["", None], ["A"]]
    gold = [{"A"}, {"A"}, {"A"}]
    arr = as_prediction_array(preds)
    assert arr.shape == (3, 2) and arr[1, 0] is None and arr[2, 1] is None
    assert first_hit_ranks(preds, gold).tolist() == [0, 0, 1]
    # No gold id: never a hit, even against an empty prediction.
    assert first_hit_ranks([[None]], [set()]).tolist() == [0]
    assert first_hit_ranks(np.empty((2, 0), dtype=object), [{"A"}, {"B"}]).tolist() == [0, 0]


def test_k_larger_than_list_counts_what_is_there():
    preds = [["A", "B"], ["C", "D"], ["E", "F"]]
    gold = [{"B"}, {"X"}, {"E"}]
    m = mention_metrics(preds, gold, ks=(1, 2, 64))
    assert m["recall@2"] == pytest.approx(2 / 3)
    assert m["recall@64"] == m["recall@2"]
    assert set(metrics_from_ranks(np.array([1]), DEFAULT_KS)) >= {f"recall@{k}" for k in (1, 2, 4, 5, 8, 10, 16, 32, 64)}


def test_ties_are_already_broken_by_order():
    # Same ids, same (ignored) scores, different order: the ranking is the order given.
    assert first_hit_ranks([["A", "B"]], [{"B"}]).tolist() == [2]
    assert first_hit_ranks([["B", "A"]], [{"B"}]).tolist() == [1]


def test_rank_by_score_breaks_ties_by_id_deterministically():
    ids = np.array([["b", "a", "c", None], ["z", "y", "x", "w"]], dtype=object)
    scores = np.array([[0.5, 0.5, 0.9, 5.0], [0.1, np.nan, 0.1, 0.3]])
    out_ids, out_scores = rank_by_score(ids, scores)
    assert out_ids[0].tolist() == ["c", "a", "b", None]  # empty slot last despite its score
    assert out_ids[1].tolist() == ["w", "x", "z", "y"]  # NaN last, tie 0.1 by id: x < z
    assert out_scores[0, :3].tolist() == [0.9, 0.5, 0.5]
    # Any input permutation gives the same ranking.
    perm = [2, 0, 3, 1]
    again, _ = rank_by_score(ids[:, perm], scores[:, perm], k=2)
    assert again.tolist() == [["c", "a"], ["w", "x"]]
    with pytest.raises(ValueError):
        rank_by_score(ids, scores[:, :2])


def test_aliases_apply_to_both_sides_and_follow_chains():
    aliases = {"HP:old": "HP:mid", "HP:mid": "HP:new", "HP:alt": "HP:new"}
    assert resolve_aliases(aliases)["HP:old"] == "HP:new"
    preds = [["HP:old"], ["HP:new"], ["HP:alt"], ["HP:other"]]
    gold = [{"HP:new"}, {"HP:old"}, {"HP:mid"}, {"HP:new"}]
    assert first_hit_ranks(preds, gold).tolist() == [0, 0, 0, 0]
    assert first_hit_ranks(preds, gold, aliases).tolist() == [1, 1, 1, 0]
    # A cycle stops instead of looping forever.
    assert resolve_aliases({"a": "b", "b": "a"}) in ({"a": "a", "b": "b"}, {"a": "b", "b": "a"})


def test_hit_matrix_and_per_mention_values_agree_with_metrics():
    preds = [["A", "B", "A"], ["B", "C", None]]
    gold = [{"A"}, {"C"}]
    assert hit_matrix(preds, gold).tolist() == [[True, False, True], [False, True, False]]
    ranks = first_hit_ranks(preds, gold)
    values = per_mention_values(ranks, (1, 2))
    names = metric_names((1, 2))
    assert names == ["accuracy@1", "recall@1", "recall@2", "mrr"]
    assert values.tolist() == [[1, 1, 1, 1.0], [0, 0, 1, 0.5]]
    m = metrics_from_ranks(ranks, (1, 2))
    assert [m[n] for n in names] == pytest.approx(values.mean(axis=0).tolist())
    with pytest.raises(ValueError):
        hit_matrix(preds, [{"A"}])


def test_zero_mentions():
    m = mention_metrics(np.empty((0, 3), dtype=object), [], ks=(1, 5))
    assert m == {"accuracy@1": 0.0, "recall@1": 0.0, "recall@5": 0.0, "mrr": 0.0, "n_mentions": 0}


def test_breakdown_per_key():
    ranks = np.array([1, 0, 2, 1, 3])
    langs = ["en", "de", "de", "es", "de"]
    out = breakdown(ranks, langs, ks=(1, 2))
    assert list(out) == ["de", "en", "es"]
    assert out["de"]["n_mentions"] == 3
    assert out["de"]["accuracy@1"] == pytest.approx(0.0)
    assert out["de"]["recall@2"] == pytest.approx(1 / 3)
    assert out["de"]["mrr"] == pytest.approx((0 + 1 / 2 + 1 / 3) / 3)
    assert out["en"]["mrr"] == 1.0 and out["es"]["n_mentions"] == 1
    with_ci = breakdown(ranks, langs, ks=(1,), ci=True, n_resamples=50, seed=3)
    low, high = with_ci["de"]["ci"]["mrr"]
    assert low <= with_ci["de"]["mrr"] <= high
    assert with_ci == breakdown(ranks, langs, ks=(1,), ci=True, n_resamples=50, seed=3)
