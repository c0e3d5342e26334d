"""The reranker ablation table (benchmarks/rerank.py): per-mention hits, the pooled XL-BEL column, won / lost and
the paired test in each cell — on hand-made results."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import rerank  # noqa: E402


def _results():
    cand = {"xlbel-de": {"acc1": 0.5, "n": 4, "recall_k": 1.0, "hits1": "1100"},
            "xlbel-ko": {"acc1": 0.0, "n": 2, "recall_k": 0.5, "hits1": "00"},
            "gsc-plus-test": {"acc1": 0.0, "n": 40, "recall_k": 1.0, "hits1": "0" * 40}}
    tests = {"xlbel-de": {"acc1": 0.75, "n": 4, "hits1": "1011"}, "xlbel-ko": {"acc1": 0.5, "n": 2, "hits1": "10"},
             "gsc-plus-test": {"acc1": 0.5, "n": 40, "hits1": "1" * 20 + "0" * 20}}
    train = {"parameters": {"trained": 10, "total": 100}, "steps": 2, "batch_size": 4, "train_seconds": 1.0,
             "seconds_per_mention": 0.1}
    run = {"tests": tests, "train": train, "size_on_disk_bytes": 1000, "loss_first_20": 1.0, "loss_last_20": 0.5}
    return {"meta": {"k": 8}, "candidates": cand, "runs": {"r": run}}


def test_pooled_column_and_paired_cells():
    pooled = rerank.with_pooled(_results())
    c, r = pooled["candidates"]["xlbel (all)"], pooled["runs"]["r"]["tests"]["xlbel (all)"]
    assert c["n"] == 6 and c["hits1"] == "110000" and abs(c["acc1"] - 2 / 6) < 1e-12
    assert abs(c["recall_k"] - 5 / 6) < 1e-12 and abs(r["acc1"] - 4 / 6) < 1e-12
    won, lost, p = rerank.paired(r, c)
    assert (won, lost) == (3, 1) and p > 0.05  # 3 vs 1 of 6 mentions: chance
    won, lost, p = rerank.paired(pooled["runs"]["r"]["tests"]["gsc-plus-test"], pooled["candidates"]["gsc-plus-test"])
    assert (won, lost) == (20, 0) and p < 0.001


def test_render_marks_only_significant_changes():
    table = rerank.render(_results()).split("## Cost")[0]
    row = next(line for line in table.splitlines() if line.startswith("| r |"))
    assert "0.750 (+0.250; 2/1) | 0.500 (+0.500; 1/0)" in row and "0.500 (+0.500; 20/0*)" in row
    assert "0.667 (+0.333; 3/1)" in row  # the pooled XL-BEL column
    # A result file without per-mention hits (older runs) renders as before.
    old = _results()
    for e in [*old["candidates"].values(), *old["runs"]["r"]["tests"].values()]:
        e.pop("hits1")
    row = next(line for line in rerank.render(old).splitlines() if line.startswith("| r |"))
    assert "0.500 (+0.500) |" in row and "xlbel (all)" not in rerank.render(old)


def test_lenient_table_and_metrics_on_a_hierarchy():
    import numpy as np

    from xnorm.rerank import Examples
    from xnorm.terminology import TerminologyBuilder
    from xnorm.types import Candidates, Mentions

    b = TerminologyBuilder()  # HP:1 <- HP:2 <- HP:3, HP:4 apart
    for cid in ("HP:1", "HP:2", "HP:3", "HP:4"):
        b.add_concept(cid, cid)
        b.add_name(cid, cid, "en")
    b.add_is_a("HP:2", "HP:1")
    b.add_is_a("HP:3", "HP:2")
    term = b.build()
    gold = np.array([0, 1, 1, 3])
    concepts = np.array([[0, 1], [2, 1], [0, 1], [1, 3]])  # right; child of gold; parent of gold; unrelated
    ex = Examples(Mentions(texts=list("abcd"), langs=["en"] * 4), gold, None, "")
    cands = Candidates(concepts, np.ones(concepts.shape, np.float32), np.zeros_like(concepts),
                       np.zeros(concepts.shape, np.int8))
    m = rerank.metrics(cands, ex, term)
    assert (m["hits1"], m["lenient_hits1"], m["lenient1"]) == ("1000", "1110", 0.75)
    assert "lenient1" not in rerank.metrics(cands, ex)  # no terminology: exact figures only

    res = _results()
    for entry, bits in ((res["candidates"]["xlbel-de"], "1100"), (res["runs"]["r"]["tests"]["xlbel-de"], "1111")):
        entry.update(lenient_hits1=bits, lenient1=bits.count("1") / 4)
    lenient = rerank.render(res).split("## lenient@1")[1].split("## Cost")[0]
    assert "| pipeline | xlbel-de |" in lenient and "1.000 (+0.500; 2/0)" in lenient and "xlbel-ko" not in lenient
