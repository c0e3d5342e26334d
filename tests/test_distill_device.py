"""The GPU distillation trainer (benchmarks/distill_device.py) on a tiny BERT and a synthetic bundle, on the CPU:
ragged ids padded right, int8 targets faithful, a run that learns its targets, keeps the best state and returns
every tensor but the word embeddings (in fp32 and in bf16 autocast), and a clear stop for an --init of another model."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import distill_bundle  # noqa: E402
import distill_device  # noqa: E402


def _bundle(path: Path, n: int = 24, vocab: int = 40) -> Path:
    """A tiny BERT (pruned-vocabulary stand-in) and n concepts, each with a random teacher vector, one name as a
    passage (the index) and one as a query; the dev set is the training set itself, so learning must show."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=16)
    model = BertModel(config, add_pooling_layer=False)
    (path / "model").mkdir(parents=True)
    config.to_json_file(path / "model" / "config.json")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "model" / "model.safetensors"),
              metadata={"format": "pt"})
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 9, 2 * n)  # rows 0..n-1 passages, n..2n-1 queries
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    ids = rng.integers(1, vocab, int(lengths.sum())).astype(np.uint16)
    concept_vectors = rng.normal(size=(n, 32)).astype(np.float32)
    vectors = np.concatenate([concept_vectors, concept_vectors + 0.3 * rng.normal(size=(n, 32))]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    q, scales = distill_bundle.quantize(vectors)
    kinds = np.repeat(np.array([1, 0], np.int8), n)
    arrays = {"pad_id": np.array(0, dtype=np.int32), "index_concepts": np.arange(n, dtype=np.int32),
              "dev_concepts": np.tile(np.arange(n, dtype=np.int32), 2), "dev_langs": np.where(kinds == 0, "es", "en"),
              "index_ids": ids[:offsets[n]], "index_offsets": offsets[:n + 1]}
    for part in ("train", "dev"):
        arrays[f"{part}_ids"], arrays[f"{part}_offsets"] = ids, offsets
        arrays[f"{part}_kinds"], arrays[f"{part}_targets"], arrays[f"{part}_scales"] = kinds, q, scales
    np.savez(path / "data.npz", **arrays)
    (path / "bundle.json").write_text(json.dumps({"layers": [0, 1]}))
    return path


def test_padded_rebuilds_ragged_ids():
    data = {"x_ids": np.array([5, 6, 7, 8, 9, 10], dtype=np.uint16), "x_offsets": np.array([0, 3, 4, 6], np.int32)}
    ids, lengths = distill_device.padded(data, "x", pad_id=1, device="cpu")
    assert ids.tolist() == [[5, 6, 7], [8, 1, 1], [9, 10, 1]]
    assert lengths.tolist() == [3, 1, 2]


def test_int8_targets_keep_direction():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(100, 384)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    q, scales = distill_bundle.quantize(v)
    back = distill_device.targets({"t_targets": q, "t_scales": scales}, "t", "cpu").numpy()
    assert q.dtype == np.int8 and (back * v).sum(1).min() > 0.9999


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_trainer_learns_and_returns_student_tensors(tmp_path, precision):
    from safetensors.torch import load_file

    bundle, out = _bundle(tmp_path / "bundle"), tmp_path / "out"
    distill_device.main(["--bundle", str(bundle), "--out", str(out), "--seconds", "4", "--eval-seconds", "1",
                         "--device", "cpu", "--threads", "1", "--precision", precision, "--variant", "t:3e-3:16"])
    report = json.loads((out / "t.json").read_text())
    assert report["precision"] == precision
    history = report["history"]
    assert report["steps"] > 10 and len(history) >= 3
    best = max(history, key=lambda h: h["acc1_all"] + h["r64_all"])
    assert report["best_step"] == best["step"] and best["step"] > 0
    assert history[-1]["dev_1-cos"] < history[0]["dev_1-cos"] - 0.05  # it learns the teacher's vectors
    tensors = load_file(str(out / "t.safetensors"))
    assert "embeddings.word_embeddings.weight" not in tensors
    assert "encoder.layer.1.output.dense.weight" in tensors
    assert {str(v.dtype) for v in tensors.values()} == {"torch.float16"}


def test_init_of_another_model_stops_with_a_clear_message(tmp_path):
    import torch
    from safetensors.torch import save_file

    bundle = _bundle(tmp_path / "bundle")
    save_file({"encoder.layer.0.output.dense.weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(SystemExit, match="not this student's"):
        distill_device.main(["--bundle", str(bundle), "--out", str(tmp_path / "out"), "--seconds", "1",
                             "--device", "cpu", "--init", str(tmp_path / "other.safetensors"),
                             "--variant", "t:1e-3:8"])
