"""Dense candidates with the real ``Encoder`` on the tiny BERT, fusion with TF-IDF, persistence, ``xnorm index``."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from test_candidates_core import HELD_OUT_ES, hpo_terminology, obo_terms, official_labels

from xnorm import Mentions
from xnorm.candidates import CandidateIndex, DenseGenerator
from xnorm.candidates.cache import ROW_OVERHEAD, RowCache, row_bytes
from xnorm.cli.main import main
from xnorm.errors import ArtifactError, ConfigError
from xnorm.models.encoder import Encoder
from xnorm.types import ROUTE_ENGLISH_FALLBACK, ROUTE_SAME_LANGUAGE, Candidates


@pytest.fixture(scope="module")
def term():
    return hpo_terminology()


@pytest.fixture(scope="module")
def encoder(tiny_model_dir):
    return Encoder(str(tiny_model_dir), batch_size=256)


@pytest.fixture(scope="module")
def mentions():
    es = official_labels("es")
    texts = [es[h] for h in list(obo_terms())[:20] if h in es] + [es[h] for h in HELD_OUT_ES] + ["seizure"]
    return Mentions(texts=texts, langs=["es"] * (len(texts) - 1) + ["en"])


@pytest.fixture(scope="module")
def fusion_index(term, tiny_model_dir):
    cfg = {"generators": [{"type": "sparse"}, {"type": "dense", "model": str(tiny_model_dir), "index": "Flat"}],
           "fusion": {"method": "rrf", "weights": [1, 1]}}
    return CandidateIndex.build(term, cfg)


def test_dense_flat_is_exact_vs_brute_force(term, encoder, mentions):
    gen = DenseGenerator(encoder, index="Flat", names_per_concept=10_000).fit(term)
    k = 10
    c = gen.candidates(mentions, k=k, routing="fallback")
    names = encoder.encode(list(term.name_texts), kind="passage")
    queries = encoder.encode(list(mentions.texts), kind="query")
    sims = queries @ names.T
    for i, lang in enumerate(mentions.langs):
        allowed = np.isin(term.name_langs, ["es", "en"] if lang == "es" else ["en"])
        best = np.full(len(term), -np.inf)
        np.maximum.at(best, term.name_concepts[allowed], sims[i, allowed])
        order = np.lexsort((np.arange(len(term)), -best))[:k]
        np.testing.assert_allclose(c.scores[i], best[order], atol=1e-4)
        # Names are the argmax name of each concept, and routes follow the name language.
        for j in range(k):
            n = c.names[i, j]
            assert term.name_concepts[n] == c.concepts[i, j]
            assert sims[i, n] == pytest.approx(best[c.concepts[i, j]], abs=1e-4)
            expected_route = ROUTE_SAME_LANGUAGE if term.name_langs[n] == lang else ROUTE_ENGLISH_FALLBACK
            assert c.routes[i, j] == expected_route


def test_repeated_mentions_are_encoded_once_and_share_their_rows(term, encoder, mentions):
    gen = DenseGenerator(encoder, index="Flat").fit(term)
    # Each text three times, shuffled; "seizure" also as a Spanish mention (another route plan: kept apart).
    order = np.random.default_rng(0).permutation(np.repeat(np.arange(len(mentions)), 3))
    texts = np.r_[mentions.texts[order], ["seizure"]]
    langs = np.r_[mentions.langs[order], ["es"]]
    encoded: list[str] = []
    original = gen.encode_queries
    gen.encode_queries = lambda batch: (encoded.extend(batch), original(batch))[1]
    c = gen.candidates(Mentions(texts=texts, langs=langs), k=10, routing="fallback")
    assert sorted(encoded) == sorted(list(mentions.texts) + ["seizure"])  # once per (language, text)
    one = gen._candidates_per_row(langs, texts, 10)  # the per-row path: every row encoded and searched
    np.testing.assert_array_equal(c.concepts, one.concepts)
    np.testing.assert_array_equal(c.routes, one.routes)
    np.testing.assert_allclose(c.scores, one.scores, atol=1e-5)
    seizure = texts == "seizure"
    assert set(c.routes[seizure & (langs == "en")].ravel()) == {ROUTE_SAME_LANGUAGE}
    assert ROUTE_ENGLISH_FALLBACK in set(c.routes[seizure & (langs == "es")].ravel())


def test_cache_answers_texts_of_earlier_batches_without_searching(term, encoder, mentions):
    gen = DenseGenerator(encoder, index="Flat").fit(term)
    plain = gen.candidates(mentions, k=10)
    gen.cache = RowCache(2**20)
    encoded: list[str] = []
    original = gen.encode_queries
    gen.encode_queries = lambda batch: (encoded.extend(batch), original(batch))[1]
    half = len(mentions) // 2
    gen.candidates(mentions[:half], k=10)
    encoded.clear()
    c = gen.candidates(mentions, k=10)  # the first half was answered in the earlier batch
    assert sorted(encoded) == sorted(set(mentions.texts[half:]) - set(mentions.texts[:half]))
    for attr in ("concepts", "names", "routes"):
        np.testing.assert_array_equal(getattr(c, attr), getattr(plain, attr))
    np.testing.assert_allclose(c.scores, plain.scores, atol=1e-5)
    encoded.clear()
    gen.candidates(mentions[:1], k=5)  # another k is another row: searched again
    assert encoded == mentions.texts[:1].tolist()
    # Anything that changes what a query returns empties the cache.
    assert len(gen.cache) > 0
    gen.set_query_encoder(None)
    assert len(gen.cache) == 0
    gen.candidates(mentions, k=10)
    gen.fit(term)
    assert len(gen.cache) == 0


def test_row_cache_drops_least_recently_used_rows_beyond_its_bound():
    cache = RowCache(3 * row_bytes(4))
    rows = Candidates(np.arange(20).reshape(5, 4), np.ones((5, 4)), np.zeros((5, 4)), np.zeros((5, 4)))
    cache.put(["a", "b", "c"], rows[:3])
    cache.get(["a"], 4, "")  # "a" used: "b" is now the oldest
    cache.put(["d", "e"], rows[3:])
    assert len(cache) == 3 and cache.nbytes == 3 * row_bytes(4) == 3 * (4 * 13 + ROW_OVERHEAD)
    found, got = cache.get(["a", "b", "c", "d", "e"], 4, "")
    assert found.tolist() == [True, False, False, True, True]
    np.testing.assert_array_equal(got.concepts[[0, 3, 4]], rows.concepts[[0, 3, 4]])
    assert (got.concepts[1] == -1).all() and np.isneginf(got.scores[2]).all()


@pytest.mark.parametrize("factory", ["HNSW32", "IVF8,Flat"])
def test_other_faiss_factories_build_and_search(term, encoder, mentions, factory):
    gen = DenseGenerator(encoder, index=factory, search_params="nprobe=8" if "IVF" in factory else "efSearch=256")
    gen.fit(term)
    exact = DenseGenerator(encoder, index="Flat").fit(term)
    a, b = gen.candidates(mentions, k=5), exact.candidates(mentions, k=5)
    assert a.shape == (len(mentions), 5) and (a.concepts[:, 0] >= 0).all()
    # nprobe = nlist / large efSearch on ~1,000 names: the same top candidate as exact search.
    assert (a.concepts[:, 0] == b.concepts[:, 0]).mean() >= 0.9


def test_bad_factory_is_a_config_error(term, encoder):
    with pytest.raises(ConfigError, match="index"):
        DenseGenerator(encoder, index="NoSuchIndex").fit(term)


def test_fusion_index_save_load_identical(fusion_index, mentions, tmp_path):
    before = fusion_index.candidates(mentions, k=32)
    assert before.source == "fusion" and "fused by rrf" in fusion_index.describe()
    for i in range(len(mentions)):
        row = before.concepts[i][before.concepts[i] >= 0]
        assert len(np.unique(row)) == len(row)
    path = fusion_index.save(tmp_path / "idx")
    manifest = json.loads((path / "manifest.json").read_text())
    dense = manifest["generators"][1]
    assert dense["type"] == "dense" and dense["encoder"]["pooling"] == "mean" and dense["dim"] == 32
    assert any(f.endswith(".faiss") for f in manifest["sha256"])
    loaded = CandidateIndex.load(path)  # the encoder is rebuilt from the stored reference
    after = loaded.candidates(mentions, k=32)
    np.testing.assert_array_equal(before.concepts, after.concepts)
    np.testing.assert_allclose(before.scores, after.scores, rtol=1e-5)
    np.testing.assert_array_equal(before.routes, after.routes)
    faiss_file = next(path.glob("gen-1-dense/*.faiss"))
    faiss_file.write_bytes(faiss_file.read_bytes()[:-8])
    with pytest.raises(ArtifactError, match="checksum"):
        CandidateIndex.load(path)
    with pytest.raises(ArtifactError, match="FAISS"):
        CandidateIndex.load(path, verify=False)


def test_fused_scores_are_reciprocal_rank_sums_of_both_generators(fusion_index, mentions):
    k = 16
    per = fusion_index.generator_candidates(mentions, k)
    fused = fusion_index.candidates(mentions, k)
    for i in range(len(mentions)):
        expected: dict[int, float] = {}
        for c in per.values():
            for rank, concept in enumerate(c.concepts[i], start=1):
                if concept >= 0:
                    expected[int(concept)] = expected.get(int(concept), 0.0) + 1.0 / (60 + rank)
        best = sorted(expected.items(), key=lambda x: (-x[1], x[0]))[:k]
        assert fused.concepts[i][fused.concepts[i] >= 0].tolist() == [c for c, _ in best]
        np.testing.assert_allclose(fused.scores[i, :len(best)], [v for _, v in best], rtol=1e-5)
    # Both generators contribute: some fused candidates come only from the dense list.
    only_dense = [set(per["dense"].concepts[i]) - set(per["sparse"].concepts[i]) & set(fused.concepts[i])
                  for i in range(len(mentions))]
    assert any(only_dense)


def _cli(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_cli_index_end_to_end(term, tiny_model_dir, tmp_path, capsys):
    term_dir = term.save(tmp_path / "term")
    cfg = tmp_path / "fusion.yaml"
    cfg.write_text(yaml.safe_dump({
        "generators": [{"type": "sparse", "ngram_range": [2, 4]},
                       {"type": "dense", "model": str(tiny_model_dir), "index": "Flat"}],
        "routing": "fallback", "fusion": {"method": "rrf", "weights": [1, 1]}}))
    out_dir = tmp_path / "index"
    code, out, err = _cli(capsys, "index", "--terminology", str(term_dir), "--config", str(cfg), "-o", str(out_dir),
                          "--no-progress")
    assert code == 0, err
    assert "wrote" in out and "names" in err and "fused by rrf" in err
    index = CandidateIndex.load(out_dir)
    c = index.candidates(Mentions(texts=["Defecto septal ventricular"], langs=["es"]), k=5)
    assert index.terminology.concept_ids[c.concepts[0, 0]] == "HP:0001629"
    # A typo in the config: exit code 3, one line naming the key, nothing written.
    cfg.write_text("generators:\n  - type: sparse\n    ngram_rang: [2, 4]\n")
    code, out, err = _cli(capsys, "index", "--terminology", str(term_dir), "--config", str(cfg), "-o",
                          str(tmp_path / "bad"))
    assert code == 3 and "ngram_rang" in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()
    code, out, err = _cli(capsys, "index", "--terminology", str(tmp_path / "missing"), "-o", str(tmp_path / "x"))
    assert code == 3 and "missing" in err


def test_two_dense_generators_with_different_encoders_in_one_process(term, tiny_model_dir, mentions, tmp_path):
    mean = Encoder(str(tiny_model_dir), pooling="mean")
    cls_ = Encoder(str(tiny_model_dir), pooling="cls")
    cfg = {"generators": [{"type": "dense", "name": "mean", "model": str(tiny_model_dir)},
                          {"type": "dense", "name": "cls", "model": str(tiny_model_dir)}],
           "fusion": {"method": "zscore", "weights": [1, 1]}}
    index = CandidateIndex.build(term, cfg, encoders={"mean": mean, "cls": cls_})
    per = index.generator_candidates(mentions, 8)
    assert not np.array_equal(per["mean"].scores, per["cls"].scores)  # each generator uses its own encoder
    path = index.save(tmp_path / "two")
    manifest = json.loads((path / "manifest.json").read_text())
    assert [g["encoder"]["pooling"] for g in manifest["generators"]] == ["mean", "cls"]
    loaded = CandidateIndex.load(path)  # encoders rebuilt from each generator's stored reference
    again = loaded.generator_candidates(mentions, 8)
    for name in ("mean", "cls"):
        np.testing.assert_array_equal(per[name].concepts, again[name].concepts)
    np.testing.assert_array_equal(index.candidates(mentions, 8).concepts, loaded.candidates(mentions, 8).concepts)


def test_dense_config_backend_onnx_gives_the_torch_candidates(term, tiny_model_dir, mentions, tmp_path):
    # `backend: onnx` in a dense generator config reaches the Encoder and survives save/load. A private copy of
    # the model, because the exported graph is cached inside the model folder.
    model = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, model)

    def build(backend):
        cfg = {"generators": [{"type": "dense", "model": str(model), "backend": backend}]}
        return CandidateIndex.build(term, cfg)

    torch_c, onnx_index = build("torch").candidates(mentions, k=5), build("onnx")
    onnx_index.save(tmp_path / "idx")
    loaded = CandidateIndex.load(tmp_path / "idx")
    assert loaded.generators[0].encoder.config()["backend"] == "onnx"
    onnx_c = loaded.candidates(mentions, k=5)
    np.testing.assert_array_equal(onnx_c.concepts[:, 0], torch_c.concepts[:, 0])
    np.testing.assert_allclose(onnx_c.scores, torch_c.scores, atol=1e-3)
