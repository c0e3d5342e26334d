"""benchmarks/error_breakdown.py on hand-made candidates: recall vs ranking errors and is_a near-misses."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import error_breakdown  # noqa: E402
from xnorm.rerank import Examples  # noqa: E402
from xnorm.terminology import read_obo  # noqa: E402
from xnorm.types import Candidates, Mentions  # noqa: E402


def test_breakdown_counts_each_kind_of_first_answer(tmp_path):
    obo = tmp_path / "mini.obo"  # HP:1 <- HP:2 <- HP:3 (is_a chain), HP:4 unrelated
    obo.write_text("format-version: 1.2\n\n[Term]\nid: HP:1\nname: a\n\n[Term]\nid: HP:2\nname: b\nis_a: HP:1\n\n"
                   "[Term]\nid: HP:3\nname: c\nis_a: HP:2 ! b\n\n[Term]\nid: HP:4\nname: d\n", encoding="utf-8")
    hierarchy = read_obo(obo)
    terminology = SimpleNamespace(concept_ids=np.array(["HP:1", "HP:2", "HP:3", "HP:4"]))
    # Rows: right first; gold 2nd (first HP:3 is finer than gold HP:1); gold absent (first HP:1 coarser than HP:2);
    # gold absent, first unrelated; two gold ids, the second first.
    gold = np.array([[0, -1], [0, -1], [1, -1], [1, -1], [2, 3]])
    concepts = np.array([[0, 1], [2, 0], [0, 3], [3, -1], [3, 0]])
    ex = Examples(Mentions(texts=list("abcde"), langs=["en"] * 5), gold[:, 0], None, "", gold)
    cands = Candidates(concepts, np.ones(concepts.shape, np.float32), np.zeros_like(concepts),
                       np.zeros(concepts.shape, np.int8))
    r = error_breakdown.breakdown(ex, cands, terminology, hierarchy)
    assert r == {"n": 5, "acc1": 0.4, "recall_k": 0.6, "wrong": 3, "gold_not_in_k": 2, "gold_in_k_not_first": 1,
                 "first_finer_than_gold": 1, "first_coarser_than_gold": 1}
