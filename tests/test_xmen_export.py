"""The xMEN side-by-side's pure parts: KB export, query export, prediction conversion, scoring and report.

xMEN itself is not needed (it lives in its own virtual environment); these functions are what both sides share.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH / "xmen"))
sys.path.insert(0, str(BENCH))

import xmen_format as xf  # noqa: E402
import xmen_side_by_side as sbs  # noqa: E402


def _terminology():
    from xnorm.terminology.core import PREFERRED, TerminologyBuilder

    b = TerminologyBuilder()
    b.add_concept("HP:1", "Seizure", ["HP:0000118"])
    b.add_name("HP:1", "Seizure", "en", PREFERRED)
    b.add_name("HP:1", "Epileptic seizure", "en")
    b.add_name("HP:1", "Seizures", "en")
    b.add_concept("HP:2", "Short stature", ["HP:0000118", "HP:0000001"])
    b.add_name("HP:2", "Short stature", "en", PREFERRED)
    b.add_name("HP:2", "Small stature", "en")
    b.add_name("HP:2", "Kleinwuchs", "de")
    b.add_concept("HP:3", "Fever")  # a concept whose only name is its preferred one
    b.add_name("HP:3", "Fever", "en", PREFERRED)
    return b.build(name="tiny")


def test_kb_records_hold_every_concept_and_name_once():
    term = _terminology()
    records = list(xf.kb_records(term.concept_ids, term.preferred_names, term.name_concepts, term.name_texts,
                                 term.semantic_types))
    assert [r["concept_id"] for r in records] == term.concept_ids.tolist()
    by_id = {r["concept_id"]: r for r in records}
    assert by_id["HP:1"]["canonical_name"] == "Seizure"
    assert by_id["HP:1"]["aliases"] == ["Epileptic seizure", "Seizures"]  # canonical not repeated, order kept
    assert by_id["HP:2"]["aliases"] == ["Small stature", "Kleinwuchs"]
    assert by_id["HP:3"]["aliases"] == []
    assert sorted(by_id["HP:2"]["types"]) == ["HP:0000001", "HP:0000118"]
    expected = {(term.concept_ids[c], t) for c, t in zip(term.name_concepts, term.name_texts)}
    assert xf.kb_pairs(records) == expected
    # xMEN's loader needs these keys (scispaCy's Entity fields) and JSON-serialisable values.
    for r in records:
        assert set(r) == {"concept_id", "canonical_name", "aliases", "types", "definition"}
        json.dumps(r)


def test_kb_records_reject_inconsistent_columns():
    with pytest.raises(ValueError, match="differ in length"):
        list(xf.kb_records(["A"], ["a"], [0, 0], ["a"]))
    with pytest.raises(ValueError, match="neither a preferred name"):
        list(xf.kb_records(["A"], [""], [], []))


def test_kb_export_of_the_real_english_hpo_is_complete():
    from xnorm.terminology import load_terminology

    term = load_terminology("hpo-en")
    records = list(xf.kb_records(term.concept_ids, term.preferred_names, term.name_concepts, term.name_texts,
                                 term.semantic_types))
    assert len(records) == len(term) > 15_000
    pairs = xf.kb_pairs(records)
    assert pairs == {(term.concept_ids[c], t) for c, t in zip(term.name_concepts.tolist(), term.name_texts.tolist())}
    assert len(pairs) == term.n_names  # no name lost, none invented


def test_ranked_normalized_orders_by_score_dedups_and_cuts():
    raw = [
        {"db_id": "HP:2", "db_name": "UMLS", "score": 0.5, "predicted_by": ["ngram"]},
        {"db_id": "HP:1", "db_name": "UMLS", "score": 0.9, "predicted_by": ["sapbert"]},
        {"db_id": "HP:3", "db_name": "UMLS", "score": 0.5, "predicted_by": ["ngram"]},  # tie with HP:2
        {"db_id": "HP:2", "db_name": "UMLS", "score": 0.95, "predicted_by": ["sapbert"]},  # better score later
        {"db_id": "", "db_name": "UMLS", "score": 1.0},  # no id: skipped
        {"db_id": "HP:4", "db_name": "UMLS", "score": None},  # no score: ranked last
    ]
    out = xf.ranked_normalized(raw, k=10, db_name="HPO")
    assert [n["db_id"] for n in out] == ["HP:2", "HP:1", "HP:3", "HP:4"]
    assert out[0] == {"db_name": "HPO", "db_id": "HP:2", "score": 0.95}
    assert [n["db_id"] for n in xf.ranked_normalized(raw, k=2)] == ["HP:2", "HP:1"]
    assert xf.ranked_normalized(raw, k=2)[0]["db_name"] == "UMLS"  # kept when not overridden
    assert xf.ranked_normalized([], k=5) == []
    # Equal scores keep xMEN's order (first seen first).
    ties = [{"db_id": c, "score": 0.3} for c in ("B", "A", "C")]
    assert [n["db_id"] for n in xf.ranked_normalized(ties, k=3)] == ["B", "A", "C"]


def _gold_doc():
    text = "Short stature and seizures."
    return {"id": "d1", "document_id": "d1", "lang": "en", "source_id": "x", "status": "OFFICIAL",
            "passages": [{"id": "d1_p0", "type": "abstract", "text": [text], "offsets": [[0, len(text)]]}],
            "entities": [
                {"id": "d1_e0", "type": "phenotype", "text": ["Short stature"], "offsets": [[0, 13]],
                 "normalized": [{"db_name": "HPO", "db_id": "HP:2"}]},
                {"id": "d1_e1", "type": "phenotype", "text": ["seizures"], "offsets": [[18, 26]],
                 "normalized": [{"db_name": "HPO", "db_id": "HP:1"}]}],
            "events": [], "coreferences": [], "relations": []}


def test_query_document_hides_gold_and_keeps_the_schema():
    gold = _gold_doc()
    q = xf.query_document(gold)
    assert set(q) == set(xf.BIGBIO_DOC_KEYS) | {"lang"}  # xnorm's extra keys dropped (xMEN's Features)
    assert q["lang"] == "en" and q["passages"] == gold["passages"]
    assert [e["id"] for e in q["entities"]] == ["d1_e0", "d1_e1"]
    assert all(e["normalized"] == [] for e in q["entities"])
    assert gold["entities"][0]["normalized"]  # the input is not modified


def test_xmen_predictions_convert_back_and_score_with_xnorm_evaluate():
    from xnorm.eval import evaluate_documents

    gold = _gold_doc()
    linked = xf.query_document(gold)
    # What xMEN's linkers leave per entity: scores, predicted_by, long_form, unsorted and with repeats.
    linked["entities"][0].update(long_form=None, normalized=[
        {"db_id": "HP:9", "db_name": "UMLS", "score": 0.4, "predicted_by": ["ngram"]},
        {"db_id": "HP:2", "db_name": "UMLS", "score": 0.8, "predicted_by": ["sapbert"]}])
    linked["entities"][1].update(long_form=None, normalized=[
        {"db_id": "HP:1", "db_name": "UMLS", "score": 0.2, "predicted_by": ["ngram"]},
        {"db_id": "HP:7", "db_name": "UMLS", "score": 0.6, "predicted_by": ["ngram", "sapbert"]},
        {"db_id": "HP:7", "db_name": "UMLS", "score": 0.5, "predicted_by": ["ngram"]}])
    pred = xf.prediction_document(linked, k=64, db_name="HPO")
    assert [[n["db_id"] for n in e["normalized"]] for e in pred["entities"]] == [["HP:2", "HP:9"], ["HP:7", "HP:1"]]
    assert "long_form" not in pred["entities"][0]
    res = evaluate_documents([pred], [gold], ks=(1, 2))
    assert res["accuracy@1"] == pytest.approx(0.5)
    assert res["recall@2"] == pytest.approx(1.0)
    assert res["mrr"] == pytest.approx((1 + 0.5) / 2)


def test_jsonl_roundtrip_is_atomic_and_names_bad_lines(tmp_path):
    path = tmp_path / "sub" / "x.jsonl"
    assert xf.write_jsonl(path, [{"a": "é"}, {"b": [1, 2]}]) == 2
    assert xf.read_jsonl(path) == [{"a": "é"}, {"b": [1, 2]}]
    assert [p.name for p in path.parent.iterdir()] == ["x.jsonl"]  # no temp file left behind

    def boom():
        yield {"ok": 1}
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        xf.write_jsonl(path, boom())
    assert xf.read_jsonl(path) == [{"a": "é"}, {"b": [1, 2]}]  # the old file survives a failed write
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n\n{oops\n', encoding="utf-8")
    with pytest.raises(ValueError, match="bad.jsonl:3"):
        xf.read_jsonl(bad)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data folder {SHARED_DATA} is absent")
def test_export_then_score_with_perfect_and_empty_runs(tmp_path):
    work = tmp_path / "work"
    info = sbs.export(work, str(SHARED_DATA))
    kb = xf.read_jsonl(work / "kb" / "hpo-en.jsonl")
    assert len(kb) == info["terminology"]["concepts"]
    assert len(xf.kb_pairs(kb)) == info["terminology"]["unique_concept_name_pairs"] == info["terminology"]["names"]
    for name in sbs.DATASETS:
        gold = xf.read_jsonl(work / "gold" / f"{name}.jsonl")
        queries = xf.read_jsonl(work / "queries" / f"{name}.jsonl")
        assert [d["id"] for d in gold] == [d["id"] for d in queries]
        assert sum(len(d["entities"]) for d in queries) == info["datasets"][name]["mentions"] > 0
        assert all(not e["normalized"] for d in queries for e in d["entities"])
    per_lang = info["datasets"]["hpo-labels"]["mentions_per_language"]
    assert set(per_lang) == set(sbs.DATASETS["hpo-labels"][1].get("languages", per_lang))
    assert max(per_lang.values()) == 1000

    # A "perfect" run (gold ids ranked first) and an empty one, scored by the same evaluator, end to end.
    for tool, pipeline, perfect in (("xnorm", "tfidf", True), ("xmen", "tfidf", False)):
        out = work / "preds" / f"{tool}-{pipeline}"
        timing = {}
        for name in sbs.DATASETS:
            docs = []
            for d in xf.read_jsonl(work / "gold" / f"{name}.jsonl"):
                linked = xf.query_document(d)
                for e, g in zip(linked["entities"], d["entities"]):
                    e["normalized"] = [{**n, "score": 1.0} for n in g["normalized"]] if perfect else []
                docs.append(xf.prediction_document(linked, k=64, db_name="HPO"))
            xf.write_jsonl(out / f"{name}.jsonl", docs)
            timing[name] = {"link_s": 2.0 if perfect else 4.0, "mentions_per_s": 1.0}
        (out / "run.json").write_text(json.dumps({"index_build_s": 1.0 if perfect else 3.0, "peak_rss_mb": 100.0,
                                                  "datasets": timing}))
    results = sbs.score(work, tmp_path / "results")
    q = results["runs"]["xnorm/tfidf"]["quality"]
    assert q["gsc-plus"]["all"]["accuracy@1"] == 1.0 and q["hpo-labels"]["all"]["recall@64"] == 1.0
    assert set(q["hpo-labels"]["per_language"]) == set(per_lang)
    assert results["runs"]["xmen/tfidf"]["quality"]["hpo-labels"]["all"]["accuracy@1"] == 0.0
    md = (tmp_path / "results" / "side_by_side.md").read_text(encoding="utf-8")
    assert "| xnorm/tfidf |" in md and "| xmen/tfidf |" in md
    assert "xmen/tfidf / xnorm/tfidf: build 3.00×, hpo-labels linking 2.00×, gsc-plus linking 2.00×, peak RSS 1.00×" in md
    assert json.loads((tmp_path / "results" / "side_by_side.json").read_text())["format"] == \
        "xnorm-xmen-side-by-side"
