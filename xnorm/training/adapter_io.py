"""Encoder output folders: what they hold, and loading a trained encoder adapter onto its base model.

A folder made by ``train_encoder --mode adapter`` is an adapter-zoo folder (``xnorm.zoo``): the ``adapters``
adapter files at its root and a zoo ``manifest.json`` with ``"kind": "encoder-adapter"``, the base model and
the sha256 of the base weights it was trained on. ``Encoder(folder)`` (or ``Encoder(<zoo name>)``) loads the
base and activates the adapter. A folder made by ``--mode full`` is a complete Hugging Face model folder whose
``manifest.json`` has format ``xnorm-encoder``.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from xnorm.errors import ArtifactError

MANIFEST_FILE = "manifest.json"
FULL_FORMAT = "xnorm-encoder"
KIND_ADAPTER = "encoder-adapter"
KIND_FULL = "encoder"
ADAPTER_NAME = "xnorm_align"


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The manifest of a train-encoder output folder (adapter or full), or None when the folder has none."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ArtifactError(f"not valid JSON ({e.msg}).", file=str(path), line=e.lineno,
                            fix="repair the file or re-run `xnorm train-encoder`.") from None
    if not isinstance(data, dict) or data.get("kind") not in (KIND_ADAPTER, KIND_FULL):
        return None  # another kind of folder (a language adapter, another tool's manifest)
    return data


def adapter_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The verified zoo manifest when ``folder`` is an encoder-adapter folder, else None."""
    from xnorm import zoo

    data = read_manifest(folder)
    if data is None or data.get("kind") != KIND_ADAPTER:
        return None
    return zoo.read_manifest(folder, verify=True)  # checksums: a changed weight file is named before loading


def attach_adapter(model: Any, folder: str | Path, manifest: dict[str, Any], base_dir: str | Path | None) -> Any:
    """Load the folder's adapter into ``model`` (a Hugging Face encoder loaded from ``base_dir``; its weights are
    checked against the manifest's ``base_model_sha256``) and make it the active adapter."""
    import adapters

    from xnorm import zoo

    # adapters warns "adapters available but none activated" between loading and activating: expected here.
    logging.getLogger("adapters.model_mixin").setLevel(logging.ERROR)
    adapters.init(model)
    try:
        name = zoo.load_into(model, folder, model_dir=base_dir, load_as=ADAPTER_NAME)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise ArtifactError(f"cannot load the adapter ({str(e).splitlines()[0]}).", file=str(folder),
                            fix=f"the adapter must have been trained on {manifest['base_model']}; re-run "
                            "`xnorm train-encoder`.") from None
    model.set_active_adapters(name)
    return model


# Files of an encoder-adapter folder that a copy needs (checkpoints and the training history stay behind).
_SHIPPED_FILES = ("adapter.safetensors", "adapter_config.json", "xnorm_encoder.json", "split.json")


def copy_adapter(source: str | Path, dest: str | Path, name: str, *, readme: str | None = None,
                 **extra: Any) -> Path:
    """Copy a trained encoder-adapter folder to ``dest`` (e.g. ``adapters_zoo/<name>``) under the zoo name
    ``name``, with a fresh zoo manifest (checksums) that adds ``extra`` fields such as ``license``, and an
    optional ``README.md``."""
    import shutil

    from xnorm import zoo
    from xnorm._io import atomic_dir

    manifest = adapter_manifest(source)
    if manifest is None:
        raise ArtifactError("not an encoder-adapter folder.", file=str(source),
                            fix="pass the output folder of `xnorm train-encoder --mode adapter`.")
    fields = {k: v for k, v in manifest.items() if k not in ("format", "format_version", "files", "xnorm_version",
                                                            "created")}
    fields.update(extra, name=name)
    with atomic_dir(dest) as tmp:
        for rel in _SHIPPED_FILES:
            if (Path(source) / rel).is_file():
                shutil.copy2(Path(source) / rel, tmp / rel)
        if readme is not None:
            (tmp / "README.md").write_text(readme, encoding="utf-8")
        zoo.write_manifest(tmp, **fields)
    return Path(dest)
