"""The candidate-index config: which generators, how mentions are routed to names, how lists are fused.

A config is a plain dict (or YAML file), e.g.::

    generators:
      - {type: sparse, ngram_range: [2, 4]}
      - {type: dense, model: multilingual-e5-small, index: Flat}
    routing: fallback
    fusion: {method: rrf, weights: [1, 1]}

Every key is checked here, once: an unknown key or a wrong value is a ``ConfigError`` that names the key and
says what is allowed, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Mapping

from .._io import read_yaml_mapping
from ..errors import ConfigError

ROUTING_MODES = ("same", "fallback", "all")
FUSION_METHODS = ("rrf", "minmax", "zscore")

# Defaults per generator type. A key not listed here is unknown (ConfigError).
SPARSE_DEFAULTS: dict[str, Any] = {
    "type": "sparse",
    "name": None,  # label used in `describe()` and per-generator results; default "sparse", "sparse2", ...
    "analyzer": "char_wb",  # scikit-learn analyzer: char_wb (n-grams inside word boundaries) or char
    "ngram_range": [2, 4],
    "strip_accents": False,  # NFKC + casefold always; accents optional (they carry meaning in some languages)
    "min_df": 1,
    "max_features": None,
    "chunk_bytes": 64 << 20,  # dense product chunk budget per thread: bounds memory at any scale
    "threads": None,  # search threads (None: one per CPU)
    "names_per_concept": 4,  # k_names = this x k: names -> concepts dedup needs more names than concepts
    # Two-stage search for a language with >= prune_min_names names: n-grams in more than prune_df names only
    # rescore the prune_rescore x k_names names found by the others (None: always exhaustive). scale.md: recall.
    "prune_df": 10_000,
    "prune_min_names": 200_000,
    "prune_rescore": 16,
}
# a query encoder's precision: bf16 where native (encoding_speed_bf16.md, third rule), else fp32 (ONNX)
QUERY_PRECISION = "auto"
DENSE_DEFAULTS: dict[str, Any] = {
    "type": "dense",
    "name": None,
    "model": "multilingual-e5-small",  # a registered model name or a local Hugging Face folder
    "pooling": None,  # None: the model's own setting
    "query_prefix": None,
    "passage_prefix": None,
    "max_length": None,  # None: the model's own setting (32 for the embedded e5-small)
    "batch_size": 128,
    # auto: bf16 where the device computes it natively (torch; 1.9x the names/s of fp32 on a CPU with AVX512-BF16,
    # recall and in-context accuracy unchanged: encoding_speed_bf16.md), else fp32. Also fp32, bf16, int8,
    # int8-full (int8 costs recall: zh -2 points R@64, encoding_speed.md).
    "precision": "auto",
    # auto: ONNX Runtime (fused graph, same vectors as torch, faster) on the CPU when onnxruntime + onnx are
    # installed and the model is a local folder, else torch (GPU, hub ids, adapters). The index records the
    # backend it used, so one built with torch keeps torch. openvino (opt-in, the `openvino` extra): bf16 or
    # calibrated int8 / int8-full, 2.5x / 3.3x torch fp32 at recall@64 within 0.5 points (encoding_speed_openvino.md).
    "backend": "auto",
    "device": None,
    # A query encoder for the mentions (a distilled student of `model`, role query; None: `model` itself) and its
    # precision. It must have been distilled from these very weights: checked when the generator is built.
    "query_model": None,
    "query_precision": QUERY_PRECISION,
    "index": "Flat",  # FAISS factory string: Flat, HNSW32, IVF1024,PQ16, ...
    "train_size": 100_000,  # names sampled to train IVF / PQ indexes
    "names_per_concept": 4,  # k_names = this x k: names -> concepts dedup needs more names than concepts
    "search_batch": 4096,
    "search_params": None,  # FAISS ParameterSpace string, e.g. "efSearch=128" (HNSW) or "nprobe=16" (IVF)
}
# fallback_weights: weights for candidates found through another language's names (None: same as weights).
FUSION_DEFAULTS: dict[str, Any] = {"method": "rrf", "weights": None, "fallback_weights": None, "k": 60}
FILTER_DEFAULTS: dict[str, Any] = {
    "semantic_types": None,  # global allow-list of semantic types / groups (terminology `semantic_types`)
    "by_entity_type": None,  # mention entity type -> allowed semantic types (Mentions.types)
    "overfetch": 4,  # ask generators for overfetch x k so that k survive the filter
}
TOP_DEFAULTS: dict[str, Any] = {
    "generators": None,
    "routing": "fallback",
    "fusion": None,
    "filters": None,
    "long_forms": True,  # also query with Mentions.long_forms (abbreviation expansions); best score wins
    "default_lang": "en",  # language of mentions that carry none, and the fallback language of routing
}
GENERATOR_DEFAULTS = {"sparse": SPARSE_DEFAULTS, "dense": DENSE_DEFAULTS}


def _check_keys(d: Mapping, allowed: Mapping, where: str, source: str) -> None:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(d).__name__}.", file=source, field=where,
                          fix=f"write it as `key: value` pairs with keys {', '.join(sorted(allowed))}.")
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in {where}.", file=source, field=f"{where}.{unknown[0]}",
                          fix=f"use only: {', '.join(sorted(allowed))}.")


def _positive_int(value: Any, field: str, source: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{field} must be an integer >= {minimum}, got {value!r}.", file=source, field=field,
                          fix=f"set {field} to an integer >= {minimum}.")
    return value


def _generator(raw: Any, i: int, source: str) -> dict:
    where = f"generators[{i}]"
    if not isinstance(raw, Mapping) or "type" not in raw:
        raise ConfigError(f"{where} needs a `type`.", file=source, field=where,
                          fix="give each generator `type: sparse` or `type: dense`.")
    gtype = raw["type"]
    if gtype not in GENERATOR_DEFAULTS:
        raise ConfigError(f"unknown generator type {gtype!r}.", file=source, field=f"{where}.type",
                          fix=f"use one of: {', '.join(GENERATOR_DEFAULTS)}.")
    defaults = GENERATOR_DEFAULTS[gtype]
    _check_keys(raw, defaults, where, source)
    g = copy.deepcopy(defaults)
    g.update(copy.deepcopy(dict(raw)))
    if gtype == "sparse":
        rng = g["ngram_range"]
        if (not isinstance(rng, (list, tuple)) or len(rng) != 2 or not all(isinstance(x, int) for x in rng)
                or not 1 <= rng[0] <= rng[1]):
            raise ConfigError(f"ngram_range must be [min, max] with 1 <= min <= max, got {rng!r}.", file=source,
                              field=f"{where}.ngram_range", fix="e.g. ngram_range: [2, 4].")
        g["ngram_range"] = [int(rng[0]), int(rng[1])]
        if g["analyzer"] not in ("char_wb", "char"):
            raise ConfigError(f"analyzer must be char_wb or char, got {g['analyzer']!r}.", file=source,
                              field=f"{where}.analyzer", fix="use analyzer: char_wb (the default).")
        _positive_int(g["min_df"], f"{where}.min_df", source)
        _positive_int(g["chunk_bytes"], f"{where}.chunk_bytes", source, 1 << 16)
        _positive_int(g["names_per_concept"], f"{where}.names_per_concept", source)
        if g["threads"] is not None:
            _positive_int(g["threads"], f"{where}.threads", source)
        if g["max_features"] is not None:
            _positive_int(g["max_features"], f"{where}.max_features", source)
        if g["prune_df"] is not None:
            _positive_int(g["prune_df"], f"{where}.prune_df", source)
        _positive_int(g["prune_min_names"], f"{where}.prune_min_names", source, 0)
        _positive_int(g["prune_rescore"], f"{where}.prune_rescore", source)
    else:
        if not isinstance(g["model"], str) or not g["model"]:
            raise ConfigError("dense generator needs `model` (a model name or a local folder).", file=source,
                              field=f"{where}.model", fix="e.g. model: multilingual-e5-small.")
        if not isinstance(g["index"], str) or not g["index"]:
            raise ConfigError(f"index must be a FAISS factory string, got {g['index']!r}.", file=source,
                              field=f"{where}.index", fix="e.g. index: Flat (exact), HNSW32 or IVF1024,PQ16.")
        if g["query_model"] is not None and (not isinstance(g["query_model"], str) or not g["query_model"]):
            raise ConfigError("query_model must be a model name or folder.", file=source,
                              field=f"{where}.query_model", fix="e.g. query_model: hpo-align-e5small-4l-query.")
        if g["search_params"] is not None and not isinstance(g["search_params"], str):
            raise ConfigError("search_params must be a FAISS parameter string.", file=source,
                              field=f"{where}.search_params", fix='e.g. search_params: "efSearch=128".')
        if g["max_length"] is not None:
            _positive_int(g["max_length"], f"{where}.max_length", source, 2)
        for key in ("batch_size", "train_size", "names_per_concept", "search_batch"):
            _positive_int(g[key], f"{where}.{key}", source)
    return g


def normalize_config(config: Mapping | str | os.PathLike | None, source: str = "config") -> dict:
    """A complete, validated config (defaults filled in) from a dict, a YAML path or ``None`` (sparse only)."""
    if isinstance(config, (str, os.PathLike)):
        source = str(config)
        config = read_yaml(Path(config))
    if config is not None and not isinstance(config, Mapping):
        raise ConfigError(f"a candidate config is a mapping of settings, not a {type(config).__name__}.",
                          file=source, field="candidates",
                          fix="e.g. candidates: {generators: [{type: sparse}, {type: dense}]}.")
    raw = dict(config or {})
    _check_keys(raw, TOP_DEFAULTS, "config", source)
    cfg = copy.deepcopy(TOP_DEFAULTS)
    cfg.update(copy.deepcopy(raw))
    gens = cfg["generators"] if cfg["generators"] is not None else [{"type": "sparse"}]
    if not isinstance(gens, list) or not gens:
        raise ConfigError("generators must be a non-empty list.", file=source, field="generators",
                          fix="e.g. generators: [{type: sparse}].")
    cfg["generators"] = [_generator(g, i, source) for i, g in enumerate(gens)]
    names: set[str] = set()
    counts: dict[str, int] = {}
    for g in cfg["generators"]:
        counts[g["type"]] = counts.get(g["type"], 0) + 1
        if g["name"] is None:
            g["name"] = g["type"] if counts[g["type"]] == 1 else f"{g['type']}{counts[g['type']]}"
        if g["name"] in names:
            raise ConfigError(f"two generators are named {g['name']!r}.", file=source, field="generators.name",
                              fix="give each generator a distinct `name`.")
        names.add(g["name"])
    if cfg["routing"] not in ROUTING_MODES:
        raise ConfigError(f"routing must be one of {', '.join(ROUTING_MODES)}, got {cfg['routing']!r}.",
                          file=source, field="routing",
                          fix="same (the mention's language only), fallback (+ English), all (every language).")
    fusion = cfg["fusion"] or {}
    _check_keys(fusion, FUSION_DEFAULTS, "fusion", source)
    f = dict(FUSION_DEFAULTS)
    f.update(fusion)
    if f["method"] not in FUSION_METHODS:
        raise ConfigError(f"fusion.method must be one of {', '.join(FUSION_METHODS)}, got {f['method']!r}.",
                          file=source, field="fusion.method",
                          fix="rrf (reciprocal rank, the default), minmax or zscore (calibrated score fusion).")
    n_gen = len(cfg["generators"])
    if f["weights"] is None:
        f["weights"] = [1.0] * n_gen
    for key in ("weights", "fallback_weights"):
        if key == "fallback_weights" and f[key] is None:
            continue
        if (not isinstance(f[key], list) or len(f[key]) != n_gen
                or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in f[key])):
            raise ConfigError(f"fusion.{key} needs {n_gen} non-negative numbers (one per generator), "
                              f"got {f[key]!r}.", file=source, field=f"fusion.{key}",
                              fix=f"e.g. {key}: {[1] * n_gen}.")
        f[key] = [float(w) for w in f[key]]
    if not isinstance(f["k"], (int, float)) or isinstance(f["k"], bool) or f["k"] < 0:
        raise ConfigError(f"fusion.k must be a number >= 0, got {f['k']!r}.", file=source, field="fusion.k",
                          fix="use the usual reciprocal-rank constant, k: 60.")
    cfg["fusion"] = f
    filters = cfg["filters"] or {}
    _check_keys(filters, FILTER_DEFAULTS, "filters", source)
    flt = dict(FILTER_DEFAULTS)
    flt.update(filters)
    if flt["semantic_types"] is not None:
        if isinstance(flt["semantic_types"], str) or not isinstance(flt["semantic_types"], list):
            raise ConfigError("filters.semantic_types must be a list of semantic types.", file=source,
                              field="filters.semantic_types", fix="e.g. semantic_types: [T047, T191].")
        flt["semantic_types"] = [str(t) for t in flt["semantic_types"]]
    if flt["by_entity_type"] is not None:
        if not isinstance(flt["by_entity_type"], Mapping):
            raise ConfigError("filters.by_entity_type must map entity types to lists of semantic types.",
                              file=source, field="filters.by_entity_type",
                              fix="e.g. by_entity_type: {Disease: [T047], Phenotype: [T184]}.")
        flt["by_entity_type"] = {str(k): [str(t) for t in v] for k, v in flt["by_entity_type"].items()}
    _positive_int(flt["overfetch"], "filters.overfetch", source)
    cfg["filters"] = flt
    if not isinstance(cfg["long_forms"], bool):
        raise ConfigError("long_forms must be true or false.", file=source, field="long_forms",
                          fix="long_forms: true queries with abbreviation expansions too.")
    if not isinstance(cfg["default_lang"], str) or not cfg["default_lang"]:
        raise ConfigError("default_lang must be a language code.", file=source, field="default_lang",
                          fix="e.g. default_lang: en.")
    return cfg


def read_yaml(path: Path) -> dict:
    """A candidate config from a YAML file (errors name the file and line)."""
    return read_yaml_mapping(path, "candidate config")
