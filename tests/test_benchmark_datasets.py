"""Benchmark dataset builders on the real shared data, each count checked by an independent count here."""
from __future__ import annotations

import csv
import glob
from collections import Counter

import pytest

from tests.conftest import SHARED_DATA
from xnorm.benchmark.datasets import build_dataset, stable_fraction
from xnorm.benchmark.hpo_obo import read_hpo_ids
from xnorm.errors import ConfigError, InputError

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared data folder {SHARED_DATA} is absent")


@pytest.fixture(scope="module")
def hpo():
    return read_hpo_ids()


def _gold(doc):
    return [n["db_id"] for e in doc["entities"] for n in e["normalized"]]


def test_hp_obo_aliases(hpo, tmp_path):
    # Independent check on a hand-written OBO: alt_id, replaced_by chains, obsolete without successor.
    obo = tmp_path / "mini.obo"
    obo.write_text(
        "format-version: 1.2\n\n[Term]\nid: HP:1\nname: a\nalt_id: HP:9\nxref: UMLS:C1\n\n"
        "[Term]\nid: HP:2\nname: obsolete b\nis_obsolete: true\nreplaced_by: HP:3\n\n"
        "[Term]\nid: HP:3\nname: obsolete c\nis_obsolete: true\nreplaced_by: HP:1\n\n"
        "[Term]\nid: HP:4\nname: obsolete d\nis_obsolete: true\nxref: UMLS:C4\n\n"
        "[Typedef]\nid: part_of\n", encoding="utf-8")
    ids = read_hpo_ids(obo)
    assert ids.current == {"HP:1"}
    assert [ids.resolve(x) for x in ("HP:1", "HP:9", "HP:2", "HP:3", "HP:4", "HP:5")] == \
        ["HP:1", "HP:1", "HP:1", "HP:1", None, None]
    assert ids.umls == {"C1": ["HP:1"]}  # obsolete terms' xrefs are not used
    # The real release: every alias ends at a current id or nowhere, never loops.
    assert len(hpo.current) > 18000 and len(hpo.aliases) > 3000
    assert all(hpo.resolve(a) in hpo.current or hpo.resolve(a) is None for a in hpo.aliases)


def test_hpo_labels_counts_and_alias_mapping(hpo):
    ds = build_dataset("hpo-labels", {"languages": ["es", "nl", "dtp"], "max_per_language": None},
                       SHARED_DATA)
    meta = ds.metadata["languages"]
    # Independent count of Spanish OFFICIAL label rows (README: 19932) and of what maps to current ids.
    path = SHARED_DATA / "hpo-translations" / "hp-es.babelon.tsv"
    rows = [r for r in csv.DictReader(open(path, encoding="utf-8"), delimiter="\t", quoting=csv.QUOTE_NONE)
            if r["predicate_id"] == "rdfs:label" and r["translation_status"] == "OFFICIAL"]
    assert len(rows) == meta["es"]["n_label_rows"] == 19932
    retired = [r for r in rows if hpo.resolve(r["subject_id"]) is None]
    moved = [r for r in rows if hpo.resolve(r["subject_id"]) not in (None, r["subject_id"])]
    assert meta["es"]["dropped_obsolete"] == len(retired) > 0
    assert meta["es"]["mapped_alias"] == len(moved) > 0
    assert meta["es"]["queries"] == 19932 - len(retired)
    es_docs = {d["source_id"]: d for d in ds.documents if d["lang"] == "es"}
    old = moved[0]["subject_id"]
    assert _gold(es_docs[old]) == [hpo.resolve(old)] != [old]  # gold is the current id, not the retired one
    assert not any(r["subject_id"] in es_docs for r in retired)
    # Dutch has machine translations only: CANDIDATE labels, flagged as such.
    assert meta["nl"]["statuses"] == ["CANDIDATE"] and meta["nl"]["n_label_rows"] == 12448
    assert ds.machine_translated == ("nl",)
    assert all(d["machine_translated"] for d in ds.documents if d["lang"] == "nl")
    assert meta["dtp"]["queries"] == 13
    doc = ds.documents[0]
    ent = doc["entities"][0]
    assert doc["passages"][0]["text"] == ent["text"] and ent["offsets"] == [[0, len(ent["text"][0])]]


def test_hpo_labels_sampling_is_seeded():
    a = build_dataset("hpo-labels", {"languages": ["fr", "ja"], "max_per_language": 40, "seed": 3}, SHARED_DATA)
    b = build_dataset("hpo-labels", {"languages": ["ja"], "max_per_language": 40, "seed": 3}, SHARED_DATA)
    c = build_dataset("hpo-labels", {"languages": ["ja"], "max_per_language": 40, "seed": 4}, SHARED_DATA)
    ja = [d["passages"][0]["text"] for d in a.documents if d["lang"] == "ja"]
    assert len(ja) == 40 and len([d for d in a.documents if d["lang"] == "fr"]) == 40
    assert ja == [d["passages"][0]["text"] for d in b.documents]  # another language does not shift the sample
    assert ja != [d["passages"][0]["text"] for d in c.documents]
    assert len({d["id"] for d in a.documents}) == 80


def test_held_out_split_has_no_concept_on_both_sides():
    ds = build_dataset("hpo-labels", {"languages": ["fr", "de"], "split": "held_out", "max_per_language": None},
                       SHARED_DATA)
    query = {g for d in ds.documents for g in _gold(d)}
    index = set(ds.extra_names.concept_ids.tolist())
    assert query and index and not query & index
    for lang in ("fr", "de"):
        m = ds.metadata["languages"][lang]
        assert m["queries"] + m["index_names"] == m["available"] + m["index_names"] == \
            m["n_label_rows"] - m.get("dropped_obsolete", 0)
        assert 0.4 < m["queries"] / (m["queries"] + m["index_names"]) < 0.6
    assert set(ds.extra_names.langs.tolist()) == {"fr", "de"}
    assert all(p.startswith("hp-") for p in ds.extra_names.provenance)
    # The side of a concept depends only on (seed, id).
    assert stable_fraction("HP:0001250", 0) == stable_fraction("HP:0001250", 0) != stable_fraction("HP:0001250", 1)
    no_extra = build_dataset("hpo-labels", {"languages": ["de"], "split": "held_out", "in_language_index": False},
                             SHARED_DATA)
    assert no_extra.extra_names is None


def test_gsc_plus(hpo):
    ds = build_dataset("gsc-plus", {"split": "all", "annotations": "raw"}, SHARED_DATA)
    assert len(ds.documents) == 228 and ds.n_mentions == 2773  # the README's GSC+ figures
    test = build_dataset("gsc-plus", {}, SHARED_DATA)
    dev = build_dataset("gsc-plus", {"split": "dev"}, SHARED_DATA)
    assert len(test.documents) == 206 and len(dev.documents) == 22
    assert not {d["id"] for d in test.documents} & {d["id"] for d in dev.documents}
    # Independent count of the cleaned annotation lines of the test documents.
    n = sum(sum(1 for line in open(SHARED_DATA / "hpo-corpora" / "GSC+" / "ann" / d["id"], encoding="utf-8")
                if line.strip()) for d in test.documents)
    assert test.n_mentions == n - test.metadata.get("dropped_obsolete", 0) - test.metadata.get(
        "dropped_offset_mismatch", 0)
    for doc in test.documents:
        text = doc["passages"][0]["text"][0]
        for ent in doc["entities"]:
            (s, e), = ent["offsets"]
            assert text[s:e] == ent["text"][0]  # offsets point at the mention (a few were repaired)
            assert ent["normalized"][0]["db_id"] in hpo.current
    assert test.metadata["offsets_repaired"] > 0


def test_mantra_hpo_reproduces_readme_counts(hpo):
    ds = build_dataset("mantra-hpo", {}, SHARED_DATA)
    per_lang = Counter(d["lang"] for d in ds.documents for _ in d["entities"])
    assert dict(per_lang) == {"en": 221, "de": 125, "fr": 130, "es": 92, "nl": 82}  # mantra-gsc/README.txt
    # Independent count straight from the .ann files.
    names = {"English": "en", "German": "de", "French": "fr", "Spanish": "es", "Dutch": "nl"}
    direct = Counter()
    for f in glob.glob(str(SHARED_DATA / "mantra-gsc" / "Mantra-GSC" / "*" / "*" / "*.ann")):
        lang = names[f.split("/")[-3]]
        for line in open(f, encoding="utf-8"):
            if line.startswith("T") and line.split("\t")[1].split()[0] in hpo.umls:
                direct[lang] += 1
    assert direct == per_lang
    full = build_dataset("mantra-umls", {"languages": ["nl"]}, SHARED_DATA)
    assert full.n_mentions == 677 and full.db_name == "UMLS" and full.default_terminology is None
    discontinuous = [e for d in build_dataset("mantra-umls", {}, SHARED_DATA).documents for e in d["entities"]
                     if len(e["offsets"]) > 1]
    assert discontinuous and all(len(o) == 2 for e in discontinuous for o in e["offsets"])
    with pytest.raises(ConfigError, match="language 'it' is not in the Mantra GSC"):
        build_dataset("mantra-hpo", {"languages": ["en", "it"]}, SHARED_DATA)


def test_ncbi_disease_test_split():
    ds = build_dataset("ncbi-disease", {}, SHARED_DATA)
    assert len(ds.documents) == 100 and ds.n_mentions == 960  # ncbi-disease/README.txt
    ids = {(n["db_name"], n["db_id"]) for d in ds.documents for e in d["entities"] for n in e["normalized"]}
    assert any(db == "OMIM" for db, _ in ids) and any(db == "MESH" and i.startswith("D") for db, i in ids)
    doc = ds.documents[0]
    title, abstract = doc["passages"]
    joined = title["text"][0] + " " + abstract["text"][0]
    for ent in doc["entities"]:
        (s, e), = ent["offsets"]
        assert joined[s:e] == ent["text"][0]


def test_bigbio_local_jsonl(tmp_path):
    import json

    path = tmp_path / "docs.jsonl"
    doc = {"id": "d1", "passages": [], "entities": [
        {"id": "e1", "type": "x", "text": ["fever"], "offsets": [[0, 5]],
         "normalized": [{"db_name": "HPO", "db_id": "HP:0001945"}]}]}
    path.write_text(json.dumps(doc) + "\n")
    ds = build_dataset("bigbio", {"path": str(path), "lang": "en", "terminology": "hpo-en"}, SHARED_DATA)
    assert ds.documents[0]["lang"] == "en" and ds.db_name == "HPO" and ds.default_terminology == "hpo-en"
    with pytest.raises(ConfigError, match="exactly one"):
        build_dataset("bigbio", {}, SHARED_DATA)


def test_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown dataset"):
        build_dataset("nope", {}, SHARED_DATA)
    with pytest.raises(ConfigError, match="unknown option 'max_per_lang'"):
        build_dataset("hpo-labels", {"max_per_lang": 5}, SHARED_DATA)
    with pytest.raises(InputError, match="hpo-translations.*XNORM_DATA"):
        build_dataset("hpo-labels", {}, tmp_path)
    with pytest.raises(InputError, match="no Babelon file for language 'xx'"):
        build_dataset("hpo-labels", {"languages": ["xx"]}, SHARED_DATA)


def test_xl_bel_hpo_counts_and_offsets(hpo):
    ds = build_dataset("xl-bel-hpo", {}, SHARED_DATA)
    per_lang = Counter(d["lang"] for d in ds.documents for _ in d["entities"])
    # Independent count straight from the files: a query counts when any of its CUIs has an HPO xref and its
    # <tgt> span is the mention (one German line marks an empty span).
    direct = Counter()
    for f in glob.glob(str(SHARED_DATA / "xl-bel" / "xlbel_v1.0" / "*_1k_test_query_with_context.txt")):
        lang = f.split("/")[-1][:2]
        for line in open(f, encoding="utf-8"):
            cuis, mention, sentence = line.rstrip("\n").split("||")
            if any(c in hpo.umls for c in cuis.split("|")) and f"<tgt>{mention}</tgt>" in sentence:
                direct[lang] += 1
    assert per_lang == direct and ds.n_mentions == 1234 and len(per_lang) == 10
    assert ds.metadata["languages"]["de"]["dropped_target_not_mention"] == 1
    for doc in ds.documents:
        (ent,) = doc["entities"]
        (s, e), = ent["offsets"]
        text = doc["passages"][0]["text"][0]
        assert text[s:e] == ent["text"][0] and "<tgt>" not in text
    ja = build_dataset("xl-bel-hpo", {"languages": "ja"}, SHARED_DATA)  # a lone string is a one-language list
    assert ja.n_mentions == direct["ja"] and ja.default_terminology == "hpo-en" and ja.languages() == ["ja"]
    full = build_dataset("xl-bel-umls", {"languages": ["zh", "de"]}, SHARED_DATA)
    # zh has one query whose only CUI is malformed ("90058"); de the empty-target line.
    assert full.n_mentions == 1998 and full.metadata["languages"]["zh"]["dropped_no_valid_cui"] == 1
    with pytest.raises(ConfigError, match="not in XL-BEL"):
        build_dataset("xl-bel-hpo", {"languages": ["it"]}, SHARED_DATA)


def test_xl_bel_malformed_line_names_file_and_line(tmp_path):
    folder = tmp_path / "xl-bel" / "xlbel_v1.0"
    folder.mkdir(parents=True)
    (folder / "fi_1k_test_query_with_context.txt").write_text(
        "C0004057||aspiriini||Hän otti <tgt>aspiriini</tgt> .\nC0004057||aspiriini\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        build_dataset("xl-bel-umls", {"languages": ["fi"]}, tmp_path)
    assert err.value.line == 2 and err.value.file.endswith("fi_1k_test_query_with_context.txt")
