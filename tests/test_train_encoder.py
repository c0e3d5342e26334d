"""`xnorm train-encoder`: concept split, concept-sampled batches, losses, resumable training, adapter loading, CLI.

Everything runs on the tiny BERT of conftest.py and a small terminology built here.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xnorm.errors import ArtifactError, ConfigError
from xnorm.models.encoder import resolve_precision
from xnorm.terminology.core import TerminologyBuilder
from xnorm.training.pairs import ConceptBatchSampler, ConceptSplit, split_concepts, training_names

_WORDS = ["seizure", "fever", "heart", "stature", "short", "defect", "hypotonia", "microcephaly", "headache",
          "intellectual", "disability", "ventricular", "septal", "abnormality", "epileptic", "recurrent"]
_ES = {"seizure": "convulsión", "fever": "fiebre", "heart": "corazón", "stature": "estatura", "short": "baja",
       "defect": "defecto", "hypotonia": "hipotonía", "microcephaly": "microcefalia", "headache": "cefalea",
       "intellectual": "intelectual", "disability": "discapacidad", "ventricular": "ventricular",
       "septal": "septal", "abnormality": "anomalía", "epileptic": "epiléptica", "recurrent": "recurrente"}


def _terminology(n: int = 48):
    """n concepts, each an English two-word name, an English synonym and a Spanish and French translation."""
    b = TerminologyBuilder()
    for i in range(n):
        w1, w2 = _WORDS[i % len(_WORDS)], _WORDS[(i * 7 + 3) % len(_WORDS)]
        cid = f"HP:{i:07d}"
        b.add_concept(cid, f"{w1} {w2}")
        b.add_name(cid, f"{w1} {w2}", "en", "preferred")
        b.add_name(cid, f"{w2} of {w1}", "en", "exact")
        b.add_name(cid, f"{_ES[w2]} {_ES[w1]}", "es", "translation")
        b.add_name(cid, f"{w2} {w1} {i}", "fr", "translation")
    return b.build(name="tiny-hpo")


FAST = {"batch_size": 16, "max_length": 16, "dev_every": 4, "dev_queries": 20, "dev_distractors": 20,
        "checkpoint_every": 2, "adapter_size": 4, "threads": 1, "patience": 0}


# ---- split and batches ---------------------------------------------------------------------------------------
def test_split_has_no_leakage_and_forced_concepts_stay_out():
    term = _terminology()
    forced = ["HP:0000001", "HP:0000002", "HP:9999999"]  # the last is unknown: ignored
    split = split_concepts(term, dev_fraction=0.1, test_fraction=0.2, seed=3, exclude=forced)
    parts = [set(split.of(s).tolist()) for s in ("train", "dev", "test")]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert parts[0] | parts[1] | parts[2] == set(term.concept_ids.tolist())
    assert {"HP:0000001", "HP:0000002"} <= parts[2]
    assert split.forced.tolist() == ["HP:0000001", "HP:0000002"]
    # Same seed, same split; another seed, another split.
    again = split_concepts(term, dev_fraction=0.1, test_fraction=0.2, seed=3, exclude=forced)
    assert set(again.train.tolist()) == parts[0]
    assert set(split_concepts(term, dev_fraction=0.1, test_fraction=0.2, seed=4).train.tolist()) != parts[0]
    names = training_names(term, split.train, ["en", "es"])
    assert set(names.concepts.tolist()) <= parts[0]
    assert set(names.langs.tolist()) == {"en", "es"}
    with pytest.raises(ConfigError, match="languages"):
        training_names(term, split.train, ["xx"])


def test_split_roundtrips_through_json(tmp_path):
    term = _terminology()
    split = split_concepts(term, seed=1, exclude=["HP:0000005"])
    split.save(tmp_path)
    back = ConceptSplit.load(tmp_path / "split.json")
    for s in ("train", "dev", "test"):
        assert sorted(back.of(s).tolist()) == sorted(split.of(s).tolist())
    assert back.forced.tolist() == ["HP:0000005"]


def test_batches_hold_pairs_of_one_concept_english_first_and_are_reproducible():
    term = _terminology()
    names = training_names(term, term.concept_ids, ["en", "es", "fr"])
    sampler = ConceptBatchSampler(names, batch_size=12, names_per_concept=2, seed=5)
    seen_concepts = set()
    for number in range(len(sampler) + 2):  # crosses an epoch boundary
        rows, labels, first = sampler.batch(number)
        assert len(rows) == 12 and first.sum() == 6
        counts = np.bincount(labels)
        assert (counts[counts > 0] == 2).all()
        # The first name of each concept is English; names of one label belong to one concept.
        assert (names.langs[rows[first]] == "en").all()
        group_of_row = np.searchsorted(names.offsets, rows, side="right") - 1
        for lab in np.unique(labels):
            assert len(set(group_of_row[labels == lab].tolist())) == 1
        seen_concepts.update(names.concepts[group_of_row].tolist())
        again = sampler.batch(number)
        assert np.array_equal(again[0], rows)
    assert len(seen_concepts) >= 0.9 * names.n_groups
    with pytest.raises(ConfigError):
        ConceptBatchSampler(names, batch_size=2)


def test_hard_negative_batches_group_each_anchor_with_its_neighbours():
    from xnorm.training.pairs import concept_neighbours

    term = _terminology()
    names = training_names(term, term.concept_ids, ["en", "es"])
    n = names.n_groups
    # Concepts on a circle: the nearest ones are the adjacent indices.
    angle = 2 * np.pi * np.arange(n) / n
    table = concept_neighbours(np.stack([np.cos(angle), np.sin(angle)], 1), 4)
    assert table.shape == (n, 4) and not (table == np.arange(n)[:, None]).any()
    assert set(table[10].tolist()) == {8, 9, 11, 12}
    sampler = ConceptBatchSampler(names, batch_size=16, seed=2, neighbours=table, hard_negatives=3)
    assert sampler.anchors_per_batch == 2 and len(sampler) == n // 2
    anchors_seen, near_share = set(), []
    for number in range(len(sampler)):
        rows, labels, first = sampler.batch(number)
        groups = np.searchsorted(names.offsets, rows[first], side="right") - 1
        assert len(groups) == 8 and len(set(groups.tolist())) == 8
        anchors = groups[:2]
        near = set(anchors.tolist()) | set(table[anchors].ravel().tolist())
        near_share.append(len(set(groups.tolist()) & near) / 8)
        anchors_seen.update(anchors.tolist())
        assert np.array_equal(sampler.batch(number)[0], rows)
    # Batch concepts are anchors or their neighbours (random fill only where two anchors share neighbours;
    # random batches would give about 10 / 48).
    assert np.mean(near_share) > 0.9
    assert len(anchors_seen) == n  # an epoch makes every concept an anchor once
    with pytest.raises(ConfigError, match="hard_negatives"):
        ConceptBatchSampler(names, batch_size=16, hard_negatives=3)


def test_losses_prefer_aligned_embeddings():
    import torch

    from xnorm.training.losses import make_loss

    torch.manual_seed(0)
    labels = torch.arange(8).repeat_interleave(2)
    first = torch.tensor([True, False] * 8)
    base = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    aligned = base.repeat_interleave(2, dim=0) + 0.01 * torch.randn(16, 16)
    scrambled = torch.nn.functional.normalize(torch.randn(16, 16), dim=-1)
    for name in ("ms", "infonce"):
        loss = make_loss(name)
        assert float(loss(aligned, labels, first)) < float(loss(scrambled, labels, first))
    with pytest.raises(ConfigError):
        make_loss("triplet")


# ---- training ------------------------------------------------------------------------------------------------
def test_loss_decreases_and_split_is_recorded(tiny_model_dir, tmp_path):
    from xnorm.training import train_encoder

    term = _terminology()
    out = tmp_path / "full"
    result = train_encoder(term, str(tiny_model_dir), out, mode="full", loss="ms", languages=["es", "fr"],
                           exclude_concepts=["HP:0000007"], steps=40, lr=2e-3, progress=False,
                           **{**FAST, "dev_every": 20})
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert len(losses) == 40
    assert np.mean(losses[-8:]) < 0.7 * np.mean(losses[:8])
    split = json.loads((out / "split.json").read_text())
    assert "HP:0000007" in split["test"] and "HP:0000007" in split["forced_out_of_training"]
    assert not set(split["train"]) & (set(split["dev"]) | set(split["test"]))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "encoder" and manifest["steps"] == 40 and manifest["loss"] == "ms"
    assert manifest["languages"] == ["en", "es", "fr"]
    assert manifest["dev"]["recall@1_base"] is not None
    # A full output is a plain Hugging Face folder: Encoder loads it directly.
    from xnorm.models.encoder import Encoder

    assert Encoder(out).encode(["fiebre"]).shape == (1, 32)


def test_infonce_loss_decreases(tiny_model_dir, tmp_path):
    from xnorm.training import train_encoder

    result = train_encoder(_terminology(), str(tiny_model_dir), tmp_path / "nce", mode="full", loss="infonce",
                           languages=["es"], steps=30, lr=2e-3, progress=False, **{**FAST, "dev_every": 30})
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert np.mean(losses[-6:]) < 0.8 * np.mean(losses[:6])


def test_bf16_autocast_trains_and_is_recorded(tiny_model_dir, tmp_path, monkeypatch):
    import torch

    from xnorm.training import encoder_trainer, train_encoder

    seen = []  # the training forward passes run under bf16 autocast

    def spy(*args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return pool(*args, **kwargs)

    pool = encoder_trainer._pool
    monkeypatch.setattr(encoder_trainer, "_pool", spy)
    result = train_encoder(_terminology(), str(tiny_model_dir), tmp_path / "bf16", mode="full", loss="infonce",
                           languages=["es"], steps=30, lr=2e-3, progress=False, precision="bf16",
                           **{**FAST, "dev_every": 30})
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert np.mean(losses[-6:]) < 0.8 * np.mean(losses[:6])
    assert len(seen) == 30 and all(seen)
    assert result.manifest["precision"] == "bf16" and result.manifest["config"]["precision"] == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        train_encoder(_terminology(), str(tiny_model_dir), tmp_path / "int8", steps=1, progress=False,
                      precision="int8")


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tiny_model_dir, tmp_path):
    from safetensors.numpy import load_file

    from xnorm.training import train_encoder

    term = _terminology()
    opts = dict(mode="adapter", languages=["es", "fr"], lr=5e-3, progress=False, **FAST)
    train_encoder(term, str(tiny_model_dir), tmp_path / "straight", steps=6, **opts)
    # The first part stops on a dev step (dev_every=4): a run that FINISHES off-schedule also evaluates at its
    # last step, and that extra evaluation may pick other "best" weights than a straight run would.
    train_encoder(term, str(tiny_model_dir), tmp_path / "resumed", steps=4, **opts)
    assert (tmp_path / "resumed" / ".checkpoints" / "last.pt").is_file()
    result = train_encoder(term, str(tiny_model_dir), tmp_path / "resumed", steps=6, resume=True, **opts)
    assert result.manifest["steps"] == 6
    a = load_file(str(tmp_path / "straight" / "adapter.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "adapter.safetensors"))
    assert a.keys() == b.keys() and len(a) > 0
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6)
    # A resumed run with other settings than the checkpoint's is refused; so is a non-empty folder without resume.
    with pytest.raises(ConfigError, match="lr"):
        train_encoder(term, str(tiny_model_dir), tmp_path / "resumed", steps=8, resume=True,
                      **{**opts, "lr": 1e-3})
    with pytest.raises(ConfigError, match="not empty"):
        train_encoder(term, str(tiny_model_dir), tmp_path / "straight", steps=6, **opts)
    # A resumed run may use another dev set: the best-so-far and the current weights are re-measured on it.
    before = json.loads((tmp_path / "resumed" / "manifest.json").read_text())["dev"]["index_names"]
    result = train_encoder(term, str(tiny_model_dir), tmp_path / "resumed", steps=8, resume=True,
                           **{**opts, "dev_distractors": 5})
    changed = [h for h in result.history if "dev_changed" in h]
    assert len(changed) == 1 and changed[0]["step"] == 6 and "dev_recall@1" in changed[0]
    assert result.manifest["dev"]["index_names"] == changed[0]["dev_changed"]["index_names"] < before


def test_adapter_folder_loads_through_encoder_and_changes_embeddings(tiny_model_dir, tmp_path):
    from xnorm.models.encoder import Encoder
    from xnorm.training import train_encoder

    out = tmp_path / "adapter"
    train_encoder(_terminology(), str(tiny_model_dir), out, mode="adapter", adapter_type="lora", languages=["es"],
                  steps=8, lr=1e-2, progress=False, **FAST)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "encoder-adapter" and manifest["format"] == "xnorm-adapter"
    assert manifest["base_model_sha256"] and "adapter.safetensors" in manifest["files"]
    assert (out / "adapter.safetensors").stat().st_size < 200_000  # only the adapter, not the encoder
    texts = ["fiebre", "short stature", "convulsión epiléptica"]
    trained = Encoder(out)
    assert "xnorm_align" in str(trained.model.active_adapters)
    base = Encoder(tiny_model_dir)
    diff = np.abs(trained.encode(texts) - base.encode(texts)).max()
    assert diff > 1e-3
    # config() / from_config round trip keeps the adapter.
    again = Encoder.from_config(trained.config())
    np.testing.assert_allclose(again.encode(texts), trained.encode(texts), atol=1e-6)
    # Copied into the zoo ($XNORM_HOME/adapters here), the adapter is selectable by name.
    from xnorm import zoo
    from xnorm.training.adapter_io import copy_adapter

    copy_adapter(out, zoo.user_zoo_dir() / "tiny-align", "tiny-align", license="test")
    found = {a.name: a for a in zoo.list_adapters("encoder-adapter")}
    assert found["tiny-align"].origin == "user"
    by_name = Encoder("tiny-align")
    assert by_name.config()["model"] == "tiny-align"
    np.testing.assert_allclose(by_name.encode(texts), trained.encode(texts), atol=1e-6)
    # A changed weight file is named before anything loads it.
    data = bytearray((out / "adapter.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (out / "adapter.safetensors").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="adapter.safetensors"):
        Encoder(out)


def test_training_goes_on_from_an_encoder_adapter_with_hard_negatives(tiny_model_dir, tmp_path, caplog, monkeypatch):
    from safetensors.numpy import load_file

    import xnorm.training.encoder_trainer as trainer
    from xnorm.training import train_encoder

    term = _terminology()
    opts = dict(languages=["es", "fr"], lr=5e-3, progress=False, **FAST)
    first = train_encoder(term, str(tiny_model_dir), tmp_path / "first", steps=4, **opts)
    # The first adapter as the base: its weights are trained further (same type, same split), not a new adapter.
    more = train_encoder(term, str(tmp_path / "first"), tmp_path / "more", steps=4, hard_negatives=3,
                         **{**opts, "adapter_size": 8})
    m = more.manifest
    assert m["base_model"] == first.manifest["base_model"] == str(tiny_model_dir)
    assert m["adapter_size"] == 4 and m["init_from"]["steps"] == 4
    assert m["init_from"]["held_out_concepts_now_trained"] == 0
    assert m["config"]["hard_negatives"] == 3
    assert (tmp_path / "more" / ".checkpoints" / "neighbours.npy").is_file()
    a = load_file(str(tmp_path / "first" / "adapter.safetensors"))
    b = load_file(str(tmp_path / "more" / "adapter.safetensors"))
    assert a.keys() == b.keys()
    # Trained further: the weights moved, unless no dev evaluation beat the start (then the start is kept).
    beaten = m["dev"]["recall@1_best"] > m["dev"]["recall@1_base"]
    assert (max(float(np.abs(a[k] - b[k]).max()) for k in a) > 0) == beaten
    assert m["best_step"] == (4 if beaten else 0)
    # Another split makes the first adapter's held-out concepts training data: said in the log and manifest.
    other = train_encoder(term, str(tmp_path / "first"), tmp_path / "other", steps=1, **{**opts, "seed": 7})
    assert other.manifest["init_from"]["held_out_concepts_now_trained"] > 0
    assert "held-out results" in caplog.text
    # batch_seed changes the batches alone: the sampler draws with it, over the same split (nothing held out trained).
    seeds = []

    class Recording(trainer.ConceptBatchSampler):
        def __init__(self, *args, **kwargs):
            seeds.append(kwargs["seed"])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(trainer, "ConceptBatchSampler", Recording)
    rerun = train_encoder(term, str(tmp_path / "first"), tmp_path / "rerun", steps=1, **{**opts, "batch_seed": 7})
    assert seeds == [7]
    assert rerun.manifest["init_from"]["held_out_concepts_now_trained"] == 0
    assert rerun.manifest["config"]["batch_seed"] == 7
    assert (tmp_path / "rerun" / "split.json").read_text() == (tmp_path / "first" / "split.json").read_text()
    with pytest.raises(ConfigError, match="full mode"):
        train_encoder(term, str(tmp_path / "first"), tmp_path / "full", mode="full", steps=1, **opts)
    with pytest.raises(ConfigError, match="hard_negatives"):
        train_encoder(term, str(tiny_model_dir), tmp_path / "bad", steps=1, hard_negatives=11, **opts)


def test_trained_adapter_serves_a_dense_index(tiny_model_dir, tmp_path):
    from xnorm.candidates import CandidateIndex
    from xnorm.training import train_encoder
    from xnorm.types import Mentions

    term = _terminology()
    out = tmp_path / "adapter"
    train_encoder(term, str(tiny_model_dir), out, languages=["es"], steps=4, progress=False, **FAST)
    index = CandidateIndex.build(term, {"generators": [{"type": "dense", "model": str(out)}]})
    cands = index.candidates(Mentions.from_texts(["fiebre corazón"], lang="es"), k=3)
    assert cands.concepts.shape == (1, 3) and (cands.concepts >= 0).all()
    index.save(tmp_path / "index")
    assert CandidateIndex.load(tmp_path / "index").generators[0].weights_fingerprint() \
        == index.generators[0].weights_fingerprint()


def test_an_adapter_retrained_under_the_same_name_is_not_searched_with_old_vectors(tiny_model_dir, tmp_path):
    """Name vectors made by one adapter's weights must not be searched with another's query vectors: a saved index
    refuses to load, and the linker's cache builds a new index."""
    import shutil

    from xnorm import Linker
    from xnorm.candidates import CandidateIndex
    from xnorm.training import train_encoder

    term = _terminology()
    term_dir = term.save(tmp_path / "term")
    out = tmp_path / "adapter"
    opts = dict(languages=["es"], steps=2, progress=False, **FAST)
    train_encoder(term, str(tiny_model_dir), out, **opts)
    config = {"terminology": str(term_dir), "candidates": {"generators": [{"type": "dense", "model": str(out)}]}}
    first = Linker.from_config(config).index
    first.save(tmp_path / "index")
    # The same folder now holds an adapter trained with another seed.
    train_encoder(term, str(tiny_model_dir), tmp_path / "other", **{**opts, "seed": 1})
    shutil.rmtree(out)
    shutil.copytree(tmp_path / "other", out)
    with pytest.raises(ArtifactError, match="other weights"):
        CandidateIndex.load(tmp_path / "index")
    again = Linker.from_config(config).index
    assert again.generators[0].weights_fingerprint() != first.generators[0].weights_fingerprint()
    from xnorm.paths import indexes_dir

    assert len(list(indexes_dir().iterdir())) == 2  # a new cache entry, the old one untouched


# ---- CLI -----------------------------------------------------------------------------------------------------
def _run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from xnorm.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    captured = capsys.readouterr()
    return int(exc.value.code), captured.out, captured.err


def test_cli_trains_and_reports_errors_in_one_line(tiny_model_dir, tmp_path, capsys):
    term_dir = _terminology().save(tmp_path / "term")
    out = tmp_path / "cli-out"
    code, stdout, _ = _run_cli(["train-encoder", "--terminology", str(term_dir), "--base", str(tiny_model_dir),
                                "-o", str(out), "--languages", "en,es", "--steps", "3", "--batch-size", "12",
                                "--max-length", "16", "--dev-every", "3", "--threads", "1", "--no-progress",
                                "--dev-fraction", "0.2", "--test-fraction", "0.3", "--hard-negatives", "1",
                                "--names-per-concept", "3"], capsys)
    assert code == 0 and "wrote" in stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "encoder-adapter"
    assert manifest["config"]["dev_fraction"] == 0.2 and manifest["config"]["test_fraction"] == 0.3
    assert manifest["config"]["hard_negatives"] == 1 and manifest["config"]["names_per_concept"] == 3
    # The trained adapter as --base: its training goes on.
    code, stdout, _ = _run_cli(["train-encoder", "--terminology", str(term_dir), "--base", str(out),
                                "-o", str(tmp_path / "cli-more"), "--languages", "en,es", "--steps", "2",
                                "--batch-size", "8", "--max-length", "16", "--threads", "1", "--no-progress",
                                "--dev-fraction", "0.2", "--test-fraction", "0.3", "--precision", "bf16"], capsys)
    assert code == 0
    more = json.loads((tmp_path / "cli-more" / "manifest.json").read_text())
    assert more["init_from"]["adapter"] == str(out) and more["precision"] == "bf16"
    assert manifest["precision"] == resolve_precision("auto", "cpu")  # the default, as resolved on this machine

    code, _, err = _run_cli(["train-encoder", "--terminology", str(term_dir), "--base", str(tiny_model_dir),
                             "-o", str(tmp_path / "x"), "--languages", "en,xx"], capsys)
    assert code == 3 and err.count("\n") == 1 and "xx" in err and "Fix:" in err

    code, _, err = _run_cli(["train-encoder", "--terminology", str(tmp_path / "missing"), "--base",
                             str(tiny_model_dir), "-o", str(tmp_path / "y")], capsys)
    assert code == 3 and err.count("\n") == 1 and "Traceback" not in err

    code, _, err = _run_cli(["train-encoder", "--terminology", str(term_dir), "--base", str(tiny_model_dir),
                             "-o", str(tmp_path / "z"), "--resume"], capsys)
    assert code == 3 and "checkpoint" in err

    code, _, err = _run_cli(["train-encoder", "--terminology", str(term_dir), "--base", str(tiny_model_dir),
                             "-o", str(tmp_path / "w"), "--exclude-concepts", str(tmp_path / "nope.txt")], capsys)
    assert code == 3 and "nope.txt" in err
