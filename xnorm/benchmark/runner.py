"""Run a benchmark grid (datasets x pipelines), time and score every run, write results.json / .md / plots.

Each run is saved into ``results.json`` (atomically) as soon as it ends, with a fingerprint of its dataset
options and pipeline config; ``resume=True`` skips runs whose fingerprint is already there, so an interrupted
benchmark continues where it stopped and a changed config reruns only what changed.
"""
from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from .. import __version__
from .._io import atomic_write
from ..errors import ConfigError, InputError, XnormError
from ..terminology import load_terminology
from .config import BenchmarkConfig, DatasetEntry, PipelineEntry, load_config
from .datasets import Dataset, ExtraNames, build_dataset
from .machine import current_rss_mb, git_commit, machine_description, peak_rss_mb

log = logging.getLogger(__name__)

RESULTS_FORMAT = "xnorm-benchmark-results"
RESULTS_VERSION = 1


class LinkerLike(Protocol):
    def link(self, documents, *, top_k: int | None = None, field: str = "normalized", overwrite: bool = False,
             batch_size: int = 64, progress=None): ...


LinkerFactory = Callable[[Any, dict], LinkerLike]


class EmbeddingCache:
    """An encoder whose embeddings are computed once per process: the pipelines of one benchmark (dense,
    fusion, ± fallback, held-out variants) index mostly the same names and query the same mentions."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self.vectors: dict[tuple[str, str], np.ndarray] = {}

    def encode(self, texts, kind: str = "query", show_progress: bool = False) -> np.ndarray:
        if not len(texts):
            return self.encoder.encode(texts, kind=kind)
        missing = [t for t in dict.fromkeys(texts) if (kind, t) not in self.vectors]
        if missing:
            vecs = self.encoder.encode(missing, kind=kind, show_progress=show_progress)
            self.vectors.update(((kind, t), v) for t, v in zip(missing, vecs))
        return np.stack([self.vectors[kind, t] for t in texts])

    def __getattr__(self, name: str):  # dim, config(), ...: the wrapped encoder's
        return getattr(self.encoder, name)


_ENCODERS: dict[str, EmbeddingCache] = {}


def build_linker(terminology, linker_config: dict) -> LinkerLike:
    """The default pipeline factory: fit a ``CandidateIndex`` on ``terminology`` and wrap it in a ``Linker``.

    Dense generators with the same encoder settings share one encoder and its embeddings (``EmbeddingCache``).
    """
    from ..candidates import CandidateIndex
    from ..candidates.config import normalize_config
    from ..candidates.dense import ENCODER_KEYS, make_encoder
    from ..linker import Linker, LinkerConfig, default_candidates

    cfg = LinkerConfig.from_dict({k: v for k, v in linker_config.items() if k not in ("terminology", "index")})
    if cfg.candidates is None:
        cfg.candidates = default_candidates(terminology)
    encoders = {}
    for g in normalize_config(cfg.candidates)["generators"]:
        if g["type"] == "dense":
            key = json.dumps({k: g.get(k) for k in ("model", *ENCODER_KEYS)}, sort_keys=True, default=str)
            if key not in _ENCODERS:
                _ENCODERS[key] = EmbeddingCache(make_encoder(g))
            encoders[g["name"]] = _ENCODERS[key]
    return Linker(CandidateIndex.build(terminology, cfg.candidates, encoders=encoders), cfg)


# ---- terminology -------------------------------------------------------------------------------------------
def with_extra_names(terminology, extra: ExtraNames, name_type: str = "translation"):
    """A copy of ``terminology`` with ``extra`` names added to existing concepts (unknown concepts are counted)."""
    from dataclasses import replace

    row = {cid: i for i, cid in enumerate(terminology.concept_ids.tolist())}
    rows = np.fromiter((row.get(c, -1) for c in extra.concept_ids), dtype=np.int64, count=len(extra))
    keep = rows >= 0

    def cat(a, b):
        return np.concatenate([a, np.asarray(b, dtype=a.dtype)])

    n = int(keep.sum())
    out = replace(
        terminology,
        name_texts=cat(terminology.name_texts, extra.texts[keep]),
        name_concepts=cat(terminology.name_concepts, rows[keep]),
        name_langs=cat(terminology.name_langs, extra.langs[keep]),
        name_types=cat(terminology.name_types, np.full(n, name_type, dtype=object)),
        name_provenance=cat(terminology.name_provenance, extra.provenance[keep]),
        aliases=dict(terminology.aliases),
        metadata={**terminology.metadata, "benchmark_extra_names": n,
                  "checksum": f"{terminology.metadata.get('checksum', '')}+extra{n}"},
    )
    return out, int((~keep).sum())


# ---- one run -----------------------------------------------------------------------------------------------
def fingerprint(entry: DatasetEntry, pipeline: PipelineEntry, ks: list[int]) -> str:
    blob = json.dumps({"dataset": entry.dataset, "options": entry.options, "terminology": entry.terminology,
                       "linker": pipeline.linker, "ks": ks}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


MENTION_KEYS = ("accuracy@1", "lenient@1", "mrr")


def _mention_figures(result: dict, ks: list[int]) -> dict:
    out = {k: result[k] for k in MENTION_KEYS if k in result}
    out.update({f"recall@{k}": result[f"recall@{k}"] for k in ks if f"recall@{k}" in result})
    out["n"] = result.get("n_mentions", result.get("n"))
    return out


def run_one(dataset: Dataset, terminology, pipeline: PipelineEntry, ks: list[int], factory: LinkerFactory,
            batch_size: int = 256, show_progress: bool = True, label: str = "",
            cache: dict | None = None, terminology_key: str = "") -> dict:
    """Build the pipeline over ``terminology``, link ``dataset``'s mentions, score them; timings included.

    ``cache`` (optional) keeps built pipelines by (``terminology_key``, linker config): a later run over the
    same index names reuses the index instead of rebuilding it, and says so in its timing.
    """
    from tqdm.auto import tqdm

    from ..eval.breakdown import group_keys
    from ..eval.documents import align_documents, evaluate_aligned

    top = max(ks)
    linker_cfg = copy.deepcopy(pipeline.linker)
    linker_cfg["top_k"] = top
    linker_cfg["k"] = max(int(linker_cfg.get("k", 64)), top)
    rss_before = current_rss_mb()
    cache_key = (terminology_key, json.dumps(linker_cfg, sort_keys=True, default=str))
    reused_from = None
    if cache is not None and terminology_key and cache_key in cache:
        linker, build_s, reused_from = cache[cache_key]
    else:
        t0 = time.perf_counter()
        linker = factory(terminology, linker_cfg)
        build_s = time.perf_counter() - t0
        if cache is not None and terminology_key:
            cache[cache_key] = (linker, build_s, label)

    gold = dataset.documents
    queries = copy.deepcopy(gold)  # the linker writes into its input; gold stays untouched
    n_mentions = dataset.n_mentions
    bar = tqdm(total=n_mentions, desc=label or pipeline.name, unit="mention", disable=not show_progress,
               leave=False)
    linker.index.clear_cache()  # each dataset timed from a cold cache, even on a reused linker
    t0 = time.perf_counter()
    preds = list(linker.link(queries, top_k=top, field="normalized", overwrite=True, batch_size=batch_size,
                             progress=bar.update))
    link_s = time.perf_counter() - t0
    bar.close()
    aligned = align_documents(preds, gold)
    # With a hierarchy, near-misses one is_a level off also count in lenient@1 (overall and per language).
    hierarchy = terminology if len(terminology.is_a) else None
    scores, ranks = evaluate_aligned(aligned, ks=ks, per=("lang",), aliases=terminology.aliases,
                                     hierarchy=hierarchy, is_a_levels=1)
    if hierarchy is not None:
        scores["lenient@1"] = scores["hierarchy"]["lenient@1"]
    per_lang = {lang: _mention_figures(r, ks) for lang, r in scores.get("per", {}).get("lang", {}).items()}
    langs = group_keys(aligned.keys["lang"])
    # First-hit rank of every gold mention (0: not in the top k), per language in gold order: two pipelines'
    # lists pair up mention by mention, for the report's paired tests.
    gold_ranks = {lang: ranks[langs == lang].tolist() for lang in per_lang}
    return {
        "status": "ok",
        "metrics": {**_mention_figures(scores, ks), "n": n_mentions,
                    **{m: scores[m] for m in ("strict", "partial", "loose") if m in scores}},
        "per_language": per_lang,
        "timing": {
            "index_build_s": round(build_s, 3), "index_reused_from": reused_from, "link_s": round(link_s, 3),
            "mentions_per_s": round(n_mentions / link_s, 1) if link_s > 0 else None,
            "rss_before_mb": rss_before, "rss_after_mb": current_rss_mb(),
            "peak_rss_mb": peak_rss_mb(),  # process high-water mark so far (includes earlier runs)
        },
        "n_mentions": n_mentions,
        "n_documents": len(gold),
        "terminology": {"names": int(terminology.n_names), "concepts": int(len(terminology)),
                        "languages": terminology.languages},
        "pipeline": getattr(linker, "pipeline", pipeline.name),
        "gold_ranks": gold_ranks,
    }


# ---- the grid ----------------------------------------------------------------------------------------------
def default_results_dir(config: BenchmarkConfig, root: str | os.PathLike = "benchmarks/results") -> Path:
    return Path(root) / f"{dt.date.today().isoformat()}-{config.name}"


def _read_results(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read previous results ({e}).", file=str(path),
                         fix="remove the file or choose another output folder with -o.") from None
    if data.get("format") != RESULTS_FORMAT:
        raise InputError("not an xnorm benchmark results file.", file=str(path), field="format",
                         fix="choose another output folder with -o.")
    return data


def _save(results: dict, out: Path) -> None:
    with atomic_write(out / "results.json") as f:
        json.dump(results, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")


def _in_config(e: XnormError, config: BenchmarkConfig, where: str) -> XnormError:
    """The same error, pointing at the config file and the entry it came from (a data file is kept in the text)."""
    field = f"{where}.{e.field}" if e.field and not e.field.startswith(where) else (e.field or where)
    message = f"{e.file}{f':{e.line}' if e.line else ''}: {e.message}" if e.file and e.file != config.path \
        else e.message
    return type(e)(message, file=config.path, document=e.document, field=field, fix=e.fix)


def _names_key(extra: ExtraNames | None) -> str:
    """Content key of the names a dataset adds to the index ("" for none): equal names share one index."""
    if extra is None or not len(extra):
        return ""
    h = hashlib.sha256()
    for col in (extra.concept_ids, extra.texts, extra.langs):
        h.update("\x1f".join(map(str, col.tolist())).encode())
    return h.hexdigest()[:16]


def run_benchmark(
    config: str | os.PathLike | BenchmarkConfig,
    output_dir: str | os.PathLike | None = None,
    *,
    resume: bool = False,
    factory: LinkerFactory | None = None,
    show_progress: bool = True,
    echo: Callable[[str], None] = lambda s: log.info(s),
) -> Path:
    """Run every (dataset, pipeline) of ``config``; returns the results folder (results.json, results.md, plots)."""
    cfg = config if isinstance(config, BenchmarkConfig) else load_config(config)
    factory = factory or build_linker
    out = Path(output_dir) if output_dir else default_results_dir(cfg)
    results_path = out / "results.json"
    if results_path.exists() and not resume:
        raise ConfigError("the results folder already holds results.json.", file=str(results_path),
                          fix="pass --resume to continue it, or -o to write somewhere else.")
    if resume and results_path.exists():
        results = _read_results(results_path)
    else:
        results = {"format": RESULTS_FORMAT, "format_version": RESULTS_VERSION, "runs": {}, "datasets": {}}
    results.update({
        "name": cfg.name, "config_path": cfg.path, "config": cfg.raw, "ks": cfg.ks,
        "machine": machine_description(), "git": git_commit(), "xnorm_version": __version__,
        "updated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    })
    results.setdefault("started", results["updated"])
    # Nothing is written before the first run ends: a config or data error leaves no half-made results folder.
    base_terms: dict[str, Any] = {}
    linkers: dict = {}
    for i, entry in enumerate(cfg.datasets):
        todo = [p for p in cfg.pipelines
                if results["runs"].get(f"{entry.name}/{p.name}", {}).get("fingerprint") != fingerprint(entry, p, cfg.ks)]
        if not todo:
            echo(f"{entry.name}: all {len(cfg.pipelines)} runs already done (resume)")
            continue
        try:
            dataset = build_dataset(entry.dataset, entry.options, cfg.data_root)
        except XnormError as e:
            raise _in_config(e, cfg, f"datasets[{i}]") from None
        results["datasets"][entry.name] = {
            "dataset": entry.dataset, "options": entry.options, "documents": len(dataset.documents),
            "mentions": dataset.n_mentions, "languages": dataset.languages(), "db_name": dataset.db_name,
            "machine_translated": list(dataset.machine_translated), "metadata": dataset.metadata,
            "index_terminology": results["datasets"].get(entry.name, {}).get("index_terminology", {}),
        }
        specs = {}
        for j, pipeline in enumerate(todo):
            spec = pipeline.linker.get("terminology") or entry.terminology or dataset.default_terminology
            if not spec:
                raise ConfigError(f"no terminology for dataset {entry.dataset!r} (its ids are "
                                  f"{dataset.db_name or 'of an unknown source'}).", file=cfg.path,
                                  field=f"datasets[{i}].terminology",
                                  fix="set `terminology:` to a saved terminology folder or recipe that holds them.")
            specs[pipeline.name] = spec
        names_key = _names_key(dataset.extra_names)
        wanted = {f"{spec}|{names_key}" for spec in specs.values()}
        # Keep in memory only the index terminologies (and pipelines built on them) this dataset uses: a later
        # dataset over the same names (e.g. the same queries, English-only index) reuses the built indexes.
        for stale in set(base_terms) - wanted:
            del base_terms[stale]
        for stale in [k for k in linkers if k[0] not in wanted]:
            del linkers[stale]
        for j, pipeline in enumerate(cfg.pipelines):
            run_id = f"{entry.name}/{pipeline.name}"
            fp = fingerprint(entry, pipeline, cfg.ks)
            if pipeline not in todo:
                echo(f"{run_id}: done already, skipped (resume)")
                continue
            spec = specs[pipeline.name]
            key = f"{spec}|{names_key}"
            if key not in base_terms:
                try:
                    term = load_terminology(spec)
                except XnormError as e:
                    raise _in_config(e, cfg, f"pipelines[{j}].linker.terminology") from None
                dropped = 0
                if dataset.extra_names is not None and len(dataset.extra_names):
                    term, dropped = with_extra_names(term, dataset.extra_names)
                base_terms[key] = (term, dropped)
            term, dropped = base_terms[key]
            results["datasets"][entry.name].setdefault("index_terminology", {})[spec] = {
                "names": int(term.n_names), "concepts": int(len(term)),
                "extra_names_added": int(term.metadata.get("benchmark_extra_names", 0)),
                "extra_names_unknown_concept": dropped,
            }
            echo(f"{run_id}: {dataset.n_mentions} mentions, {term.n_names} names")
            record = run_one(dataset, term, pipeline, cfg.ks, factory, cfg.batch_size,
                             show_progress, label=run_id, cache=linkers, terminology_key=key)
            record.update({"dataset": entry.name, "pipeline_name": pipeline.name, "fingerprint": fp,
                           "terminology_spec": spec,
                           "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
            results["runs"][run_id] = record
            results["updated"] = record["finished"]
            _save(results, out)  # every finished run is on disk before the next starts
            m = record["metrics"]
            echo(f"{run_id}: acc@1 {m.get('accuracy@1', 0):.3f}  mrr {m.get('mrr', 0):.3f}  "
                 f"{record['timing']['mentions_per_s']} mentions/s")
    from .report import write_plots, write_report

    write_report(results, cfg, out / "results.md")
    notice = write_plots(results, cfg, out)
    if notice:
        echo(notice)
    return out
