"""xnorm.eval on real annotations (GSC+, 228 abstracts, overlapping HPO mentions) against brute-force references."""
from __future__ import annotations

import random
import re

import numpy as np
import pytest

from conftest import SHARED_DATA
from xnorm.eval.documents import evaluate_documents

GSC = SHARED_DATA / "hpo-corpora" / "GSC+"
pytestmark = pytest.mark.skipif(not (GSC / "ann").is_dir(), reason=f"GSC+ corpus not found at {GSC}")

_LINE = re.compile(r"\[(\d+)::(\d+)\]\tHP_(\d+) \| ")


def gold_documents() -> list[dict]:
    """GSC+ as BigBIO kb documents (the test reads the annotation lines itself: `[start::end]<TAB>HP_id | text`)."""
    docs = []
    for path in sorted((GSC / "ann").iterdir()):
        ents = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            m = _LINE.match(line)
            if m:
                s, e, hp = int(m[1]), int(m[2]), m[3]
                ents.append({"id": f"{path.name}-{i}", "type": "Phenotype", "offsets": [[s, e]], "text": [""],
                             "normalized": [{"db_name": "HPO", "db_id": f"HP:{hp}"}]})
        docs.append({"id": path.name, "document_id": path.name, "passages": [], "entities": ents})
    return docs


def perturbed(gold: list[dict], seed: int) -> list[dict]:
    """Predictions: per entity at random the gold id at rank 1, at rank 3, a wrong id only, nothing, a shifted
    span, or a dropped entity."""
    rng = random.Random(seed)
    out = []
    for doc in gold:
        ents = []
        for e in doc["entities"]:
            gid = e["normalized"][0]["db_id"]
            wrong = [{"db_name": "HPO", "db_id": f"HP:9{j}{gid[4:]}"} for j in range(2)]
            right = {"db_name": "HPO", "db_id": gid}
            case = rng.randrange(6)
            if case == 5:
                continue  # dropped
            p = dict(e)
            p["normalized"] = [[right], wrong + [right], wrong[:1], [], [right]][case]
            if case == 4:
                s, t = e["offsets"][0]
                p["offsets"] = [[s + 1, t + 1]]
            ents.append(p)
        out.append({**doc, "entities": ents})
    return out


def brute_force(gold: list[dict], pred: list[dict]) -> dict:
    """Reference numbers with plain loops, straight from the definitions."""
    ranks = []
    counts = {m: [0, 0, 0, 0] for m in ("strict", "partial", "loose")}  # tp_pred, n_pred, tp_gold, n_gold
    for g, p in zip(gold, pred):
        by_id = {e["id"]: e for e in p["entities"]}
        for e in g["entities"]:
            ids = [n["db_id"] for n in by_id[e["id"]]["normalized"]] if e["id"] in by_id else []
            gid = e["normalized"][0]["db_id"]
            ranks.append(ids.index(gid) + 1 if gid in ids else 0)
        G = [(tuple(map(tuple, e["offsets"])), e["normalized"][0]["db_id"]) for e in g["entities"]]
        P = [(tuple(map(tuple, e["offsets"])), e["normalized"][0]["db_id"]) for e in p["entities"] if e["normalized"]]

        def overlap(a, b):
            return any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b)

        for mode, same in (("strict", lambda a, b: a == b), ("partial", overlap)):
            c = counts[mode]
            c[0] += sum(any(same(ps, gs) and pi == gi for gs, gi in G) for ps, pi in P)
            c[1] += len(P)
            c[2] += sum(any(same(ps, gs) and pi == gi for ps, pi in P) for gs, gi in G)
            c[3] += len(G)
        gset, pset = {i for _, i in G}, {i for _, i in P}
        c = counts["loose"]
        c[0] += len(gset & pset)
        c[1] += len(pset)
        c[2] += len(gset & pset)
        c[3] += len(gset)
    return {"ranks": np.array(ranks), **counts}


@pytest.mark.parametrize("seed", [0, 1])
def test_gsc_plus_matches_brute_force(seed):
    gold = gold_documents()
    assert len(gold) == 228
    pred = perturbed(gold, seed)
    ref = brute_force(gold, pred)
    res = evaluate_documents(pred, gold, ks=(1, 3, 64))
    ranks = ref["ranks"]
    assert res["n_mentions"] == len(ranks) > 2000
    assert res["accuracy@1"] == pytest.approx(np.mean(ranks == 1))
    assert res["recall@3"] == pytest.approx(np.mean((ranks > 0) & (ranks <= 3)))
    assert res["mrr"] == pytest.approx(np.mean(np.where(ranks > 0, 1 / np.maximum(ranks, 1), 0)))
    for mode in ("strict", "partial", "loose"):
        tp_pred, n_pred, tp_gold, n_gold = ref[mode]
        assert (res[mode]["tp_pred"], res[mode]["n_pred"], res[mode]["tp_gold"], res[mode]["n_gold"]) == (
            tp_pred, n_pred, tp_gold, n_gold), mode
        assert res[mode]["micro"]["precision"] == pytest.approx(tp_pred / n_pred)
        assert res[mode]["micro"]["recall"] == pytest.approx(tp_gold / n_gold)
    # GSC+ has overlapping mentions: shifted spans still overlap, so partial finds more than strict.
    assert res["partial"]["tp_gold"] > res["strict"]["tp_gold"]


def test_gold_against_itself_is_perfect():
    gold = gold_documents()
    res = evaluate_documents(gold, gold, ks=(1,))
    assert res["accuracy@1"] == res["mrr"] == 1.0
    for mode in ("strict", "partial", "loose"):
        assert res[mode]["micro"] == res[mode]["macro"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
