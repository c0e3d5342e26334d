"""Custom terminologies from TSV / CSV / JSONL, and the errors a bad row gives (file, line, field, fix)."""
from __future__ import annotations

import json

import pytest

from xnorm.errors import InputError
from xnorm.terminology import TerminologyBuilder, load_jsonl, load_table


def _table(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_tsv_with_all_columns(tmp_path):
    p = _table(tmp_path, "terms.tsv",
               "concept_id\tname\tlang\ttype\tpreferred_name\tsemantic_types\n"
               "D1\tSeizure\ten\tpreferred\tSeizure\tT047|DISO\n"
               "D1\tconvulsión\tes-ES\ttranslation\t\t\n"
               "D1\tfits\t\tlayperson\t\t\n"
               "D2\tAsthma\t\t\t\tT047\n")
    b = TerminologyBuilder()
    assert load_table(b, p, lang="en") == {"names": 4, "concepts": 2}
    term = b.build()
    assert term.concept_ids.tolist() == ["D1", "D2"]
    assert term.preferred_names.tolist() == ["Seizure", "Asthma"]
    assert term.semantic_types.tolist() == ["DISO|T047", "T047"]
    assert term.name_langs.tolist() == ["en", "es", "en", "en"]
    assert term.name_types.tolist() == ["preferred", "translation", "layperson", "exact"]
    assert set(term.name_provenance) == {"terms.tsv"}


def test_parents_build_the_hierarchy(tmp_path):
    # ICD-10-like codes: a chapter, a block, two codes; one parent named before it appears, one unknown.
    p = _table(tmp_path, "icd.tsv", "concept_id\tname\tparents\n"
               "G40.9\tEpilepsy, unspecified\tG40\nG40\tEpilepsy\tG40-G47\nG40-G47\tEpisodic disorders\t\n"
               "G41\tStatus epilepticus\tG40-G47 | X99\n")
    b = TerminologyBuilder()
    assert load_table(b, p)["is_a"] == 4
    term = b.build()
    assert term.parents_of("G40.9") == ["G40"] and term.children_of("G40-G47") == ["G40", "G41"]
    assert term.metadata["dropped_is_a_edges"] == 1  # X99 is no concept of the table
    rows = [{"concept_id": "A", "names": ["a"]}, {"concept_id": "A01", "names": ["b"], "parents": ["A"]}]
    j = _table(tmp_path, "atc.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    b = TerminologyBuilder()
    assert load_jsonl(b, j)["is_a"] == 1 and b.build().parents_of("A01") == ["A"]


def test_csv_quoting_and_minimal_columns(tmp_path):
    p = _table(tmp_path, "terms.csv", 'concept_id,name\nC1,"Ambiguous genitalia, male"\nC2,"a ""quoted"" name"\n')
    b = TerminologyBuilder()
    load_table(b, p, delimiter=None)
    term = b.build()
    assert term.name_texts.tolist() == ["Ambiguous genitalia, male", 'a "quoted" name']


@pytest.mark.parametrize("body,line,field", [
    ("concept_id\tname\nD1\t\n", 2, "name"),
    ("concept_id\tname\nD1\tok\n\tno id\n", 3, "concept_id"),
    ("concept_id\tname\ttype\nD1\tok\texact\nD1\tx\tsynonym\n", 3, "type"),
    ("concept_id\tname\nD1\tok\tstray\n", 2, None),
    ("concept_id\tlabel\nD1\tok\n", 1, "name"),
    ("concept_id\tname\tcomment\nD1\tok\tx\n", 1, "comment"),
])
def test_tsv_bad_rows_name_file_line_field(tmp_path, body, line, field):
    p = _table(tmp_path, "bad.tsv", body)
    with pytest.raises(InputError) as e:
        load_table(TerminologyBuilder(), p)
    msg = str(e.value)
    assert f"bad.tsv:{line}" in msg and "Fix:" in msg
    if field:
        assert f"field {field!r}" in msg


def test_unknown_extension_needs_delimiter(tmp_path):
    p = _table(tmp_path, "terms.dat", "concept_id|name\nD1|x\n")
    with pytest.raises(InputError, match="delimiter"):
        load_table(TerminologyBuilder(), p)
    b = TerminologyBuilder()
    load_table(b, p, delimiter="|")
    assert b.build().name_texts.tolist() == ["x"]


def test_jsonl(tmp_path):
    rows = [
        {"concept_id": "D1", "preferred_name": "Seizure", "names": ["Epileptic seizure"], "semantic_types": ["T047"]},
        {"concept_id": "D2", "names": [{"text": "Asma", "lang": "es", "type": "translation"}, {"text": "Asthma"}]},
    ]
    p = _table(tmp_path, "terms.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n")
    b = TerminologyBuilder()
    assert load_jsonl(b, p) == {"names": 4, "concepts": 2}
    term = b.build()
    assert term.preferred_names.tolist() == ["Seizure", "Asma"]  # D2: no preferred_name -> its first name
    assert term.name_types.tolist() == ["preferred", "exact", "translation", "exact"]
    assert term.name_langs.tolist() == ["en", "en", "es", "en"]
    assert term.semantic_types.tolist() == ["T047", ""]


@pytest.mark.parametrize("line2,field", [
    ('{"concept_id": "D2", "names": ["x"]', "(json)"),
    ('["D2"]', "(json)"),
    ('{"names": ["x"]}', "concept_id"),
    ('{"concept_id": "D2", "names": "x"}', "names"),
    ('{"concept_id": "D2", "names": [{"lang": "es"}]}', "names[0]"),
    ('{"concept_id": "D2", "names": [{"text": "x", "type": "syn"}]}', "names[0].type"),
    ('{"concept_id": "D2", "names": ["x"], "semantic_types": "T047"}', "semantic_types"),
    ('{"concept_id": "D2", "names": ["x"], "synonyms": []}', "synonyms"),
    ('{"concept_id": "D2", "names": ["x"], "parents": "D1"}', "parents"),
    ('{"concept_id": "D2", "names": ["x"], "parents": [""]}', "parents"),
    ('{"concept_id": "D2"}', "names"),
])
def test_jsonl_bad_lines(tmp_path, line2, field):
    p = _table(tmp_path, "bad.jsonl", '{"concept_id": "D1", "names": ["ok"]}\n' + line2 + "\n")
    with pytest.raises(InputError) as e:
        load_jsonl(TerminologyBuilder(), p)
    msg = str(e.value)
    assert "bad.jsonl:2" in msg and f"field {field!r}" in msg and "Fix:" in msg
