"""Each class of malformed input gives an InputError that names file, line/document, field and a fix."""
from __future__ import annotations

import copy
import json

import pytest

from xnorm.data import DocumentValidator, read_documents, validate_document
from xnorm.errors import EXIT_BAD_INPUT, InputError


def _doc(doc_id: str = "d1") -> dict:
    text = "Patient with seizures and short stature."
    return {"id": doc_id, "document_id": doc_id,
            "passages": [{"id": f"{doc_id}_p", "type": "text", "text": [text], "offsets": [[0, len(text)]]}],
            "entities": [{"id": f"{doc_id}_T1", "type": "phenotype", "text": ["seizures"], "offsets": [[13, 21]],
                          "normalized": []},
                         {"id": f"{doc_id}_T2", "type": "phenotype", "text": ["short", "stature"],
                          "offsets": [[26, 31], [32, 39]], "normalized": [{"db_name": "HPO", "db_id": "HP:0004322"}]}],
            "events": [], "coreferences": [], "relations": []}


def _write(tmp_path, docs_or_lines) -> str:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in docs_or_lines) + "\n")
    return str(path)


def _error(tmp_path, lines) -> InputError:
    path = _write(tmp_path, lines)
    with pytest.raises(InputError) as info:
        list(read_documents(path))
    err = info.value
    assert err.file == path and err.fix and err.exit_code == EXIT_BAD_INPUT
    return err


def test_valid_documents_pass(tmp_path):
    docs = [_doc("d1"), _doc("d2")]
    assert list(read_documents(_write(tmp_path, docs))) == docs


def test_bad_json_line_names_line_and_json_error(tmp_path):
    err = _error(tmp_path, [_doc("d1"), "", '{"id": "d2", "passages": [}'])
    assert err.line == 3 and "not valid JSON (Expecting value at column 27)" in err.message
    err = _error(tmp_path, ['["not", "an object"]'])
    assert err.line == 1 and "not an object" in err.message


def test_offsets_out_of_range(tmp_path):
    doc = _doc()
    doc["entities"][0]["offsets"] = [[13, 99]]
    err = _error(tmp_path, [_doc("d0"), doc])
    assert (err.line, err.document, err.field) == (2, "d1", "entities[0].offsets[0]")
    assert "outside the document text (40 characters)" in str(err)
    doc["entities"][0]["offsets"] = [[21, 13]]
    assert "is not a span" in str(_error(tmp_path, [doc]))
    doc["entities"][0]["offsets"] = [["13", "21"]]
    assert "pair of integers" in str(_error(tmp_path, [doc]))


def test_text_mismatch_and_whitespace_rule(tmp_path):
    doc = _doc()
    doc["entities"][0]["text"] = ["seizure"]
    err = _error(tmp_path, [doc])
    assert err.field == "entities[0].text" and "'seizure' differs from the document text 'seizures'" in err.message
    doc = _doc()
    doc["entities"][1]["text"] = ["short", "statue"]  # one discontinuous piece wrong
    assert _error(tmp_path, [doc]).field == "entities[1].text[1]"
    # whitespace-only differences are tolerated; one text for several pieces is compared joined by a space
    doc = _doc()
    doc["entities"][0]["text"] = [" seizures  "]
    doc["entities"][1]["text"] = ["short stature"]
    validate_document(doc)
    doc["entities"][1]["text"] = ["short", "stature", "x"]
    with pytest.raises(InputError, match="3 texts for 2 offset pairs"):
        validate_document(doc)


def test_duplicate_ids_across_the_stream(tmp_path):
    err = _error(tmp_path, [_doc("d1"), _doc("d2"), _doc("d1")])
    assert err.line == 3 and err.field == "id" and "'d1' is used twice" in err.message
    d2 = _doc("d2")
    d2["entities"][0]["id"] = "d1_T1"
    err = _error(tmp_path, [_doc("d1"), d2])
    assert err.field == "entities[0].id" and "first in document 'd1'" in err.message
    d3 = _doc("d3")
    d3["entities"][1]["id"] = "d3_T1"
    assert "used twice" in _error(tmp_path, [d3]).message


def test_missing_and_wrongly_typed_fields(tmp_path):
    for key, field in (("id", "id"), ("document_id", "document_id"), ("entities", "entities")):
        doc = _doc()
        del doc[key]
        err = _error(tmp_path, [doc])
        assert err.field == field and "required field" in err.message
    doc = _doc()
    del doc["entities"][1]["normalized"]
    err = _error(tmp_path, [doc])
    assert err.field == "entities[1].normalized" and '"normalized": []' in err.fix
    doc = _doc()
    doc["entities"][1]["normalized"] = [{"db_name": "HPO"}]
    assert _error(tmp_path, [doc]).field == "entities[1].normalized[0]"
    doc = _doc()
    doc["passages"][0]["offsets"] = [[0, 10]]
    assert "span 10 characters but the text has 40" in _error(tmp_path, [doc]).message
    doc = _doc()
    doc["entities"] = {"T1": {}}
    assert "must be a list" in _error(tmp_path, [doc]).message
    doc = _doc()
    doc["lang"] = 3
    assert _error(tmp_path, [doc]).field == "lang"


def test_relations_must_point_to_entities():
    doc = _doc()
    doc["relations"] = [{"id": "r1", "type": "x", "arg1_id": "d1_T1", "arg2_id": "nope", "normalized": []}]
    with pytest.raises(InputError, match="refers to 'nope'") as info:
        validate_document(doc, source="x.jsonl", line=7)
    assert str(info.value).startswith("x.jsonl:7, document 'd1', field 'relations[0].arg2_id'")
    doc["relations"][0]["arg2_id"] = "d1_T2"
    validate_document(doc)
    doc["coreferences"] = [{"id": "c1", "entity_ids": ["d1_T1", "zz"]}]
    with pytest.raises(InputError, match="refers to 'zz'"):
        validate_document(doc)


def test_unknown_fields_kept_or_refused_in_strict_mode(tmp_path):
    doc = _doc()
    doc["entites"] = []
    doc["lang"] = "es"
    assert list(read_documents(_write(tmp_path, [doc]))) == [doc]
    with pytest.raises(InputError, match="unknown field 'entites'"):
        list(read_documents(_write(tmp_path, [doc]), strict=True))


def test_validation_can_be_turned_off(tmp_path):
    bad = _doc()
    bad["entities"][0]["offsets"] = [[0, 999]]
    assert list(read_documents(_write(tmp_path, [bad, bad]), validate=False)) == [bad, bad]


def test_validator_keeps_ids_between_calls():
    check = DocumentValidator("stream")
    check(_doc("a"))
    with pytest.raises(InputError, match="used twice"):
        check(copy.deepcopy(_doc("a")), 2)


def test_brat_ann_without_txt_and_bad_lines(tmp_path):
    (tmp_path / "ok.txt").write_text("fever")
    (tmp_path / "ok.ann").write_text("T1\tS 0 5\tfever\n")
    (tmp_path / "lost.ann").write_text("T1\tS 0 5\tfever\n")
    with pytest.raises(InputError) as info:
        list(read_documents(tmp_path, format="brat"))
    assert info.value.file == str(tmp_path / "lost.ann") and "no .txt" in info.value.message
    (tmp_path / "lost.ann").unlink()
    (tmp_path / "ok.ann").write_text("T1\tS 0 5\tfever\nT2\tS zero 5\tfever\n")
    with pytest.raises(InputError) as info:
        list(read_documents(tmp_path, format="brat"))
    assert (info.value.file, info.value.line) == (str(tmp_path / "ok.ann"), 2)
    (tmp_path / "ok.ann").write_text("T1\tS 0 5\tfever\nT1\tS 0 5\tfever\n")
    with pytest.raises(InputError, match="'T1' is used twice") as info:
        list(read_documents(tmp_path, format="brat"))
    assert info.value.line == 2
    (tmp_path / "ok.ann").write_text("T1\tS 0 4\tfever\n")
    with pytest.raises(InputError, match="'fever' differs from the document text 'feve'") as info:
        list(read_documents(tmp_path, format="brat"))
    assert info.value.file == str(tmp_path / "ok.ann") and info.value.document == "ok"


def test_pubtator_bad_lines(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("1|t|Fever.\n1\t0\tfive\tFever\tDisease\tD1\n")
    with pytest.raises(InputError) as info:
        list(read_documents(path))
    assert (info.value.line, info.value.document) == (2, "1") and "columns" in info.value.message
    path.write_text("1|t|Fever.\n2\t0\t5\tFever\tDisease\tD1\n")
    with pytest.raises(InputError, match="belongs to PMID '2'"):
        list(read_documents(path))
    path.write_text("1|t|Fever.\n1\t0\t5\tFevers\tDisease\tD1\n")
    with pytest.raises(InputError, match="'Fevers' differs"):
        list(read_documents(path))
