"""The benchmark config: which datasets, which pipelines, which cut-offs. Checked once, errors name file + key.

Example (``benchmarks/configs/smoke.yaml``)::

    name: smoke
    ks: [1, 5, 10, 64]
    datasets:
      - name: hpo-labels
        dataset: hpo-labels          # a key of xnorm.benchmark.DATASETS
        options: {max_per_language: 50}
    pipelines:
      - name: tfidf
        linker:                      # a Linker config (xnorm.linker.LinkerConfig keys)
          terminology: hpo-en
          candidates: {generators: [{type: sparse}], routing: fallback}
    baseline: tfidf                  # optional: paired tests of every other pipeline against this one
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import read_yaml_mapping
from ..errors import ConfigError
from ..eval.ranking import DEFAULT_KS
from .datasets import DATASETS

TOP_KEYS = {"name", "description", "data_root", "ks", "datasets", "pipelines", "batch_size", "baseline"}
DATASET_KEYS = {"name", "dataset", "terminology", "options"}
PIPELINE_KEYS = {"name", "description", "linker"}


@dataclass
class DatasetEntry:
    name: str
    dataset: str
    options: dict = field(default_factory=dict)
    terminology: str | None = None  # overrides the dataset's own default terminology


@dataclass
class PipelineEntry:
    name: str
    linker: dict
    description: str = ""


@dataclass
class BenchmarkConfig:
    name: str
    path: str
    datasets: list[DatasetEntry]
    pipelines: list[PipelineEntry]
    ks: list[int] = field(default_factory=lambda: list(DEFAULT_KS))
    data_root: str | None = None
    description: str = ""
    batch_size: int = 256
    baseline: str | None = None  # a pipeline name: the report tests every other pipeline against it, paired
    raw: dict = field(default_factory=dict)


def _unknown(d: dict, allowed: set[str], where: str, path: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise ConfigError(f"unknown key {extra[0]!r}.", file=path, field=f"{where}{extra[0]}",
                          fix=f"use only: {', '.join(sorted(allowed))}.")


def _named_list(value: Any, key: str, path: str) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"`{key}` must be a non-empty list.", file=path, field=key,
                          fix=f"list at least one entry under `{key}:`, each a mapping with a `name`.")
    names = set()
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or not entry.get("name"):
            raise ConfigError("each entry must be a mapping with a `name`.", file=path, field=f"{key}[{i}]",
                              fix="write e.g. `- name: tfidf`.")
        if entry["name"] in names:
            raise ConfigError(f"duplicate name {entry['name']!r}.", file=path, field=f"{key}[{i}].name",
                              fix="give every entry its own name (it keys the results).")
        names.add(entry["name"])
    return value


def _check_candidates(linker: dict) -> None:
    """Check the candidate config now, so that a typo fails before hours of earlier runs, not after."""
    if "candidates" not in linker:
        return
    from ..candidates.config import normalize_config

    try:
        normalize_config(linker["candidates"])
    except ConfigError as e:
        field = e.field or ""
        field = field[len("config."):] if field.startswith("config.") else field
        raise ConfigError(e.message, field=f"candidates.{field}".rstrip("."), fix=e.fix) from None


def load_config(path: str | os.PathLike) -> BenchmarkConfig:
    """Read and check a benchmark YAML file."""
    from ..linker import LinkerConfig

    path_s = str(path)
    p = Path(path)
    raw = read_yaml_mapping(p, "benchmark config")
    _unknown(raw, TOP_KEYS, "", path_s)
    ks = raw.get("ks", list(DEFAULT_KS))
    if not isinstance(ks, list) or not ks or not all(isinstance(k, int) and k >= 1 for k in ks):
        raise ConfigError(f"`ks` must be a list of integers >= 1, got {ks!r}.", file=path_s, field="ks",
                          fix="e.g. ks: [1, 5, 10, 64].")
    datasets = []
    for i, d in enumerate(_named_list(raw.get("datasets"), "datasets", path_s)):
        _unknown(d, DATASET_KEYS, f"datasets[{i}].", path_s)
        key = d.get("dataset", d["name"])
        if key not in DATASETS:
            raise ConfigError(f"unknown dataset {key!r}.", file=path_s, field=f"datasets[{i}].dataset",
                              fix=f"use one of {', '.join(DATASETS)}.")
        options = d.get("options") or {}
        if not isinstance(options, dict):
            raise ConfigError("`options` must be a mapping.", file=path_s, field=f"datasets[{i}].options",
                              fix="write options as `key: value` pairs.")
        datasets.append(DatasetEntry(d["name"], key, copy.deepcopy(options), d.get("terminology")))
    pipelines = []
    for i, pl in enumerate(_named_list(raw.get("pipelines"), "pipelines", path_s)):
        _unknown(pl, PIPELINE_KEYS, f"pipelines[{i}].", path_s)
        linker = pl.get("linker") or {}
        if not isinstance(linker, dict):
            raise ConfigError("`linker` must be a mapping (a Linker config).", file=path_s,
                              field=f"pipelines[{i}].linker", fix="see `xnorm link --help` for the keys.")
        try:
            LinkerConfig.from_dict(dict(linker), source=path_s)
            _check_candidates(linker)
        except ConfigError as e:
            raise ConfigError(e.message, file=path_s, field=f"pipelines[{i}].linker.{e.field or ''}".rstrip("."),
                              fix=e.fix) from None
        pipelines.append(PipelineEntry(pl["name"], copy.deepcopy(linker), pl.get("description", "")))
    batch_size = raw.get("batch_size", 256)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError("`batch_size` must be a positive integer.", file=path_s, field="batch_size",
                          fix="e.g. batch_size: 256.")
    baseline = raw.get("baseline")
    if baseline is not None and baseline not in {pl.name for pl in pipelines}:
        raise ConfigError(f"`baseline` {baseline!r} is not one of the pipelines.", file=path_s, field="baseline",
                          fix=f"name one of: {', '.join(pl.name for pl in pipelines)}.")
    return BenchmarkConfig(
        name=str(raw.get("name") or p.stem), path=path_s, datasets=datasets, pipelines=pipelines,
        ks=sorted(set(ks)), data_root=raw.get("data_root"), description=raw.get("description", ""),
        batch_size=batch_size, baseline=baseline, raw=raw,
    )
