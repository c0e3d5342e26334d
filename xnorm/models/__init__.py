"""Encoders: the ``Encoder`` API, the registry of known models and the embedded default model.

``from xnorm.models import Encoder`` works, but torch/transformers load only when an Encoder is built.
"""
from __future__ import annotations

from typing import Any

__all__ = ["Encoder", "list_models", "prepare_model", "resolve_model"]


def __getattr__(name: str) -> Any:
    if name == "Encoder":
        from xnorm.models.encoder import Encoder

        return Encoder
    if name in ("list_models", "prepare_model", "resolve_model"):
        from xnorm.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'xnorm.models' has no attribute {name!r}")
