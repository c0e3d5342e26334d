"""Encoder output folders: the manifest that describes them, and loading a trained adapter onto its base model.

A folder made by ``train_encoder`` holds ``manifest.json``. With ``"kind": "encoder-adapter"`` it carries an
``adapters`` adapter (``adapter/``) for a frozen base encoder named in the manifest; ``Encoder(folder)`` loads
the base and activates the adapter. With ``"kind": "encoder"`` it is a complete Hugging Face model folder.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xnorm.errors import ArtifactError

MANIFEST_FILE = "manifest.json"
FORMAT = "xnorm-encoder"
KIND_ADAPTER = "encoder-adapter"
KIND_FULL = "encoder"
ADAPTER_SUBDIR = "adapter"
ADAPTER_NAME = "xnorm_align"


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The folder's xnorm encoder manifest, or None when the folder has none (a plain model folder)."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ArtifactError(f"not valid JSON ({e.msg}).", file=str(path), line=e.lineno,
                            fix="repair the file or re-run `xnorm train-encoder`.") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None  # some other tool's manifest.json: the folder is treated as a plain model folder
    return data


def adapter_manifest(folder: str | Path) -> dict[str, Any] | None:
    """The manifest when ``folder`` is an encoder-adapter folder, else None."""
    data = read_manifest(folder)
    if data is None or data.get("kind") != KIND_ADAPTER:
        return None
    manifest = Path(folder) / MANIFEST_FILE
    for key in ("base_model", "adapter_dir", "adapter_name"):
        if not isinstance(data.get(key), str):
            raise ArtifactError(f"the encoder-adapter manifest lacks {key!r}.", file=str(manifest), field=key,
                                fix="re-run `xnorm train-encoder` to write a complete folder.")
    if not (Path(folder) / data["adapter_dir"]).is_dir():
        raise ArtifactError("the adapter weights folder is missing.", file=str(Path(folder) / data["adapter_dir"]),
                            fix="copy the whole trained folder, or re-run `xnorm train-encoder`.")
    return data


def attach_adapter(model: Any, folder: str | Path, manifest: dict[str, Any]) -> Any:
    """Load the folder's adapter into ``model`` (a Hugging Face encoder) and make it the active one."""
    import adapters

    path = Path(folder) / manifest["adapter_dir"]
    try:
        adapters.init(model)
        name = model.load_adapter(str(path), load_as=manifest["adapter_name"], set_active=True,
                                  use_safetensors=True)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise ArtifactError(f"cannot load the adapter ({str(e).splitlines()[0]}).", file=str(path),
                            fix="the adapter must have been trained on this base model "
                            f"({manifest['base_model']}); re-run `xnorm train-encoder`.") from None
    model.set_active_adapters(name)
    return model
