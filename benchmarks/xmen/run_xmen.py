"""Run one xMEN 1.0.8 pipeline (TF-IDF n-gram, SapBERT-style dense, or their ensemble) on BigBIO queries.

Runs INSIDE xMEN's own virtual environment (``setup_venv.sh``); xnorm is not importable there, the shared
conversions come from ``xmen_format.py`` beside this file (standard library only).

    $XMEN_VENV/bin/python benchmarks/xmen/run_xmen.py --pipeline tfidf|sapbert|ensemble \
        --kb KB.jsonl --index-dir WORK/xmen-index --model ENCODER_DIR \
        --queries NAME=QUERIES.jsonl [--queries ...] --out OUT_DIR [--top-k 64]

``tfidf`` and ``sapbert`` build their index (timed) into ``--index-dir`` and also keep xMEN's raw output
(``OUT_DIR/<NAME>.raw.jsonl``: every candidate with its score, before the top-k cut). ``ensemble`` builds
nothing: as in xMEN's own benchmarks, ``EnsembleLinker.predict_batch(..., reuse_preds=...)`` merges the two
linkers' raw outputs (``--reuse ngram=DIR --reuse sapbert=DIR``); its linking time is that merge alone, the
full ensemble costs the two linkers' times plus the merge. Without ``--reuse`` it runs both linkers live.
Writes ``OUT_DIR/<NAME>.jsonl`` (BigBIO documents, ranked top-k ``normalized`` lists) and ``OUT_DIR/run.json``
(index build s, linking s per dataset, peak RSS after building and after linking, the settings used).

What xMEN does with the encoder (recorded in run.json, not changed): ``Model_Wrapper.embed_dense`` takes the
[CLS] vector (``agg_mode="cls"``), pads every name to ``max_length=25``, adds no prefix (so e5's
``query: ``/``passage: `` prefixes are NOT used), subtracts the mean dictionary embedding, and searches a
faiss HNSW index (inner product turned into L2 with an extra dimension), rescoring hits by cosine.
One adaptation is unavoidable: xMEN hard-codes ``_EMBED_DIM = 768`` (SapBERT's width) in
``xmen.linkers.model_wrapper`` and ``sap_bert_linker``; it is set to the model's ``hidden_size`` here (384 for
multilingual-e5-small), and run.json says so.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from xmen_format import prediction_document, read_jsonl, write_jsonl  # noqa: E402

# xMEN's defaults for its ensemble (xmen.linkers.default_ensemble) are k_ngram=100, k_sapbert=1000; SapBERT's
# per-hit rescoring runs a pandas iterrows loop per candidate, so 1000 hits per mention cost minutes on
# 2 cores. 256 name hits still give >= 64 distinct concepts for almost every mention (HPO: ~2.2 names each).
K_NGRAM = 100
K_SAPBERT = 256
DOC_BATCH = 128  # documents per datasets.map batch (xMEN's predict_batch default is 1)
QUERY_BATCH = 128  # SapBERTLinker(gpu_batch_size=...): mentions per encoder batch (xMEN's default 16; xnorm's 128)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def hidden_size(model_dir: Path) -> int:
    return int(json.loads((model_dir / "config.json").read_text())["hidden_size"])


def set_embed_dim(dim: int) -> None:
    """xMEN hard-codes SapBERT's 768 dimensions; the encoder given here may be narrower."""
    import xmen.linkers.model_wrapper as mw
    import xmen.linkers.sap_bert_linker as sl

    mw._EMBED_DIM = dim
    sl._EMBED_DIM = dim


def as_dataset(docs: list[dict], keep_normalized: bool = False):
    """BigBIO documents as the datasets.Dataset xMEN's linkers map over (its own Features); ``keep_normalized``:
    keep each entity's predictions (xMEN's raw output read back for the ensemble), else start empty."""
    from datasets import Dataset
    from xmen.data import features

    def normalized(e: dict) -> list:
        if not keep_normalized:
            return []
        return [{"db_id": n["db_id"], "db_name": n.get("db_name"), "score": n.get("score", 0.0),
                 "predicted_by": list(n.get("predicted_by") or [])} for n in e.get("normalized") or []]

    rows = []
    for d in docs:
        rows.append({
            "id": d["id"], "document_id": d["document_id"], "passages": d["passages"],
            "entities": [{**{k: e[k] for k in ("id", "offsets", "text", "type")}, "normalized": normalized(e),
                          "long_form": None} for e in d["entities"]],
            "events": [], "coreferences": [], "relations": [], "corpus_id": None, "lang": d.get("lang"),
        })
    return Dataset.from_list(rows, features=features)


def build(pipeline: str, kb: Path, index_dir: Path, model: Path, cuda: bool) -> float:
    """Build this pipeline's index (timed); the ensemble builds nothing."""
    from xmen.kb import create_flat_term_dict
    from xmen.linkers import SapBERTLinker, TFIDFNGramLinker

    t0 = time.perf_counter()
    if pipeline == "tfidf":
        TFIDFNGramLinker.write_index(index_dir / "ngrams", [kb])
    elif pipeline == "sapbert":
        term_dict = create_flat_term_dict([kb])
        SapBERTLinker.write_index(index_dir / "sapbert", term_dict=term_dict, model_name=str(model), cuda=cuda)
    return time.perf_counter() - t0


def make_linker(pipeline: str, index_dir: Path, model: Path, cuda: bool, reuse: bool):
    """xMEN's linker for ``pipeline``; the ensemble's parts are not loaded when it merges reused outputs."""
    from xmen.linkers import EnsembleLinker, SapBERTLinker, TFIDFNGramLinker

    def ngram():
        return TFIDFNGramLinker(index_base_path=index_dir / "ngrams", k=K_NGRAM, expand_abbreviations=False)

    def sapbert():
        SapBERTLinker.clear()
        return SapBERTLinker(index_base_path=index_dir / "sapbert", model_name=str(model), cuda=cuda,
                             k=K_SAPBERT, gpu_batch_size=QUERY_BATCH, expand_abbreviations=False)

    if pipeline == "tfidf":
        return ngram()
    if pipeline == "sapbert":
        return sapbert()
    # As xmen.linkers.default_ensemble: equal weights, scores merged by max per concept.
    ensemble = EnsembleLinker()
    ensemble.add_linker("ngram", None if reuse else ngram(), k=K_NGRAM)
    ensemble.add_linker("sapbert", None if reuse else sapbert(), k=K_SAPBERT)
    return ensemble


def link(linker, pipeline: str, docs: list[dict], top_k: int, reuse: dict | None = None):
    """xMEN's predict_batch over the documents; ``reuse``: linker name -> its raw output documents."""
    ds = as_dataset(docs)
    if pipeline == "ensemble":
        reuse_preds = {name: as_dataset(out, keep_normalized=True) for name, out in reuse.items()} if reuse \
            else None
        return linker.predict_batch(ds, batch_size=DOC_BATCH, top_k=top_k, reuse_preds=reuse_preds)
    return linker.predict_batch(ds, batch_size=DOC_BATCH)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pipeline", choices=("tfidf", "sapbert", "ensemble"), required=True)
    p.add_argument("--kb", type=Path, required=True, help="xMEN KB JSONL (xmen_format.kb_records)")
    p.add_argument("--index-dir", type=Path, required=True)
    p.add_argument("--model", type=Path, required=True, help="local Hugging Face encoder folder")
    p.add_argument("--queries", action="append", required=True, metavar="NAME=PATH")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--top-k", type=int, default=64)
    p.add_argument("--db-name", default="HPO")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cuda", action="store_true")
    p.add_argument("--reuse", action="append", default=[], metavar="LINKER=DIR",
                   help="ensemble only: merge the raw outputs a tfidf (ngram=DIR) and sapbert (sapbert=DIR) run wrote")
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import datasets
    import torch

    torch.set_num_threads(args.threads)
    datasets.disable_caching()
    datasets.utils.logging.disable_progress_bar()

    dim = hidden_size(args.model)
    set_embed_dim(dim)
    reuse_dirs = {}
    for r in args.reuse:
        name, _, path = r.partition("=")
        if name not in ("ngram", "sapbert") or not path:
            p.error(f"--reuse wants ngram=DIR or sapbert=DIR, got {r!r}")
        reuse_dirs[name] = Path(path)
    if reuse_dirs and (args.pipeline != "ensemble" or set(reuse_dirs) != {"ngram", "sapbert"}):
        p.error("--reuse is for --pipeline ensemble and needs both ngram=DIR and sapbert=DIR")
    queries = {}
    for q in args.queries:
        name, _, path = q.partition("=")
        if not path:
            p.error(f"--queries wants NAME=PATH, got {q!r}")
        queries[name] = read_jsonl(path)

    record: dict = {
        "tool": "xmen", "xmen_version": _version("xmen"), "pipeline": args.pipeline, "kb": str(args.kb),
        "model": str(args.model), "top_k": args.top_k, "k_ngram": K_NGRAM, "k_sapbert": K_SAPBERT,
        "doc_batch": DOC_BATCH, "query_batch": QUERY_BATCH, "ensemble_reuses": bool(reuse_dirs), "threads": args.threads, "torch": torch.__version__,
        "adaptations": [f"_EMBED_DIM set from 768 to the encoder's hidden_size {dim}"],
        "encoder_use": "CLS pooling, no query/passage prefixes, max_length 25 padded, dictionary mean subtracted, "
                       "faiss HNSW (M=128, efSearch=256), hits rescored by cosine",
        "tfidf": "scispaCy 0.5 TfidfVectorizer char_wb 3-grams min_df=10, nmslib HNSW (M=100, efConstruction=2000)",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    # CPU seconds (all threads of this process) beside wall seconds: on a shared machine wall time depends on
    # the neighbours, CPU time much less.
    c0 = time.process_time()
    build_s = build(args.pipeline, args.kb, args.index_dir, args.model, args.cuda)
    record["index_build_s"] = round(build_s, 3)
    record["index_build_cpu_s"] = round(time.process_time() - c0, 3)
    record["peak_rss_after_build_mb"] = peak_rss_mb()

    t0 = time.perf_counter()
    linker = make_linker(args.pipeline, args.index_dir, args.model, args.cuda, bool(reuse_dirs))
    record["index_load_s"] = round(time.perf_counter() - t0, 3)
    record["datasets"] = {}
    for name, docs in queries.items():
        n = sum(len(d["entities"]) for d in docs)
        reuse = {k: read_jsonl(v / f"{name}.raw.jsonl") for k, v in reuse_dirs.items()} or None
        t0, c0 = time.perf_counter(), time.process_time()
        linked = link(linker, args.pipeline, docs, args.top_k, reuse)
        raw = [{**src, "entities": out["entities"]} for src, out in zip(docs, linked)]
        preds = [prediction_document({**src, "entities": out["entities"]}, args.top_k, args.db_name)
                 for src, out in zip(docs, linked)]
        link_s, link_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        write_jsonl(args.out / f"{name}.jsonl", preds)
        if args.pipeline != "ensemble":
            write_jsonl(args.out / f"{name}.raw.jsonl", raw)
        record["datasets"][name] = {"mentions": n, "documents": len(docs), "link_s": round(link_s, 3),
                                    "link_cpu_s": round(link_cpu_s, 3),
                                    "mentions_per_s": round(n / link_s, 1) if link_s else None,
                                    "predictions": str(args.out / f"{name}.jsonl")}
        logging.info("%s %s: %d mentions in %.1f s", args.pipeline, name, n, link_s)
    record["peak_rss_mb"] = peak_rss_mb()
    tmp = args.out / ".run.json.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, args.out / "run.json")  # atomic: a run.json on disk is always a finished run
    return 0


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
