"""xnorm.data on handmade documents: round trips through every format, brat line kinds, format detection."""
from __future__ import annotations

import json
import warnings

import pytest

from xnorm.data import (dataset_to_jsonl, detect_format, document_text, documents_to_dataset, jsonl_to_dataset,
                        new_document, read_documents, validate_stream, write_documents)
from xnorm.data.pubtator import format_ids, parse_ids
from xnorm.errors import InputError


def _doc(doc_id: str = "d1") -> dict:
    """Two passages, a discontinuous entity, a relation, an extra key at each level."""
    doc = new_document(doc_id, [("title", "Short stature and seizures."),
                                ("abstract", "Both upper and lower limbs were short; fever was absent.")], lang="en")
    text = document_text(doc)
    assert text == "Short stature and seizures. Both upper and lower limbs were short; fever was absent."

    def span(s: str, start: int = 0) -> list[int]:
        i = text.index(s, start)
        return [i, i + len(s)]

    doc["entities"] = [
        {"id": f"{doc_id}_T1", "type": "phenotype", "text": ["Short stature"], "offsets": [span("Short stature")],
         "normalized": [{"db_name": "HPO", "db_id": "HP:0004322"}]},
        {"id": f"{doc_id}_T2", "type": "phenotype", "text": ["seizures"], "offsets": [span("seizures")],
         "normalized": [{"db_name": "HPO", "db_id": "HP:0001250", "score": 0.75}], "confidence": "high"},
        # discontinuous: "upper ... limbs ... short"
        {"id": f"{doc_id}_T3", "type": "phenotype", "text": ["upper", "limbs were short"],
         "offsets": [span("upper"), span("limbs were short")], "normalized": []},
        {"id": f"{doc_id}_T4", "type": "phenotype", "text": ["fever"], "offsets": [span("fever")],
         "normalized": [{"db_name": "HPO", "db_id": "HP:0001945"}, {"db_name": "UMLS", "db_id": "C0015967"}]},
    ]
    doc["relations"] = [{"id": f"{doc_id}_R1", "type": "co-occurs", "arg1_id": f"{doc_id}_T1",
                         "arg2_id": f"{doc_id}_T2", "normalized": []}]
    doc["source"] = {"corpus": "handmade", "year": 2026}
    return doc


def test_jsonl_round_trip_keeps_extra_keys(tmp_path):
    docs = [_doc("d1"), _doc("d2")]
    docs[1]["lang"] = "fr"
    assert write_documents(docs, tmp_path / "a.jsonl") == 2
    assert list(read_documents(tmp_path / "a.jsonl")) == docs
    # non-ASCII stays readable in the file, one document per line
    lines = (tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["lang"] == "fr"


def test_json_array_is_read(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps([_doc("d1"), _doc("d2")]))
    assert [d["id"] for d in read_documents(tmp_path / "a.json")] == ["d1", "d2"]


def _brat_view(doc: dict) -> dict:
    """What brat can hold: one text, entities (with normalizations), relations; no extra keys."""
    out = {k: doc[k] for k in ("id", "entities", "relations", "events", "coreferences")}
    out["text"] = document_text(doc)
    out["entities"] = [{k: v for k, v in e.items() if k != "confidence"} for e in doc["entities"]]
    return out


def test_brat_round_trip_handmade(tmp_path):
    docs = [_doc("d1"), _doc("sub/d2")]
    with pytest.warns(UserWarning, match="entities.confidence, lang, source"):
        write_documents(docs, tmp_path / "brat", format="brat")
    ann = (tmp_path / "brat" / "d1.ann").read_text()
    assert "T3\tphenotype 33 38;49 65\tupper limbs were short" in ann
    assert "Reference T2 HPO:HP:0001250\t{\"score\":0.75}" in ann
    assert "R1\tco-occurs Arg1:T1 Arg2:T2" in ann
    assert (tmp_path / "brat" / "sub" / "d2.txt").is_file()
    back = list(read_documents(tmp_path / "brat"))
    assert [d["id"] for d in back] == ["d1", "sub/d2"]
    assert [_brat_view(d) for d in back] == [_brat_view(d) for d in docs]
    # brat -> write -> read is exact
    write_documents(back, tmp_path / "brat2", format="brat")
    assert list(read_documents(tmp_path / "brat2")) == back


def test_brat_line_kinds(tmp_path):
    folder = tmp_path / "b"
    folder.mkdir()
    text = "Fever and cough after aspirin intake. Patient febrile."
    (folder / "n1.txt").write_text(text)
    (folder / "n1.ann").write_text(
        "T1\tSymptom 0 5\tFever\n"
        "T2\tSymptom 10 15\tcough\n"
        "T3\tDrug 22 29\taspirin\n"
        "T4\tIntake 30 36\tintake\n"
        "T5\tSymptom 46 53\tfebrile\n"
        "E1\tIntake:T4 Theme:T3\n"
        "R1\tCause Cause:T3 Effect:T1\n"
        "*\tEquiv T1 T5\n"
        "A1\tNegated T2\n"
        "A2\tSeverity T1 High\n"
        "N1\tReference T1 HPO:HP:0001945\tFever\n"
        "N2\tReference T1 UMLS:C0015967\n"
        "#1\tAnnotatorNotes T1\tchecked twice\n"
        "# a free comment line\n"
    )
    (doc,) = read_documents(folder)
    ents = {e["id"]: e for e in doc["entities"]}
    assert set(ents) == {"n1_T1", "n1_T2", "n1_T3", "n1_T5"}  # T4 is only the event's trigger
    assert ents["n1_T1"]["normalized"] == [{"db_name": "HPO", "db_id": "HP:0001945", "name": "Fever"},
                                           {"db_name": "UMLS", "db_id": "C0015967"}]
    assert ents["n1_T1"]["attributes"] == [{"type": "Severity", "value": "High"}]
    assert ents["n1_T2"]["attributes"] == [{"type": "Negated", "value": True}]
    assert ents["n1_T1"]["notes"] == ["checked twice"]
    assert doc["events"] == [{"id": "n1_E1", "type": "Intake", "trigger": {"text": ["intake"], "offsets": [[30, 36]]},
                              "arguments": [{"role": "Theme", "ref_id": "n1_T3"}]}]
    assert doc["relations"] == [{"id": "n1_R1", "type": "Cause", "arg1_id": "n1_T3", "arg2_id": "n1_T1",
                                 "normalized": [], "roles": ["Cause", "Effect"]}]
    assert doc["coreferences"] == [{"id": "n1_*1", "entity_ids": ["n1_T1", "n1_T5"]}]
    assert doc["brat_lines"] == ["# a free comment line"]
    write_documents([doc], tmp_path / "out", format="brat")
    assert list(read_documents(tmp_path / "out")) == [doc]
    assert (tmp_path / "out" / "n1.txt").read_text() == text


def test_brat_txt_without_ann_is_an_unannotated_document(tmp_path):
    (tmp_path / "a.txt").write_text("No findings.")
    (tmp_path / "b.txt").write_text("Seizures.")
    (tmp_path / "b.ann").write_text("T1\tphenotype 0 8\tSeizures\n")
    docs = list(read_documents(tmp_path, format="brat"))
    assert [(d["id"], len(d["entities"])) for d in docs] == [("a", 0), ("b", 1)]


def test_brat_crlf_offsets_are_kept(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"line one\r\nfever here\r\n")
    (tmp_path / "a.ann").write_text("T1\tphenotype 10 15\tfever\n")
    (doc,) = read_documents(tmp_path)
    assert doc["entities"][0]["text"] == ["fever"]
    write_documents([doc], tmp_path / "out", format="brat")
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"line one\r\nfever here\r\n"


def test_pubtator_ids_and_round_trip(tmp_path):
    assert parse_ids("D012345|D000123") == [{"db_name": "MESH", "db_id": "D012345"},
                                            {"db_name": "MESH", "db_id": "D000123"}]
    assert parse_ids("OMIM:123+D1") == [{"db_name": "OMIM", "db_id": "123"}, {"db_name": "MESH", "db_id": "D1"}]
    assert parse_ids("-1") == [] and parse_ids("") == []
    assert parse_ids("HP:0001250") == [{"db_name": "HPO", "db_id": "HP:0001250"}]
    assert parse_ids("C0015967", db_name="UMLS") == [{"db_name": "UMLS", "db_id": "C0015967"}]
    assert format_ids(parse_ids("OMIM:123|D1|HP:0001250")) == "OMIM:123|D1|HP:0001250"
    assert format_ids([]) == "-1"
    path = tmp_path / "a.pubtator"
    path.write_text("\n".join([
        "111|t|Seizures in a child.",
        "111|a|Febrile seizures and fever.",
        "111\t0\t8\tSeizures\tDisease\tD012640",
        "111\t21\t37\tFebrile seizures\tDisease\tD003294|OMIM:604403",
        "111\t42\t47\tfever\tDisease\t-1",
        "111\tCID\tD012640\tD003294",
        "",
        "222|t|No abstract here: ataxia.",
        "222\t18\t24\tataxia\tDisease\tHP:0001251",
        "",
    ]))
    assert detect_format(path) == "pubtator"
    docs = list(read_documents(path))
    assert [d["id"] for d in docs] == ["111", "222"]
    assert [p["type"] for p in docs[0]["passages"]] == ["title", "abstract"]
    assert docs[0]["entities"][1]["normalized"] == [{"db_name": "MESH", "db_id": "D003294"},
                                                    {"db_name": "OMIM", "db_id": "604403"}]
    assert docs[0]["entities"][2]["normalized"] == []
    assert docs[0]["pubtator_relations"] == [["CID", "D012640", "D003294"]]
    assert docs[1]["entities"][0]["normalized"] == [{"db_name": "HPO", "db_id": "HP:0001251"}]
    write_documents(docs, tmp_path / "b.pubtator")
    assert list(read_documents(tmp_path / "b.pubtator")) == docs
    assert (tmp_path / "b.pubtator").read_text() == path.read_text() + "\n"


def test_pubtator_refuses_what_it_cannot_hold(tmp_path):
    with pytest.raises(InputError, match="offset pieces"):
        write_documents([_doc()], tmp_path / "x.pubtator")
    assert not (tmp_path / "x.pubtator").exists()  # atomic: nothing half-written


def test_hf_dataset_round_trip(tmp_path):
    docs = [_doc("d1"), _doc("d2")]
    del docs[0]["lang"]  # a key only some documents carry must survive Arrow's one schema
    write_documents(docs, tmp_path / "a.jsonl")
    ds = jsonl_to_dataset(tmp_path / "a.jsonl", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 2
    dataset_to_jsonl(ds, tmp_path / "b.jsonl")
    assert list(read_documents(tmp_path / "b.jsonl")) == docs
    ds2 = documents_to_dataset(docs)
    import datasets

    datasets.DatasetDict({"train": ds2, "test": ds2.select([1])}).save_to_disk(str(tmp_path / "hf"))
    assert detect_format(tmp_path / "hf") == "hf"
    assert list(read_documents(f"{tmp_path / 'hf'}::test")) == docs[1:]
    assert list(read_documents(tmp_path / "hf", split="train")) == docs
    with pytest.raises(InputError, match="several splits.*::train"):
        list(read_documents(tmp_path / "hf"))
    with pytest.raises(InputError, match="split 'dev' is not in"):
        list(read_documents(f"{tmp_path / 'hf'}::dev"))
    # a batched map works on the kb columns
    counted = ds.map(lambda b: {"n": [len(e) for e in b["entities"]]}, batched=True)
    assert counted["n"] == [4, 4]


def test_detect_format(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps(_doc()) + "\n")
    (tmp_path / "noext").write_text(json.dumps(_doc()) + "\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.txt").write_text("fever")
    (tmp_path / "b" / "x.ann").write_text("T1\tS 0 5\tfever\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "odd.txt").write_text("hello\tworld\n")
    assert detect_format(tmp_path / "a.jsonl") == "bigbio"
    assert detect_format(tmp_path / "noext") == "bigbio"
    assert detect_format(tmp_path / "b") == "brat"
    assert detect_format(tmp_path / "b" / "x.ann") == "brat"
    with pytest.raises(InputError, match="neither .ann files"):
        detect_format(tmp_path / "empty")
    with pytest.raises(InputError, match="cannot tell the format.*Fix: force it"):
        detect_format(tmp_path / "odd.txt")
    with pytest.raises(InputError, match="file not found"):
        detect_format(tmp_path / "missing.jsonl")
    # forcing a format beats detection; unknown reader options are refused
    assert len(list(read_documents(tmp_path / "noext", format="bigbio"))) == 1
    with pytest.raises(InputError, match="option 'db_name' does not apply to bigbio"):
        read_documents(tmp_path / "a.jsonl", db_name="HPO")


def test_writers_are_atomic(tmp_path):
    def broken():
        yield _doc("d1")
        raise RuntimeError("interrupted")

    for name, fmt in (("a.jsonl", "bigbio"), ("b", "brat")):
        with pytest.raises(RuntimeError):
            write_documents(broken(), tmp_path / name, format=fmt)
        assert not (tmp_path / name).exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_example_file_is_valid_with_empty_normalized():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "clinical_notes.bigbio.jsonl"
    docs = list(read_documents(path))
    assert len(docs) == 3 and {d.get("lang") for d in docs} == {"en", "es"}
    ents = [e for d in docs for e in d["entities"]]
    assert len(ents) >= 10 and all(e["normalized"] == [] for e in ents)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(validate_stream(docs, strict=True))


def test_gzipped_jsonl_is_read(tmp_path):
    import gzip

    docs = [_doc("d1"), _doc("d2")]
    with gzip.open(tmp_path / "a.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(d) + "\n" for d in docs)
    assert detect_format(tmp_path / "a.jsonl.gz") == "bigbio"
    assert list(read_documents(tmp_path / "a.jsonl.gz")) == docs


def test_hf_dataset_with_bigbio_features(tmp_path):
    from xnorm.data import kb_features

    doc = _doc("d1")
    del doc["source"]
    for ent in doc["entities"]:
        ent.pop("confidence", None)
        for n in ent["normalized"]:
            n.pop("score", None)
    write_documents([doc], tmp_path / "a.jsonl")
    ds = jsonl_to_dataset(tmp_path / "a.jsonl", features=kb_features(), cache_dir=str(tmp_path / "cache"))
    assert ds.features == kb_features()
    assert ds[0]["entities"][2]["offsets"] == [[33, 38], [49, 65]] and ds[0]["lang"] == "en"
    assert documents_to_dataset([doc], features=kb_features())[0]["entities"] == doc["entities"]
    doc["source"] = "x"
    with pytest.raises(InputError, match="key 'source' is not among the given features"):
        documents_to_dataset([doc], features=kb_features())
