"""``CandidateIndex``: the terminology, its fitted generators, routing, fusion and filters, as one saved folder.

Folder layout (every file's SHA-256 is in the manifest and checked on load; nothing is ever unpickled)::

    manifest.json          format + version, xnorm version, config, generators, checksums
    config.yaml            the full config (defaults filled in), for people to read
    terminology/           Terminology.save
    gen-0-sparse/          vocabulary.json, idf.npy, names.npz
    gen-1-dense/           names-<i>.faiss (one per name language), encoder reference in the manifest
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .. import __version__
from .._io import atomic_dir, sha256_file
from ..errors import ArtifactError, ConfigError
from ..models.encoder import resolve_precision
from ..terminology.core import Terminology, read_manifest, verify_checksums
from ..terminology.hierarchy import subtree_mask
from ..types import GENERATOR_LISTS, Candidates, Mentions
from .abbreviations import expand_mentions
from .base import CandidateGenerator, merge_best
from .cache import RowCache
from .config import QUERY_PRECISION, normalize_config
from .dense import DenseGenerator, LazyEncoder, make_encoder, make_query_encoder
from .filters import SemanticTypeFilter, allowed_per_mention, compact
from .fusion import fuse_by_config
from .sparse import SparseGenerator

FORMAT = "xnorm-candidate-index"
FORMAT_VERSION = 1


def _encoder_for(cfg: dict, encoders: Mapping[str, Any] | None, saved: dict | None = None):
    """The encoder of a dense generator: given by the caller (by generator name or model), else built."""
    encoders = encoders or {}
    for key in (cfg["name"], cfg["model"]):
        if key in encoders:
            return encoders[key]
    if saved:
        from ..models.encoder import Encoder

        return LazyEncoder(lambda: Encoder.from_config(saved), saved)
    return make_encoder(cfg)


def _precision(settings: dict, key: str = "precision") -> str:
    """What a dense generator's encoder runs at, e.g. ``bf16 (auto)``, for ``describe``."""
    asked = settings.get(key, "fp32")
    runs = resolve_precision(asked, settings.get("device"), settings.get("backend", "auto"))
    return f"{runs} (auto)" if asked == "auto" else runs


class CandidateIndex:
    """Generators fitted on one terminology, with routing, fusion and filters from one config."""

    def __init__(self, terminology: Terminology, config: dict, generators: Sequence[CandidateGenerator],
                 build_seconds: float | None = None) -> None:
        self.terminology = terminology
        self.config = config
        self.generators = list(generators)
        self.build_seconds = build_seconds
        self._type_filter: SemanticTypeFilter | None = None
        self._subtrees: dict[frozenset, np.ndarray] = {}  # `under` roots -> bool[C] (the hierarchy walked once)

    # ---- building ----------------------------------------------------------------------------------------
    @classmethod
    def build(cls, terminology: Terminology, config: Mapping | str | os.PathLike | None = None, *,
              encoders: Mapping[str, Any] | None = None, show_progress: bool = False) -> "CandidateIndex":
        """Fit every generator of ``config`` (dict, YAML path, or ``None`` = sparse only) on ``terminology``.

        ``encoders`` maps a dense generator's name (or model string) to a ready encoder object, e.g. one that
        is already loaded; otherwise the encoder is built from the config.
        """
        cfg = normalize_config(config)
        if terminology.n_names == 0:
            raise ConfigError("the terminology has no names to index.", field="terminology",
                              fix="check the terminology recipe (languages, sources).")
        start = time.perf_counter()
        generators: list[CandidateGenerator] = []
        for g in cfg["generators"]:
            if g["type"] == "sparse":
                gen: CandidateGenerator = SparseGenerator.from_config(g)
            else:
                gen = DenseGenerator.from_config(g, encoder=_encoder_for(g, encoders))
            generators.append(gen.fit(terminology, show_progress=show_progress))
        return cls(terminology, cfg, generators, time.perf_counter() - start)

    def set_query_model(self, model: str | None, *, generator: str | None = None,
                        precision: str = QUERY_PRECISION) -> None:
        """Encode the mentions of a dense generator with ``model``, a query encoder distilled from the model that
        encoded its names (``None``: that model again). The names' vectors stay as they are: no rebuild."""
        dense = [(i, g) for i, g in enumerate(self.generators) if isinstance(g, DenseGenerator)
                 and generator in (None, g.name)]
        if len(dense) != 1:
            names = [g.name for g in self.generators if isinstance(g, DenseGenerator)]
            raise ConfigError(f"{'no' if not dense else 'more than one'} dense generator to give a query model "
                              f"(dense generators: {', '.join(names) or 'none'}).", field="query_model",
                              fix="name one with generator=..." if dense else "use an index with a dense generator.")
        i, gen = dense[0]
        cfg = {**gen.settings, "query_model": model, "query_precision": precision}
        gen.set_query_encoder(make_query_encoder(cfg))
        gen.settings = cfg
        self.config["generators"][i].update(query_model=model, query_precision=precision)

    def set_cache(self, max_mb: float) -> None:
        """Keep up to ``max_mb`` MB of candidate rows across calls, shared by the generators (0: off): a
        (language, text) answered before is not encoded or searched again. Results are the same either way."""
        cache = RowCache(int(max_mb * 2**20)) if max_mb > 0 else None
        for g in self.generators:
            g.cache = cache

    def clear_cache(self) -> None:
        """Forget the cached rows (e.g. to time a cold start)."""
        for g in self.generators:
            g.clear_cache()

    def describe_cache(self) -> str | None:
        """One line on the candidate cache since it was set (None when off), for ``xnorm link --explain``."""
        cache = self.generators[0].cache
        if cache is None:
            return None
        looked = cache.hits + cache.misses
        return (f"candidate cache: {cache.hits:,} of {looked:,} distinct (generator, text) lookups answered from "
                f"earlier batches; {cache.nbytes / 2**20:.1f} MB held")

    # ---- candidates --------------------------------------------------------------------------------------
    def generator_candidates(self, mentions: Mentions, k: int = 64) -> dict[str, Candidates]:
        """Each generator's own ranked list (before fusion and filters), by generator name.

        A mention with a long form (``Mentions.long_forms``) is also queried with it; per generator, each
        concept keeps the better score of the two queries (same generator, same scale).
        """
        routing, lang = self.config["routing"], self.config["default_lang"]
        lists = {g.name: g.candidates(mentions, k, routing, lang) for g in self.generators}
        if self.config["long_forms"]:
            rows, expanded = expand_mentions(mentions)
            if len(rows):
                for g in self.generators:
                    own = lists[g.name]
                    both = merge_best([own[rows], g.candidates(expanded, k, routing, lang)], k, own.source)
                    for attr in ("concepts", "scores", "names", "routes"):
                        getattr(own, attr)[rows] = getattr(both, attr)
        return lists

    def _generate(self, mentions: Mentions, k: int) -> tuple[Candidates, dict[str, Candidates]]:
        """The fused list and the generators' own lists it was fused from."""
        lists = self.generator_candidates(mentions, k)
        if len(lists) == 1:
            return next(iter(lists.values())), lists
        return fuse_by_config(list(lists.values()), k, self.config["fusion"]), lists

    def subtree(self, under: Iterable[str]) -> np.ndarray:
        """bool[C]: the concepts ``under`` and their is_a descendants (``ConfigError`` for unknown ids or a
        terminology without hierarchy); cached per set of roots."""
        key = frozenset(under)
        if key not in self._subtrees:
            self._subtrees[key] = subtree_mask(self.terminology, sorted(key))
        return self._subtrees[key]

    def candidates(self, mentions: Mentions, k: int = 64, *,
                   allowed_types: Iterable[str] | Sequence[Iterable[str] | None] | None = None,
                   under: Iterable[str] | None = None) -> Candidates:
        """Ranked candidates ``[len(mentions), k]``: routed, deduplicated by concept, fused, filtered.

        Mentions with a long form (``Mentions.long_forms``) are also queried with it (see
        ``generator_candidates``). ``allowed_types``: a collection of semantic types for all mentions, or one per
        mention (``None`` = no filter for that one); without it the config's ``filters`` apply. ``under``: keep
        only these concepts and their is_a descendants (e.g. ``["HP:0000707"]``, the nervous system branch).
        """
        n = len(mentions)
        if n == 0:
            return Candidates.empty(0, k, "fusion" if len(self.generators) > 1 else self.generators[0].name)
        _, filtering = self._type_rule(mentions, allowed_types)
        if under is not None:
            self.subtree(under)  # unknown roots fail before the search (the mask is cached for restrict)
        fetch = k * self.config["filters"]["overfetch"] if filtering or under is not None else k
        result, lists = self._generate(mentions, fetch)
        result = self.restrict(mentions, result, allowed_types=allowed_types, under=under).top(k)
        result.meta[GENERATOR_LISTS] = lists
        return result

    def restrict(self, mentions: Mentions, candidates: Candidates, *,
                 allowed_types: Iterable[str] | Sequence[Iterable[str] | None] | None = None,
                 under: Iterable[str] | None = None) -> Candidates:
        """``candidates`` without the concepts :meth:`candidates` would not give these mentions (outside the
        ``under`` branches, or of a semantic type the filters do not allow; same arguments), order kept. For
        candidates added after the search, such as those a feature reranker remembers."""
        if under is not None:
            subtree = self.subtree(under)
            candidates = compact(candidates, (candidates.concepts >= 0) & subtree[np.maximum(candidates.concepts, 0)])
        per_mention, filtering = self._type_rule(mentions, allowed_types)
        if filtering:
            if self._type_filter is None:
                self._type_filter = SemanticTypeFilter(self.terminology)
            if per_mention is not None:
                candidates = self._type_filter.apply_per_mention(candidates, per_mention)
            else:
                candidates = self._type_filter.apply(candidates, allowed_types)  # type: ignore[arg-type]
        return candidates

    def _type_rule(self, mentions: Mentions, allowed_types) -> tuple[list | None, bool]:
        """(per-mention allow-lists or None, whether a semantic-type filter applies at all)."""
        if allowed_types is None:
            flt = self.config["filters"]
            per_mention = allowed_per_mention(mentions, flt["semantic_types"], flt["by_entity_type"])
            return per_mention, per_mention is not None
        if isinstance(allowed_types, (list, tuple)) and len(allowed_types) == len(mentions) and not all(
                isinstance(a, str) for a in allowed_types):
            return list(allowed_types), True
        return None, True

    def describe(self) -> str:
        """One line: what generates candidates and how they are combined."""
        gens = []
        for g in self.generators:
            if isinstance(g, SparseGenerator):
                gens.append(f"{g.name}(tfidf {g.analyzer} {g.ngram_range[0]}-{g.ngram_range[1]})")
            else:
                query_model = g.settings.get("query_model")
                mentions_by = f", mentions by {query_model} {_precision(g.settings, 'query_precision')}" \
                    if query_model else ""
                precision = "" if g.settings.get("precision", "fp32") == "fp32" else f" {_precision(g.settings)}"
                gens.append(f"{g.name}({g.settings.get('model', '?')}{precision}{mentions_by}, faiss {g.factory})")
        fusion = f" fused by {self.config['fusion']['method']}" if len(gens) > 1 else ""
        return (f"{' + '.join(gens)}{fusion}, routing {self.config['routing']}, "
                f"{len(self.terminology)} concepts / {self.terminology.n_names} names")

    # ---- persistence -------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the index folder atomically (a failed save leaves any old folder in place)."""
        import yaml

        path = Path(path)
        with atomic_dir(path) as tmp:
            self.terminology.save(tmp / "terminology")
            files = [f"terminology/{f.name}" for f in sorted((tmp / "terminology").iterdir())]
            gens = []
            for i, g in enumerate(self.generators):
                sub = f"gen-{i}-{g.type}"
                written = g.save(tmp / sub)
                files += [f"{sub}/{f}" for f in written]
                entry = {"name": g.name, "type": g.type, "dir": sub, "config": g.config(), "languages": g.languages}
                if isinstance(g, DenseGenerator):
                    entry["encoder"] = g.encoder_config()
                    entry["dim"] = int(next(iter(g.indexes.values())).d) if g.indexes else None
                    entry["weights"] = g.weights_fingerprint()
                gens.append(entry)
            (tmp / "config.yaml").write_text(yaml.safe_dump(self.config, sort_keys=False, allow_unicode=True),
                                             encoding="utf-8")
            files.append("config.yaml")
            manifest = {
                "format": FORMAT, "format_version": FORMAT_VERSION, "xnorm_version": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "concepts": len(self.terminology), "names": self.terminology.n_names,
                "languages": self.terminology.languages, "build_seconds": self.build_seconds,
                "config": self.config, "generators": gens,
                "sha256": {f: sha256_file(tmp / f) for f in files},
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str),
                                               encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, encoders: Mapping[str, Any] | None = None,
             verify: bool = True) -> "CandidateIndex":
        """Read a folder written by ``save``: checks format, version and (if ``verify``) every checksum."""
        path = Path(path)
        if not path.is_dir():
            raise ArtifactError("candidate index folder not found.", file=str(path),
                                fix="build one with `xnorm index --terminology ... --config ... -o DIR`.")
        manifest = read_manifest(path, FORMAT, FORMAT_VERSION)
        if verify:
            verify_checksums(path, manifest)
        try:
            cfg = normalize_config(manifest["config"], source=str(path / "manifest.json"))
        except ConfigError as e:
            raise ArtifactError(f"the stored config is not valid for this xnorm ({e.message}).",
                                file=str(path / "manifest.json"), field="config",
                                fix="rebuild the index with this version of xnorm.") from None
        terminology = Terminology.load(path / "terminology", verify=verify)
        generators: list[CandidateGenerator] = []
        for entry in manifest.get("generators", []):
            sub = path / entry["dir"]
            if entry["type"] == "sparse":
                generators.append(SparseGenerator.load(sub, entry["config"], terminology))
            elif entry["type"] == "dense":
                encoder = _encoder_for(entry["config"], encoders, entry.get("encoder"))
                gen = DenseGenerator.load(sub, entry["config"], terminology, encoder=encoder)
                now = gen.weights_fingerprint()
                if entry.get("weights") and now and now != entry["weights"]:
                    raise ArtifactError(
                        f"generator {entry['name']!r}: the names were encoded by other weights of "
                        f"{entry['config']['model']!r} (fingerprint {entry['weights']}) than the ones loaded now "
                        f"({now}); its vectors and the new query vectors do not match.",
                        file=str(path / "manifest.json"), field=f"generators.{entry['name']}.weights",
                        fix="rebuild the index with `xnorm index` (a cached default index is rebuilt by itself).")
                generators.append(gen)
            else:
                raise ArtifactError(f"unknown generator type {entry['type']!r}.", file=str(path / "manifest.json"),
                                    field="generators", fix="rebuild the index with this version of xnorm.")
        if not generators:
            raise ArtifactError("the manifest lists no generators.", file=str(path / "manifest.json"),
                                field="generators", fix="rebuild the index with `xnorm index`.")
        return cls(terminology, cfg, generators, manifest.get("build_seconds"))

    def size_on_disk(self, path: str | os.PathLike) -> dict[str, int]:
        """Bytes per top-level part of a saved index folder (for `xnorm index` output and benchmarks)."""
        sizes: dict[str, int] = {}
        for f in Path(path).rglob("*"):
            if f.is_file():
                part = f.relative_to(path).parts[0]
                sizes[part] = sizes.get(part, 0) + f.stat().st_size
        return sizes
