"""The GPU reranker bundle (benchmarks/rerank_bundle.py, rerank_device.py) on a tiny BERT, on the CPU: pairs
assembled from separately tokenized sides equal the tokenizer's own pairs (truncation included), a device run
learns to pick the candidate that repeats the mention and returns its best state, and that state imports as an
`xnorm train-reranker --mode full` folder the Reranker loads with the same tensors."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import rerank_bundle  # noqa: E402
import rerank_device  # noqa: E402


def test_assembled_pairs_match_the_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    from tokenizers import processors

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    cls, sep = tok.cls_token_id, tok.sep_token_id  # BERT's pair template, as a real BERT tokenizer has it
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    words = "patient presented with recurrent seizures and developmental delay".split()
    rng = np.random.default_rng(0)
    firsts = [" ".join(rng.choice(words, size=n)) for n in rng.integers(0, 14, 60)]
    seconds = [" ".join(rng.choice(words, size=n)) for n in rng.integers(1, 14, 60)]
    max_length = 16
    a, b = rerank_bundle._ragged(tok, firsts), rerank_bundle._ragged(tok, seconds)
    pairs = np.arange(60)
    ids, seg = rerank_bundle.assemble_pairs(a, b, pairs, pairs, rerank_bundle._template(tok), max_length)
    want = tok(firsts, seconds, truncation="longest_first", max_length=max_length, padding=True)
    assert np.array_equal(ids, np.asarray(want["input_ids"]))
    want_seg = [[-1 if s is None else s for s in e.sequence_ids] for e in want.encodings]
    assert np.array_equal(seg, np.asarray(want_seg))
    assert (np.asarray(want["attention_mask"]).sum(1) == max_length).any()  # truncation did happen


def _bundle(path: Path, model_dir: Path, k: int = 4) -> Path:
    """The tiny BERT as a bundle; every mention's gold candidate repeats the mention's tokens, the others are
    random, and the generator's scores ignore the gold (it sits anywhere in the row)."""
    from safetensors.numpy import save_file
    from safetensors.torch import load_file

    config = json.loads((model_dir / "config.json").read_text())
    vocab = config["vocab_size"]
    state = {k_: v.float().numpy() for k_, v in load_file(str(model_dir / "model.safetensors")).items()}
    tensors = {}
    for key, w in state.items():
        if w.ndim == 2:
            tensors[key], tensors[key + ".scale"] = rerank_bundle.quantize_rows(w)
        else:
            tensors[key] = w
    path.mkdir(parents=True)
    save_file(tensors, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(0)
    arrays, a_texts, b_texts, sets = {}, [], [], {}
    for name, n in [("train", 64), ("dev_hpo-labels", 24), ("dev_gsc-plus", 24), ("test_tiny", 24)]:
        mention = np.arange(len(a_texts), len(a_texts) + n, dtype=np.int32)
        gold = rng.integers(0, k, n)
        text = np.zeros((n, k), dtype=np.int32)
        for r in range(n):
            a_texts.append(rng.integers(5, vocab, rng.integers(2, 5)))
            for c in range(k):
                text[r, c] = len(b_texts)
                b_texts.append(a_texts[-1] if c == gold[r] else rng.integers(5, vocab, rng.integers(2, 5)))
        arrays.update({f"{name}_mention": mention, f"{name}_text": text, f"{name}_gold": gold.astype(np.int8),
                       f"{name}_scores": np.sort(rng.random((n, k)), axis=1)[:, ::-1].astype(np.float32),
                       f"{name}_lang": np.full(n, "en", dtype="U3")})
        sets[name] = {"mentions": n, "description": "tiny", "acc1_candidates": float((gold == 0).mean())}
    arrays["train_source"] = np.zeros(64, np.int8)
    for side, texts in (("a", a_texts), ("b", b_texts)):
        arrays[f"{side}_ids"] = np.concatenate(texts).astype(np.uint16)
        arrays[f"{side}_offsets"] = np.concatenate([[0], np.cumsum([len(t) for t in texts])]).astype(np.int64)
    np.savez_compressed(path / "data.npz", **arrays)
    (path / "bundle.json").write_text(json.dumps({
        "base_model": str(model_dir), "k": k, "sets": sets,
        "pairs": {"max_length": 16, "context_chars": 0, "n_names": 3, "semantic_types": False},
        "template": {"prefix": [2], "middle": [3], "suffix": [3], "pad": 0}}))  # [CLS] a [SEP] b [SEP]
    return path


def test_device_run_learns_and_imports(tiny_model_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    from xnorm.rerank import Reranker

    bundle = _bundle(tmp_path / "bundle", tiny_model_dir)
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    rerank_device.main(["--bundle", str(bundle), "--out", str(out), "--scratch", str(scratch), "--seconds", "8",
                        "--eval-seconds", "2", "--eval-k", "4", "--device", "cpu", "--precision", "fp32",
                        "--variant", "a:3e-3:0:4:16:train", "--single"])
    report = json.loads((scratch / "a.json").read_text())
    assert report["steps"] > 10 and report["history"][0]["gain"] == 0.0  # step 0: the candidates' own order
    assert report["best_dev"]["gain"] > 0.2, report["history"]  # it learned to find the repeated mention
    assert report["tests"]["test_tiny"]["k4"]["acc1"] > report["tests"]["test_tiny"]["k4"]["acc1_candidates"]

    rerank_device.choose(rerank_device.argparse.Namespace(out=str(out), scratch=str(scratch)), ["a"])
    chosen = json.loads((out / "chosen.json").read_text())
    assert chosen["chosen"] == "a" and list(out.glob("weights-*.safetensors"))
    rerank_bundle.import_result(rerank_bundle.argparse.Namespace(result=out, bundle=bundle, out=tmp_path / "rr"))
    rr = Reranker.load(tmp_path / "rr")
    assert rr.mode == "full" and rr.info["pooling"] == "segments"
    training = rr.info["training"]  # train_reranker's report keys, as rerank.py --evaluate reads them
    assert training["best_step"] == report["best_dev"]["step"] and training["batch_size"] == 16
    assert training["dev_acc1_candidates"] == pytest.approx(report["history"][0]["acc1"], abs=1e-4)  # step 0: candidates
    returned = load_file(str(out / "weights-0.safetensors"))
    name = "encoder.layer.1.output.dense.weight"
    loaded = dict(rr.model.named_parameters())
    key = f"bert.{name}" if f"bert.{name}" in loaded else name
    assert torch.equal(loaded[key].detach(), returned[name].float())
    assert float(rr.head.prior_weight.detach()) == pytest.approx(float(returned["head.prior_weight"]))


def test_init_without_returned_tensors_is_a_clear_stop(tiny_model_dir, tmp_path):
    bundle = _bundle(tmp_path / "bundle", tiny_model_dir)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match=r"--init .*empty: no weights-\*\.safetensors"):
        rerank_device.main(["--bundle", str(bundle), "--out", str(tmp_path / "out"), "--scratch", str(tmp_path / "s"),
                            "--seconds", "1", "--device", "cpu", "--init", str(tmp_path / "empty"),
                            "--variant", "a:1e-3:0:4:16:train", "--single"])


def test_any_gold_column_counts(tiny_model_dir, tmp_path):
    """A mention with several gold concepts (one CUI, several HPO terms) is right when the chosen column is any of
    them; a bundle without the mask (written before it existed) scores the first gold column only."""
    bundle = _bundle(tmp_path / "bundle", tiny_model_dir)
    data = dict(np.load(bundle / "data.npz"))
    info = json.loads((bundle / "bundle.json").read_text())
    gold = data["test_tiny_gold"].astype(np.int64)
    other = (gold + 1) % 4
    first_only = rerank_device.PairSet(data, info, "test_tiny", 4, "cpu")
    assert rerank_device.accuracy(first_only, gold) == 1.0 and rerank_device.accuracy(first_only, other) == 0.0
    mask = np.zeros((len(gold), 4), np.int8)
    mask[np.arange(len(gold)), gold] = 1
    mask[:12, :][np.arange(12), other[:12]] = 1  # the first 12 mentions have a second gold column
    data["test_tiny_gold_mask"] = mask
    both = rerank_device.PairSet(data, info, "test_tiny", 4, "cpu")
    assert rerank_device.accuracy(both, gold) == 1.0 and rerank_device.accuracy(both, other) == 0.5
