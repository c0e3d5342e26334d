"""Entity-level strict / partial / loose scores against hand-computed cases."""
from __future__ import annotations

import pytest

from xnorm.eval.entity import EntityTable, canonical_span, entity_metrics


def table(rows):
    """rows: (doc, spans, ids, type)."""
    return EntityTable.build([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                             [r[3] if len(r) > 3 else "" for r in rows])


def micro(res, mode):
    m = res[mode]["micro"]
    return m["precision"], m["recall"], m["f1"]


def test_discontinuous_spans_strict_vs_partial():
    gold = table([("d", [(0, 5), (10, 15)], ("A",))])
    # Only the first piece: partial match, not strict.
    res = entity_metrics(gold, table([("d", [(0, 5)], "A")]))
    assert micro(res, "strict") == (0.0, 0.0, 0.0)
    assert micro(res, "partial") == (1.0, 1.0, 1.0)
    # All pieces, listed in another order: strict.
    res = entity_metrics(gold, table([("d", [(10, 15), (0, 5)], "A")]))
    assert micro(res, "strict") == (1.0, 1.0, 1.0)
    # Inside the gap between the pieces: no overlap with any piece.
    res = entity_metrics(gold, table([("d", [(6, 9)], "A")]))
    assert micro(res, "partial") == (0.0, 0.0, 0.0)
    # Touching (half-open offsets) is not overlapping; one shared character is.
    assert micro(entity_metrics(gold, table([("d", [(15, 20)], "A")])), "partial")[0] == 0.0
    assert micro(entity_metrics(gold, table([("d", [(14, 20)], "A")])), "partial")[0] == 1.0
    # Overlap with the wrong id is no match; loose ignores spans.
    res = entity_metrics(gold, table([("d", [(0, 5)], "B"), ("d", [(30, 35)], "A")]))
    assert res["partial"]["tp_pred"] == 0 and res["partial"]["n_pred"] == 2
    assert micro(res, "loose")[:2] == (0.5, 1.0)  # sets {A} vs {A, B}


def test_partial_counts_precision_and_recall_sides_separately():
    gold = table([("d", [(0, 5)], "A"), ("d", [(6, 10)], "A")])
    res = entity_metrics(gold, table([("d", [(0, 10)], "A")]))
    assert (res["partial"]["tp_pred"], res["partial"]["n_pred"]) == (1, 1)
    assert (res["partial"]["tp_gold"], res["partial"]["n_gold"]) == (2, 2)
    assert res["strict"]["tp_gold"] == 0
    # Loose: one id per document on both sides.
    assert (res["loose"]["n_gold"], res["loose"]["n_pred"], res["loose"]["tp_gold"]) == (1, 1, 1)


def test_micro_vs_macro_over_documents():
    gold = table([("d1", [(0, 1)], "A"), ("d1", [(2, 3)], "B"), ("d2", [(0, 1)], "C")])
    pred = table([("d1", [(0, 1)], "A"), ("d1", [(2, 3)], "B"), ("d2", [(0, 1)], "X"), ("d2", [(5, 6)], "Y")])
    res = entity_metrics(gold, pred)
    p, r, f = micro(res, "strict")
    assert (p, r) == (pytest.approx(2 / 4), pytest.approx(2 / 3))
    assert f == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    # Macro: d1 has P = R = F = 1, d2 has 0 everywhere.
    assert res["strict"]["macro"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert res["strict"]["n_docs"] == 2
    # A document with predictions but no gold item is outside the macro average (as neleval --by-doc).
    res = entity_metrics(gold, table([*[(d, s, i) for d, s, i in [("d1", [(0, 1)], "A")]], ("d9", [(0, 1)], "A")]))
    assert res["strict"]["macro"]["precision"] == pytest.approx((1.0 + 0.0) / 2)
    assert res["strict"]["micro"]["precision"] == pytest.approx(1 / 2)


def test_nil_gold_and_empty_predictions():
    gold = table([("d", [(0, 1)], ()), ("d", [(2, 3)], "A")])
    pred = table([("d", [(0, 1)], "B"), ("d", [(2, 3)], None)])
    res = entity_metrics(gold, pred)
    # The NIL gold entity is not a gold item; predicting for it is a false positive.
    # The prediction-less entity is not a prediction: it costs recall only.
    assert (res["strict"]["n_gold"], res["strict"]["n_pred"], res["strict"]["tp_pred"]) == (1, 1, 0)
    assert micro(res, "strict") == (0.0, 0.0, 0.0)


def test_several_gold_ids_are_alternatives():
    gold = table([("d", [(0, 1)], ("A", "B")), ("d", [(2, 3)], ("B",))])
    res = entity_metrics(gold, table([("d", [(0, 1)], "B"), ("d", [(2, 3)], "B")]))
    assert micro(res, "strict") == (1.0, 1.0, 1.0)
    assert res["strict"]["n_gold"] == 2
    # Loose: the first entity resolves to B (predicted), so gold and predicted sets are both {B}.
    assert micro(res, "loose") == (1.0, 1.0, 1.0)
    assert res["loose"]["n_gold"] == 1
    # Loose resolves alternatives by document: B predicted anywhere in it stands for the first entity too.
    res = entity_metrics(gold, table([("d", [(2, 3)], "B")]))
    assert (res["loose"]["n_gold"], res["loose"]["tp_gold"]) == (1, 1)
    assert (res["strict"]["n_gold"], res["strict"]["tp_gold"]) == (2, 1)
    # None of its alternatives predicted: its first alternative stands for it (one gold item, not two).
    res = entity_metrics(gold, table([("d", [(2, 3)], "C")]))
    assert (res["loose"]["n_gold"], res["loose"]["tp_gold"]) == (2, 0)


def test_types_only_when_asked_and_aliases():
    gold = table([("d", [(0, 4)], "HP:new", "Disease")])
    pred = table([("d", [(0, 4)], "HP:old", "Phenotype")])
    assert micro(entity_metrics(gold, pred), "strict") == (0.0, 0.0, 0.0)
    aliases = {"HP:old": "HP:new"}
    assert micro(entity_metrics(gold, pred, aliases=aliases), "strict") == (1.0, 1.0, 1.0)
    typed = entity_metrics(gold, pred, aliases=aliases, match_types=True)
    assert micro(typed, "strict") == (0.0, 0.0, 0.0) and micro(typed, "partial") == (0.0, 0.0, 0.0)
    assert micro(typed, "loose") == (1.0, 1.0, 1.0)  # loose never looks at spans or types


def test_only_top1_counts_and_documents_are_separate():
    gold = table([("d1", [(0, 1)], "A")])
    pred = table([("d1", [(0, 1)], ("B", "A")), ("d2", [(0, 1)], "A")])
    res = entity_metrics(gold, pred)
    assert res["strict"]["tp_pred"] == 0 and res["loose"]["tp_pred"] == 0
    assert res["loose"]["n_pred"] == 2


def test_empty_tables_and_bad_mode():
    res = entity_metrics(table([]), table([]))
    assert res["strict"]["micro"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert canonical_span([[5, 6], [1, 2]]) == ((1, 2), (5, 6))
    with pytest.raises(ValueError):
        entity_metrics(table([]), table([]), modes=("fuzzy",))
