"""Two-stage sparse search for large indexes (prune_df / prune_min_names / prune_rescore) on the real English HPO.

Below ``prune_min_names`` (or when no n-gram is in more than ``prune_df`` names) the search is the exhaustive one,
bit for bit. With the two stages forced on a 41k-name index, candidates keep exact cosine scores and the tie-aware
recall@64 of the exhaustive search's concepts stays >= 0.99 on real HPO translation labels (the bound README and
benchmarks/results/scale.md state).
"""
from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import SHARED_DATA

from xnorm.candidates import CandidateIndex, SparseGenerator
from xnorm.candidates.config import normalize_config
from xnorm.errors import ConfigError
from xnorm.eval.ranking import tie_aware_overlap
from xnorm.terminology import load_terminology
from xnorm.terminology.core import Terminology
from xnorm.types import Candidates, Mentions

TRANSLATIONS = SHARED_DATA / "hpo-translations"
# Forced on a 41k-name index: n-grams in more than 1,000 names (2.4% of them; the default 10,000 is 1% of 1M) only
# rescore. The recall bound holds with room at this setting (measured: >= 0.998).
FORCED = {"prune_df": 1000, "prune_min_names": 0}
RECALL_BOUND = 0.99


def _config(**over) -> dict:
    return normalize_config({"generators": [{"type": "sparse", **over}]})["generators"][0]


def _labels(lang: str, n: int) -> list[str]:
    """A seeded sample of n OFFICIAL HPO labels in ``lang`` (real queries; no concept needed here)."""
    out = []
    with open(TRANSLATIONS / f"hp-{lang}.babelon.tsv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if (row["predicate_id"] == "rdfs:label" and row["translation_status"] == "OFFICIAL"
                    and row["translation_value"] not in ("", "NA")):
                out.append(row["translation_value"])
    rng = np.random.default_rng(0)
    return [out[i] for i in np.sort(rng.choice(len(out), min(n, len(out)), replace=False))]




@pytest.fixture(scope="module")
def term() -> Terminology:
    return load_terminology("hpo-en")


@pytest.fixture(scope="module")
def saved(term, tmp_path_factory):
    """One fit of the English HPO (exhaustive config), saved: other configs load it (cheap) instead of refitting."""
    path = tmp_path_factory.mktemp("sparse") / "gen"
    SparseGenerator.from_config(_config(prune_df=None)).fit(term).save(path)
    return path


@pytest.fixture(scope="module")
def mentions() -> Mentions:
    if not TRANSLATIONS.is_dir():
        pytest.skip(f"shared data folder {TRANSLATIONS} is absent")
    texts, langs = [], []
    for lang in ("es", "fr", "de", "it", "ja"):
        labels = _labels(lang, 120)
        texts += labels
        langs += [lang] * len(labels)
    # English queries with one edit, plus short / odd ones (only common n-grams, nothing, one character).
    texts += ["Abnormality of the hert", "sezures", "short statue", "eye", "ab", "", "x", "of the"]
    langs += ["en"] * 8
    return Mentions(texts=texts, langs=langs)


@pytest.fixture(scope="module")
def exhaustive(saved, term, mentions) -> Candidates:
    return SparseGenerator.load(saved, _config(prune_df=None), term).candidates(mentions, k=64)


def test_lean_fit_gives_scikit_learns_tfidf(saved, term):
    """The low-memory fit (int32 / float32 buffers, in place) = TfidfVectorizer(sublinear_tf) numbers and vocabulary."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    gen = SparseGenerator.load(saved, _config(prune_df=None), term)
    texts = gen._normalize(term.name_texts)
    for min_df, subset in ((1, texts), (3, texts[:5000])):
        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), lowercase=False, sublinear_tf=True,
                              min_df=min_df, dtype=np.float32)
        ref = vec.fit_transform(subset).tocsr()
        if min_df == 1:
            matrix, vocabulary, idf = gen.matrix, gen.vocabulary, gen.idf
        else:
            matrix, vocabulary, idf = SparseGenerator(ngram_range=(2, 4), min_df=3)._fit_lean(subset)
        assert vocabulary == {str(t): int(i) for t, i in vec.vocabulary_.items()}
        np.testing.assert_allclose(idf, vec.idf_, rtol=1e-6)
        assert matrix.shape == ref.shape and matrix.nnz == ref.nnz
        assert abs(matrix - ref).max() < 1e-6


def test_default_is_the_exhaustive_search_on_small_indexes(saved, term, mentions, exhaustive):
    default = SparseGenerator.load(saved, _config(), term)
    assert default.prune_df == 10_000 and default.prune_min_names == 200_000 and not default._prune
    # Two stages allowed at any size, but no n-gram is in more than prune_df names: exhaustive as well.
    no_common = SparseGenerator.load(saved, _config(prune_df=10 ** 9, prune_min_names=0), term)
    assert not no_common._prune
    for gen in (default, no_common):
        got = gen.candidates(mentions, k=64)
        for attr in ("concepts", "scores", "names", "routes"):
            np.testing.assert_array_equal(getattr(got, attr), getattr(exhaustive, attr))


def test_two_stage_keeps_exact_scores_and_recall(saved, term, mentions, exhaustive):
    gen = SparseGenerator.load(saved, _config(**FORCED), term)
    assert sorted(gen._prune) == ["en"]
    got = gen.candidates(mentions, k=64)
    # Every listed (mention, name) score is that name's exact cosine, common n-grams included.
    vectors = gen.transform(mentions.texts)
    names = gen.matrix
    ok = got.names >= 0
    rows = np.nonzero(ok)[0]
    cosine = np.asarray(vectors[rows].multiply(names[got.names[ok]]).sum(axis=1)).ravel()
    np.testing.assert_allclose(got.scores[ok], cosine, atol=1e-5)
    recall = tie_aware_overlap(got, exhaustive)
    assert recall >= RECALL_BOUND, recall
    assert np.mean(got.concepts[:, 0] == exhaustive.concepts[:, 0]) >= 0.99
    # Fewer rescored names find fewer of the exhaustive list: the bound above is not met by construction.
    narrow = SparseGenerator.load(saved, _config(prune_df=20, prune_min_names=0, prune_rescore=1), term)
    assert tie_aware_overlap(narrow.candidates(mentions, k=64), exhaustive) < recall
    # Short and empty mentions: "eye" still finds names made of common n-grams; "" finds nothing.
    texts = list(mentions.texts)
    assert (got.concepts[texts.index("eye")] >= 0).sum() == 64
    assert (got.concepts[texts.index("")] < 0).all() and (exhaustive.concepts[texts.index("")] < 0).all()


def test_two_stage_threads_and_languages(term, mentions):
    """Names split over two languages (global rows map back), searched by 1 or 2 threads: the same candidates."""
    langs = np.where(term.name_concepts % 2 == 0, "en", "es").astype(object)
    two = Terminology(concept_ids=term.concept_ids, preferred_names=term.preferred_names,
                      semantic_types=term.semantic_types, concept_sources=term.concept_sources,
                      name_texts=term.name_texts, name_concepts=term.name_concepts, name_langs=langs,
                      name_types=term.name_types, name_provenance=term.name_provenance)
    one_thread = SparseGenerator.from_config(_config(threads=1, **FORCED)).fit(two)
    assert sorted(one_thread._prune) == ["en", "es"]
    # One copy of the name vectors: the per-language postings; .matrix is assembled from them on demand.
    held = [v for v in vars(one_thread).values() if hasattr(v, "nnz")]
    assert held == []
    assert sum(m.nnz for m in one_thread._lang_matrices.values()) == one_thread.matrix.nnz
    again = one_thread.transform(two.name_texts[:300])
    assert np.abs((again - one_thread.matrix[:300]).toarray()).max() < 1e-6
    first = one_thread.candidates(mentions, k=32, routing="all")
    one_thread.threads = 2
    second = one_thread.candidates(mentions, k=32, routing="all")
    for attr in ("concepts", "scores", "names", "routes"):
        np.testing.assert_array_equal(getattr(first, attr), getattr(second, attr))
    found = first.names[first.names >= 0]
    assert set(langs[found].tolist()) == {"en", "es"}


def test_save_load_round_trip_keeps_two_stage_results(term, mentions, tmp_path):
    config = {"generators": [{"type": "sparse", **FORCED, "prune_rescore": 8}]}
    index = CandidateIndex.build(term, config)
    before = index.candidates(mentions, k=16)
    loaded = CandidateIndex.load(index.save(tmp_path / "idx"))
    gen = loaded.generators[0]
    assert (gen.prune_df, gen.prune_min_names, gen.prune_rescore) == (1000, 0, 8) and gen._prune
    after = loaded.candidates(mentions, k=16)
    for attr in ("concepts", "scores", "names", "routes"):
        np.testing.assert_array_equal(getattr(before, attr), getattr(after, attr))


@pytest.mark.parametrize("key, value", [("prune_df", 0), ("prune_df", "10k"), ("prune_df", True),
                                        ("prune_min_names", -1), ("prune_rescore", 0), ("prune_rescore", 2.5)])
def test_prune_keys_validated(key, value):
    with pytest.raises(ConfigError) as err:
        normalize_config({"generators": [{"type": "sparse", key: value}]})
    assert err.value.field == f"generators[0].{key}"
    assert key in str(err.value)


def test_prune_keys_default_and_none():
    cfg = _config()
    assert (cfg["prune_df"], cfg["prune_min_names"], cfg["prune_rescore"]) == (10_000, 200_000, 16)
    assert _config(prune_df=None)["prune_df"] is None
    assert SparseGenerator.from_config(_config(prune_rescore=4)).config()["prune_rescore"] == 4
