"""The feature reranker (xnorm.rerank.features / feature_ranker): hand-checked features, the annotation memory,
training that learns a corpus's convention, save/load, the Linker and `xnorm train-reranker --mode features`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xnorm.errors import EXIT_BAD_INPUT, ArtifactError, ConfigError
from xnorm.types import GENERATOR_LISTS, Candidates, Mentions

TERMS = {
    "HP:1": ["Seizure", "Epileptic seizure", "Convulsions"],
    "HP:2": ["Short stature", "Small stature"],
    "HP:3": ["Intellectual disability", "Mental retardation"],
    "HP:4": ["Microcephaly", "Small head"],
    "HP:6": ["Fever", "Pyrexia"],
    "HP:9": ["Seizure cluster", "Cluster of seizures"],
    "HP:10": ["Abnormality of the nervous system"],
}
IS_A = [("HP:9", "HP:1"), ("HP:1", "HP:10"), ("HP:3", "HP:10"), ("HP:4", "HP:10")]


def _terminology():
    from xnorm.terminology.core import TerminologyBuilder

    b = TerminologyBuilder()
    for cid, names in TERMS.items():
        b.add_concept(cid, names[0], ["phenotype"], "test")
        for i, text in enumerate(names):
            b.add_name(cid, text, "en", "preferred" if i == 0 else "exact", "test")
    b.add_name("HP:6", "fiebre", "es", "translation", "test")
    for child, parent in IS_A:
        b.add_is_a(child, parent)
    return b.build(name="tiny-hpo", db_name="HPO")


@pytest.fixture(scope="module")
def index(tiny_model_dir):
    from xnorm.candidates import CandidateIndex

    return CandidateIndex.build(_terminology(), {
        "generators": [{"type": "sparse"}, {"type": "dense", "model": str(tiny_model_dir), "index": "Flat"}],
        "routing": "fallback", "fusion": {"method": "minmax"}})


@pytest.fixture(scope="module")
def index_dir(index, tmp_path_factory) -> Path:
    return index.save(tmp_path_factory.mktemp("fr") / "index")


def _doc(i: int, before: str, mention: str, after: str, cid: str | None, lang: str = "en") -> dict:
    text = f"{before}{mention}{after}"
    start = len(before)
    return {"id": f"d{i}", "document_id": f"d{i}", "lang": lang,
            "passages": [{"id": f"d{i}p", "type": "abstract", "text": [text], "offsets": [[0, len(text)]]}],
            "entities": [{"id": f"e{i}", "type": "phenotype", "text": [mention],
                          "offsets": [[start, start + len(mention)]],
                          "normalized": [{"db_name": "HPO", "db_id": cid}] if cid else []}]}


# The corpus's convention: a "seizure cluster" is annotated as the coarser Seizure (HP:1), which the candidate
# stage ranks below the literal match Seizure cluster (HP:9).
TRAIN_DOCS = ([_doc(i, "The patient had a ", "seizure cluster", " last year.", "HP:1") for i in range(6)]
              + [_doc(10 + i, "She presented with ", t, " at birth.", c) for i, (t, c) in
                 enumerate([("pyrexia", "HP:6"), ("small head", "HP:4"), ("short stature", "HP:2"),
                            ("mental retardation", "HP:3"), ("convulsions", "HP:1"), ("fever", "HP:6")])])
TEST_DOCS = [_doc(90, "Twins with one ", "seizure cluster", " each.", "HP:1"),
             _doc(91, "A girl with ", "pyrexia", " and rash.", "HP:6")]


def _examples(index, docs):
    from xnorm.rerank import examples_from_documents

    return examples_from_documents(docs, index.terminology, context_chars=100)


@pytest.fixture(scope="module")
def trained(index):
    from xnorm.rerank import FeatureReranker

    return FeatureReranker.train(index, _examples(index, TRAIN_DOCS), k=4)


# ---- features ---------------------------------------------------------------------------------------------
def test_corpus_memory_counts_normalises_and_leaves_one_out(index):
    from xnorm.rerank.features import CorpusMemory

    term = index.terminology
    mem = CorpusMemory.from_annotations(["Seizure  cluster", "seizure cluster", "fever", "fiebre"],
                                        ["en", "en", "en", "es"], ["HP:1", "HP:1", "HP:6", "HP:6"])
    assert len(mem) == 3  # case and spaces normalised: one (en, "seizure cluster", HP:1) entry counted twice
    rows = np.asarray([[term.concept_index("HP:1"), term.concept_index("HP:9"), -1],
                       [term.concept_index("HP:6"), term.concept_index("HP:1"), -1],
                       [term.concept_index("HP:6"), -1, -1]])
    m = Mentions(texts=["SEIZURE cluster", "pyrexia", "fiebre"], langs=["en", "en", "de"])
    prior, memory = mem.lookup(m, rows, term)
    assert prior[0].tolist() == [2, 0, 0] and memory[0].tolist() == [2, 0, 0]
    assert prior[1].tolist() == [1, 2, 0] and memory[1].tolist() == [0, 0, 0]  # prior per language, text exact
    assert prior[2].tolist() == [0, 0, 0]  # German: nothing annotated in German



def test_training_mentions_do_not_see_their_own_documents_annotations(index):
    from xnorm.rerank.features import CorpusMemory, candidate_features, feature_names, own_documents

    term = index.terminology
    texts, ids = ["seizure cluster", "seizure cluster", "seizure cluster", "fever"], ["HP:1", "HP:1", "HP:1", "HP:6"]
    m = Mentions(texts=texts, langs=["en"] * 4, doc_ids=["a", "a", "b", ""])
    mem = CorpusMemory.from_annotations(texts, ["en"] * 4, ids)
    c = index.candidates(m, 3)
    x = candidate_features(m, c, term, mem, ["sparse", "dense"], own_documents(m, ids))
    slot = c.concepts == term.concept_index("HP:1")
    memory = np.expm1(x[..., feature_names(["sparse", "dense"]).index("log_memory")])
    assert memory[0][slot[0]] == pytest.approx(1) and memory[2][slot[2]] == pytest.approx(2)  # doc a: b's; b: a's
    fever = c.concepts[3] == term.concept_index("HP:6")
    assert np.expm1(x[3][fever][:, feature_names(["sparse", "dense"]).index("log_prior")]) == pytest.approx(0)


def test_remembered_concepts_join_the_candidates(index):
    from xnorm.rerank.features import CorpusMemory, add_remembered, own_documents
    from xnorm.types import ROUTE_MEMORY

    term = index.terminology
    r = term.concept_index
    mem = CorpusMemory.from_annotations(["seizure cluster"] * 3 + ["small head"], ["en"] * 4,
                                        ["HP:1", "HP:1", "HP:3", "HP:4"])
    m = Mentions(texts=["Seizure cluster", "small head", "pyrexia"], langs=["en"] * 3)
    c = Candidates([[r("HP:9"), r("HP:2"), r("HP:6")], [r("HP:9"), -1, -1], [r("HP:6"), r("HP:2"), -1]],
                   [[0.9, 0.5, 0.4], [0.7, -np.inf, -np.inf], [0.8, 0.3, -np.inf]],
                   [[-1, -1, -1], [-1, -1, -1], [-1, -1, -1]], [[1, 1, 1], [1, 0, 0], [1, 1, 0]])
    out = add_remembered(m, c, term, mem)
    ids = out.concept_ids(term)
    # The most often annotated first, in the last slots; an empty slot is filled before a candidate is displaced.
    assert ids[0].tolist() == ["HP:9", "HP:1", "HP:3"] and ids[1].tolist() == ["HP:9", "HP:4", None]
    assert ids[2].tolist() == ["HP:6", "HP:2", None]  # nothing remembered for "pyrexia"
    assert out.routes[0, 1:].tolist() == [ROUTE_MEMORY] * 2 and out.scores[0, 1] == pytest.approx(0.4)
    assert (c.concepts[0] == [r("HP:9"), r("HP:2"), r("HP:6")]).all()  # the input is left as it was
    # Training: a mention does not get concepts remembered only from its own document.
    train = Mentions(texts=["small head", "seizure cluster"], langs=["en"] * 2, doc_ids=["a", "b"])
    mem = CorpusMemory.from_annotations(train.texts, ["en"] * 2, ["HP:4", "HP:1"])
    held = own_documents(train, ["HP:4", "HP:1"])
    assert (add_remembered(train, c[:2], term, mem, held).concepts == c[:2].concepts).all()


def test_candidate_features_by_hand(index):
    from xnorm.rerank.features import CorpusMemory, candidate_features, feature_names

    term = index.terminology
    r = term.concept_index
    m = Mentions(texts=["Seizure", "small head"], langs=["en", "en"])
    name = lambda text: int(np.flatnonzero(term.name_texts == text)[0])  # noqa: E731
    names = [[name("Seizure cluster"), name("Seizure")], [name("Small head"), -1]]
    cands = Candidates([[r("HP:9"), r("HP:1")], [r("HP:4"), -1]], [[0.9, 0.5], [0.7, -np.inf]], names,
                       [[1, 1], [1, 0]])
    own = Candidates([[r("HP:1"), r("HP:2")], [r("HP:4"), r("HP:3")]], [[0.8, 0.1], [0.6, 0.2]],
                     [[-1, -1], [-1, -1]], [[1, 1], [1, 1]])
    cands.meta[GENERATOR_LISTS] = {"g": own}
    empty = CorpusMemory.from_annotations([], [], [])
    x = candidate_features(m, cands, term, empty, ["g"])
    f = {name: x[..., i] for i, name in enumerate(feature_names(["g"]))}
    assert x.shape == (2, 2, len(feature_names(["g"])))
    assert f["remembered_only"].sum() == 0 and f["other_language_route"].sum() == 0
    assert f["exact_name"][0].tolist() == [0, 1] and f["exact_name"][1, 0] == 1  # case-insensitive
    assert f["gram_jaccard"][0, 1] == pytest.approx(1.0) and 0 < f["gram_jaccard"][0, 0] < 1
    assert f["name_extra_words"][0].tolist() == [1, 0]  # "Seizure cluster" has one word the mention lacks
    assert f["mention_words_in_name"][0].tolist() == [1, 1] and f["name_words_in_mention"][0, 0] == 0.5
    assert f["fused_minmax"][0].tolist() == [1, 0] and f["fused_gap"][0, 1] == pytest.approx(0.4)
    # HP:1 is HP:9's parent: HP:9 (first) has an ancestor in the list, ranked below it; HP:1 a descendant above it.
    assert f["ancestor_in_list"][0].tolist() == [1, 0] and f["descendant_above"][0].tolist() == [0, 1]
    assert f["ancestor_above"][0].tolist() == [0, 0] and f["ancestors"][0].tolist() == [2, 1]
    assert f["log_children"][0, 1] == pytest.approx(np.log(2))
    # Generator list "g": HP:9 absent (worst score of the row, 0.1), HP:1 present with 0.8.
    assert f["g_absent"][0].tolist() == [1, 0] and f["g_score"][0].tolist() == pytest.approx([0.1, 0.8])
    assert f["g_gap"][0, 1] == pytest.approx(0.0)
    assert (x[1, 1] == 0).all()  # the empty slot
    with pytest.raises(ConfigError, match="other"):
        candidate_features(m, cands, term, empty, ["other"])


def test_index_candidates_carry_each_generators_list(index):
    m = Mentions(texts=["seizure cluster", "pyrexia", "small head"], langs=["en"] * 3)
    c = index.candidates(m, k=3)
    lists = c.meta[GENERATOR_LISTS]
    assert list(lists) == ["sparse", "dense"] and all(len(x) == 3 for x in lists.values())
    sub = c[np.asarray([2, 0])]  # row slicing slices the lists with the mentions
    np.testing.assert_array_equal(sub.meta[GENERATOR_LISTS]["sparse"].concepts, lists["sparse"].concepts[[2, 0]])
    both = Candidates.concat([c, c[:1]])
    assert len(both.meta[GENERATOR_LISTS]["dense"]) == 4


# ---- training -----------------------------------------------------------------------------------------------
def test_training_learns_the_corpus_convention(index, trained):
    ranker, report = trained
    test = _examples(index, TEST_DOCS)
    cands = index.candidates(test.mentions, 4)
    term = index.terminology
    assert term.concept_ids[cands.concepts[0, 0]] == "HP:9"  # the candidate stage takes the literal match
    out = ranker.rerank(test.mentions, cands, term)
    assert test.hits(out.concepts[:, 0]).all()  # reranked: the corpus's Seizure, and Fever stays first
    one = ranker.rerank(test.mentions, cands.top(1), term)  # Seizure is not a candidate: the memory adds it
    assert test.hits(one.concepts[:, 0]).all()
    np.testing.assert_allclose(out.scores.sum(axis=1), 1.0, rtol=1e-5)
    assert report["trained_on"] == 12 and report["k"] == 4
    # No dev set: one L2 for both halves, chosen by cross-validation over the 12 training documents.
    assert report["l2"]["shared"] == report["l2"]["in_domain"] and "cross-validation" in report["dev_chosen"]
    assert ranker.context_languages == ["en"] and ranker.info["k"] == 4
    # Bare labels / languages without in-context training data use only the shared half of the weights.
    m = Mentions(texts=["seizure cluster", "seizure cluster"], langs=["en", "en"], left=["A ", ""], right=[".", ""])
    z = ranker.design(m, index.candidates(m, 4), term)
    half = z.shape[-1] // 2
    np.testing.assert_allclose(z[0, :, half:], z[0, :, :half])
    assert (z[1, :, half:] == 0).all()


def test_l2_chosen_on_dev_and_shrinks_the_weights(index):
    from xnorm.rerank import FeatureReranker

    train, dev = _examples(index, TRAIN_DOCS), _examples(index, TEST_DOCS)
    ranker, report = FeatureReranker.train(index, train, k=4, dev={"test-docs": dev})
    grid = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
    assert [d["l2"] for d in report["dev"]] == [[a, b] for a in grid for b in grid]  # shared x in-domain
    assert report["dev_chosen"]["test-docs"] == 1.0
    assert report["l2"] == {"shared": 1.0, "in_domain": 1.0}  # every pair ties on this dev set: the largest
    flat, _ = FeatureReranker.train(index, train, k=4, l2=1e3)
    assert np.abs(flat.weights).max() < 0.01 * np.abs(ranker.weights).max()
    # A fixed (shared, in-domain) pair, as chosen on dev, to refit on more data: each half gets its own.
    half = len(ranker.weights) // 2
    pair, report = FeatureReranker.train(index, train, k=4, l2=(1.0, 1e3))
    assert report["l2"] == {"shared": 1.0, "in_domain": 1e3}
    assert np.abs(pair.weights[half:]).max() < 0.01 * np.abs(pair.weights[:half]).max()


def test_dev_sets_score_untrained_languages_as_reranking_does(index):
    """A dev mention in a language no training mention was in keeps the candidates' order at inference, so it must
    not sway the L2 choice either: its dev acc@1 is the candidates' for every L2 (it was not, and a labels-only
    ranker's L2 was chosen by how English dev mentions it never reranks would have fared)."""
    from xnorm.rerank import FeatureReranker, examples_from_labels

    term = index.terminology
    labels = lambda texts, lang, ids: examples_from_labels(texts, [lang] * len(texts), ids, term)  # noqa: E731
    # English labels teach a convention (a "seizure cluster" is the coarser Seizure, HP:1; without memory it lives
    # in the hierarchy features, which German mentions share), German ones say the literal match (HP:9, the
    # candidates' first) is right: the convention would be wrong there, if applied.
    train = labels(["seizure cluster"] * 6 + ["pyrexia", "small head", "fever"], "en",
                   ["HP:1"] * 6 + ["HP:6", "HP:4", "HP:6"])
    german = labels(["seizure cluster"] * 3, "de", ["HP:9"] * 3)
    english = labels(["seizure cluster", "pyrexia"], "en", ["HP:1", "HP:6"])
    ranker, report = FeatureReranker.train(index, train, k=4, dev={"en": english, "de": german}, memory=False)
    assert report["dev_candidates"]["de"] == 1.0 and {d["de"] for d in report["dev"]} == {1.0}
    assert report["dev_chosen"]["en"] == 1.0  # the convention is learnt for English
    cands = index.candidates(german.mentions, 4)
    assert german.hits(ranker.rerank(german.mentions, cands, term).concepts[:, 0]).all()


def test_untrained_languages_keep_their_order_with_probabilities_as_scores(index, trained, tmp_path):
    """A mention in a language the ranker never trained on keeps the candidate stage's row, its scores turned into
    probabilities by the fitted fallback scale: a NIL threshold means the same for every mention of a run."""
    from xnorm.rerank import load_reranker
    from xnorm.rerank.model import softmax_rows

    ranker, report = trained
    assert ranker.languages == ["en"] and ranker.fallback_scale > 0
    assert report["fallback_scale"] == ranker.fallback_scale
    term = index.terminology
    m = Mentions(texts=["kleiner kopf", "fiebre alta"], langs=["de", "es"])
    cands = index.candidates(m, 4)
    out = ranker.rerank(m, cands, term)
    assert (out.concepts == cands.concepts).all() and (out.names == cands.names).all()
    np.testing.assert_allclose(out.scores, softmax_rows(ranker.fallback_scale * cands.scores), rtol=1e-6)
    np.testing.assert_allclose(out.scores.sum(axis=1), 1.0, rtol=1e-5)
    ranker.save(tmp_path / "fr")
    assert load_reranker(tmp_path / "fr").fallback_scale == ranker.fallback_scale
    # A ranker saved before the scale existed leaves such rows exactly as they were.
    manifest = tmp_path / "fr" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "fallback_scale": None}))
    old = load_reranker(tmp_path / "fr").rerank(m, cands, term)
    assert (old.concepts == cands.concepts).all() and (old.scores == cands.scores).all()


def test_document_folds_keep_documents_together():
    from xnorm.rerank.feature_ranker import document_folds

    m = Mentions(texts=["a"] * 7, langs=["en"] * 7, doc_ids=["d1", "d1", "d2", "d3", "d3", "", ""])
    folds = document_folds(m, n_folds=3)
    assert folds[0] == folds[1] and folds[3] == folds[4] and len(set(folds.tolist())) == 3
    assert document_folds(Mentions(texts=["a", "b"], langs=["en"] * 2, doc_ids=["d1", "d1"])) is None


def test_choose_l2_worst_set_then_mean_gain_then_larger():
    from xnorm.rerank.feature_ranker import choose_l2

    grid = [(0.001, 0.001), (0.1, 0.001), (0.1, 0.1)]
    base = {"labels": 0.80, "notes": 0.73}
    # labels: the first pair loses there (-0.01); the others tie on the worst set (0): the better notes gain wins.
    scores = [{"labels": 0.79, "notes": 0.81}, {"labels": 0.80, "notes": 0.80}, {"labels": 0.80, "notes": 0.76}]
    assert choose_l2(grid, scores, base) == 1
    assert choose_l2(grid, [{"labels": 0.8, "notes": 0.8}] * 3, base) == 2  # all equal: the larger L2s
    assert choose_l2([(0.01, 0.01)], [{}], {}) == 0  # no dev set


def test_save_load_round_trip_and_tampering(index, trained, tmp_path):
    from xnorm.rerank import FeatureReranker, load_reranker

    ranker, _ = trained
    ranker.save(tmp_path / "fr")
    again = load_reranker(tmp_path / "fr")
    assert isinstance(again, FeatureReranker) and again.path == str(tmp_path / "fr")
    test = _examples(index, TEST_DOCS)
    c = index.candidates(test.mentions, 4)
    np.testing.assert_allclose(again.rerank_scores(test.mentions, c, index.terminology),
                               ranker.rerank_scores(test.mentions, c, index.terminology))
    manifest = tmp_path / "fr" / "manifest.json"
    written = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**written, "features": written["features"][:-1]}))
    with pytest.raises(ArtifactError, match="other features"):  # written by another version of the features
        load_reranker(tmp_path / "fr")
    manifest.write_text(json.dumps(written))
    memory = tmp_path / "fr" / "memory.parquet"
    memory.write_bytes(memory.read_bytes() + b"x")
    with pytest.raises(ArtifactError, match="memory.parquet"):
        load_reranker(tmp_path / "fr")


def test_training_errors_name_the_problem(index):
    from xnorm.errors import InputError
    from xnorm.rerank import FeatureReranker

    unknown = _examples(index, [_doc(1, "A ", "zebra stripes", ".", "HP:999")])
    with pytest.raises(InputError, match="no training mention has a gold concept"):
        FeatureReranker.train(index, unknown, k=2)
    far = _examples(index, [_doc(1, "A ", "pyrexia", ".", "HP:9")])  # Fever's synonym annotated as a seizure
    assert "HP:9" not in index.candidates(far.mentions, 1).concept_ids(index.terminology)[0].tolist()
    with pytest.raises(InputError, match="among its 1 candidates"):
        FeatureReranker.train(index, far, k=1)


def test_linker_with_feature_reranker_links_and_round_trips(index_dir, trained, tmp_path):
    from xnorm.linker import Linker

    ranker, _ = trained
    ranker.save(tmp_path / "fr")
    linker = Linker.from_config({"index": str(index_dir), "reranker": str(tmp_path / "fr"), "k": 5})
    assert "reranked by feature reranker(" in linker.pipeline and linker.rerank_k == 4
    docs = list(linker.link(json.loads(json.dumps(TEST_DOCS)), overwrite=True))
    assert [d["entities"][0]["normalized"][0]["db_id"] for d in docs] == ["HP:1", "HP:6"]
    # One candidate only (Seizure cluster): the memory adds Seizure, and --explain says where it came from.
    one = Linker.from_config({"index": str(index_dir), "reranker": str(tmp_path / "fr"), "k": 1, "rerank_k": 1})
    doc = next(one.link(json.loads(json.dumps(TEST_DOCS[:1])), overwrite=True, explain=True))
    norm = doc["entities"][0]["normalized"][0]
    assert norm["db_id"] == "HP:1" and "annotation-memory" in json.dumps(norm) and "Seizure" in json.dumps(norm)
    # Restricted to Seizure cluster's branch, the remembered Seizure (its parent) is not offered.
    branch = Linker.from_config({"index": str(index_dir), "reranker": str(tmp_path / "fr"), "k": 3,
                                 "under": ["HP:9"]})
    ids = branch.candidates(_examples(branch.index, TEST_DOCS[:1]).mentions).concept_ids(branch.terminology)
    assert ids[0].tolist() == ["HP:9", None, None]
    linker.save(tmp_path / "linker")
    again = Linker.load(tmp_path / "linker")
    m = _examples(again.index, TEST_DOCS).mentions
    np.testing.assert_allclose(again.candidates(m).scores, linker.candidates(m).scores)


def _run(*args):
    from tests.test_link import run

    return run(*args)


def test_cli_train_features_and_link(index_dir, tmp_path):
    from xnorm.rerank import FeatureReranker

    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text("".join(json.dumps(d) + "\n" for d in TRAIN_DOCS))
    test.write_text("".join(json.dumps(d) + "\n" for d in TEST_DOCS))
    out = tmp_path / "fr"
    r = _run("train-reranker", "--index", str(index_dir), "--mode", "features", "--train", str(train),
             "--dev", str(test), "--k", "4", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and "dev acc@1" in r.output and "reranks mentions in en (any other" in r.output
    assert json.loads((out / "manifest.json").read_text())["format"] == "xnorm-feature-reranker"
    r = _run("link", str(test), "-o", str(tmp_path / "linked.jsonl"), "--index", str(index_dir), "--reranker",
             str(out), "--overwrite")
    assert r.exit_code == 0, r.output
    linked = [json.loads(x) for x in (tmp_path / "linked.jsonl").read_text().splitlines()]
    assert [d["entities"][0]["normalized"][0]["db_id"] for d in linked] == ["HP:1", "HP:6"]
    r = _run("evaluate", str(tmp_path / "linked.jsonl"), str(test))
    assert r.exit_code == 0 and "1.000" in r.output, r.output
    # User errors: one line, exit code 3, no traceback.
    r = _run("calibrate-reranker", str(out), "--index", str(index_dir), "--dev", str(test))
    assert r.exit_code == EXIT_BAD_INPUT and "no generator weight" in r.output and "Traceback" not in r.output
    r = _run("adapters", "add-reranker", str(out), "fr-zoo")
    assert r.exit_code == EXIT_BAD_INPUT and "no zoo entry" in r.output and "Traceback" not in r.output
    # --refit: the dev mentions join the training (and the memory) with the L2 the dev set chose.
    r = _run("train-reranker", "--index", str(index_dir), "--mode", "features", "--train", str(train),
             "--dev", str(test), "--k", "4", "--refit", "-o", str(tmp_path / "refit"))
    assert r.exit_code == 0 and "refitting on" in r.output, r.output
    refit = FeatureReranker.load(tmp_path / "refit")
    assert refit.memory.counts.sum() > FeatureReranker.load(out).memory.counts.sum()
    assert refit.info["l2"] == json.loads((out / "manifest.json").read_text())["info"]["l2"]
    r = _run("train-reranker", "--index", str(index_dir), "--mode", "features", "--train", str(train), "--refit",
             "-o", str(tmp_path / "x"))
    assert r.exit_code != 0 and "give --dev" in r.output and not (tmp_path / "x").exists()
    r = _run("train-reranker", "--index", str(index_dir), "--mode", "features", "--train", str(train),
             "--lambda", "0", "-o", str(tmp_path / "x"))
    assert r.exit_code == EXIT_BAD_INPUT and "--lambda" in r.output and "Traceback" not in r.output
    r = _run("train-reranker", "--index", str(index_dir), "--train", str(train), "--l2", "0.1", "-o",
             str(tmp_path / "x"))
    assert r.exit_code == EXIT_BAD_INPUT and "--l2" in r.output and not (tmp_path / "x").exists()
