"""Word-piece translation tables (xnorm.rerank.translation) and the feature reranker that uses them: EM alignments,
hand-checked scores, exclusions, a held-out concept linked through its translated parts, save/load and the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xnorm.errors import EXIT_BAD_INPUT, ArtifactError, ConfigError

# Compositional names, as HPO's: English "<adjective> <organ>", Spanish "<órgano> <adjetivo>".
ORGANS = {"head": "cabeza", "heart": "corazón", "kidney": "riñón", "ear": "oreja", "liver": "hígado"}
ADJECTIVES = {"small": "pequeño", "large": "grande", "abnormal": "anormal"}
CONCEPTS = {f"HP:{i}": (f"{a} {o}", f"{ORGANS[o]} {ADJECTIVES[a]}")
            for i, (a, o) in enumerate((a, o) for a in ADJECTIVES for o in ORGANS)}
HELD_OUT = ["HP:2", "HP:8"]  # small kidney, large ear: test concepts, whose Spanish names no table may see
TRAIN = ["HP:0", "HP:6", "HP:12", "HP:9"]  # the ranker's training labels (their names are left out too)


@pytest.fixture(scope="module")
def word_tokenizer(tmp_path_factory) -> Path:
    """A whole-word tokenizer over this file's vocabulary (a tiny stand-in for XLM-R's sentencepiece)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for en, es in CONCEPTS.values() for w in f"{en} {es}".split()})
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    path = tmp_path_factory.mktemp("word-tok")
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", model_max_length=32).save_pretrained(path)
    return path


def _terminology():
    from xnorm.terminology.core import TerminologyBuilder

    b = TerminologyBuilder()
    for cid, (en, es) in CONCEPTS.items():
        b.add_concept(cid, en, ["phenotype"], "test")
        b.add_name(cid, en, "en", "preferred", "test")
        b.add_name(cid, es, "es", "translation", "test")
    return b.build(name="organs", db_name="HPO")


def _english_only():
    return _terminology().select_names(_terminology().name_langs == "en")


@pytest.fixture(scope="module")
def index(tiny_model_dir):
    from xnorm.candidates import CandidateIndex

    # Every concept is a candidate of every mention (k = 16 > 15 concepts), ranked by a random tiny encoder and
    # character n-grams of the English names only: what the candidates know of Spanish is close to nothing.
    return CandidateIndex.build(_english_only(), {
        "generators": [{"type": "sparse"}, {"type": "dense", "model": str(tiny_model_dir), "index": "Flat"}],
        "fusion": {"method": "minmax"}})


def _labels(ids, terminology):
    from xnorm.rerank import examples_from_labels

    return examples_from_labels([CONCEPTS[c][1] for c in ids], ["es"] * len(ids), list(ids), terminology)


def test_table_learns_alignments_and_scores_by_hand():
    from xnorm.rerank.translation import FLOOR, NULL, UNEXPLAINED, Table

    pairs = [(es.split(), en.split()) for en, es in CONCEPTS.values()]
    t = Table.fit([p[0] for p in pairs], [p[1] for p in pairs])
    m = t.matrix.toarray()
    targets = list(t.targets)
    for en, es in {**ORGANS, **ADJECTIVES}.items():  # EM untangles every word from co-occurrence alone
        assert targets[int(m[t.sources[es]].argmax())] == en
    assert targets[0] == NULL
    # score = mean over the known source pieces of log((t(s|NULL) + Σ t(s|target)) / (|target| + 1))
    s, h, small = t.sources["riñón"], t.sources["pequeño"], t.targets["small"]
    kidney = t.targets["kidney"]
    expected = np.mean([np.log(max((m[s, 0] + m[s, small] + m[s, kidney]) / 3, FLOOR)),
                        np.log(max((m[h, 0] + m[h, small] + m[h, kidney]) / 3, FLOOR))])
    got, unexplained = t.score([["riñón", "pequeño", "unseen"], ["riñón", "pequeño"], ["unseen"]],
                               [["small", "kidney"], ["large", "heart"], ["small", "kidney"]])
    assert got[0] == pytest.approx(expected)  # the unseen piece is skipped, not floored
    assert got[1] < got[0] and got[2] == pytest.approx(np.log(FLOOR))
    # unexplained: pieces unknown to the table, or whose t(s | NULL) + Σ t(s | target) < UNEXPLAINED
    heart, large = t.targets["heart"], t.targets["large"]
    weak = sum(m[i, 0] + m[i, large] + m[i, heart] < UNEXPLAINED for i in (s, h))
    assert weak >= 1  # riñón: large heart does not explain it (pequeño may ride on NULL)
    np.testing.assert_array_equal(unexplained, [1, weak, 1])


def test_from_terminology_excludes_and_gives_features_per_language(index, word_tokenizer):
    from xnorm.rerank.translation import TranslationModel, feature_columns
    from xnorm.types import Mentions

    term = _terminology()
    model = TranslationModel.from_terminology(term, exclude=["HP:2", ("es", "HP:3"), ("fr", "HP:0")],
                                              tokenizer=str(word_tokenizer))
    assert model.languages == ["es"] and model.info["pairs"] == {"es": len(CONCEPTS) - 2}
    assert "riñón" in model.tables[("es", "to_pivot")].sources
    # Chinese / Japanese script: each character and bigram too, whatever the tokenizer makes of the run
    assert model.pieces(["小耳, 1度"])[0][-4:] == ["小", "耳", "小耳", "度"]
    # and each whole word of three letters or more of other scripts, marked
    assert model.pieces(["OCT上の低反射 in 2 eyes"])[0][-2:] == ["§oct", "§eyes"]
    mentions = Mentions(texts=np.asarray(["riñón pequeño", "small kidney"], dtype=object),
                        langs=np.asarray(["es", "en"], dtype=object))
    cands = index.candidates(mentions, 16)
    cols = model.features(mentions, cands, index.terminology)
    assert list(cols) == feature_columns(["es"])
    ids = cands.concept_ids(index.terminology)
    for name in ("translation_to_pivot", "translation_from_pivot"):
        best = ids[0][int(np.argmax(np.where(cands.concepts[0] >= 0, cols[name][0], -np.inf)))]
        assert best == "HP:2", name  # an excluded concept (small kidney), read through its parts
        unexplained = cols[name + "_unexplained"]
        assert unexplained[0][ids[0] == "HP:2"] == 0 and unexplained[0][ids[0] == "HP:14"] > 0  # abnormal liver
        for col in (cols[name], unexplained):
            assert not col[1].any()  # English: no table
            assert not col[0][cands.concepts[0] < 0].any()  # empty slots stay zero
        np.testing.assert_array_equal(cols[name], cols[name + "@es"])
    with pytest.raises(ConfigError, match="no names outside the pivot"):
        TranslationModel.from_terminology(_english_only(), tokenizer=str(word_tokenizer))


def test_feature_reranker_links_held_out_concepts_through_translations(index, word_tokenizer, tmp_path):
    from xnorm.rerank import FeatureReranker, TranslationModel, load_reranker

    term = index.terminology
    model = TranslationModel.from_terminology(_terminology(), exclude=[*HELD_OUT, *TRAIN],
                                              tokenizer=str(word_tokenizer))
    train, test = _labels(TRAIN, term), _labels(HELD_OUT, term)
    plain, _ = FeatureReranker.train(index, train, k=16, l2=0.01)
    ranker, report = FeatureReranker.train(index, train, k=16, l2=0.01, translation=model)
    assert "translation_to_pivot@es" in ranker.features and report["trained_on"] == len(TRAIN)
    cands = index.candidates(test.mentions, 16)

    def acc(rr):
        return float(test.hits(rr.rerank(test.mentions, cands, term).concepts[:, 0]).mean())

    assert acc(ranker) == 1.0 and acc(plain) < 1.0
    # A language no training mention was in keeps the candidate stage's rows (scores as probabilities).
    from xnorm.rerank.model import softmax_rows
    from xnorm.types import Mentions

    other = Mentions(texts=test.mentions.texts, langs=np.asarray(["pt"] * len(test), dtype=object))
    kept = index.candidates(other, 16)
    again = ranker.rerank(other, kept, term)
    np.testing.assert_array_equal(again.concepts, kept.concepts)
    np.testing.assert_allclose(again.scores, softmax_rows(ranker.fallback_scale * kept.scores), rtol=1e-6)
    assert ranker.languages == ["es"]
    ranker.save(tmp_path / "fr")
    again = load_reranker(tmp_path / "fr")
    assert again.translation.languages == ["es"] and "translation tables: es" in again.describe()
    # Tables are built at their language's first mention: none for the Portuguese ones, then Spanish's.
    again.rerank(other, kept, term)
    assert again.translation.tables.built == []
    again.rerank(test.mentions, cands, term)
    assert again.translation.tables.built == [("es", "from_pivot"), ("es", "to_pivot")]
    for key, table in ranker.translation.tables.items():  # every entry back, NULL still target 0
        loaded = again.translation.tables[key]
        entries = lambda t: {(s, g): p for s, g, p in zip(*t.rows())}  # noqa: E731
        assert entries(loaded).keys() == entries(table).keys() and list(loaded.targets)[0] == "<null>"
        np.testing.assert_allclose([entries(loaded)[e] for e in entries(table)], list(entries(table).values()),
                                   rtol=1e-6)
    np.testing.assert_allclose(again.rerank_scores(test.mentions, cands, term),  # tables are stored as float32
                               ranker.rerank_scores(test.mentions, cands, term), rtol=1e-5)
    manifest = json.loads((tmp_path / "fr" / "manifest.json").read_text())
    assert manifest["translation"] == {"tokenizer": str(word_tokenizer), "languages": ["es"]}
    moved = {**manifest, "translation": {**manifest["translation"], "tokenizer": str(tmp_path / "gone")}}
    (tmp_path / "fr" / "manifest.json").write_text(json.dumps(moved))
    with pytest.raises(ArtifactError, match="tokenizer of its translation tables"):  # at load, not mid-link
        load_reranker(tmp_path / "fr")
    (tmp_path / "fr" / "manifest.json").write_text(json.dumps(manifest))
    tables = tmp_path / "fr" / "translation.parquet"
    tables.write_bytes(tables.read_bytes() + b"x")
    with pytest.raises(ArtifactError, match="translation.parquet"):
        load_reranker(tmp_path / "fr")


def _run(*args):
    from tests.test_link import run

    return run(*args)


def _label_docs(ids) -> str:
    return "".join(json.dumps({"id": f"d{i}", "document_id": f"d{i}", "lang": "es",
                               "passages": [{"id": f"p{i}", "type": "t", "text": [CONCEPTS[c][1]],
                                             "offsets": [[0, len(CONCEPTS[c][1])]]}],
                               "entities": [{"id": f"e{i}", "type": "phenotype", "text": [CONCEPTS[c][1]],
                                             "offsets": [[0, len(CONCEPTS[c][1])]],
                                             "normalized": [{"db_name": "HPO", "db_id": c}]}]}) + "\n"
                   for i, c in enumerate(ids))


def test_cli_translations_leave_out_training_concepts_and_link(index, word_tokenizer, tmp_path):
    index_dir = index.save(tmp_path / "index")
    term_dir = _terminology().save(tmp_path / "organs")
    (tmp_path / "train.jsonl").write_text(_label_docs(TRAIN))
    (tmp_path / "test.jsonl").write_text(_label_docs(HELD_OUT))
    (tmp_path / "held.txt").write_text("\n".join(HELD_OUT) + "\n")
    base = ["train-reranker", "--index", str(index_dir), "--train", str(tmp_path / "train.jsonl")]
    features = ["--mode", "features", "--l2", "0.01"]
    r = _run(*base, *features, "--translations", str(term_dir), "--exclude-concepts", str(tmp_path / "held.txt"),
             "--tokenizer", str(word_tokenizer), "-o", str(tmp_path / "fr"))
    assert r.exit_code == 0, r.output
    # 15 Spanish names minus the 4 training concepts' and the 2 excluded ones
    assert f"es {len(CONCEPTS) - 6:,} name pairs" in r.output
    r = _run("link", str(tmp_path / "test.jsonl"), "-o", str(tmp_path / "linked.jsonl"), "--index", str(index_dir),
             "--reranker", str(tmp_path / "fr"), "--overwrite")
    assert r.exit_code == 0, r.output
    linked = [json.loads(x) for x in (tmp_path / "linked.jsonl").read_text().splitlines()]
    assert [d["entities"][0]["normalized"][0]["db_id"] for d in linked] == HELD_OUT
    # With tables it has a zoo entry (base model: their tokenizer), found by name.
    r = _run("adapters", "add-reranker", str(tmp_path / "fr"), "organs-fr")
    assert r.exit_code == 0, r.output
    from xnorm import zoo

    entry = next(a for a in zoo.list_adapters("reranker") if a.name == "organs-fr")
    assert entry.base_model == str(word_tokenizer) and entry.manifest["generators"] == ["sparse", "dense"]
    r = _run("link", str(tmp_path / "test.jsonl"), "-o", str(tmp_path / "zoo.jsonl"), "--index", str(index_dir),
             "--reranker", "organs-fr", "--overwrite")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "zoo.jsonl").read_text() == (tmp_path / "linked.jsonl").read_text()
    # User errors: one line, exit code 3, nothing written.
    for args, flag in (([*features, "--tokenizer", str(word_tokenizer)], "--tokenizer"),
                       (["--translations", str(term_dir)], "--translations"),  # a cross-encoder mode
                       ([*features, "--translations", str(_english_only().save(tmp_path / "en")), "--tokenizer",
                         str(word_tokenizer)], "no names outside")):
        r = _run(*base, *args, "-o", str(tmp_path / "x"))
        assert r.exit_code == EXIT_BAD_INPUT and flag in r.output and "Traceback" not in r.output, r.output
        assert not (tmp_path / "x").exists()
