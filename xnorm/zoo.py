"""The adapter zoo: adapter folders shipped with xnorm and trained by the user, each described by a manifest.

Two places are searched, user-trained first (so a retrained adapter shadows a shipped one of the same name):

- ``$XNORM_HOME/adapters/<name>/`` — what ``xnorm train-lang-adapter --zoo`` (and the other trainers) write;
- the package's ``adapters_zoo/<name>/`` (installed as ``xnorm.adapters_zoo``) — adapters xnorm ships.

Every adapter folder holds a ``manifest.json``::

    {"format": "xnorm-adapter", "format_version": 1, "kind": "language-adapter", "name": "lang-es-e5small",
     "base_model": "multilingual-e5-small", "base_model_sha256": "...", "language": "es",
     "adapter_config": {...}, "training": {...}, "metrics": {...}, "license": "...", "xnorm_version": "0.1.0",
     "files": {"adapter.safetensors": {"sha256": "...", "size": 1234}, ...}}

``read_manifest`` verifies the listed files' checksums, so a changed or truncated weight file is reported
(naming the file) before anything loads it. ``base_model_sha256`` identifies the exact base weights an adapter
was trained on; ``check_base_model`` compares it with the model folder it is about to be loaded onto.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from xnorm._io import atomic_dir, atomic_write, file_record, read_folder_manifest, sha256_file
from xnorm.errors import ArtifactError, ConfigError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
RERANKER_SUBDIR = "reranker"  # a zoo entry of kind reranker: the reranker's own folder inside
FORMAT = "xnorm-adapter"
FORMAT_VERSION = 1
# distilled-encoder: a student encoder without its word embeddings (xnorm.models.distilled materializes it)
KINDS = ("language-adapter", "task-adapter", "encoder-adapter", "reranker", "distilled-encoder")
REQUIRED_FIELDS = ("kind", "name", "base_model", "base_model_sha256")
# Written by write_manifest itself; a caller passing them would be overwritten silently, so it may not.
_RESERVED_FIELDS = ("format", "format_version", "files", "xnorm_version", "created")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
# Weight files that identify a base model (Hugging Face layouts, single file or shards).
_WEIGHT_PATTERNS = ("model.safetensors", "model-*-of-*.safetensors", "pytorch_model.bin", "pytorch_model-*-of-*.bin")


@dataclass(frozen=True)
class AdapterInfo:
    """One adapter of the zoo, as its manifest describes it (checksums not verified: ``read_manifest`` does)."""

    name: str
    kind: str
    path: Path
    origin: str  # "user" ($XNORM_HOME/adapters) | "package" (shipped in xnorm.adapters_zoo) | "path" (given folder)
    base_model: str
    base_model_sha256: str
    language: str | None = None
    manifest: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def size_bytes(self) -> int:
        """Bytes of the files the manifest lists."""
        return sum(int(f.get("size", 0)) for f in self.manifest.get("files", {}).values())

    @property
    def n_params(self) -> int | None:
        """Trainable adapter (or distilled student) parameters, when the manifest records them."""
        value = self.manifest.get("adapter_params", self.manifest.get("trained_params"))
        return int(value) if value is not None else None


# ---- where adapters live --------------------------------------------------------------------------------------
def package_zoo_dir() -> Path:
    """The shipped zoo: the installed ``xnorm.adapters_zoo`` package folder."""
    import xnorm.adapters_zoo

    return Path(xnorm.adapters_zoo.__file__).resolve().parent


def user_zoo_dir() -> Path:
    """``$XNORM_HOME/adapters``: where user-trained adapters go (``--zoo``)."""
    from xnorm.paths import xnorm_home

    return xnorm_home() / "adapters"


def zoo_dirs() -> list[tuple[str, Path]]:
    """(origin, folder) pairs in search order: user-trained first, then shipped."""
    return [("user", user_zoo_dir()), ("package", package_zoo_dir())]


# ---- base model identity --------------------------------------------------------------------------------------
def model_sha256(model_dir: str | os.PathLike) -> str:
    """The sha256 that identifies a Hugging Face model folder's weights (``base_model_sha256`` of a manifest).

    One weight file: its sha256. Shards: the sha256 of their ``"<file> <sha256>"`` lines. A materialized
    embedded model records its weights' sha256 in ``xnorm_model.json`` (verified when it was written); that
    record is used when the size still matches, which spares hashing ~470 MB on every load.
    """
    model_dir = Path(model_dir)
    files = sorted({p for pattern in _WEIGHT_PATTERNS for p in model_dir.glob(pattern) if p.is_file()})
    if not files:
        raise ArtifactError("no model weights (model.safetensors or shards) in the base model folder.",
                            file=str(model_dir), fix="pass a Hugging Face model folder.")
    recorded: dict = {}
    record = model_dir / "xnorm_model.json"
    if record.is_file():
        try:
            recorded = json.loads(record.read_text(encoding="utf-8")).get("files", {}) or {}
        except (json.JSONDecodeError, AttributeError):
            recorded = {}

    def digest(p: Path) -> str:
        entry = recorded.get(p.name)
        if isinstance(entry, dict) and entry.get("size") == p.stat().st_size and entry.get("sha256"):
            return str(entry["sha256"])
        return sha256_file(p)

    if len(files) == 1:
        return digest(files[0])
    lines = "".join(f"{p.name} {digest(p)}\n" for p in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def canonical_model_name(name: str) -> str:
    """A registry model's canonical name for an alias (``e5-small`` → ``multilingual-e5-small``); else unchanged."""
    from xnorm.models import registry

    info = registry.lookup(str(name))
    return info.name if info is not None else str(name)


def check_base_model(adapter: "AdapterInfo | dict", model_dir: str | os.PathLike) -> None:
    """Raise ``ArtifactError`` unless ``model_dir`` holds the exact base weights the adapter was trained on."""
    manifest = adapter.manifest if isinstance(adapter, AdapterInfo) else adapter
    expected = manifest.get("base_model_sha256")
    actual = model_sha256(model_dir)
    if expected != actual:
        raise ArtifactError(
            f"adapter {manifest.get('name')!r} was trained on base model {manifest.get('base_model')!r} "
            f"(weights sha256 {str(expected)[:12]}…), but this model's weights have sha256 {actual[:12]}….",
            file=str(model_dir), field="base_model_sha256",
            fix=f"load the adapter onto {manifest.get('base_model')!r}, or train one for this model "
            "(`xnorm train-lang-adapter --base MODEL ...`).",
        )


# ---- manifests ------------------------------------------------------------------------------------------------
def _files_of(folder: Path) -> list[str]:
    """Files an adapter folder holds (relative POSIX paths), the manifest and hidden temp files excluded."""
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and rel.as_posix() != MANIFEST and not any(part.startswith(".") for part in rel.parts):
            out.append(rel.as_posix())
    return out


def write_manifest(folder: str | os.PathLike, **fields: Any) -> Path:
    """Write ``folder/manifest.json`` with ``fields`` plus format, xnorm version, time and every file's sha256.

    Required: ``kind`` (one of ``KINDS``), ``name``, ``base_model``, ``base_model_sha256``; ``language`` for a
    language adapter. Call it last, once every other file of the adapter is in place. Returns the manifest path.
    """
    from xnorm import __version__

    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError("adapter folder not found.", file=str(folder), fix="write the adapter files first.")
    reserved = sorted(set(fields) & set(_RESERVED_FIELDS))
    if reserved:
        raise ConfigError(f"manifest fields {reserved} are written by write_manifest itself.", field=reserved[0],
                          fix="leave them out.")
    _check_fields(fields, where=str(folder / MANIFEST))
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **fields, "xnorm_version": __version__,
                "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "files": {rel: file_record(folder / rel) for rel in _files_of(folder)}}
    path = folder / MANIFEST
    with atomic_write(path) as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return path


def add_reranker(reranker_dir: str | os.PathLike, name: str, *, root: str | os.PathLike | None = None,
                 **fields: Any) -> Path:
    """Put a trained reranker folder (``xnorm train-reranker -o DIR``) into the zoo as ``<root>/<name>``: the folder
    unchanged under ``reranker/`` (its own manifest and checksums) inside a zoo entry of kind ``reranker``, so
    ``--reranker NAME`` finds it. A feature reranker needs translation tables (its base model: their tokenizer's);
    it reranks the candidates of indexes whose generators have its generators' names. ``root``: the user zoo
    (``$XNORM_HOME/adapters``) by default; ``fields`` go into the zoo manifest (training data, metrics, license)."""
    from xnorm.models.registry import resolve_model
    from xnorm.models.tokenizers import tokenizer_sha256
    from xnorm.rerank.feature_ranker import is_feature_reranker

    src = Path(reranker_dir)
    if is_feature_reranker(src):
        inner = read_folder_manifest(src, "xnorm-feature-reranker", 1, what="a feature reranker folder",
                                     fix="give the folder `xnorm train-reranker --mode features -o DIR` wrote.")
        if not inner.get("translation"):
            raise ArtifactError("a feature reranker without translation tables belongs to the index it was trained "
                                "on, not to a base model, so it has no zoo entry.", file=str(src),
                                fix="pass its folder to --reranker directly, or save a linker with it (Linker.save) "
                                    "to ship index and reranker together.")
        # its tables are in the pieces of this model's tokenizer; it reranks indexes with these generator names
        base = str(inner["translation"]["tokenizer"])
        sha = tokenizer_sha256(resolve_model(base))
        fields = {"generators": inner["generators"], **fields}
    else:
        inner = read_folder_manifest(src, "xnorm-reranker", 1, what="a reranker folder",
                                     fix="give the folder `xnorm train-reranker -o DIR` wrote.")
        base = str(inner["base_model"])
        sha = model_sha256(resolve_model(base))
    dest = Path(root or user_zoo_dir()) / name
    with atomic_dir(dest) as tmp:
        shutil.copytree(src, tmp / RERANKER_SUBDIR)
        write_manifest(tmp, kind="reranker", name=name, base_model=base, base_model_sha256=sha, **fields)
    return dest


def reranker_folder(name_or_path: str | os.PathLike) -> Path:
    """The reranker folder of a zoo entry (``add_reranker``) given by name or path, or the folder itself."""
    folder = resolve(name_or_path)
    return folder / RERANKER_SUBDIR if (folder / RERANKER_SUBDIR / MANIFEST).is_file() else folder


def _check_fields(manifest: dict, where: str) -> None:
    missing = [k for k in REQUIRED_FIELDS if not manifest.get(k)]
    if manifest.get("kind") == "language-adapter" and not manifest.get("language"):
        missing.append("language")
    if missing:
        raise ArtifactError(f"manifest lacks {', '.join(missing)}.", file=where, field=missing[0],
                            fix="write it with xnorm.zoo.write_manifest(folder, kind=..., name=..., base_model=..., "
                            "base_model_sha256=..., language=...).")
    if manifest["kind"] not in KINDS:
        raise ArtifactError(f"unknown adapter kind {manifest['kind']!r}.", file=where, field="kind",
                            fix=f"use one of {', '.join(KINDS)}.")
    if not _NAME.match(str(manifest["name"])):
        raise ArtifactError(f"adapter name {manifest['name']!r} is not a plain folder name.", file=where,
                            field="name", fix="use letters, digits, '.', '_' and '-' only.")


def read_manifest(folder: str | os.PathLike, *, verify: bool = True) -> dict:
    """The manifest of an adapter folder, checked for format and required fields; with ``verify`` every listed
    file must exist and match its sha256 (``ArtifactError`` naming the file otherwise)."""
    folder = Path(folder)
    path = folder / MANIFEST
    manifest = read_folder_manifest(folder, FORMAT, FORMAT_VERSION, what="an xnorm adapter folder",
                                    fix="point at an adapter folder (`xnorm adapters list` shows them); restore "
                                    "it (reinstall xnorm) or retrain it with this version of xnorm.")
    _check_fields(manifest, where=str(path))
    if verify:
        for rel, entry in (manifest.get("files") or {}).items():
            target = folder / rel
            if not target.is_file():
                raise ArtifactError(f"file {rel} listed in the manifest is missing.", file=str(target),
                                    fix="restore the adapter folder (reinstall xnorm or retrain the adapter).")
            if sha256_file(target) != entry.get("sha256"):
                raise ArtifactError(f"checksum mismatch for {rel}: the file was changed or is corrupt.",
                                    file=str(target),
                                    fix="restore the adapter folder (reinstall xnorm or retrain the adapter); "
                                    "do not edit its files by hand.")
    return manifest


def _info(folder: Path, origin: str, manifest: dict) -> AdapterInfo:
    return AdapterInfo(name=str(manifest["name"]), kind=str(manifest["kind"]), path=folder, origin=origin,
                       base_model=str(manifest["base_model"]), base_model_sha256=str(manifest["base_model_sha256"]),
                       language=manifest.get("language"), manifest=manifest)


def _scan(verify: bool) -> Iterable[AdapterInfo]:
    for origin, root in zoo_dirs():
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if (p / MANIFEST).is_file()):
            try:
                yield _info(folder, origin, read_manifest(folder, verify=verify))
            except ArtifactError as e:
                # One broken folder must not hide the others; loading it by name still raises the error.
                logger.warning("skipping adapter folder: %s", e)


# ---- lookups --------------------------------------------------------------------------------------------------
def list_adapters(kind: str | None = None, *, verify: bool = False) -> list[AdapterInfo]:
    """Adapters of the zoo (user-trained first, a user adapter shadowing a shipped one of the same name).

    ``kind`` filters (one of ``KINDS``); ``verify`` also checks every file's sha256 (slower).
    """
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"unknown adapter kind {kind!r}.", field="kind", fix=f"use one of {', '.join(KINDS)}.")
    seen: set[str] = set()
    out = []
    for info in _scan(verify):
        if info.name in seen:
            continue
        seen.add(info.name)
        if kind is None or info.kind == kind:
            out.append(info)
    return out


def find_adapter(kind: str, *, language: str | None = None, base_model: str | None = None) -> AdapterInfo | None:
    """The adapter of ``kind`` for ``language`` and ``base_model`` (a registry name or alias), or None.

    Languages compare case-insensitively (``zh`` matches ``ZH``); a user-trained adapter wins over a shipped one,
    then the first by name. ``None`` for a filter means any.
    """
    want_base = canonical_model_name(base_model) if base_model is not None else None
    want_lang = language.lower() if language is not None else None
    for info in list_adapters(kind):
        if want_lang is not None and str(info.language or "").lower() != want_lang:
            continue
        if want_base is not None and canonical_model_name(info.base_model) != want_base:
            continue
        return info
    return None


def resolve(name_or_path: str | os.PathLike) -> Path:
    """The folder of an adapter given by zoo name (``lang-es-e5small``) or by path to a folder with a manifest."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if (path / MANIFEST).is_file():
        return path.resolve()
    if _NAME.match(text):
        for _, root in zoo_dirs():
            if (root / text / MANIFEST).is_file():
                return (root / text).resolve()
    known = ", ".join(sorted(i.name for i in list_adapters())) or "none"
    raise ArtifactError(f"no adapter named {text!r} and no adapter folder (with manifest.json) at that path.",
                        file=text, fix=f"use a name from `xnorm adapters list` (known: {known}) or a folder path.")


def adapter_info(name_or_path: str | os.PathLike, *, verify: bool = True) -> AdapterInfo:
    """``resolve`` + ``read_manifest`` (checksums verified by default) as an ``AdapterInfo``."""
    folder = resolve(name_or_path)
    roots = {root.resolve(): origin for origin, root in zoo_dirs() if root.is_dir()}
    origin = roots.get(folder.parent, "path")
    return _info(folder, origin, read_manifest(folder, verify=verify))


def load_into(model: Any, name_or_path: str | os.PathLike, *, model_dir: str | os.PathLike | None = None,
              load_as: str | None = None, with_head: bool = False) -> str:
    """Load a zoo adapter (saved with the ``adapters`` library) into an ``adapters`` model; returns its name there.

    Checksums are verified first; with ``model_dir`` (the base model folder the model was loaded from), the
    base weights are checked too. Weights are read from safetensors only (never a pickle).
    """
    info = adapter_info(name_or_path, verify=True)
    if model_dir is not None:
        check_base_model(info, model_dir)
    if not any(f.endswith(".safetensors") for f in info.manifest.get("files", {})):
        raise ArtifactError("the adapter folder has no safetensors weights.", file=str(info.path),
                            fix="retrain the adapter with xnorm (weights are saved as safetensors).")
    return model.load_adapter(str(info.path), load_as=load_as or info.name, with_head=with_head,
                              use_safetensors=True, set_active=False)
