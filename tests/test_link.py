"""`xnorm link`, the `Linker` API and the spaCy component, on the real English HPO with a TF-IDF index
(fast) and, for the dense path, the tiny BERT built from a config."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from xnorm.errors import EXIT_BAD_INPUT, ConfigError
from xnorm.types import Mentions

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "clinical_notes.bigbio.jsonl"
SPARSE = {"generators": [{"type": "sparse"}], "routing": "fallback"}


@pytest.fixture(scope="module")
def hpo_index(tmp_path_factory) -> Path:
    """A saved TF-IDF index over the English HPO (built once for this module)."""
    from xnorm.candidates import CandidateIndex
    from xnorm.terminology import load_terminology

    path = tmp_path_factory.mktemp("idx") / "hpo-sparse"
    CandidateIndex.build(load_terminology("hpo-en", cache=False), SPARSE).save(path)
    return path


@pytest.fixture(scope="module")
def linker(hpo_index):
    from xnorm.linker import Linker

    return Linker.from_config({"index": str(hpo_index)})


def run(*args: str, input: str | None = None):
    """Run the CLI the way `xnorm` does (errors -> one line + exit code)."""
    from xnorm.cli.main import main

    def entry():
        main(list(args))

    runner = CliRunner()
    with runner.isolation(input=input) as (out, err, _):
        try:
            entry()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except KeyboardInterrupt:
            code = 130
    return _Result(code, out.getvalue().decode(), err.getvalue().decode())


class _Result:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.output = exit_code, stdout, stdout + stderr


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_linker_api_predicts_real_hpo_ids(linker):
    preds = linker.predict(Mentions.from_texts(["short stature", "microcephaly", "generalized hypotonia"]), 3)
    ids = preds.concept_ids(linker.terminology)
    assert ids[0, 0] == "HP:0004322"  # Short stature
    assert ids[1, 0] == "HP:0000252"  # Microcephaly
    assert ids[2, 0] == "HP:0001290"  # Generalized hypotonia
    assert np.all(np.diff(preds.scores, axis=1) <= 0)  # ranked
    assert linker.db_name == "HPO"


def test_link_cli_bigbio_round_trip(hpo_index, tmp_path):
    out = tmp_path / "linked.jsonl"
    res = run("link", str(EXAMPLE), "-o", str(out), "--index", str(hpo_index), "--top-k", "3")
    assert res.exit_code == 0, res.output
    assert "linked 14 mentions in 3 documents" in res.output
    gold_in = _read(EXAMPLE)
    linked = _read(out)
    assert [d["id"] for d in linked] == [d["id"] for d in gold_in]
    for doc_in, doc_out in zip(gold_in, linked):
        # Everything but `normalized` is unchanged.
        strip = lambda d: {**d, "entities": [{k: v for k, v in e.items() if k != "normalized"}  # noqa: E731
                                             for e in d["entities"]]}
        assert strip(doc_in) == strip(doc_out)
        for ent in doc_out["entities"]:
            preds = ent["normalized"]
            assert 1 <= len(preds) <= 3
            assert all(p["db_name"] == "HPO" and p["db_id"].startswith("HP:") for p in preds)
            scores = [p["score"] for p in preds]
            assert scores == sorted(scores, reverse=True)
    by_text = {e["text"][0]: e["normalized"][0]["db_id"] for d in linked for e in d["entities"]}
    assert by_text["microcephaly"] == "HP:0000252"
    assert by_text["short stature"] == "HP:0004322"


def test_link_then_evaluate(hpo_index, tmp_path):
    out = tmp_path / "linked.jsonl"
    assert run("link", str(EXAMPLE), "-o", str(out), "--index", str(hpo_index), "--top-k", "5").exit_code == 0
    gold = tmp_path / "gold.jsonl"
    shutil.copy(out, gold)  # gold = our own top-1: evaluation of the run against itself must be perfect at 1
    docs = _read(gold)
    for d in docs:
        for e in d["entities"]:
            e["normalized"] = e["normalized"][:1]
    gold.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    res = run("evaluate", str(out), str(gold), "--json", "--k", "1,5")
    assert res.exit_code == 0, res.output
    scores = json.loads(res.output)
    assert scores["accuracy@1"] == 1.0 and scores["recall@5"] == 1.0


def test_nil_threshold_empties_low_scores(hpo_index, tmp_path):
    out = tmp_path / "nil.jsonl"
    res = run("link", str(EXAMPLE), "-o", str(out), "--index", str(hpo_index), "--threshold", "0.99")
    assert res.exit_code == 0, res.output
    ents = [e for d in _read(out) for e in d["entities"]]
    exact = {"microcephaly", "hypotonia", "short stature", "fever", "headache"}
    for e in ents:
        if e["text"][0].lower() in exact:
            assert e["normalized"], e  # exact names score 1.0: above the threshold
    assert any(e["normalized"] == [] for e in ents)  # some mention is NIL at 0.99


def test_gold_is_not_overwritten_without_flag(hpo_index, tmp_path):
    gold = tmp_path / "gold.jsonl"
    docs = _read(EXAMPLE)
    docs[0]["entities"][0]["normalized"] = [{"db_name": "HPO", "db_id": "HP:0001250"}]
    gold.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    out = tmp_path / "out.jsonl"
    res = run("link", str(gold), "-o", str(out), "--index", str(hpo_index))
    assert res.exit_code == EXIT_BAD_INPUT
    assert "already has a non-empty 'normalized'" in res.output and "--overwrite" in res.output
    assert not out.exists()  # nothing half-written
    res = run("link", str(gold), "-o", str(out), "--index", str(hpo_index), "--field", "pred")
    assert res.exit_code == 0, res.output
    first = _read(out)[0]["entities"][0]
    assert first["normalized"] == [{"db_name": "HPO", "db_id": "HP:0001250"}] and first["pred"]
    res = run("link", str(gold), "-o", str(out), "--index", str(hpo_index), "--overwrite")
    assert res.exit_code == 0 and _read(out)[0]["entities"][0]["normalized"][0]["db_id"] != "HP:0001250"


@pytest.mark.parametrize("fmt", ["brat", "pubtator", "hf"])
def test_link_other_input_formats(fmt, hpo_index, tmp_path):
    from xnorm.data import read_documents, write_documents

    docs = list(read_documents(EXAMPLE))
    src = tmp_path / f"in-{fmt}"
    if fmt == "hf":
        from xnorm.data import documents_to_dataset

        documents_to_dataset(docs).save_to_disk(str(src))
    elif fmt == "pubtator":
        # PubTator holds a title and an abstract without line breaks; keep the single-passage documents.
        src = tmp_path / "in.pubtator"
        write_documents([d for d in docs if len(d["passages"]) == 2], src, format="pubtator")
    else:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # brat has no `lang`: the writer warns
            write_documents(docs, src, format="brat")
    out = tmp_path / ("out" if fmt == "brat" else "out.jsonl")
    res = run("link", str(src), "-o", str(out), "--index", str(hpo_index), "--lang", "en")
    assert res.exit_code == 0, res.output
    linked = list(read_documents(out))
    ents = [e for d in linked for e in d["entities"]]
    assert ents and all(e["normalized"] and e["normalized"][0]["db_id"].startswith("HP:") for e in ents)
    micro = [e for e in ents if e["text"][0] == "microcephaly"]
    assert micro and micro[0]["normalized"][0]["db_id"] == "HP:0000252"


def test_bad_input_is_one_clear_line(hpo_index, tmp_path):
    bad = tmp_path / "bad.jsonl"
    good = EXAMPLE.read_text().splitlines()
    bad.write_text(good[0] + "\n{not json\n")
    out = tmp_path / "out.jsonl"
    res = run("link", str(bad), "-o", str(out), "--index", str(hpo_index))
    assert res.exit_code == EXIT_BAD_INPUT
    assert f"{bad}:2" in res.output and "Fix:" in res.output and "Traceback" not in res.output
    assert not out.exists()
    res = run("link", str(tmp_path / "missing.jsonl"), "-o", str(out), "--index", str(hpo_index))
    assert res.exit_code == EXIT_BAD_INPUT and "not found" in res.output
    res = run("link", str(EXAMPLE), "--index", str(hpo_index))
    assert res.exit_code == 2  # usage: no -o


def test_interrupted_run_leaves_no_output(hpo_index, tmp_path, monkeypatch):
    from xnorm.linker import Linker

    calls = {"n": 0}
    real = Linker.predict

    def interrupt_on_second_batch(self, mentions, top_k=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, mentions, top_k)

    monkeypatch.setattr(Linker, "predict", interrupt_on_second_batch)
    out = tmp_path / "out.jsonl"
    res = run("link", str(EXAMPLE), "-o", str(out), "--index", str(hpo_index), "--batch-size", "1")
    assert res.exit_code != 0
    assert not out.exists() and not list(tmp_path.glob(".out.jsonl*"))


def test_quick_text_and_terms(hpo_index):
    text = "The boy had microcephaly and short stature."
    res = run("link", "--index", str(hpo_index), "--text", text, "--mention", "12:24", "--mention", "29:42",
              "--top-k", "2", "--explain")
    assert res.exit_code == 0, res.output
    rows = [line.split("\t") for line in res.stdout.strip().splitlines()]
    assert rows[0][:3] == ["mention", "rank", "db_id"]
    assert rows[1][:3] == ["microcephaly", "1", "HP:0000252"]
    assert any(r[0] == "short stature" and r[2] == "HP:0004322" and r[1] == "1" for r in rows)
    res = run("link", "--index", str(hpo_index), "--text", text, "--mention", "30:99")
    assert res.exit_code == EXIT_BAD_INPUT and "outside the text" in res.output
    res = run("link", "--index", str(hpo_index), "--terms", input="Microcephaly\nshort stature\n")
    assert res.exit_code == 0
    assert [r.split("\t")[2] for r in res.stdout.strip().splitlines()[1:]] == ["HP:0000252", "HP:0004322"]


def test_linker_save_load_and_config(hpo_index, tmp_path):
    from xnorm.linker import Linker

    cfg = tmp_path / "linker.yaml"
    cfg.write_text(f"index: {hpo_index}\ntop_k: 2\nthreshold: 0.5\n")
    linker = Linker.from_config(cfg)
    saved = linker.save(tmp_path / "my-linker")
    again = Linker.load(saved)
    m = Mentions.from_texts(["microcephaly", "zzzzqqq"])
    a, b = linker.predict(m), again.predict(m)
    assert np.array_equal(a.concepts, b.concepts) and np.allclose(a.scores, b.scores)
    assert a.concepts.shape == (2, 2) and a.concepts[1, 0] == -1  # NIL under 0.5
    res = run("link", str(EXAMPLE), "-o", str(tmp_path / "o.jsonl"), "--linker", str(saved))
    assert res.exit_code == 0, res.output
    cfg.write_text("indx: foo\n")
    with pytest.raises(ConfigError) as e:
        Linker.from_config(cfg)
    assert "indx" in str(e.value) and "use only" in str(e.value)
    cfg.write_text("terminology: hpo-en\ncandidates: [sparse]\n")  # a list where a mapping belongs
    with pytest.raises(ConfigError, match="mapping of settings, not a list"):
        Linker.from_config(cfg)


def test_linker_keeps_candidates_across_batches_unless_told_not_to(hpo_index, tmp_path):
    from xnorm.linker import Linker

    docs = _read(EXAMPLE)
    linker = Linker.from_config({"index": str(hpo_index)})
    cache = linker.index.generators[0].cache
    first = list(linker.link(json.loads(json.dumps(docs)), overwrite=True, batch_size=1))
    misses = cache.misses
    again = list(linker.link(json.loads(json.dumps(docs)), overwrite=True, batch_size=2))
    assert cache.misses == misses and cache.hits >= misses  # every mention answered from the cache
    assert again == first
    def renamed(x, suffix):  # every id made unique for the copy
        if isinstance(x, dict):
            return {k: f"{v}{suffix}" if k in ("id", "document_id") else renamed(v, suffix) for k, v in x.items()}
        return [renamed(v, suffix) for v in x] if isinstance(x, list) else x

    twice = tmp_path / "twice.jsonl"  # the notes, then the same notes again as other documents
    twice.write_text("".join(json.dumps(renamed(d, copy)) + "\n" for copy in ("", "-again") for d in docs))
    res = run("link", str(twice), "-o", str(tmp_path / "t.jsonl"), "--index", str(hpo_index), "--explain",
              "--batch-size", "3")
    distinct = len({e["text"][0] for d in docs for e in d["entities"]})
    assert res.exit_code == 0 and f"candidate cache: {distinct} of {2 * distinct} distinct" in res.output, res.output
    res = run("link", str(EXAMPLE), "-o", str(tmp_path / "q.jsonl"), "--index", str(hpo_index),
              "--query-precision", "int8")  # a query encoder's precision without a query encoder
    assert res.exit_code == 2 and "--query-precision applies to --query-model" in res.output
    assert not (tmp_path / "q.jsonl").exists()
    off = Linker.from_config({"index": str(hpo_index), "candidate_cache_mb": 0})
    assert off.index.generators[0].cache is None
    assert list(off.link(json.loads(json.dumps(docs)), overwrite=True)) == first
    for bad in (-1, "lots"):
        (tmp_path / "bad.yaml").write_text(f"index: {hpo_index}\ncandidate_cache_mb: {bad}\n")
        res = run("link", str(EXAMPLE), "-o", str(tmp_path / "o.jsonl"), "--config", str(tmp_path / "bad.yaml"))
        assert res.exit_code != 0 and "candidate_cache_mb" in res.output and "Traceback" not in res.output
        assert not (tmp_path / "o.jsonl").exists()


def test_dense_fusion_linker_with_tiny_model(tiny_model_dir, tmp_path):
    """The fusion pipeline (TF-IDF + a dense encoder) through the same CLI, on a small custom terminology."""
    terms = tmp_path / "terms.tsv"
    terms.write_text("concept_id\tname\tlang\nX:1\tseizure\ten\nX:1\tconvulsión\tes\nX:2\tshort stature\ten\n"
                     "X:3\tmicrocephaly\ten\nX:4\thypotonia\ten\n")
    recipe = tmp_path / "custom.yaml"
    recipe.write_text(f"name: custom\nsources:\n  - type: tsv\n    path: {terms}\n")
    cfg = tmp_path / "linker.yaml"
    cfg.write_text(
        f"terminology: {recipe}\ndb_name: CUSTOM\ncandidates:\n  generators:\n    - type: sparse\n"
        f"    - type: dense\n      model: {tiny_model_dir}\n  routing: fallback\n  fusion: {{method: rrf}}\n")
    out = tmp_path / "o.jsonl"
    res = run("link", str(EXAMPLE), "-o", str(out), "--config", str(cfg), "--top-k", "2", "--explain")
    assert res.exit_code == 0, res.output
    assert "fused by rrf" in res.output
    ents = [e for d in _read(out) for e in d["entities"]]
    micro = next(e for e in ents if e["text"][0] == "microcephaly")
    assert micro["normalized"][0]["db_id"] == "X:3" and micro["normalized"][0]["db_name"] == "CUSTOM"
    assert micro["normalized"][0]["matched_name"] == "microcephaly"
    assert micro["normalized"][0]["route"] == "same-language"


def test_spacy_component(hpo_index):
    import spacy
    from spacy.tokens import Span

    nlp = spacy.blank("en")
    nlp.add_pipe("xnorm_linker", config={"index": str(hpo_index), "top_k": 3})
    doc = nlp.make_doc("Patients with attention deficit hyperactivity disorder (ADHD) and microcephaly.")
    doc.ents = [Span(doc, 7, 8, label="phenotype"), Span(doc, 10, 11, label="phenotype")]
    doc = nlp(doc)
    kb = {e.text: e._.kb_ents for e in doc.ents}
    assert kb["microcephaly"][0][0] == "HP:0000252"
    # "ADHD" is defined in the text: its long form finds the concept although the short form is no HPO name.
    assert kb["ADHD"][0][0] == "HP:0007018"  # Attention deficit hyperactivity disorder
    assert all(isinstance(s, float) for _, s in kb["ADHD"])


def test_link_a_datasets_dataset(linker):
    from xnorm.data import documents_to_dataset, read_documents

    ds = documents_to_dataset(list(read_documents(EXAMPLE)))
    linked = linker.link_dataset(ds, top_k=2)
    assert len(linked) == len(ds)
    ents = [e for row in linked for e in row["entities"]]
    assert len(ents) == 14 and all(1 <= len(e["normalized"]) <= 2 for e in ents)
    micro = next(e for e in ents if e["text"][0] == "microcephaly")
    assert micro["normalized"][0]["db_id"] == "HP:0000252" and micro["normalized"][0]["db_name"] == "HPO"


def test_language_detection_per_document(tmp_path):
    """`--lang auto`: documents without `lang` get the language of their text; routes show it."""
    from xnorm import TerminologyBuilder
    from xnorm.candidates import CandidateIndex
    from xnorm.data.language import detect_language

    assert detect_language("Paciente con convulsiones febriles y baja estatura desde la infancia.") == "es"
    assert detect_language("The boy presented with recurrent seizures since infancy.") == "en"
    assert detect_language("患者は発作と低身長を示した。") == "ja"
    assert detect_language("  ", default="xx") == "xx"

    b = TerminologyBuilder()
    b.add_concept("X:1", "Seizure")
    b.add_name("X:1", "seizure", "en", "preferred")
    b.add_name("X:1", "convulsión", "es", "translation")
    index_dir = tmp_path / "idx"
    CandidateIndex.build(b.build(name="tiny"), SPARSE).save(index_dir)
    text = "Paciente con convulsiones febriles desde la infancia."
    doc = {"id": "d1", "document_id": "d1", "passages": [{"id": "p", "type": "text", "text": [text],
                                                          "offsets": [[0, len(text)]]}],
           "entities": [{"id": "e1", "type": "x", "text": ["convulsiones"], "offsets": [[13, 25]],
                         "normalized": []}], "events": [], "coreferences": [], "relations": []}
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(doc) + "\n")
    out = tmp_path / "out.jsonl"
    assert run("link", str(src), "-o", str(out), "--index", str(index_dir), "--explain").exit_code == 0
    # Without a language the mention counts as English: only English names are searched, and "convulsiones"
    # shares no character n-gram with "seizure".
    assert _read(out)[0]["entities"][0]["normalized"] == []
    res = run("link", str(src), "-o", str(out), "--index", str(index_dir), "--explain", "--lang", "auto")
    assert res.exit_code == 0, res.output
    pred = _read(out)[0]["entities"][0]["normalized"][0]
    assert pred["route"] == "same-language" and pred["matched_name"] == "convulsión"
    assert "lang" not in _read(out)[0]  # the document itself is unchanged


def test_index_cache_follows_terminology_content(tmp_path, monkeypatch):
    """A linker built from a recipe caches its index; editing the source file gives a new index."""
    from xnorm.linker import Linker

    terms = tmp_path / "terms.tsv"
    terms.write_text("concept_id\tname\nX:1\tseizure\nX:2\tfever\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\nsources:\n  - type: tsv\n    path: {terms}\n")
    cfg = {"terminology": str(recipe), "candidates": SPARSE}
    linker = Linker.from_config(cfg)
    assert linker.predict(Mentions.from_texts(["pyrexia"])).concept_ids(linker.terminology)[0, 0] == "X:1"
    terms.write_text("concept_id\tname\nX:1\tseizure\nX:2\tpyrexia\n")  # same size and count, new content
    again = Linker.from_config(cfg)
    preds = again.predict(Mentions.from_texts(["pyrexia"]))
    assert preds.concept_ids(again.terminology)[0, 0] == "X:2" and preds.scores[0, 0] > 0.99
    # A changed default (not written in the config) gives a new index too, never the stale one.
    from xnorm.candidates.config import SPARSE_DEFAULTS
    from xnorm.paths import indexes_dir

    cached = len(list(indexes_dir().iterdir()))
    monkeypatch.setitem(SPARSE_DEFAULTS, "strip_accents", not SPARSE_DEFAULTS["strip_accents"])
    Linker.from_config(cfg)
    assert len(list(indexes_dir().iterdir())) == cached + 1


def test_default_encoder_follows_the_terminology(tmp_path, monkeypatch):
    """HPO gets the zoo's HPO-aligned encoder adapter, any other terminology the plain embedded encoder; a linker
    built with the default records the config it resolved to."""
    from xnorm import linker as linker_mod
    from xnorm import zoo
    from xnorm.linker import DOMAIN_ENCODERS, Linker, default_candidates
    from xnorm.terminology import load_terminology

    hpo = load_terminology("hpo-en")
    dense = [g for g in default_candidates(hpo)["generators"] if g["type"] == "dense"]
    assert dense[0]["model"] == DOMAIN_ENCODERS["HPO"] == "hpo-align-e5small"
    shipped = {a.name: a for a in zoo.list_adapters("encoder-adapter")}
    assert shipped["hpo-align-e5small"].manifest["base_model"] == "multilingual-e5-small"
    terms = tmp_path / "terms.tsv"
    terms.write_text("concept_id\tname\nX:1\tseizure\nX:2\tfever\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\nsources:\n  - type: tsv\n    path: {terms}\n")
    custom = load_terminology(str(recipe))
    assert [g["model"] for g in default_candidates(custom)["generators"] if g["type"] == "dense"] == [
        "multilingual-e5-small"]
    # The resolution happens where the index is built: swap the default for a TF-IDF-only one to stay fast.
    seen = []
    monkeypatch.setattr(linker_mod, "default_candidates", lambda t: seen.append(t.metadata.get("db_name")) or SPARSE)
    monkeypatch.setenv("XNORM_HOME", str(tmp_path / "home"))
    built = Linker.from_config({"terminology": str(recipe)})
    assert seen == ["r"] and built.config.candidates["generators"][0]["type"] == "sparse"


def test_cli_calibrate_threshold_saves_a_linker_that_links_with_it(hpo_index, tmp_path):
    """`xnorm calibrate-threshold`: gold from `normalized` (empty, or an id outside the terminology: NIL), the
    mentions read as `xnorm link` reads them; the saved linker leaves exactly the mentions under it unlinked."""
    first = tmp_path / "first.jsonl"
    assert run("link", str(EXAMPLE), "-o", str(first), "--index", str(hpo_index)).exit_code == 0
    dev = _read(first)
    entities = [e for d in dev for e in d["entities"]]  # gold: the index's own first answers, except for
    low = sorted(entities, key=lambda e: e["normalized"][0]["score"])[:3]  # the three it is least sure of
    low[0]["normalized"] = []  # NIL
    low[1]["normalized"] = [{"db_name": "HPO", "db_id": "HP:9999999"}]  # not in the terminology: NIL too
    low[2]["normalized"] = [{"db_name": "HPO", "db_id": "HP:0000118"}]  # the first answer is wrong
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(d) + "\n" for d in dev))
    res = run("calibrate-threshold", str(tmp_path / "dev.jsonl"), "--index", str(hpo_index), "-o",
              str(tmp_path / "linker"), "--json")
    assert res.exit_code == 0, res.output
    choice = json.loads(res.output)
    assert choice["mentions"] == 14 and choice["with_gold"] == 12
    out = tmp_path / "linked.jsonl"
    assert run("link", str(EXAMPLE), "-o", str(out), "--linker", str(tmp_path / "linker")).exit_code == 0
    linked = [e["normalized"] for d in _read(out) for e in d["entities"]]
    assert sum(1 for n in linked if n) == choice["linked"] == 11  # the three least sure ones stay unlinked
    assert all(n[0]["score"] >= choice["threshold"] for n in linked if n)
    assert (choice["precision"], choice["recall"]) == (1.0, pytest.approx(11 / 12))
    # No gold at all, or a precision no threshold reaches: bad input, named.
    res = run("calibrate-threshold", str(EXAMPLE), "--index", str(hpo_index))
    assert res.exit_code == EXIT_BAD_INPUT and "clinical_notes.bigbio.jsonl" in res.output
    assert "gold id" in res.output
    for e in entities:
        e["normalized"] = [{"db_name": "HPO", "db_id": "HP:0000118"}]  # every first answer wrong
    (tmp_path / "wrong.jsonl").write_text("".join(json.dumps(d) + "\n" for d in dev))
    res = run("calibrate-threshold", str(tmp_path / "wrong.jsonl"), "--index", str(hpo_index),
              "--target-precision", "0.5")
    assert res.exit_code == EXIT_BAD_INPUT and "no threshold reaches precision 0.5" in res.output


def test_default_reranker_follows_the_pipeline(linker):
    """The shipped HPO reranker comes with HPO's default pipeline only (its weights are fitted to that pipeline's
    scores), as recorded in a built index's config; `none` / None turn a reranker off."""
    from types import SimpleNamespace

    from xnorm import zoo
    from xnorm.linker import DOMAIN_RERANKERS, Linker, LinkerConfig, default_candidates, default_reranker
    from xnorm.terminology import load_terminology

    hpo = load_terminology("hpo-en")
    name = DOMAIN_RERANKERS["HPO"]
    assert name in {a.name for a in zoo.list_adapters("reranker")}
    index = lambda config, term=hpo: SimpleNamespace(terminology=term, config=config)  # noqa: E731
    recorded = default_candidates(hpo)  # as an index records it: resolved defaults, floats
    recorded["generators"] = [{**g, "name": g["type"], "batch_size": 128} for g in recorded["generators"]]
    recorded["fusion"] = {**recorded["fusion"], "weights": [1.0, 2.0], "k": 60}
    assert default_reranker(index(recorded)) == name
    other_encoder = json.loads(json.dumps(recorded))
    other_encoder["generators"][1]["model"] = "multilingual-e5-small"
    other_weights = json.loads(json.dumps(recorded))
    other_weights["fusion"]["weights"] = [1, 1]
    custom = SimpleNamespace(metadata={"db_name": "MY"})
    assert [default_reranker(index(c)) for c in (other_encoder, other_weights, SPARSE)] == [None] * 3
    assert default_reranker(index(recorded, custom)) is None
    # HPO over another pipeline (this module's TF-IDF index): no reranker by default
    assert LinkerConfig().reranker == "auto" and linker.reranker is None and linker.config.reranker is None
    for off in ("none", None):
        assert Linker(linker.index, LinkerConfig(reranker=off)).reranker is None


def test_under_restricts_predictions_to_a_branch(tmp_path, monkeypatch):
    """`under` (LinkerConfig, `--under`): only the given concepts and their is_a descendants are predicted; a saved
    linker keeps it; an unknown root or a terminology without hierarchy is a config error (exit 3)."""
    from xnorm.linker import Linker, LinkerConfig

    monkeypatch.setenv("XNORM_HOME", str(tmp_path / "home"))
    rows = [{"concept_id": "X:1", "names": ["nervous system abnormality"]},
            {"concept_id": "X:2", "names": ["seizure"], "parents": ["X:1"]},
            {"concept_id": "X:3", "names": ["febrile seizure"], "parents": ["X:2"]},
            {"concept_id": "X:9", "names": ["seizure-like muscle spasm"]}]  # outside the branch
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = tmp_path / "t.yaml"
    recipe.write_text("name: t\nsources:\n  - {type: jsonl, path: t.jsonl}\n")
    cfg = {"terminology": str(recipe), "candidates": SPARSE, "top_k": 4, "k": 4}
    mentions = Mentions.from_texts(["seizure", "muscle spasm"])
    everything = Linker.from_config(cfg).predict(mentions)
    assert "X:9" in everything.concept_ids(Linker.from_config(cfg).terminology)[0]
    linker = Linker.from_config({**cfg, "under": ["X:1"]})
    ids = linker.predict(mentions).concept_ids(linker.terminology)
    assert set(ids[0]) - {None} == {"X:1", "X:2", "X:3"} and ids[0, 0] == "X:2"
    assert "X:9" not in set(ids[1])  # its best answer is outside the branch: the next ones inside come instead
    assert Linker.load(linker.save(tmp_path / "saved")).config.under == ["X:1"]
    linker.set_under(None)
    assert linker.predict(mentions).concept_ids(linker.terminology)[1, 0] == "X:9"
    assert LinkerConfig.from_dict({"under": "X:1"}).under == ["X:1"]
    with pytest.raises(ConfigError, match="list of concept ids"):
        LinkerConfig.from_dict({"under": [1]})

    res = run("link", "--terminology", str(recipe), "--terms", "--top-k", "3", "--under", "X:2", input="seizure\n")
    assert res.exit_code == 0, res.output
    assert [line.split("\t")[2] for line in res.stdout.strip().splitlines()[1:]] == ["X:2", "X:3"]
    res = run("link", "--terminology", str(recipe), "--terms", "--under", "X:404", input="seizure\n")
    assert res.exit_code == EXIT_BAD_INPUT and "'X:404' is not a concept" in res.output
    flat = tmp_path / "flat.tsv"
    flat.write_text("concept_id\tname\nX:1\tseizure\n")
    (tmp_path / "flat.yaml").write_text(f"name: flat\nsources:\n  - {{type: tsv, path: {flat}}}\n")
    res = run("link", "--terminology", str(tmp_path / "flat.yaml"), "--terms", "--under", "X:1", input="seizure\n")
    assert res.exit_code == EXIT_BAD_INPUT and "no is_a hierarchy" in res.output
