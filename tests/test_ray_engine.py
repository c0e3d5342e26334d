"""The Ray Data engine (`--engine ray`) against the local engine, on a local 2-CPU Ray cluster.

Real data, small: the first GSC+ test abstracts (BigBIO JSONL) and an HPO subset (their gold concepts + 300
others, English names + the official Spanish labels); the tiny BERT of conftest as the dense encoder.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DATA

pytest.importorskip("ray", reason="the Ray engine needs the optional extra: pip install \"xnorm[ray]\"")

from test_link import run  # noqa: E402  (the CLI runner that maps errors to exit codes like `xnorm`)

N_DOCS = 24


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """GSC+ documents (gold kept, and with gold removed) + a terminology recipe over an HPO subset."""
    if not (SHARED_DATA / "hpo-corpora").is_dir() or not (SHARED_DATA / "hpo-translations").is_dir():
        pytest.skip(f"shared data not found under {SHARED_DATA}")
    from xnorm.benchmark.datasets import babelon_file, build_dataset, read_babelon_labels
    from xnorm.terminology import load_terminology

    root = tmp_path_factory.mktemp("ray-data")
    docs = build_dataset("gsc-plus", {"split": "test"}, data_root=SHARED_DATA).documents[:N_DOCS]
    gold = root / "gold.jsonl"
    gold.write_text("".join(json.dumps(d) + "\n" for d in docs))
    hpo = load_terminology("hpo-en", cache=False)
    wanted = {n["db_id"] for d in docs for e in d["entities"] for n in e["normalized"]}
    rng = np.random.default_rng(0)
    wanted |= set(rng.choice(hpo.concept_ids, 300, replace=False).tolist())
    rows = [f"{hpo.concept_ids[c]}\t{t}\ten" for t, c in zip(hpo.name_texts, hpo.name_concepts)
            if hpo.concept_ids[c] in wanted]
    es = read_babelon_labels(babelon_file(SHARED_DATA / "hpo-translations", "es"), ["OFFICIAL"])
    rows += [f"{cid}\t{label}\tes" for cid, label, _ in es if cid in wanted]
    tsv = root / "terms.tsv"
    tsv.write_text("concept_id\tname\tlang\n" + "\n".join(rows) + "\n")
    recipe = root / "hpo-subset.yaml"
    recipe.write_text(f"name: hpo-subset\ndb_name: HPO\nsources:\n  - type: tsv\n    path: {tsv}\n")
    return {"root": root, "gold": gold, "recipe": recipe, "n_mentions": sum(len(d["entities"]) for d in docs)}


def _documents(path: Path) -> list[dict]:
    from xnorm.data import read_documents

    return list(read_documents(path))


def test_link_ray_equals_local_and_reads_back_as_one_dataset(ray_cluster, data, tiny_model_dir, tmp_path):
    root = data["root"]
    cfg = tmp_path / "candidates.yaml"
    # fp32: equal scores need equal vectors, and a text's bf16 vector moves ~1e-3 with the batch it is encoded in
    # (workers batch other documents together than the local run does).
    cfg.write_text(f"generators:\n  - {{type: sparse}}\n"
                   f"  - {{type: dense, model: {tiny_model_dir}, precision: fp32}}\n"
                   "fusion: {method: minmax, weights: [1, 2]}\n")
    index = tmp_path / "index"
    assert run("index", "--terminology", str(data["recipe"]), "--config", str(cfg), "-o", str(index),
               "--no-progress").exit_code == 0
    common = ["--index", str(index), "--top-k", "3", "--batch-size", "4", "--overwrite"]
    local = tmp_path / "local.jsonl"
    res = run("link", str(data["gold"]), "-o", str(local), *common)
    assert res.exit_code == 0, res.output
    out = tmp_path / "ray-out"
    res = run("link", str(data["gold"]), "-o", str(out), *common, "--engine", "ray", "--workers", "2",
              "--part-docs", "10")
    assert res.exit_code == 0, res.output
    assert f"linked {data['n_mentions']} mentions in {N_DOCS} documents with 2 Ray worker(s)" in res.output

    # Partitioned output: 10 + 10 + 4 documents, a manifest with checksums; nothing else left behind.
    manifest = json.loads((out / "manifest.json").read_text())
    assert [p["documents"] for p in manifest["parts"]] == [10, 10, 4]
    assert manifest["mentions"] == data["n_mentions"] and manifest["engine"] == "ray"
    assert sorted(f.name for f in out.iterdir()) == ["manifest.json", "part-00000.jsonl", "part-00001.jsonl",
                                                     "part-00002.jsonl"]
    assert not list(tmp_path.glob(".xnorm-linker-*")) and not list(tmp_path.glob(".ray-out*"))

    # Same documents, same order, same predictions and scores as the local engine.
    local_docs, ray_docs = _documents(local), _documents(out)
    assert [d["id"] for d in ray_docs] == [d["id"] for d in local_docs]
    assert ray_docs == local_docs
    assert any(len(e["normalized"]) == 3 for d in ray_docs for e in d["entities"])

    # `xnorm evaluate` reads the folder as one dataset: the same report as for the local file.
    ev_local = run("evaluate", str(local), str(data["gold"]), "--json")
    ev_ray = run("evaluate", str(out), str(data["gold"]), "--json")
    assert ev_local.exit_code == 0 and ev_ray.exit_code == 0, ev_ray.output
    report_ray, report_local = json.loads(ev_ray.stdout), json.loads(ev_local.stdout)
    assert report_ray.pop("pred") == str(out) and report_local.pop("pred") == str(local)
    assert report_ray == report_local


def test_index_ray_equals_local(ray_cluster, data, tiny_model_dir, tmp_path):
    """Flat: the local build's results; IVF-PQ trained on the same seeded sample (English: sample + shards
    added per worker and merged; Spanish: smaller than the sample, encoded once)."""
    from xnorm.candidates import CandidateIndex
    from xnorm.terminology import load_terminology
    from xnorm.types import Mentions

    cfg = tmp_path / "candidates.yaml"
    # fp32: the shards are encoded in other batches than the local build, and bf16 vectors move with the batch.
    cfg.write_text(f"generators:\n  - {{type: sparse}}\n  - {{type: dense, model: {tiny_model_dir}, precision: fp32}}\n"
                   f"  - {{type: dense, name: ivf, model: {tiny_model_dir}, index: 'IVF4,PQ8x4', train_size: 500,\n"
                   "      precision: fp32}\n")
    out = tmp_path / "ray-index"
    res = run("index", "--terminology", str(data["recipe"]), "--config", str(cfg), "-o", str(out),
              "--engine", "ray", "--workers", "2", "--shard-size", "100", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "memory estimate dense:" in res.output and "memory estimate ivf:" in res.output
    terminology = load_terminology(str(data["recipe"]))
    n_es = int((terminology.name_langs == "es").sum())
    assert 0 < n_es <= 500 < int((terminology.name_langs == "en").sum())  # both IVF paths are exercised

    distributed = CandidateIndex.load(out)
    local = CandidateIndex.build(terminology, cfg)
    docs = _documents(data["gold"])
    texts = [e["text"][0] for d in docs for e in d["entities"]][:80]
    mentions = Mentions(texts=texts + texts[:20], langs=["en"] * len(texts) + ["es"] * 20)
    a, b = local.generator_candidates(mentions, 10), distributed.generator_candidates(mentions, 10)
    for name in ("sparse", "dense"):
        np.testing.assert_array_equal(b[name].concepts, a[name].concepts)
        np.testing.assert_allclose(b[name].scores, a[name].scores, atol=1e-5)
    agree = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a["ivf"].concepts, b["ivf"].concepts)])
    assert agree >= 0.9, agree
    assert distributed.generators[2].indexes["en"].ntotal == int((terminology.name_langs == "en").sum())


def test_gold_refused_and_bad_address_are_one_line_errors(ray_cluster, data, tmp_path):
    """User errors from the Ray path are one line + exit 3, like the local engine's; no output is left."""
    from xnorm.candidates import CandidateIndex
    from xnorm.linker import Linker, LinkerConfig
    from xnorm.terminology import load_terminology

    index = CandidateIndex.build(load_terminology(str(data["recipe"])), {"generators": [{"type": "sparse"}]})
    linker_dir = Linker(index, LinkerConfig()).save(tmp_path / "linker")
    out = tmp_path / "out"
    res = run("link", str(data["gold"]), "-o", str(out), "--linker", str(linker_dir), "--engine", "ray")
    assert res.exit_code == 3 and "already has a non-empty 'normalized'" in res.output, res.output
    res = run("link", str(data["gold"]), "-o", str(out), "--linker", str(linker_dir), "--engine", "ray",
              "--address", "127.0.0.1:9")
    assert res.exit_code == 3, res.output
    assert "cannot reach a Ray cluster at '127.0.0.1:9'" in res.output and "ray start --head" in res.output
    assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
    assert not out.exists()
    res = run("link", str(data["gold"]), "-o", str(out), "--linker", str(linker_dir), "--workers", "2")
    assert res.exit_code == 2 and "--engine ray" in res.output


def test_local_engine_never_imports_ray(data, tmp_path):
    """`xnorm link` with the local engine runs to the end without loading Ray (fresh interpreter)."""
    from xnorm.candidates import CandidateIndex
    from xnorm.terminology import load_terminology

    index = tmp_path / "index"
    CandidateIndex.build(load_terminology(str(data["recipe"])), {"generators": [{"type": "sparse"}]}).save(index)
    out = tmp_path / "linked.jsonl"
    code = ("import sys\nfrom xnorm.cli.main import main\ntry:\n"
            f"    main(['link', {str(data['gold'])!r}, '-o', {str(out)!r}, '--index', {str(index)!r},"
            " '--field', 'pred'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "assert not [m for m in sys.modules if m == 'ray' or m.startswith('ray.')], 'ray was imported'\n"
            "print('no ray')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "no ray" in proc.stdout, proc.stderr[-2000:]
    assert len(_documents(out)) == N_DOCS


def test_memory_estimates_match_real_faiss_indexes():
    """The printed estimates are within 10% of what FAISS really stores (serialized size)."""
    import faiss

    from xnorm.engines import estimate_index_memory

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # OpenMP threads spin on busy shared cores; one thread is plenty here
    try:
        rng = np.random.default_rng(0)
        n, dim = 4000, 64
        x = rng.standard_normal((n, dim)).astype(np.float32)
        for factory in ("Flat", "HNSW16", "IVF16,PQ8x4", "IVF16,Flat", "IVF16,SQ8"):
            index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
            index.train(x)
            index.add(x)
            real = len(faiss.serialize_index(index))
            est = estimate_index_memory(n, dim, factory)
            assert est.known and abs(est.total - real) / real < 0.10, (factory, est.total, real)
    finally:
        faiss.omp_set_num_threads(threads)
    assert not estimate_index_memory(n, dim, "OPQ16,IVF16,PQ16").known


def test_partitioned_folder_checks(tmp_path):
    """A folder without a manifest is not read as documents; a missing or altered part is an error."""
    from xnorm.data import detect_format
    from xnorm.data.parts import PartsWriter, read_parts
    from xnorm.errors import InputError

    docs = [{"id": str(i), "document_id": str(i), "passages": [], "entities": [], "events": [],
             "coreferences": [], "relations": []} for i in range(5)]
    with PartsWriter(tmp_path / "p", {"engine": "test"}) as w:
        w.write_documents(docs[:3])
        w.write_documents(docs[3:])
    assert detect_format(tmp_path / "p") == "bigbio"
    assert [d["id"] for d in _documents(tmp_path / "p")] == ["0", "1", "2", "3", "4"]
    with pytest.raises(RuntimeError):
        with PartsWriter(tmp_path / "q") as w:
            w.write_documents(docs)
            raise RuntimeError("interrupted")
    assert not (tmp_path / "q").exists() and not list(tmp_path.glob(".q*"))
    part = tmp_path / "p" / "part-00001.jsonl"
    part.write_text(part.read_text().replace('"3"', '"x"'))
    with pytest.raises(InputError, match="checksum"):
        list(read_parts(tmp_path / "p", verify=True))
    part.unlink()
    with pytest.raises(InputError, match="part-00001.jsonl.*missing"):
        list(read_parts(tmp_path / "p"))
