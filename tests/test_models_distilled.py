"""Distilled encoders in the zoo: packed without word embeddings, materialized once, loaded by name."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from xnorm.errors import ArtifactError, ConfigError

TEXTS = ["seizure", "short stature", "convulsión", "発作"]


def _student(tiny_model_dir: Path, out: Path, *, touch_words: bool = False, seed: int = 1) -> Path:
    """A 1-layer student of the tiny model: its own (changed) layer weights, the base's word embeddings."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(tiny_model_dir, add_pooling_layer=False)
    model.encoder.layer = model.encoder.layer[1:]
    model.config.num_hidden_layers = 1
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if touch_words or name != "embeddings.word_embeddings.weight":
                p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    (out / "xnorm_encoder.json").write_text(json.dumps({"pooling": "mean", "query_prefix": "query: ",
                                                        "passage_prefix": ""}))
    return out


def _zoo_entry(tmp_path: Path, tiny_model_dir: Path, name: str = "tiny-student") -> Path:
    from xnorm import zoo
    from xnorm.models import distilled

    student = _student(tiny_model_dir, tmp_path / "student")
    return distilled.pack(student, zoo.user_zoo_dir() / name, name=name, base_model=str(tiny_model_dir),
                          trained_params=1234)


def test_pack_ships_no_word_embeddings_and_loads_by_name(tmp_path, tiny_model_dir):
    from safetensors import safe_open

    from xnorm.models import Encoder, distilled

    entry = _zoo_entry(tmp_path, tiny_model_dir)
    with safe_open(str(entry / distilled.WEIGHTS), "pt") as f:
        keys = set(f.keys())
        assert distilled.SHARED not in keys
        assert str(f.get_tensor("encoder.layer.0.output.dense.weight").dtype) == "torch.float16"
    assert (entry / distilled.WEIGHTS).stat().st_size < (tmp_path / "student" / "model.safetensors").stat().st_size

    by_name = Encoder("tiny-student")
    from_folder = Encoder(tmp_path / "student")
    assert by_name.passage_prefix == "" and by_name.query_prefix == "query: "
    assert by_name.model.config.num_hidden_layers == 1
    for kind in ("query", "passage"):
        a, b = by_name.encode(TEXTS, kind=kind), from_folder.encode(TEXTS, kind=kind)
        cos = (a * b).sum(1)
        assert cos.min() > 0.999  # fp16 storage of the student's own tensors
    # The tiny base's vectors are different: the student's layer weights really are the entry's.
    base = Encoder(tiny_model_dir, query_prefix="query: ", passage_prefix="").encode(TEXTS, kind="passage")
    assert (base * by_name.encode(TEXTS, kind="passage")).sum(1).min() < 0.99


def test_materialized_once_and_rebuilt_when_the_entry_changes(tmp_path, tiny_model_dir):
    from xnorm.models import distilled, registry

    entry = _zoo_entry(tmp_path, tiny_model_dir)
    folder = Path(registry.resolve_model("tiny-student"))
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert Path(registry.prepare_model("tiny-student")) == folder  # `xnorm models prepare NAME`
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not rebuilt
    fingerprint = registry.weights_fingerprint("tiny-student")

    # A new student under the same name (re-packed): the materialized folder and its fingerprint follow it.
    shutil.rmtree(tmp_path / "student")
    distilled.pack(_student(tiny_model_dir, tmp_path / "student", seed=7), entry, name="tiny-student",
                   base_model=str(tiny_model_dir))
    assert registry.weights_fingerprint("tiny-student") != fingerprint


def test_changed_weights_and_foreign_word_embeddings_are_refused(tmp_path, tiny_model_dir):
    from xnorm import zoo
    from xnorm.models import distilled, registry

    entry = _zoo_entry(tmp_path, tiny_model_dir)
    blob = bytearray((entry / distilled.WEIGHTS).read_bytes())
    blob[-8:] = b"\x00" * 8
    (entry / distilled.WEIGHTS).write_bytes(bytes(blob))
    with pytest.raises(ArtifactError) as e:
        registry.resolve_model("tiny-student")
    assert distilled.WEIGHTS in str(e.value)
    assert not (Path(zoo.user_zoo_dir()).parent / "models" / "tiny-student").exists()  # nothing half-built

    other = _student(tiny_model_dir, tmp_path / "other", touch_words=True)
    with pytest.raises(ArtifactError, match="word embeddings differ"):
        distilled.pack(other, tmp_path / "zoo-other", name="other", base_model=str(tiny_model_dir))
    assert not (tmp_path / "zoo-other").exists()


def test_cli_lists_and_prepares_a_distilled_encoder(tmp_path, tiny_model_dir, capsys):
    from xnorm.cli.main import main

    _zoo_entry(tmp_path, tiny_model_dir)
    for args in (["adapters", "list", "--kind", "distilled-encoder"], ["models", "prepare", "tiny-student"]):
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 0
    out = capsys.readouterr().out.splitlines()
    assert "tiny-student" in out[1] and "distilled-encoder" in out[1] and "1k" in out[1]
    assert Path(out[-1].split("\t")[0]).name == "tiny-student"


def _query_student(tiny_model_dir: Path, out: Path, *, index_fingerprint: str | None = None, seed: int = 1) -> Path:
    """A 1-layer QUERY encoder of the tiny model: pinned to the tiny model's weights unless told otherwise."""
    from xnorm.models.registry import weights_fingerprint

    _student(tiny_model_dir, out, seed=seed)
    settings = json.loads((out / "xnorm_encoder.json").read_text())
    settings.update(role="query", index_model=str(tiny_model_dir),
                    index_fingerprint=index_fingerprint or weights_fingerprint(tiny_model_dir))
    (out / "xnorm_encoder.json").write_text(json.dumps(settings))
    return out


def test_query_encoder_encodes_the_mentions_of_its_teachers_index(tmp_path, tiny_model_dir):
    from test_candidates_core import hpo_terminology

    from xnorm import Mentions
    from xnorm.candidates import CandidateIndex
    from xnorm.models import Encoder

    term = hpo_terminology()
    student = _query_student(tiny_model_dir, tmp_path / "q")
    mentions = Mentions(texts=["seizure", "short stature", "convulsiones"], langs=["en", "en", "es"])
    dense = {"type": "dense", "model": str(tiny_model_dir)}
    plain = CandidateIndex.build(term, {"generators": [dense]})
    fast = CandidateIndex.build(term, {"generators": [{**dense, "query_model": str(student)}]})
    gen = fast.generators[0]
    same = Encoder(student, precision="auto", backend="auto")  # the generator's defaults
    np.testing.assert_allclose(gen.encode_queries(mentions.texts), same.encode(mentions.texts), atol=1e-5)
    # Same name vectors (the teacher's), other query vectors: other scores over the same index.
    assert not np.allclose(plain.candidates(mentions, k=5).scores, fast.candidates(mentions, k=5).scores)

    fast.save(tmp_path / "idx")
    loaded = CandidateIndex.load(tmp_path / "idx")
    assert loaded.config["generators"][0]["query_model"] == str(student)
    np.testing.assert_array_equal(loaded.candidates(mentions, k=5).concepts, fast.candidates(mentions, k=5).concepts)


def test_query_encoder_misuse_is_refused_with_the_field_named(tmp_path, tiny_model_dir):
    from test_candidates_core import hpo_terminology

    from xnorm.candidates import CandidateIndex
    from xnorm.errors import ConfigError

    term = hpo_terminology()
    student = _query_student(tiny_model_dir, tmp_path / "q")
    with pytest.raises(ConfigError, match="is a query encoder") as e:  # it never encodes names
        CandidateIndex.build(term, {"generators": [{"type": "dense", "model": str(student)}]})
    assert str(tiny_model_dir) in e.value.fix
    foreign = _query_student(tiny_model_dir, tmp_path / "foreign", index_fingerprint="0123456789abcdef")
    for query_model, match in ((foreign, "encodes into the space of"), (tiny_model_dir, "is not a query encoder")):
        with pytest.raises(ConfigError, match=match) as e:
            CandidateIndex.build(term, {"generators": [{"type": "dense", "model": str(tiny_model_dir),
                                                        "query_model": str(query_model)}]})
        assert e.value.field == "generators.dense.query_model"
    from xnorm.models import Encoder

    unpinned = _query_student(tiny_model_dir, tmp_path / "unpinned")
    settings = json.loads((unpinned / "xnorm_encoder.json").read_text())
    del settings["index_fingerprint"]
    (unpinned / "xnorm_encoder.json").write_text(json.dumps(settings))
    with pytest.raises(ArtifactError, match="must name its index_model and index_fingerprint") as e:
        Encoder(unpinned)
    assert e.value.file.endswith("xnorm_encoder.json")
    sparse_only = CandidateIndex.build(term, {"generators": [{"type": "sparse"}]})
    with pytest.raises(ConfigError, match="no dense generator"):
        sparse_only.set_query_model(str(student))


def test_link_with_a_query_model_from_the_cli_and_the_api(tmp_path, tiny_model_dir):
    from test_candidates_core import hpo_terminology
    from test_link import run

    from xnorm.candidates import CandidateIndex
    from xnorm.errors import EXIT_BAD_INPUT
    from xnorm.linker import Linker
    from xnorm.types import Mentions

    index = tmp_path / "idx"
    dense = {"generators": [{"type": "dense", "model": str(tiny_model_dir)}]}
    CandidateIndex.build(hpo_terminology(), dense).save(index)
    student = _query_student(tiny_model_dir, tmp_path / "q")
    terms = ["seizure", "short stature"]

    linker = Linker.from_config({"index": str(index), "query_model": str(student)})  # API: the linker config
    expected = linker.predict(Mentions.from_texts(terms), top_k=2)
    res = run("link", "--index", str(index), "--query-model", str(student), "--terms", "--top-k", "2",
              input="\n".join(terms) + "\n")
    assert res.exit_code == 0, res.output
    rows = [line.split("\t") for line in res.stdout.strip().splitlines()[1:]]
    assert [r[2] for r in rows] == linker.terminology.concept_ids[expected.concepts.ravel()].tolist()
    np.testing.assert_allclose([float(r[3]) for r in rows], expected.scores.ravel(), atol=1e-4)
    plain_linker = Linker.from_config({"index": str(index)})
    plain = plain_linker.predict(Mentions.from_texts(terms), top_k=2)
    assert not np.allclose(plain.scores, expected.scores)  # the student, not the index's model, encoded them
    # the index's own encoder is loaded on first use only: never with a query encoder, at the first query without
    assert not linker.index.generators[0].encoder.loaded and plain_linker.index.generators[0].encoder.loaded

    saved = Linker.load(linker.save(tmp_path / "linker"))  # the query model is part of the saved linker
    np.testing.assert_allclose(saved.predict(Mentions.from_texts(terms), top_k=2).scores, expected.scores, atol=1e-5)

    res = run("link", "--index", str(index), "--query-model", str(tiny_model_dir), "--terms", input="seizure\n")
    assert res.exit_code == EXIT_BAD_INPUT and "not a query encoder" in res.output and "query_model" in res.output

    # int8: the API (linker config) and the CLI give the same ranking; the precision is checked and needs a model
    fast = Linker.from_config({"index": str(index), "query_model": str(student), "query_precision": "int8"})
    int8 = fast.predict(Mentions.from_texts(terms), top_k=2)
    assert not np.array_equal(int8.scores, expected.scores)  # quantized: not the fp32 vectors
    res = run("link", "--index", str(index), "--query-model", str(student), "--query-precision", "int8", "--terms",
              "--top-k", "2", "--explain", input="\n".join(terms) + "\n")
    assert res.exit_code == 0, res.output
    assert f"mentions by {student} int8" in res.output  # --explain names the query encoder and its precision
    rows = [line.split("\t") for line in res.stdout.strip().splitlines() if line.split("\t")[0] in terms]
    assert [r[2] for r in rows] == fast.terminology.concept_ids[int8.concepts.ravel()].tolist()
    np.testing.assert_allclose([float(r[3]) for r in rows], int8.scores.ravel(), atol=1e-4)
    with pytest.raises(ConfigError) as e:
        Linker.from_config({"index": str(index), "query_model": str(student), "query_precision": "fp16"})
    assert e.value.field == "query_precision"
    res = run("link", "--index", str(index), "--query-precision", "int8", "--terms", input="seizure\n")
    assert res.exit_code == 2 and "--query-model" in res.output


def test_a_packed_query_encoder_keeps_its_role_and_is_listed_as_such(tmp_path, tiny_model_dir, capsys):
    from xnorm import zoo
    from xnorm.cli.main import main
    from xnorm.models import Encoder, distilled

    student = _query_student(tiny_model_dir, tmp_path / "q")
    distilled.pack(student, zoo.user_zoo_dir() / "tiny-query", name="tiny-query", base_model=str(tiny_model_dir),
                   role="query")
    enc = Encoder("tiny-query")
    assert (enc.role, enc.index_model) == ("query", str(tiny_model_dir))
    with pytest.raises(SystemExit) as e:
        main(["adapters", "list", "--kind", "distilled-encoder"])
    assert e.value.code == 0
    assert "distilled-encoder (query)" in capsys.readouterr().out
