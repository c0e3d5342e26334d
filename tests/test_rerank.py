"""The cross-encoder reranker (xnorm.rerank) on a tiny BERT, a tiny terminology and a TF-IDF-only index:
pair encoding, the rank-regularized loss, training, save/load, Stack(lang, task) per language, the Linker and
the CLI (`xnorm train-reranker`, `xnorm link --reranker`)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from xnorm.errors import EXIT_BAD_INPUT
from xnorm.types import Candidates, Mentions

TERMS = {
    "HP:1": [("Seizure", "en", "preferred"), ("Epileptic seizure", "en", "exact"), ("Convulsions", "en", "exact"),
             ("convulsión", "es", "translation"), ("crise d'épilepsie", "fr", "translation")],
    "HP:2": [("Short stature", "en", "preferred"), ("Small stature", "en", "exact"), ("baja estatura", "es", "translation")],
    "HP:3": [("Intellectual disability", "en", "preferred"), ("Mental retardation", "en", "exact"),
             ("discapacidad intelectual", "es", "translation")],
    "HP:4": [("Microcephaly", "en", "preferred"), ("Small head", "en", "exact")],
    "HP:5": [("Hypotonia", "en", "preferred"), ("Low muscle tone", "en", "exact")],
    "HP:6": [("Fever", "en", "preferred"), ("Pyrexia", "en", "exact"), ("fiebre", "es", "translation")],
    "HP:7": [("Headache", "en", "preferred"), ("Cephalalgia", "en", "exact")],
    "HP:8": [("Abnormality of the heart", "en", "preferred"), ("Cardiac anomaly", "en", "exact"),
             ("anomalie cardiaque", "fr", "translation")],
    "HP:9": [("Seizure cluster", "en", "preferred")],
}
SMALL_ADAPTER = {"architecture": "seq_bn", "reduction_factor": 2}


def _terminology():
    from xnorm.terminology.core import TerminologyBuilder

    b = TerminologyBuilder()
    for cid, names in TERMS.items():
        b.add_concept(cid, names[0][0], ["phenotype"], "test")
        for text, lang, typ in names:
            b.add_name(cid, text, lang, typ, "test")
    return b.build(name="tiny-hpo", db_name="HPO")


@pytest.fixture(scope="module")
def index():
    from xnorm.candidates import CandidateIndex

    return CandidateIndex.build(_terminology(), {"generators": [{"type": "sparse"}], "routing": "fallback"})


@pytest.fixture(scope="module")
def index_dir(index, tmp_path_factory) -> Path:
    return index.save(tmp_path_factory.mktemp("rr") / "index")


def _examples(index):
    from xnorm.rerank import examples_from_labels

    texts = ["convulsions", "small stature", "mental retardation", "small head", "low muscle tone", "pyrexia",
             "cephalalgia", "cardiac anomaly", "seizures", "fiebre"]
    ids = ["HP:1", "HP:2", "HP:3", "HP:4", "HP:5", "HP:6", "HP:7", "HP:8", "HP:1", "HP:6"]
    langs = ["en"] * 9 + ["es"]
    return examples_from_labels(texts, langs, ids, index.terminology, description="tiny labels")


# ---- pairs ------------------------------------------------------------------------------------------------
def test_mention_text_has_context_window_and_markers():
    from xnorm.rerank import mention_texts

    m = Mentions(texts=["seizures", "fever", "HTN"], langs=["en"] * 3,
                 left=["The patient, a young boy, presented with recurrent", "", ""],
                 right=[" and developmental delay since birth.", "", ""], long_forms=["", "", "hypertension"])
    out = mention_texts(m, context_chars=20)
    # 20 characters each side, cut at word boundaries, mention between the markers.
    assert out[0] == "with recurrent [ seizures ] and developmental"
    assert out[1] == "fever"  # no context: the mention alone
    assert out[2] == "HTN ( hypertension )"


def test_candidate_names_in_mention_language_first_english_fallback(index):
    from xnorm.rerank import CandidateTexts

    t = index.terminology
    ct = CandidateTexts(t, n_names=3)
    hp1 = t.concept_index("HP:1")
    assert ct.names(hp1, "es") == ["convulsión", "Seizure", "Epileptic seizure"]
    assert ct.names(hp1, "fr")[0] == "crise d'épilepsie"
    assert ct.names(hp1, "en") == ["Seizure", "Epileptic seizure", "Convulsions"]
    # No name in Japanese: English names, the preferred first.
    assert ct.names(t.concept_index("HP:4"), "ja") == ["Microcephaly", "Small head"]
    assert ct.text(hp1, "es") == "convulsión ; Seizure ; Epileptic seizure"
    typed = CandidateTexts(t, n_names=1, semantic_types=True)
    assert typed.text(hp1, "en") == "Seizure | phenotype"


def test_candidate_texts_name_the_parents_after_the_first_name(index):
    from dataclasses import replace

    from xnorm.errors import ConfigError
    from xnorm.rerank import CandidateTexts, PairEncoder

    t = index.terminology
    with pytest.raises(ConfigError, match="no is_a hierarchy"):
        CandidateTexts(t, parents=True)
    row = t.concept_index
    edges = [(row("HP:1"), row("HP:2")), (row("HP:1"), row("HP:3")), (row("HP:1"), row("HP:4")),
             (row("HP:5"), row("HP:1"))]
    ct = CandidateTexts(replace(t, is_a=np.asarray(edges, dtype=np.int32)), n_names=2, parents=True)
    parents = " ; ".join(ct.names(row(p), "es")[0] for p in ("HP:2", "HP:3"))  # at most two, in edge order
    assert ct.text(row("HP:1"), "es") == f"convulsión < {parents} ; Seizure"
    assert ct.text(row("HP:2"), "es") == CandidateTexts(t, n_names=2).text(row("HP:2"), "es")  # no parent
    enc = PairEncoder(None, replace(t, is_a=np.asarray(edges, dtype=np.int32)), parents=True)
    assert enc.settings()["parents"] is True


def test_pair_encoder_flattens_valid_slots(index, tiny_model_dir):
    from transformers import AutoTokenizer

    from xnorm.rerank import PairEncoder

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    enc = PairEncoder(tok, index.terminology, max_length=24)
    m = Mentions.from_texts(["seizure", "fever"], "en")
    c = index.candidates(m, 3)
    c.concepts[1, 2], c.scores[1, 2] = -1, -np.inf  # an empty slot is not encoded
    batch, valid = enc.encode(m, c)
    assert valid.sum() == 5 and batch["input_ids"].shape[0] == 5
    assert batch["input_ids"].shape[1] <= 24
    firsts, seconds, _ = enc.texts(m, c)
    assert firsts[:3] == ["seizure"] * 3 and seconds[0].startswith("Seizure ; ")
    # Row 0 is the tokenizer's own (mention, names) pair encoding, truncated to max_length.
    own = tok(firsts[0], seconds[0], truncation="longest_first", max_length=24)["input_ids"]
    assert batch["input_ids"][0, :len(own)].tolist() == own


def test_pair_keeps_mention_and_markers_when_context_is_long(index, tiny_model_dir):
    from transformers import AutoTokenizer

    from xnorm.rerank import PairEncoder

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    enc = PairEncoder(tok, index.terminology, max_length=24, context_chars=200)
    m = Mentions(texts=["seizures", "fever"], langs=["en"] * 2, left=["patient presented with " * 6 + "recurrent", ""],
                 right=[" and developmental delay" * 6, ""])
    # Budget (24 - 3) // 2 - 1 = 9 tokens: the mention, both markers, and 3 context tokens each side (the left
    # window loses its start, the right window its end) -- not the first 24 tokens of a 60-token context.
    side = enc.mention_sides(m)
    assert side[0] == "presented with recurrent [ seizures ] and developmental delay"
    assert side[1] == "fever"  # no context: the mention alone, as before
    batch, _ = enc.encode(m, index.candidates(m, 2))
    first = tok(side[0], add_special_tokens=False)["input_ids"]
    pair = batch["input_ids"][0].tolist()
    assert len(pair) <= 24 and any(pair[i:i + len(first)] == first for i in range(len(pair)))



# ---- loss -------------------------------------------------------------------------------------------------
def test_loss_hand_computed():
    import torch

    from xnorm.rerank import generator_distribution, rank_regularized_loss

    scores = np.array([[0.9, 0.5, 0.1], [0.3, 0.3, -np.inf]], dtype=np.float32)
    mask = np.isfinite(scores)
    q = generator_distribution(scores, mask)
    # Row 0: min-max (1, 0.5, 0) / 1.5; row 1: all equal -> uniform over its 2 valid slots.
    np.testing.assert_allclose(q, [[2 / 3, 1 / 3, 0], [0.5, 0.5, 0]], atol=1e-6)
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 5.0]])
    labels = torch.tensor([1, 0])
    m = torch.from_numpy(mask)
    p0 = np.exp([2.0, 1.0, 0.0]) / np.exp([2.0, 1.0, 0.0]).sum()
    p1 = np.array([1.0, math.e, 0.0]) / (1 + math.e)  # the masked slot (logit 5) takes no part
    ce = (-math.log(p0[1]) - math.log(p1[0])) / 2
    assert float(rank_regularized_loss(logits, labels, torch.from_numpy(q), m, lam=0)) == pytest.approx(ce, rel=1e-5)
    reg = (np.linalg.norm(p0 - q[0]) + np.linalg.norm(p1 - q[1])) / 2
    got = float(rank_regularized_loss(logits, labels, torch.from_numpy(q), m, lam=1.0))
    assert got == pytest.approx(ce + reg, rel=1e-5)
    got2 = float(rank_regularized_loss(logits, labels, torch.from_numpy(q), m, lam=2.5))
    assert got2 == pytest.approx(ce + 2.5 * reg, rel=1e-5)
    # Distillation: KL(teacher || softmax(logits)) over the valid slots, a teacher's zero slot contributing nothing.
    from xnorm.rerank.loss import distillation_loss

    t = np.array([[0.7, 0.3, 0.0], [0.5, 0.5, 0.0]], dtype=np.float32)
    kl0 = 0.7 * math.log(0.7 / p0[0]) + 0.3 * math.log(0.3 / p0[1])
    kl1 = 0.5 * math.log(0.5 / p1[0]) + 0.5 * math.log(0.5 / p1[1])
    assert float(distillation_loss(logits, torch.from_numpy(t), m)) == pytest.approx((kl0 + kl1) / 2, rel=1e-5)
    p_same = torch.from_numpy(np.array([p0, p1], dtype=np.float32))
    assert float(distillation_loss(logits, p_same, m)) == pytest.approx(0.0, abs=1e-6)


def test_place_gold_insert_and_skip():
    from xnorm.rerank import place_gold

    c = Candidates(concepts=[[3, 4, 5], [6, 7, -1], [1, 2, 8]], scores=[[3, 2, 1], [5, 4, -np.inf], [9, 8, 7]],
                   names=np.full((3, 3), -1), routes=np.ones((3, 3)))
    gold = np.array([4, 9, 0])
    out, col, keep = place_gold(c, gold, "insert")
    assert col.tolist() == [1, 2, 2] and keep.all()
    assert out.concepts[1].tolist() == [6, 7, 9] and out.scores[1, 2] == 4  # first empty slot, lowest score
    assert out.concepts[2].tolist() == [1, 2, 0] and out.scores[2, 2] == 7  # the last slot is replaced
    assert c.concepts[2, 2] == 8  # the caller's candidates are not modified
    _, col, keep = place_gold(c, gold, "skip")
    assert keep.tolist() == [True, False, False] and col[0] == 1


# ---- weak supervision -------------------------------------------------------------------------------------
def test_examples_keep_every_gold_concept_of_an_annotation(index):
    from xnorm.rerank import Examples, examples_from_documents
    from xnorm.rerank.supervision import is_gold

    t = index.terminology
    ents = [{"id": "e1", "type": "x", "text": ["fits"], "offsets": [[0, 4]],
             "normalized": [{"db_name": "HPO", "db_id": i} for i in ("HP:404", "HP:9", "HP:1", "HP:9")]},
            {"id": "e2", "type": "x", "text": ["fever"], "offsets": [[9, 14]],
             "normalized": [{"db_name": "HPO", "db_id": "HP:6"}]}]
    doc = {"id": "d", "passages": [{"id": "p", "type": "t", "text": ["fits and fever"], "offsets": [[0, 14]]}],
           "entities": ents}
    ex = examples_from_documents([doc], t)
    r = t.concept_index
    # The first known id is the training gold; every known id (unknown dropped, duplicates once) is accepted.
    assert ex.gold.tolist() == [r("HP:9"), r("HP:6")]
    assert ex.gold_sets.tolist() == [[r("HP:9"), r("HP:1")], [r("HP:6"), -1]]
    concepts = np.array([[r("HP:1"), r("HP:6"), -1], [-1, r("HP:1"), r("HP:6")]])
    assert ex.hits(concepts).tolist() == [[True, False, False], [False, False, True]]
    assert ex[1:].hits(concepts[1:, 2]).tolist() == [True] and ex[1:].gold_sets.shape == (1, 2)
    # Single gold rows: an empty slot (-1) is never a hit, even against a mention without gold.
    assert is_gold(np.array([[-1, 3]]), np.array([-1])).tolist() == [[False, False]]
    # Concatenated with single-gold examples: their rows join the gold sets, padded; the mentions keep their order.
    both = Examples.concat([ex[1:], Examples(Mentions.from_texts(["fiebre"], "es"), np.array([r("HP:6")])), ex[:1]])
    assert both.mentions.texts.tolist() == ["fever", "fiebre", "fits"] and both.mentions.langs[1] == "es"
    assert both.gold_sets.tolist() == [[r("HP:6"), -1], [r("HP:6"), -1], [r("HP:9"), r("HP:1")]]
    assert both.gold.tolist() == [r("HP:6"), r("HP:6"), r("HP:9")] and both.exclude_names is None


def test_synonym_examples_exclude_their_own_name(index):
    from xnorm.rerank import candidates_for, examples_from_synonyms

    t = index.terminology
    ex = examples_from_synonyms(t, languages=["en"])
    assert "Seizure cluster" not in ex.mentions.texts.tolist()  # its concept's only name: unreachable without it
    assert len(ex) == int((t.name_langs == "en").sum()) - 1
    cands = candidates_for(index, ex, 4)
    assert not (cands.names == ex.exclude_names[:, None]).any()
    # The mention's own string is gone, so "Epileptic seizure" finds HP:1 through its other names only.
    row = ex.mentions.texts.tolist().index("Epileptic seizure")
    hp1 = t.concept_index("HP:1")
    assert hp1 in cands.concepts[row]
    assert t.name_texts[cands.names[row][cands.concepts[row] == hp1][0]] != "Epileptic seizure"
    plain = index.candidates(ex.mentions[[row]], 4)
    assert t.name_texts[plain.names[0, 0]] == "Epileptic seizure"  # what the exclusion prevents


# ---- training, save / load ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(index, tiny_model_dir, tmp_path_factory):
    from xnorm.rerank import train_reranker

    out = tmp_path_factory.mktemp("rr") / "reranker"
    ex = _examples(index)
    rr, report = train_reranker(index, ex, out, mode="adapter", lam=1.0, k=4, base_model=str(tiny_model_dir),
                                steps=50, batch_size=5, lr=3e-2, warmup=0.0, adapter_config=SMALL_ADAPTER,
                                prior_weight=None, pair_settings={"max_length": 24}, show_progress=False)
    return rr, report, out, ex


def _gold_ranks(reranked: Candidates, gold: np.ndarray) -> np.ndarray:
    hit = reranked.concepts == gold[:, None]
    return np.where(hit.any(1), hit.argmax(1), reranked.shape[1])


def test_training_lowers_loss_and_moves_gold_up(index, trained, tiny_model_dir):
    from xnorm.rerank import Reranker, place_gold

    rr, report, _, ex = trained
    losses = report["losses"]
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.2
    cands, _, _ = place_gold(index.candidates(ex.mentions, 4), ex.gold)
    untrained = Reranker.create(str(tiny_model_dir), mode="adapter", adapter_config=SMALL_ADAPTER, prior_weight=None)
    before = _gold_ranks(untrained.rerank(ex.mentions, cands, index.terminology), ex.gold)
    after = _gold_ranks(rr.rerank(ex.mentions, cands, index.terminology), ex.gold)
    assert after.mean() < before.mean()
    assert (after == 0).mean() >= 0.8
    assert report["parameters"]["trained"] < report["parameters"]["total"] / 5  # the base stayed frozen


def test_model_selection_by_the_worst_dev_set(index, tiny_model_dir):
    from xnorm.rerank import train_reranker
    from xnorm.rerank.train import accuracy_at_1
    from xnorm.rerank.supervision import candidates_for

    ex = _examples(index)
    devs = {"labels": ex[np.arange(0, 5)], "more": ex[np.arange(5, 10)]}
    rr, report = train_reranker(index, ex, None, k=4, base_model=str(tiny_model_dir), dev=devs, steps=12,
                                batch_size=5, lr=3e-2, warmup=0.0, eval_every=3, patience=10, calibrate=False,
                                adapter_config=SMALL_ADAPTER, pair_settings={"max_length": 24}, show_progress=False)
    cand = report["dev_sets_candidates"]
    assert set(cand) == set(devs) and len(report["dev"]) == 4
    for ev in report["dev"]:  # the criterion is the worst set's gain over the candidates, not the pooled acc@1
        assert ev["gain"] == pytest.approx(min(ev["sets"][n] - cand[n] for n in devs))
    gains = [0.0] + [ev["gain"] for ev in report["dev"]]  # step 0 = the candidates' ranking (generator prior)
    assert report["best_dev_gain"] == pytest.approx(max(gains))
    assert report["best_step"] == ([0] + [ev["step"] for ev in report["dev"]])[int(np.argmax(gains))]
    # The weights returned are the chosen step's: their dev accuracies are the ones recorded for it.
    for n, d in devs.items():
        assert accuracy_at_1(rr, d, candidates_for(index, d, 4), index.terminology) == \
            pytest.approx(report["best_dev_sets"][n])


def test_training_calibrates_the_generator_weight_and_rerank_applies_it(index, tiny_model_dir, tmp_path):
    from xnorm.rerank import Reranker, softmax_rows, train_reranker
    from xnorm.rerank.loss import generator_minmax
    from xnorm.rerank.model import update_manifest

    ex = _examples(index)
    out = tmp_path / "rr"
    _, report = train_reranker(index, ex, out, k=4, base_model=str(tiny_model_dir), dev={"dev": ex}, steps=4,
                               batch_size=5, lr=3e-2, warmup=0.0, eval_every=2, adapter_config=SMALL_ADAPTER,
                               prior_weight=None, pair_settings={"max_length": 24}, show_progress=False)
    gw = report["generator_weight"]
    assert gw["default"] in gw["grid"] and gw["dev"]["sets"]["dev"]["n"] == len(ex)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["generator_weight"] == gw and "generator_weight" not in manifest["training"]
    # A weight set in the saved folder (manifest only: the checksummed weights still load) is applied per language.
    from xnorm.errors import ArtifactError
    with pytest.raises(ArtifactError, match="no manifest.json"):
        update_manifest(tmp_path, generator_weight={"default": 1.0})  # not a reranker folder: nothing written
    assert not (tmp_path / "manifest.json").exists()
    update_manifest(out, generator_weight={"default": 0.0, "languages": {"es": 8.0}})
    rr = Reranker.load(out)
    assert "generator weight 0, es 8" in rr.describe()
    cands = index.candidates(ex.mentions, 4)
    logits = rr.logits(ex.mentions, cands, index.terminology)
    w = np.where(ex.mentions.langs == "es", 8.0, 0.0)[:, None]
    expected = softmax_rows(np.where(np.isfinite(logits), logits + w * generator_minmax(cands.scores,
                                                                                      np.isfinite(logits)), -np.inf))
    got = rr.rerank(ex.mentions, cands, index.terminology)
    for i in range(len(ex)):
        valid = cands.concepts[i] >= 0
        want = dict(zip(cands.concepts[i][valid], expected[i][valid]))
        assert {c: pytest.approx(want[c], rel=1e-5) for c in got.concepts[i] if c >= 0} == \
            {c: s for c, s in zip(got.concepts[i], got.scores[i]) if c >= 0}


def test_distillation_from_a_teacher_reranker(index, trained, tiny_model_dir, tmp_path):
    """A student with no labels of its own to go by (teacher_weight 1) learns to rank as the trained teacher does."""
    from xnorm.rerank import train_reranker

    _, _, teacher_dir, ex = trained
    student, report = train_reranker(index, ex, tmp_path / "student", k=4, base_model=str(tiny_model_dir), steps=40,
                                     batch_size=5, lr=3e-2, warmup=0.0, adapter_config=SMALL_ADAPTER,
                                     prior_weight=None, pair_settings={"max_length": 24}, teacher=teacher_dir,
                                     teacher_weight=1.0, show_progress=False)
    assert report["teacher"] == str(teacher_dir) and report["teacher_weight"] == 1.0
    assert np.mean(report["losses"][-5:]) < np.mean(report["losses"][:5]) / 2  # the KL to the teacher falls
    from xnorm.rerank import Reranker
    cands = index.candidates(ex.mentions, 4)
    teacher_top = Reranker.load(teacher_dir).rerank(ex.mentions, cands, index.terminology).concepts[:, 0]
    student_top = student.rerank(ex.mentions, cands, index.terminology).concepts[:, 0]
    assert (student_top == teacher_top).mean() >= 0.8
    with pytest.raises(Exception, match="teacher_weight"):
        train_reranker(index, ex, None, k=4, base_model=str(tiny_model_dir), steps=1, teacher=teacher_dir,
                       teacher_weight=1.5, show_progress=False)


def test_save_load_round_trip_same_scores(index, trained):
    from xnorm.rerank import Reranker

    rr, _, out, ex = trained
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["mode"] == "adapter" and manifest["lam"] == 1.0 and manifest["k"] == 4
    assert manifest["training"]["data"] == "tiny labels" and manifest["training"]["steps"] == 50
    assert not list(out.glob("*.bin")) and not list(out.glob("*.pt"))  # no pickles
    loaded = Reranker.load(out)
    assert loaded.parameter_counts() == rr.parameter_counts() == manifest["parameters"]
    loaded.save(out.parent / "again")  # a loaded reranker saves the same tensors again (not its frozen base)
    from safetensors.numpy import load_file
    assert load_file(str(out.parent / "again" / "weights.safetensors")).keys() == \
        load_file(str(out / "weights.safetensors")).keys()
    cands = index.candidates(ex.mentions, 4)
    a = rr.rerank(ex.mentions, cands, index.terminology)
    b = loaded.rerank(ex.mentions, cands, index.terminology)
    np.testing.assert_array_equal(a.concepts, b.concepts)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)
    # Softmax over each mention's candidates.
    np.testing.assert_allclose(np.where(np.isfinite(a.scores), a.scores, 0).sum(1), 1.0, rtol=1e-5)


def test_full_mode_and_prior_start_as_the_generator(index, tiny_model_dir, tmp_path):
    from xnorm.rerank import Reranker, train_reranker

    ex = _examples(index)
    fresh = Reranker.create(str(tiny_model_dir), mode="full")  # with the generator prior (the default)
    cands = index.candidates(ex.mentions, 4)
    # Untrained, the prior reranker keeps the generator's order exactly.
    np.testing.assert_array_equal(fresh.rerank(ex.mentions, cands, index.terminology).concepts, cands.concepts)
    rr, report = train_reranker(index, ex, tmp_path / "full", mode="full", lam=0.0, k=4,
                                base_model=str(tiny_model_dir), steps=3, batch_size=4, dev=ex[:6], eval_every=1,
                                pair_settings={"max_length": 24}, show_progress=False)
    assert report["parameters"]["trained"] > 0.5 * report["parameters"]["total"] - 20_000
    assert report["dev_acc1_candidates"] == pytest.approx(float((cands.concepts[:6, 0] == ex.gold[:6]).mean()))
    loaded = Reranker.load(tmp_path / "full")
    np.testing.assert_allclose(loaded.rerank(ex.mentions, cands, index.terminology).scores,
                               rr.rerank(ex.mentions, cands, index.terminology).scores, rtol=1e-5, atol=1e-6)


def test_segments_pooling_trains_and_round_trips(index, tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    from xnorm.rerank import PairEncoder, Reranker, train_reranker

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    batch = PairEncoder(tok, index.terminology, max_length=24).tokenize(["small head", "fever"], ["microcephaly", "x"])
    # Which side each token is on: the mention's tokens 0, the candidate's 1, padding -1.
    for row, (a, b) in enumerate([("small head", "microcephaly"), ("fever", "x")]):
        seg = batch["segments"][row].tolist()
        assert seg.count(0) == len(tok(a, add_special_tokens=False)["input_ids"])
        assert seg.count(1) == len(tok(b, add_special_tokens=False)["input_ids"])
    ex = _examples(index)
    rr, report = train_reranker(index, ex, tmp_path / "seg", k=4, base_model=str(tiny_model_dir), steps=40,
                                batch_size=5, lr=3e-2, warmup=0.0, adapter_config=SMALL_ADAPTER, prior_weight=None,
                                pooling="segments", pair_settings={"max_length": 24}, show_progress=False)
    assert np.mean(report["losses"][-10:]) < np.mean(report["losses"][:10]) - 0.2
    loaded = Reranker.load(tmp_path / "seg")
    assert loaded.info["pooling"] == "segments"
    cands = index.candidates(ex.mentions, 4)
    np.testing.assert_allclose(loaded.rerank(ex.mentions, cands, index.terminology).scores,
                               rr.rerank(ex.mentions, cands, index.terminology).scores, rtol=1e-5, atol=1e-6)


# ---- Stack(lang, task) --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def es_adapter(tiny_model_dir, tmp_path_factory) -> Path:
    """A (random, non-identity) Spanish language adapter for the tiny BERT, saved as safetensors."""
    import torch
    from adapters import BertAdapterModel

    torch.manual_seed(1)
    model = BertAdapterModel.from_pretrained(tiny_model_dir)
    model.add_adapter("es", config="seq_bn_inv")
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".es." in n:
                p.add_(torch.randn_like(p) * 0.5)
    path = tmp_path_factory.mktemp("lang") / "lang-es"
    model.save_adapter(str(path), "es", with_head=False, use_safetensors=True)
    return path


@pytest.fixture(scope="module")
def stacked(index, tiny_model_dir, es_adapter, tmp_path_factory):
    """A reranker trained (briefly) under Stack(lang_es, task)."""
    from xnorm.rerank import train_reranker

    out = tmp_path_factory.mktemp("rr") / "stack"
    rr, _ = train_reranker(index, _examples(index), out, mode="stack", k=4, base_model=str(tiny_model_dir), steps=2,
                           batch_size=4, lang_adapter=("es", str(es_adapter)), adapter_config=SMALL_ADAPTER,
                           pair_settings={"max_length": 24}, show_progress=False)
    return rr, out


def test_stack_chosen_per_language_and_task_only_fallback(index, stacked, trained, es_adapter):
    from adapters import Stack

    from xnorm.rerank import Reranker

    _, out = stacked
    rr = Reranker.load(out)
    rr.use_zoo = False
    assert rr.adapter_for("es") == "es" and rr.adapter_for("ja") is None
    m = Mentions(texts=["fiebre", "convulsión", "発作", "seizure"], langs=["es", "es", "ja", "en"])
    cands = index.candidates(m, 4)
    b = rr.logits(m, cands, index.terminology)
    task_only = Reranker.load(out)
    task_only.use_zoo = False
    task_only.lang_adapters.clear()
    a = task_only.logits(m, cands, index.terminology)
    es, other = np.array([True, True, False, False]), np.array([False, False, True, True])
    # Spanish mentions ran under Stack(lang_es, task): different scores; ja/en fell back to the task adapter.
    assert not np.allclose(a[es], b[es])
    np.testing.assert_allclose(a[other], b[other], rtol=1e-5)
    rr._activate("es")
    assert isinstance(rr.model.active_adapters, Stack)
    assert [str(x) for x in rr.model.active_adapters] == ["lang_es", "rerank"]
    # A task adapter trained alone never gets a language adapter under it.
    alone = Reranker.load(trained[2], lang_adapters={"es": str(es_adapter)})
    assert alone.adapter_for("es") is None


def test_stack_mode_trains_task_adapter_under_frozen_language_adapter(stacked, es_adapter):
    import torch
    from safetensors.torch import load_file

    from xnorm.rerank import Reranker

    rr, out = stacked
    saved = load_file(str(es_adapter / "adapter.safetensors"))
    now = {n: p for n, p in rr.model.named_parameters() if ".lang_es." in n}
    assert now and all(not p.requires_grad for p in now.values())
    compared = 0
    for name, tensor in saved.items():  # the language adapter did not move
        key = name.replace(".es.", ".lang_es.")
        if key in now:
            assert torch.equal(now[key].detach().cpu(), tensor)
            compared += 1
    assert compared
    loaded = Reranker.load(out)
    assert loaded.mode == "stack" and loaded.source_lang == "es"
    assert (out / "lang_adapters" / "es" / "adapter.safetensors").is_file()
    assert loaded.adapter_for("es") == "es"


def test_encoder_adapter_as_base_runs_frozen_under_the_task_adapter(index, tiny_model_dir, tmp_path):
    """An encoder adapter (train-encoder output, e.g. hpo-align-e5small) as --base-model: loaded on its base,
    frozen, Stack(base adapter, task) in training and after loading; other weights under its name are refused."""
    import shutil

    import torch
    from adapters import Stack
    from safetensors.torch import load_file

    from xnorm.errors import ArtifactError, ConfigError
    from xnorm.rerank import Reranker, train_reranker
    from xnorm.rerank.model import BASE_ADAPTER
    from xnorm.training import train_encoder

    align = tmp_path / "align"
    fast = {"batch_size": 8, "max_length": 16, "dev_every": 2, "dev_queries": 4, "dev_distractors": 4,
            "adapter_size": 4, "threads": 1, "patience": 0, "dev_fraction": 0.2, "test_fraction": 0.2}
    train_encoder(index.terminology, str(tiny_model_dir), align, steps=2, lr=1e-2, progress=False, **fast)
    saved = load_file(str(align / "adapter.safetensors"))
    ex = _examples(index)
    rr, report = train_reranker(index, ex, tmp_path / "rr", mode="adapter", k=4, base_model=str(align), steps=6,
                                batch_size=5, lr=3e-2, warmup=0.0, adapter_config=SMALL_ADAPTER,
                                pair_settings={"max_length": 24}, show_progress=False)
    assert str(rr.model.active_adapters) == str(Stack(BASE_ADAPTER, "rerank"))
    base = {n: p for n, p in rr.model.named_parameters() if f".{BASE_ADAPTER}." in n}
    assert base and not any(p.requires_grad for p in base.values())
    moved = [n for n, t in saved.items() if n.replace(".xnorm_align.", f".{BASE_ADAPTER}.") in base
             and not torch.equal(base[n.replace(".xnorm_align.", f".{BASE_ADAPTER}.")].detach().cpu(), t)]
    assert len(saved) and not moved  # the encoder adapter did not train
    assert not any(BASE_ADAPTER in k for k in load_file(str(tmp_path / "rr" / "weights.safetensors")))
    loaded = Reranker.load(tmp_path / "rr")
    assert loaded.base_adapter and json.loads((tmp_path / "rr" / "manifest.json").read_text())["base_weights"]
    cands = index.candidates(ex.mentions, 4)
    np.testing.assert_allclose(loaded.rerank(ex.mentions, cands, index.terminology).scores,
                               rr.rerank(ex.mentions, cands, index.terminology).scores, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="encoder adapter"):
        Reranker.create(str(align), mode="full")
    # Other weights under the adapter's folder: the reranker was trained over the old ones.
    train_encoder(index.terminology, str(tiny_model_dir), tmp_path / "other", steps=2, lr=1e-2, progress=False,
                  **{**fast, "seed": 3})
    shutil.rmtree(align)
    shutil.copytree(tmp_path / "other", align)
    with pytest.raises(ArtifactError, match="other weights"):
        Reranker.load(tmp_path / "rr")


def test_sentence_transformers_cross_encoder_folder(index, index_dir, tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from xnorm.rerank import Reranker

    cfg = BertConfig.from_pretrained(tiny_model_dir, num_labels=1)
    BertForSequenceClassification(cfg).save_pretrained(tmp_path / "ce")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "ce")
    rr = Reranker.load(tmp_path / "ce")
    assert rr.mode == "cross-encoder"
    m = Mentions.from_texts(["seizure", "fever"], "en")
    out = rr.rerank(m, index.candidates(m, 3), index.terminology)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(np.where(out.concepts >= 0, out.scores, 0).sum(1), 1.0, rtol=1e-5)
    # It has no xnorm manifest to keep a generator weight in: a clear error, the folder left as it was.
    before = sorted(f.name for f in (tmp_path / "ce").iterdir())
    r = _run("calibrate-reranker", str(tmp_path / "ce"), "--index", str(index_dir), "--dev", "synonyms")
    assert r.exit_code == EXIT_BAD_INPUT and "CrossEncoder" in r.output and "Traceback" not in r.output
    assert sorted(f.name for f in (tmp_path / "ce").iterdir()) == before


def test_load_errors_are_artifact_errors(tmp_path):
    from xnorm.errors import ArtifactError
    from xnorm.rerank import Reranker

    with pytest.raises(ArtifactError, match="not found"):
        Reranker.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="manifest"):
        Reranker.load(tmp_path / "empty")


# ---- Linker + CLI -----------------------------------------------------------------------------------------
DOCS = [
    {"id": "d1", "document_id": "d1", "lang": "en", "passages": [{"id": "d1p", "type": "abstract",
                                             "text": ["The boy had convulsions and pyrexia."], "offsets": [[0, 36]]}],
     "entities": [{"id": "e1", "type": "phenotype", "text": ["convulsions"], "offsets": [[12, 23]], "normalized": []},
                  {"id": "e2", "type": "phenotype", "text": ["pyrexia"], "offsets": [[28, 35]], "normalized": []}]},
    {"id": "d2", "document_id": "d2", "lang": "es", "passages": [{"id": "d2p", "type": "abstract", "text": ["Niña con fiebre."],
                                             "offsets": [[0, 16]]}],
     "entities": [{"id": "e3", "type": "phenotype", "text": ["fiebre"], "offsets": [[9, 15]], "normalized": []}]},
]


def test_linker_with_reranker_links_and_round_trips(index_dir, trained, tmp_path):
    from xnorm.linker import Linker

    _, _, out, _ = trained
    linker = Linker.from_config({"index": str(index_dir), "reranker": str(out), "rerank_k": 4, "k": 6, "top_k": 2,
                                 "abbreviations": False, "context_chars": 0})  # trained on bare labels
    assert "reranked by reranker(adapter" in linker.pipeline
    m = Mentions(texts=["convulsions", "pyrexia", "fiebre"], langs=["en", "en", "es"])
    c = linker.candidates(m)
    assert c.shape[1] == 6 and c.source == "rerank"
    np.testing.assert_allclose(c.scores[:, :4].sum(1), 1.0, rtol=1e-5)  # softmax over the reranked 4
    assert (c.scores[:, 4:][c.concepts[:, 4:] >= 0] == 0).all()  # the rest keep their order, score 0
    docs = list(linker.link(json.loads(json.dumps(DOCS))))
    ids = [[n["db_id"] for n in e["normalized"]] for d in docs for e in d["entities"]]
    assert [x[0] for x in ids] == ["HP:1", "HP:6", "HP:6"] and all(len(x) == 2 for x in ids)
    linker.save(tmp_path / "linker")
    assert (tmp_path / "linker" / "reranker" / "weights.safetensors").is_file()
    again = Linker.load(tmp_path / "linker")
    assert again.reranker is not None
    np.testing.assert_allclose(again.candidates(m).scores, c.scores, rtol=1e-5, atol=1e-6)
    # A generator weight set after loading (e.g. calibrated in code) is saved with the linker, not lost in the copy.
    linker.reranker.info["generator_weight"] = {"default": 8.0, "languages": {}}
    weighted = linker.candidates(m)
    linker.save(tmp_path / "linker2")
    again = Linker.load(tmp_path / "linker2")
    assert again.reranker.info["generator_weight"] == {"default": 8.0, "languages": {}}
    np.testing.assert_allclose(again.candidates(m).scores, weighted.scores, rtol=1e-5, atol=1e-6)
    assert not np.allclose(weighted.scores[:, :4], c.scores[:, :4])


def test_reranker_in_the_zoo_is_found_by_name(index_dir, trained, tmp_path, monkeypatch):
    """``zoo.add_reranker`` wraps a trained folder as a zoo entry; linkers and ``xnorm link --reranker`` take its
    name; a changed weight file is refused."""
    from xnorm import zoo
    from xnorm.errors import ArtifactError
    from xnorm.linker import Linker

    monkeypatch.setenv("XNORM_HOME", str(tmp_path / "home"))
    _, _, out, _ = trained
    entry = zoo.add_reranker(out, "rr-tiny", training={"data": "tiny"})
    assert entry == tmp_path / "home" / "adapters" / "rr-tiny"
    r = _run("adapters", "add-reranker", str(out), "rr-cli")
    assert r.exit_code == 0 and (tmp_path / "home" / "adapters" / "rr-cli" / "reranker").is_dir(), r.output
    r = _run("adapters", "add-reranker", str(tmp_path), "rr-bad")  # not a reranker folder: one line, exit 3
    assert r.exit_code == EXIT_BAD_INPUT and "reranker folder" in r.output and "Traceback" not in r.output
    info = zoo.adapter_info("rr-tiny")  # zoo checksums cover the reranker's files
    assert info.kind == "reranker" and "reranker/weights.safetensors" in info.manifest["files"]
    linker = Linker.from_config({"index": str(index_dir), "reranker": "rr-tiny", "k": 6,
                                 "abbreviations": False, "context_chars": 0})
    assert linker.rerank_k == 4  # no rerank_k given: the k the reranker was trained with
    m = Mentions(texts=["convulsions", "fiebre"], langs=["en", "es"])
    direct = Linker.from_config({"index": str(index_dir), "reranker": str(out), "rerank_k": 4, "k": 6,
                                 "abbreviations": False, "context_chars": 0})
    np.testing.assert_allclose(linker.candidates(m).scores, direct.candidates(m).scores, rtol=1e-5, atol=1e-6)
    plain = tmp_path / "plain.jsonl"
    plain.write_text("\n".join(json.dumps(d) for d in DOCS) + "\n")
    r = _run("link", str(plain), "-o", str(tmp_path / "l.jsonl"), "--index", str(index_dir), "--reranker", "rr-tiny")
    assert r.exit_code == 0, r.output
    assert "rr-tiny" in _run("adapters", "list").output
    weights = entry / "reranker" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ArtifactError, match="weights.safetensors"):
        Linker.from_config({"index": str(index_dir), "reranker": "rr-tiny"})


def test_calibrate_threshold(index_dir, trained):
    from xnorm.linker import Linker

    _, _, out, _ = trained
    linker = Linker.from_config({"index": str(index_dir), "reranker": str(out), "rerank_k": 4})
    m = Mentions(texts=["convulsions", "pyrexia", "cephalalgia", "zebra stripes", "blue car"], langs=["en"] * 5)
    gold = ["HP:1", "HP:6", "HP:7", None, None]
    top = linker.candidates(m).top(1)
    choice = linker.calibrate_threshold(m, gold)
    t = choice.threshold
    assert linker.config.threshold == t and t in top.scores[:, 0]
    preds = linker.predict(m)
    linked = preds.concepts[:, 0] >= 0
    ids = preds.concept_ids(linker.terminology)[:, 0]
    # F1-optimal: nothing linked is wrong unless linking it also gained recall.
    tp = sum(1 for i, g in zip(ids, gold) if i is not None and i == g)
    assert tp >= 1 and linked.sum() >= tp
    assert (choice.linked, choice.mentions, choice.with_gold) == (linked.sum(), 5, 3)
    assert (choice.precision, choice.recall) == (tp / linked.sum(), tp / 3)
    with pytest.raises(Exception, match="precision"):
        linker.calibrate_threshold(m, [None] * 5, target_precision=0.5)
    with pytest.raises(Exception, match="no dev mention's first answer is right"):  # all NIL: nothing to choose
        linker.calibrate_threshold(m, [None] * 5)


def test_calibrate_threshold_never_splits_tied_scores(index_dir, trained):
    """A threshold links every mention with its score: with three right and one wrong answer tied at the top, no
    threshold gives precision 1, and the reported precision is that of everything the threshold links."""
    from xnorm.linker import Linker
    from xnorm.types import Candidates

    _, _, out, _ = trained
    linker = Linker.from_config({"index": str(index_dir), "reranker": str(out), "rerank_k": 4})
    term = linker.terminology
    rows = [term.concept_index(c) for c in ("HP:1", "HP:6", "HP:7", "HP:1", "HP:6")]
    scores = [[3.0], [3.0], [3.0], [3.0], [1.0]]
    tied = Candidates(concepts=np.c_[rows], scores=scores, names=np.full((5, 1), -1), routes=np.zeros((5, 1)))
    linker.candidates = lambda mentions: tied
    m = Mentions(texts=list("abcde"), langs=["en"] * 5)
    gold = ["HP:1", "HP:6", "HP:7", "HP:6", None]  # the fourth top answer is wrong, tied with three right ones
    with pytest.raises(Exception, match="no threshold reaches precision 0.9"):
        linker.calibrate_threshold(m, gold, target_precision=0.9)
    choice = linker.calibrate_threshold(m, gold, target_precision=0.7)
    assert (choice.threshold, choice.linked, choice.precision) == (3.0, 4, 0.75)
    assert linker.calibrate_threshold(m, gold).linked == 4  # best F1: all four tied, not the first three of them


def _run(*args):
    from tests.test_link import run

    return run(*args)


def test_cli_train_reranker_and_link(index_dir, tiny_model_dir, tmp_path):
    docs = tmp_path / "train.jsonl"
    gold = json.loads(json.dumps(DOCS))
    gold[0]["entities"][0]["normalized"] = [{"db_name": "HPO", "db_id": "HP:1"}]
    gold[0]["entities"][1]["normalized"] = [{"db_name": "HPO", "db_id": "HP:6"}]
    gold[1]["entities"][0]["normalized"] = [{"db_name": "HPO", "db_id": "HP:6"}]
    docs.write_text("\n".join(json.dumps(d) for d in gold) + "\n")
    out = tmp_path / "rr"
    r = _run("train-reranker", "--index", str(index_dir), "--train", str(docs), "--dev", "synonyms:es", "-o", str(out),
             "--base-model", str(tiny_model_dir), "--k", "4", "--steps", "2", "--batch-size", "2", "--max-length", "24",
             "--eval-every", "1", "--context-chars", "20", "--pooling", "mean")
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and (out / "manifest.json").is_file()
    assert json.loads((out / "manifest.json").read_text())["pooling"] == "mean"
    assert json.loads((out / "manifest.json").read_text())["training"]["dev"]["synonyms:es"].startswith("synonyms of")
    assert json.loads((out / "manifest.json").read_text())["pairs"]["context_chars"] == 20
    plain = tmp_path / "plain.jsonl"
    plain.write_text("\n".join(json.dumps(d) for d in DOCS) + "\n")
    r = _run("link", str(plain), "-o", str(tmp_path / "linked.jsonl"), "--index", str(index_dir), "--reranker",
             str(out), "--top-k", "2")
    assert r.exit_code == 0, r.output
    linked = [json.loads(x) for x in (tmp_path / "linked.jsonl").read_text().splitlines()]
    assert all(len(e["normalized"]) == 2 for d in linked for e in d["entities"])
    # User errors: one line, exit code 3, no traceback.
    r = _run("train-reranker", "--index", str(index_dir), "--train", "synonyms:xx", "-o", str(tmp_path / "x"),
             "--base-model", str(tiny_model_dir))
    assert r.exit_code == EXIT_BAD_INPUT and "Traceback" not in r.output and "no synonyms" in r.output
    r = _run("train-reranker", "--index", str(index_dir), "--train", "synonyms", "-o", str(tmp_path / "x"),
             "--mode", "stack", "--base-model", str(tiny_model_dir))
    assert r.exit_code == EXIT_BAD_INPUT and "--lang-adapter" in r.output
    r = _run("train-reranker", "--index", str(index_dir), "--train", str(docs), "-o", str(tmp_path / "x"),
             "--parents", "--base-model", str(tiny_model_dir), "--k", "4", "--steps", "1")  # no hierarchy here
    assert r.exit_code == EXIT_BAD_INPUT and "Traceback" not in r.output and "no is_a hierarchy" in r.output
    r = _run("link", str(plain), "-o", str(tmp_path / "l2.jsonl"), "--index", str(index_dir), "--reranker",
             str(tmp_path / "nope"))
    assert r.exit_code == EXIT_BAD_INPUT and "reranker" in r.output


def test_cli_calibrate_reranker(index_dir, trained, tmp_path):
    import shutil

    from xnorm.rerank import Reranker

    folder = tmp_path / "rr"
    shutil.copytree(trained[2], folder)
    r = _run("calibrate-reranker", str(folder), "--index", str(index_dir), "--dev", "synonyms", "--min-per-language",
             "3")
    assert r.exit_code == 0, r.output
    gw = json.loads((folder / "manifest.json").read_text())["generator_weight"]
    assert set(gw["languages"]) == {"en", "es"}  # synonym mentions: en 17, es 4, fr 2 (too few)
    assert "(default)" in r.output and "wrote the generator weight" in r.output
    assert Reranker.load(folder).info["generator_weight"] == gw
    r = _run("calibrate-reranker", str(folder), "--index", str(index_dir), "--dev", "synonyms", "--max-dev", "5")
    assert r.exit_code == 0, r.output
    assert json.loads((folder / "manifest.json").read_text())["generator_weight"]["dev"]["sets"]["synonyms"]["n"] == 5
    r = _run("calibrate-reranker", str(folder), "--index", str(index_dir), "--dev", str(tmp_path / "none.jsonl"))
    assert r.exit_code == EXIT_BAD_INPUT and "Traceback" not in r.output and "none.jsonl" in r.output


def test_language_adapter_found_in_the_zoo(index, stacked, es_adapter, tiny_model_dir, tmp_path, monkeypatch):
    """A language adapter in $XNORM_HOME/adapters (what `xnorm train-lang-adapter` writes) is found by language
    and base weights, loaded with its checksums verified, and stacked for that language only."""
    import shutil

    from xnorm import zoo
    from xnorm.rerank import Reranker

    home = tmp_path / "home"
    monkeypatch.setenv("XNORM_HOME", str(home))
    folder = home / "adapters" / "lang-fr-tiny"
    shutil.copytree(es_adapter, folder)
    zoo.write_manifest(folder, kind="language-adapter", name="lang-fr-tiny", base_model=str(tiny_model_dir),
                       base_model_sha256=zoo.model_sha256(tiny_model_dir), language="fr")
    _, out = stacked
    rr = Reranker.load(out)
    assert rr.adapter_for("fr") == "fr" and rr.adapter_for("de") is None
    m = Mentions(texts=["anomalie cardiaque"], langs=["fr"])
    cands = index.candidates(m, 3)
    with_zoo = rr.logits(m, cands, index.terminology)
    rr.lang_adapters.clear()
    rr.use_zoo = False
    without = rr.logits(m, cands, index.terminology)
    assert not np.allclose(with_zoo, without)


def test_bf16_precision_scores_close_to_fp32_and_trains(index, trained, tiny_model_dir, monkeypatch):
    import torch

    from xnorm.errors import ConfigError
    from xnorm.models import encoder
    from xnorm.rerank import Reranker, train_reranker

    _, _, out, ex = trained
    cands = index.candidates(ex.mentions, 4)
    fp32 = Reranker.load(out, precision="fp32")
    bf16 = Reranker.load(out, precision="bf16")
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    a = fp32.logits(ex.mentions, cands, index.terminology)
    b = bf16.logits(ex.mentions, cands, index.terminology)
    finite = np.isfinite(a)
    assert (finite == np.isfinite(b)).all() and not np.array_equal(a[finite], b[finite])  # bf16 really ran
    np.testing.assert_allclose(b[finite], a[finite], atol=0.1 * np.abs(a[finite]).max())
    # auto: bf16 only where the CPU computes it natively; a bad value names the field.
    monkeypatch.setattr(encoder, "_native_bf16", lambda: False)
    assert fp32.set_precision("auto").precision == "fp32" and fp32.requested_precision == "auto"
    monkeypatch.setattr(encoder, "_native_bf16", lambda: True)
    assert fp32.set_precision("auto").precision == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        fp32.set_precision("fp16")
    # Training under bf16 autocast: the trained tensors stay fp32, the loss falls, the manifest records it.
    rr, report = train_reranker(index, ex, out.parent / "bf16", k=4, base_model=str(tiny_model_dir), steps=30,
                                batch_size=5, lr=3e-2, warmup=0.0, adapter_config=SMALL_ADAPTER, prior_weight=None,
                                pair_settings={"max_length": 24}, precision="bf16", show_progress=False)
    assert report["precision"] == "bf16"
    assert np.mean(report["losses"][-5:]) < np.mean(report["losses"][:5])
    assert all(p.dtype == torch.float32 for p in rr.trainable_parameters())
    manifest = json.loads((out.parent / "bf16" / "manifest.json").read_text())
    assert manifest["training"]["precision"] == "bf16"


def test_linker_rerank_precision_config_and_cli(index_dir, trained, tmp_path):
    from xnorm.errors import ConfigError
    from xnorm.linker import Linker

    _, _, out, _ = trained
    linker = Linker.from_config({"index": str(index_dir), "reranker": str(out), "rerank_precision": "bf16",
                                 "abbreviations": False})
    assert linker.reranker.precision == "bf16"
    linker.save(tmp_path / "linker")
    assert Linker.load(tmp_path / "linker").reranker.precision == "bf16"  # the saved config keeps it
    linker.set_reranker(linker.reranker, "fp32")
    assert linker.reranker.precision == "fp32" and linker.config.rerank_precision == "fp32"
    with pytest.raises(ConfigError, match="rerank_precision"):
        Linker.from_config({"index": str(index_dir), "rerank_precision": "half"})
    plain = tmp_path / "plain.jsonl"
    plain.write_text("\n".join(json.dumps(d) for d in DOCS) + "\n")
    r = _run("link", str(plain), "-o", str(tmp_path / "l.jsonl"), "--index", str(index_dir), "--reranker", str(out),
             "--rerank-precision", "bf16", "--explain")
    assert r.exit_code == 0, r.output
    assert "bf16" in r.output  # --explain names the reranker's precision
    r = _run("link", str(plain), "-o", str(tmp_path / "l2.jsonl"), "--index", str(index_dir),
             "--rerank-precision", "bf16")
    assert r.exit_code == 2 and "--rerank-precision applies to a reranker" in r.output
    assert not (tmp_path / "l2.jsonl").exists()
    r = _run("link", str(plain), "-o", str(tmp_path / "l2.jsonl"), "--index", str(index_dir), "--reranker", "none",
             "--rerank-precision", "bf16")
    assert r.exit_code == 2 and "--rerank-precision applies to a reranker" in r.output
