"""Mentions for the linker from kb documents, and predictions written back with set_predictions."""
from __future__ import annotations

import numpy as np
import pytest

from xnorm.data import mentions_from_documents, new_document, set_predictions


def _docs() -> list[dict]:
    a = new_document("a", [("title", "Seizures."), ("text", "A child with short stature and seizures.")], lang="es")
    a["entities"] = [
        {"id": "a1", "type": "phenotype", "text": ["Seizures"], "offsets": [[0, 8]], "normalized": []},
        {"id": "a2", "type": "sign", "text": ["short", "stature"], "offsets": [[23, 28], [29, 36]],
         "normalized": []},
        {"id": "a3", "type": "phenotype", "text": ["seizures"], "offsets": [[41, 49]], "normalized": []},
    ]
    empty = new_document("b", [("text", "No findings.")])
    c = new_document("c", [("text", "Fever.")])
    c["entities"] = [{"id": "c1", "type": "phenotype", "text": ["Fever"], "offsets": [[0, 5]], "normalized": []}]
    return [a, empty, c]


def test_mentions_from_documents():
    docs = _docs()
    m, refs = mentions_from_documents(docs, default_lang="en", context_chars=12)
    assert len(m) == 4 and refs.dtype == np.int64
    assert refs.tolist() == [[0, 0], [0, 1], [0, 2], [2, 0]]
    assert m.texts.tolist() == ["Seizures", "short stature", "seizures", "Fever"]
    assert m.langs.tolist() == ["es", "es", "es", "en"]  # the document's lang, else the default
    assert m.doc_ids.tolist() == ["a", "a", "a", "c"]
    assert m.entity_ids.tolist() == ["a1", "a2", "a3", "c1"]
    assert m.types.tolist() == ["phenotype", "sign", "phenotype", "phenotype"]
    # context stays inside the mention's passage: the title's mention sees nothing of the next passage
    assert (m.left[0], m.right[0]) == ("", ".")
    assert (m.left[1], m.right[1]) == (" child with ", " and seizure")
    assert (m.left[2], m.right[2]) == ("stature and ", ".")
    no_context, _ = mentions_from_documents(docs, context_chars=0)
    assert no_context.left.tolist() == [""] * 4 and no_context.right.tolist() == [""] * 4
    none, refs = mentions_from_documents([docs[1]])
    assert len(none) == 0 and refs.shape == (0, 2)


def test_set_predictions_best_first_and_empty_slots():
    docs = _docs()
    m, refs = mentions_from_documents(docs)
    ids = np.array([["HP:0001250", "HP:0002069", None],
                    ["HP:0004322", None, None],
                    [None, None, None],
                    ["HP:0001945", "HP:0001250", "HP:0002069"]], dtype=object)
    scores = np.array([[0.9, 0.5, -np.inf], [0.8, -np.inf, -np.inf], [-np.inf] * 3, [0.7, 0.2, -np.inf]],
                      dtype=np.float32)
    extra = np.empty(ids.shape, dtype=object)
    extra[0, 0] = {"matched_name": "Seizure"}
    out = set_predictions(docs, refs, ids, scores, db_name="HPO", extra=extra)
    assert out is docs
    a = docs[0]["entities"]
    assert a[0]["normalized"] == [{"db_name": "HPO", "db_id": "HP:0001250", "score": pytest.approx(0.9),
                                   "matched_name": "Seizure"},
                                  {"db_name": "HPO", "db_id": "HP:0002069", "score": pytest.approx(0.5)}]
    assert [p["db_id"] for p in a[1]["normalized"]] == ["HP:0004322"]
    assert a[2]["normalized"] == []  # NIL: an empty list, not a missing field
    # a -inf score empties the slot even when an id is there
    assert [p["db_id"] for p in docs[2]["entities"][0]["normalized"]] == ["HP:0001945", "HP:0001250"]
    assert all(isinstance(p["score"], float) for e in a for p in e["normalized"])


def test_set_predictions_other_field_and_per_mention_db_names():
    docs = _docs()
    _, refs = mentions_from_documents(docs)
    ids = np.array(["X1", "X2", "X3", "Y1"], dtype=object)  # [n] is read as [n, 1]
    set_predictions(docs, refs, ids, None, field="pred", db_name=["A", "A", "A", "B"])
    assert docs[0]["entities"][0]["pred"] == [{"db_name": "A", "db_id": "X1"}]
    assert docs[2]["entities"][0]["pred"] == [{"db_name": "B", "db_id": "Y1"}]
    assert docs[0]["entities"][0]["normalized"] == []  # gold field untouched
    with pytest.raises(ValueError, match="3 prediction rows for 4 mentions"):
        set_predictions(docs, refs, ids[:3], None)


def test_chunked_extraction_matches_whole():
    docs = _docs() * 1
    whole, _ = mentions_from_documents(docs)
    parts = [mentions_from_documents(docs[i:i + 1])[0] for i in range(len(docs))]
    assert sum((p.texts.tolist() for p in parts), []) == whole.texts.tolist()


def test_linker_fills_the_example_documents(tmp_path):
    """End to end through the real Linker (a 5-concept sparse index): read -> link -> write -> read."""
    from pathlib import Path

    from xnorm import TerminologyBuilder
    from xnorm.candidates import CandidateIndex
    from xnorm.data import read_documents, write_documents
    from xnorm.linker import Linker, LinkerConfig

    b = TerminologyBuilder()
    names = {"HP:0001250": ["Seizure", "convulsiones"], "HP:0004322": ["Short stature", "baja estatura"],
             "HP:0000252": ["Microcephaly"], "HP:0001252": ["Hypotonia", "hipotonía"],
             "HP:0001945": ["Fever", "fiebre"]}
    for cid, ns in names.items():
        b.add_concept(cid, ns[0], source="test")
        for n in ns:
            b.add_name(cid, n, "en", "exact", "test")
    index = CandidateIndex.build(b.build(name="tiny"), {"generators": [{"type": "sparse", "ngram_range": [2, 4]}]})
    linker = Linker(index, LinkerConfig(top_k=2, k=4, abbreviations=False, db_name="HPO"))
    example = Path(__file__).resolve().parents[1] / "examples" / "clinical_notes.bigbio.jsonl"
    linked = linker.link(read_documents(example), top_k=2, batch_size=2)
    assert write_documents(linked, tmp_path / "linked.jsonl") == 3
    docs = list(read_documents(tmp_path / "linked.jsonl"))
    best = {e["text"][0]: e["normalized"][0]["db_id"] for d in docs for e in d["entities"]}
    assert best["microcephaly"] == "HP:0000252" and best["baja estatura"] == "HP:0004322"
    assert best["fiebre"] == "HP:0001945" and best["recurrent seizures"] == "HP:0001250"
    for e in (e for d in docs for e in d["entities"]):
        assert 1 <= len(e["normalized"]) <= 2 and e["normalized"][0]["db_name"] == "HPO"
        scores = [p["score"] for p in e["normalized"]]
        assert scores == sorted(scores, reverse=True)
