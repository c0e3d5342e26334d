"""UMLS loader on a small MRCONSO / MRSTY / SemGroups sample written here in the real RRF formats."""
from __future__ import annotations

import pytest

from xnorm.errors import ConfigError, InputError
from xnorm.terminology import TerminologyBuilder, load_umls
from xnorm.terminology.umls import read_semantic_groups

# CUI|LAT|TS|LUI|STT|SUI|ISPREF|AUI|SAUI|SCUI|SDUI|SAB|TTY|CODE|STR|SRL|SUPPRESS|CVF|
MRCONSO = """\
C0036572|ENG|P|L0036572|PF|S0085322|Y|A0109617||M0019520|D012640|MSH|MH|D012640|Seizures|0|N|256|
C0036572|ENG|S|L0036573|PF|S0085323|Y|A0109618||M0019521|D012640|MSH|EN|D012640|Convulsive seizure|0|N||
C0036572|ENG|P|L0036572|VO|S0085324|N|A0109619||||MTH|PN|NOCODE|Seizure|0|O||
C0036572|SPA|S|L1234567|PF|S1234567|Y|A1234567||M0019520|D012640|MSHSPA|MH|D012640|Convulsiones|3|N||
C0036572|GER|S|L2234567|PF|S2234567|Y|A2234567||M0019520|D012640|MSHGER|MH|D012640|Krampfanfall|3|N||
C0036572|FRE|S|L3234567|PF|S3234567|Y|A3234567||M0019520|D012640|MSHFRE|EN|D012640|Crise épileptique|3|E||
C0004096|SPA|S|L4234567|PF|S4234567|Y|A4234567||M0001920|D001249|MSHSPA|MH|D001249|Asma|3|N||
C0004096|ENG|P|L0004048|PF|S0016668|Y|A0022259||M0001920|D001249|MSH|MH|D001249|Asthma|0|N||
C0004096|ENG|S|L0004049|PF|S0016669|Y|A0022260||||SNOMEDCT_US|AB|195967001|BA|9|N||
C0005767|ENG|P|L0005767|PF|S0018910|Y|A0030811||M0002498|D001769|MSH|MH|D001769|Blood|0|N||
C0005767|SPA|S|L5234567|PF|S5234567|Y|A5234567||M0002498|D001769|MSHSPA|MH|D001769|Sangre|3|Y||
"""
MRSTY = """\
C0036572|T047|B2.2.1.2.1|Disease or Syndrome|AT17683839|256|
C0036572|T184|A2.2.2|Sign or Symptom|AT17683840||
C0004096|T047|B2.2.1.2.1|Disease or Syndrome|AT17585346|256|
C0005767|T031|A1.4.1.2|Body Substance|AT17585347||
"""
SEMGROUPS = """\
DISO|Disorders|T047|Disease or Syndrome
DISO|Disorders|T184|Sign or Symptom
ANAT|Anatomy|T031|Body Substance
"""


@pytest.fixture
def meta(tmp_path):
    for name, text in (("MRCONSO.RRF", MRCONSO), ("MRSTY.RRF", MRSTY), ("SemGroups.txt", SEMGROUPS)):
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def _build(meta, **options):
    b = TerminologyBuilder()
    stats = load_umls(b, meta / "MRCONSO.RRF", mrsty=meta / "MRSTY.RRF",
                      semantic_groups_file=meta / "SemGroups.txt", **options)
    return b.build(), stats


def test_languages_suppress_preferred_and_types(meta):
    term, stats = _build(meta, languages=["en", "SPA", "de"])
    assert term.concept_ids.tolist() == ["C0036572", "C0004096", "C0005767"]
    # Preferred name: the English TS=P, STT=PF, ISPREF=Y row, even when a Spanish row comes first.
    assert term.preferred_names.tolist() == ["Seizures", "Asthma", "Blood"]
    assert term.names_of("C0036572") == ["Seizures", "Convulsive seizure", "Convulsiones", "Krampfanfall"]
    assert stats["skipped_suppressed"] == 2  # MTH "Seizure" (O) and "Sangre" (Y); French dropped by language
    assert stats["skipped_language"] == 1
    langs = dict(zip(term.name_texts, term.name_langs))
    assert langs["Convulsiones"] == "es" and langs["Krampfanfall"] == "de"
    types = dict(zip(term.name_texts, term.name_types))
    assert types["Seizures"] == "preferred" and types["Convulsive seizure"] == "exact"
    assert types["BA"] == "abbreviation"
    assert types["Convulsiones"] == "exact"  # TS=S: not the concept's preferred string
    assert term.semantic_types.tolist() == ["DISO|T047|T184", "DISO|T047", "ANAT|T031"]
    assert dict(zip(term.name_texts, term.name_provenance))["BA"] == "UMLS:SNOMEDCT_US"


def test_filters_sources_groups_and_suppress(meta):
    term, _ = _build(meta, languages=None, sources=["MSH", "MSHFRE", "MSHSPA"], drop_suppress=[])
    assert "BA" not in set(term.name_texts)  # SNOMEDCT_US filtered out
    assert {"Crise épileptique", "Sangre"} <= set(term.name_texts)  # kept: no suppress filter, all languages
    diso, stats = _build(meta, semantic_groups=["DISO"])
    assert diso.concept_ids.tolist() == ["C0036572", "C0004096"]
    assert stats["skipped_semantic_type"] == 1
    t184, _ = _build(meta, semantic_types=["T184"])
    assert t184.concept_ids.tolist() == ["C0036572"]


def test_errors(meta, tmp_path):
    with pytest.raises(ConfigError, match="unknown semantic group"):
        _build(meta, semantic_groups=["DISORDERS"])
    with pytest.raises(ConfigError, match="unknown UMLS language"):
        _build(meta, languages=["klingon"])
    with pytest.raises(ConfigError, match="MRSTY"):
        load_umls(TerminologyBuilder(), meta / "MRCONSO.RRF", semantic_types=["T047"])
    bad = tmp_path / "bad" / "MRCONSO.RRF"
    bad.parent.mkdir()
    bad.write_text(MRCONSO + "C0000001|ENG|P|L1|PF|S1|Y|A1\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_umls(TerminologyBuilder(), bad)
    assert f"{bad}:12" in str(e.value)
    (tmp_path / "sg.txt").write_text("DISO|Disorders|T047\n", encoding="utf-8")
    with pytest.raises(InputError, match="sg.txt:1"):
        read_semantic_groups(tmp_path / "sg.txt")
    assert read_semantic_groups(meta / "SemGroups.txt")["T031"] == ("ANAT", "Anatomy")


# CUI1|AUI1|STYPE1|REL|CUI2|AUI2|STYPE2|RELA|RUI|SRUI|SAB|SL|RG|DIR|SUPPRESS|CVF| — REL: how CUI2 relates to CUI1.
MRREL = """\
C0036572|A0109617|AUI|PAR|C0004096|A0022259|AUI|inverse_isa|R01||MSH|MSH|||N||
C0004096|A0022259|AUI|CHD|C0036572|A0109617|AUI|isa|R02||MSH|MSH|||N||
C0005767|A0030811|AUI|RB|C0036572|A0109617|AUI||R03||SNOMEDCT_US|SNOMEDCT_US|||N||
C0005767|A0030811|AUI|PAR|C9999999|A9|AUI||R04||MSH|MSH|||N||
C0005767|A0030811|AUI|PAR|C0004096|A0022259|AUI||R05||MSH|MSH|||O||
C0036572|A0109617|AUI|SY|C0004096|A0022259|AUI||R06||MSH|MSH|||N||
"""


def test_mrrel_parents_become_the_hierarchy(meta, tmp_path):
    """Made-up relations (not real UMLS facts): PAR and its inverse CHD name one edge; RB only when asked for;
    relations to concepts left out are counted; suppressed rows and other relations are skipped."""
    (meta / "MRREL.RRF").write_text(MRREL, encoding="utf-8")
    term, stats = _build(meta, languages=None, mrrel=meta / "MRREL.RRF")
    assert term.parents_of("C0036572") == ["C0004096"] and term.parents_of("C0005767") == []
    assert (stats["is_a"], stats["is_a_outside"]) == (1, 1)
    term, stats = _build(meta, languages=None, mrrel=meta / "MRREL.RRF", hierarchy_rels=["PAR", "RB"])
    assert term.parents_of("C0005767") == ["C0036572"] and stats["is_a"] == 2
    term, _ = _build(meta, languages=None, mrrel=meta / "MRREL.RRF", hierarchy_rels=["RB"], sources=["MSH"])
    assert len(term.is_a) == 0  # the RB row is SNOMEDCT_US's
    with pytest.raises(ConfigError, match="hierarchy relation"):
        _build(meta, mrrel=meta / "MRREL.RRF", hierarchy_rels=["ISA"])
    bad = tmp_path / "bad" / "MRREL.RRF"
    bad.parent.mkdir()
    bad.write_text("C1|A1|AUI|PAR|C2|\n", encoding="utf-8")
    with pytest.raises(InputError, match="MRREL.RRF:1"):
        _build(meta, mrrel=bad)
    # Through a recipe: `mrrel` is a path option (resolved beside the recipe, part of the cache key).
    from xnorm.terminology import load_terminology

    (meta / "umls.yaml").write_text("name: umls-test\nsources:\n  - type: umls\n    path: MRCONSO.RRF\n"
                                    "    mrrel: MRREL.RRF\n    languages: null\n", encoding="utf-8")
    assert load_terminology(meta / "umls.yaml", cache=False).parents_of("C0036572") == ["C0004096"]
