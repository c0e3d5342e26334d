"""Encoder adapters written into the base model as plain torch modules, so that the ONNX export of an adapter
encoder is an ordinary BERT graph.

Exported through the ``adapters`` library's hooks, the graph computes the same vectors but ONNX Runtime's BERT
optimizer recognises no ``Attention`` op in it (and it ran no faster than torch). Written as plain modules, the
same network fuses like the base model: 12 ``Attention``, 36 ``SkipLayerNormalization`` for e5-small.

Supported: the bottleneck ("Pfeiffer", ``seq_bn``) configuration ``xnorm train-encoder --mode adapter`` trains —
one adapter after each layer's feed-forward output, on layers not in ``leave_out``. With that configuration
the ``adapters`` library computes, with ``h`` the feed-forward output projection and ``x`` the layer's attention
output (``original_ln_before``, ``residual_before_ln``, ``original_ln_after``; dropout is off at inference)::

    a = up(relu(down(LayerNorm(h + x)))) * scaling + h
    out = LayerNorm(a + x)

with the layer's own LayerNorm both times. Any other configuration is named by ``unsupported_reason`` (and
``backend="onnx"`` refused for it); the export checks its module against the ``adapters`` model before a graph
is cached.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ArtifactError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter.safetensors"
# Settings whose value must be exactly this for the formula above to be what the adapters library computes.
_REQUIRED = {"original_ln_before": True, "original_ln_after": True, "residual_before_ln": True,
             "adapter_residual_before_ln": False, "ln_before": False, "ln_after": False, "mh_adapter": False,
             "output_adapter": True, "use_gating": False, "is_parallel": False, "phm_layer": False,
             "inv_adapter": None, "stochastic_depth": 0.0}


def _read_config(adapter_dir: Path) -> dict[str, Any]:
    path = adapter_dir / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ArtifactError(f"cannot read the adapter config ({e}).", file=str(path),
                            fix="re-copy the adapter folder or re-run `xnorm train-encoder`.") from None
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict) or not isinstance(data.get("name"), str):
        raise ArtifactError("the adapter config lacks its 'name' or 'config' entry.", file=str(path),
                            fix="re-copy the adapter folder or re-run `xnorm train-encoder`.")
    return data


def unsupported_reason(adapter_dir: str | Path) -> str | None:
    """None when the folder's adapter can be written as plain modules, else why not (in a few words)."""
    config = _read_config(Path(adapter_dir))["config"]
    if config.get("architecture") not in (None, "bottleneck"):
        return f"a {config['architecture']} adapter (export supports bottleneck adapters)"
    for key, value in _REQUIRED.items():
        if key not in config or config[key] != value:
            return f"adapter setting {key}={config.get(key, '(missing)')!r} (export supports {value!r})"
    if config.get("non_linearity") != "relu":
        return f"adapter non_linearity {config.get('non_linearity')!r} (export supports relu)"
    if not isinstance(config.get("scaling", 1.0), (int, float)):
        return f"adapter scaling {config.get('scaling')!r} (export supports a number)"
    return None


def inline_adapter(model: Any, adapter_dir: str | Path) -> Any:
    """Replace each adapted layer's feed-forward output module of ``model`` (a Hugging Face BERT-family encoder
    without ``adapters`` hooks) by one computing output + adapter; returns ``model``."""
    import torch
    from safetensors.torch import load_file

    adapter_dir = Path(adapter_dir)
    reason = unsupported_reason(adapter_dir)
    if reason is not None:
        raise ArtifactError(f"cannot export this adapter: {reason}.", file=str(adapter_dir / CONFIG_FILE),
                            fix="use backend='torch' for this encoder.")
    setup = _read_config(adapter_dir)
    config, name = setup["config"], setup["name"]
    weights = load_file(str(adapter_dir / WEIGHTS_FILE))
    scaling = float(config.get("scaling", 1.0))

    class AdaptedOutput(torch.nn.Module):
        def __init__(self, output: Any, down: torch.nn.Linear, up: torch.nn.Linear) -> None:
            super().__init__()
            self.dense, self.LayerNorm, self.down, self.up = output.dense, output.LayerNorm, down, up

        def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
            h = self.dense(hidden_states)
            a = self.up(torch.relu(self.down(self.LayerNorm(h + input_tensor))))
            # No Mul node for the usual scaling 1.0 (the graph then matches the fusion-checked one exactly).
            return self.LayerNorm((a * scaling if scaling != 1.0 else a) + h + input_tensor)

    def linear(prefix: str) -> torch.nn.Linear:
        w, b = weights.pop(prefix + ".weight"), weights.pop(prefix + ".bias")
        layer = torch.nn.Linear(w.shape[1], w.shape[0])
        layer.weight.data.copy_(w)
        layer.bias.data.copy_(b)
        return layer

    layers = _encoder_layers(model, adapter_dir)
    for i, layer in enumerate(layers):
        prefix = f"encoder.layer.{i}.output.adapters.{name}."
        if prefix + "adapter_up.weight" not in weights:
            continue  # a layer in leave_out
        layer.output = AdaptedOutput(layer.output, linear(prefix + "adapter_down.0"), linear(prefix + "adapter_up"))
    if weights:  # anything left is a part the formula does not cover (another method, a head)
        raise ArtifactError(f"cannot export this adapter: unexpected weights {sorted(weights)[:3]}.",
                            file=str(adapter_dir / WEIGHTS_FILE), fix="use backend='torch' for this encoder.")
    return model


def _encoder_layers(model: Any, adapter_dir: Path) -> Any:
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if layers is None or not all(hasattr(layer, "output") and hasattr(layer.output, "dense")
                                 and hasattr(layer.output, "LayerNorm") for layer in layers):
        raise ArtifactError("cannot export this adapter: its base model is not a BERT-family encoder.",
                            file=str(adapter_dir), fix="use backend='torch' for this encoder.")
    return layers
