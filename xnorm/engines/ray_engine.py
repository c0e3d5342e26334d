"""Ray Data engine: the same saved ``Linker`` over partitions of a corpus, and index builds encoded in shards.

``link_with_ray``: the driver streams the input through ``xnorm.data.read_documents`` (any format, validated,
errors name file and line) into Ray's object store, one block per linker batch; ``map_batches`` runs a callable
class that loads the saved linker once per worker (``Linker.load``) on an actor pool (GPU workers when the
cluster has GPUs); the driver collects the linked blocks in input order and writes a partitioned output folder
(``xnorm.data.parts``) that ``read_documents`` and ``xnorm evaluate`` read back as one dataset. A worker sees
exactly the document batches the local engine would form, so results are identical to ``Linker.link``.

``index_with_ray``: names are encoded in parallel shards (each worker loads the encoder once); each worker adds
its shard to a copy of the (trained) empty FAISS index and returns it serialized; the driver merges shards in
order (IVF and Flat indexes; indexes FAISS cannot merge, e.g. HNSW, get the vectors and are built on the driver).
IVF / PQ indexes are trained on the same seeded sample of names as the local build. Sparse generators are
fitted on the driver. The result is an ordinary ``CandidateIndex`` folder.

Ray is imported inside these functions only: ``import xnorm`` never loads it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from ..errors import ArtifactError, ConfigError, XnormError

log = logging.getLogger(__name__)

# Environment a locally started worker must share with the driver (model cache, offline switches).
_FORWARDED_ENV = ("XNORM_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "TOKENIZERS_PARALLELISM")
_ADDRESS_FIX = ("start a cluster with `ray start --head` and pass the address it prints (HOST:6379, or "
                "ray://HOST:10001 for Ray Client), `auto` for the cluster of this machine, or leave --address out "
                "to start a local one.")


def _require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError("the Ray engine needs Ray, which is not installed.", field="--engine",
                          fix='pip install "xnorm[ray]" (or use --engine local).') from None
    return ray


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail fast, with one line, when nothing listens at HOST:PORT (ray.init would retry for a long time)."""
    target = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"{address!r} is not a Ray address.", field="--address", fix=_ADDRESS_FIX)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ConfigError(f"cannot reach a Ray cluster at {address!r} ({e.strerror or e}).", field="--address",
                          fix=_ADDRESS_FIX) from None


@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """Connected Ray: the running session if this process already has one, else ``ray.init(address)``
    (``None`` starts a local cluster), shut down on exit only if started here."""
    ray = _require_ray()
    if address and address != "auto":  # checked even when a session runs: a wrong address is never ignored
        _check_reachable(address)
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address is None:  # a local cluster: its workers get the driver's model cache and offline settings
        kwargs["runtime_env"] = {"env_vars": {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}}
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ConfigError(f"cannot connect to a Ray cluster at {address!r} ({str(e).splitlines()[0][:200]}).",
                          field="--address", fix=_ADDRESS_FIX) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _unwrap(e: BaseException) -> XnormError | None:
    """The ``XnormError`` a worker raised, found in the chain of Ray's wrapper exceptions."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, XnormError):
            return type(e)(e.message, file=e.file, line=e.line, document=e.document, field=e.field, fix=e.fix)
        e = getattr(e, "cause", None) or e.__cause__ or e.__context__
    return None


@contextlib.contextmanager
def _data_context(show_progress: bool) -> Iterator[None]:
    """Ordered execution (output order = input order) and quiet progress, restored afterwards."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    data_log = logging.getLogger("ray.data")
    saved = (ctx.execution_options.preserve_order, ctx.enable_progress_bars, ctx.print_on_execution_start,
             data_log.level)
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = ctx.print_on_execution_start = show_progress
    if not show_progress:  # xnorm reports progress itself; Ray Data's per-run INFO lines would drown it
        data_log.setLevel(max(data_log.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    except XnormError:
        raise
    except Exception as e:  # a user error raised inside a worker comes back wrapped: show it as itself
        err = _unwrap(e)
        if err is not None:
            raise err from None
        raise
    finally:
        (ctx.execution_options.preserve_order, ctx.enable_progress_bars, ctx.print_on_execution_start,
         level) = saved
        data_log.setLevel(level)


def _worker_resources(ray, gpus_per_worker: float | None) -> float:
    """GPUs per worker: as asked, else one per worker when the cluster has GPUs, else none."""
    if gpus_per_worker is not None:
        return float(gpus_per_worker)
    return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def _setup_worker(env: Mapping[str, str], threads: int) -> None:
    os.environ.update(env)
    import torch

    torch.set_num_threads(max(1, threads))


# ---- linking ---------------------------------------------------------------------------------------------------

@dataclass
class EngineRun:
    """What a distributed run did (the CLI prints it; benchmarks time it)."""

    output: Path
    documents: int
    mentions: int
    parts: int
    workers: int
    gpus_per_worker: float
    seconds: float


class _LinkWorker:
    """Ray actor body: loads the saved linker once, links the document blocks it is given."""

    def __init__(self, linker_dir: str, link_options: dict, overrides: dict, batch_size: int,
                 env: dict, threads: int) -> None:
        _setup_worker(env, threads)
        from xnorm.linker import Linker

        self.linker = Linker.load(linker_dir)
        for key, value in overrides.items():
            setattr(self.linker.config, key, value)
        self.options = link_options
        self.batch_size = batch_size

    def __call__(self, table):
        import pyarrow as pa

        docs = [json.loads(s) for s in table.column("doc").to_pylist()]
        groups = np.asarray(table.column("group").to_numpy())
        out: list[str] = []
        # Link each input batch separately: the same document batches as the local engine, hence the same
        # mention batches and encoder padding, hence identical scores.
        bounds = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1], True])
        for a, b in zip(bounds[:-1], bounds[1:]):
            linked = self.linker.link(docs[a:b], batch_size=self.batch_size, **self.options)
            out.extend(json.dumps(d, ensure_ascii=False, separators=(",", ":")) for d in linked)
        mentions = [len(d.get("entities") or []) for d in docs]
        return pa.table({"doc": pa.array(out, pa.string()), "mentions": pa.array(mentions, pa.int32())})


def _put_documents(ray, docs, batch_size: int, overwrite: bool, field: str) -> tuple[list, int]:
    """Stream documents into the object store, one Arrow block (``doc`` JSON, ``group`` number) per batch."""
    import pyarrow as pa

    from ..linker import _check_no_gold  # the same refusal, with the same message, as the local engine

    refs, batch, n, group = [], [], 0, 0

    def flush() -> None:
        nonlocal batch, group
        if not overwrite:
            _check_no_gold(batch, field)
        table = pa.table({"doc": pa.array([json.dumps(d, ensure_ascii=False) for d in batch], pa.string()),
                          "group": pa.array(np.full(len(batch), group, np.int64))})
        refs.append(ray.put(table))
        batch, group = [], group + 1

    for doc in docs:
        batch.append(doc)
        n += 1
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return refs, n


def link_with_ray(
    linker_dir: str | os.PathLike,
    input: str | os.PathLike,
    output: str | os.PathLike,
    *,
    address: str | None = None,
    num_workers: int = 1,
    batch_size: int = 64,
    top_k: int | None = None,
    field: str = "normalized",
    overwrite: bool = False,
    explain: bool = False,
    lang: str | None = None,
    input_format: str | None = None,
    reader_options: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    cpus_per_worker: int = 1,
    gpus_per_worker: float | None = None,
    docs_per_part: int = 10_000,
    show_progress: bool = False,
    progress: Callable[[int], None] | None = None,
) -> EngineRun:
    """Link every document of ``input`` with the saved linker ``linker_dir`` on Ray; write ``output`` as a
    folder of JSONL parts + manifest (it appears only when complete).

    ``address``: an existing cluster (``HOST:6379``, ``ray://HOST:10001``, ``auto``); ``None`` starts a local
    one, or uses this process's running Ray session. ``num_workers`` actors each hold one loaded linker
    (``cpus_per_worker`` threads; ``gpus_per_worker`` ``None`` = one GPU each when the cluster has GPUs).
    ``batch_size`` documents are linked together, as in ``Linker.link``; ``overrides`` set linker config fields
    (``threshold``, ``db_name``) after loading. Other options mean what they mean in ``Linker.link``.
    On a multi-node cluster ``linker_dir`` must be readable on every node (a shared filesystem).
    """
    from ..data import read_documents
    from ..data.parts import PartsWriter
    from ..linker import FORMAT as LINKER_FORMAT
    from ..terminology.core import read_manifest

    if num_workers < 1 or batch_size < 1 or docs_per_part < 1 or cpus_per_worker < 1:
        raise ConfigError("num_workers, batch_size, docs_per_part and cpus_per_worker must be >= 1.",
                          field="--workers", fix="give positive numbers.")
    linker_dir = Path(linker_dir).resolve()
    read_manifest(linker_dir, LINKER_FORMAT, 1)  # a wrong folder fails here, not in every worker
    docs = read_documents(input, format=input_format, **dict(reader_options or {}))
    start = time.perf_counter()
    with ray_session(address) as ray, _data_context(show_progress):
        refs, n_docs = _put_documents(ray, docs, batch_size, overwrite, field)
        gpus = _worker_resources(ray, gpus_per_worker)
        env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ} if address is None else {}
        options = {"top_k": top_k, "field": field, "overwrite": overwrite, "explain": explain, "lang": lang}
        info = {"engine": "ray", "workers": num_workers, "gpus_per_worker": gpus, "linker": str(linker_dir),
                "input": str(input), "batch_size": batch_size, "link_options": options}
        with PartsWriter(output, info) as writer:
            if refs:
                ds = ray.data.from_arrow_refs(refs).map_batches(
                    _LinkWorker, batch_size=None, batch_format="pyarrow",
                    compute=ray.data.ActorPoolStrategy(size=num_workers), num_cpus=cpus_per_worker, num_gpus=gpus,
                    fn_constructor_kwargs={"linker_dir": str(linker_dir), "link_options": options,
                                           "overrides": dict(overrides or {}), "batch_size": batch_size,
                                           "env": env, "threads": cpus_per_worker})
                lines: list[str] = []
                counts: list[int] = []  # mentions per document, for the manifest
                for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                    lines.extend(table.column("doc").to_pylist())
                    counts.extend(table.column("mentions").to_pylist())
                    if progress is not None:
                        progress(_column_sum(table.column("mentions")))
                    while len(lines) >= docs_per_part:
                        writer.write_part(lines[:docs_per_part], sum(counts[:docs_per_part]))
                        lines, counts = lines[docs_per_part:], counts[docs_per_part:]
                if lines:
                    writer.write_part(lines, sum(counts))
            if writer.documents != n_docs:  # never publish a short output
                raise RuntimeError(f"Ray returned {writer.documents} documents for {n_docs} in the input")
            total_mentions, n_parts = writer.mentions, len(writer.parts)
    return EngineRun(Path(output), n_docs, total_mentions, n_parts, num_workers, gpus,
                     time.perf_counter() - start)


def _column_sum(column) -> int:
    import pyarrow.compute as pc

    return int(pc.sum(column).as_py() or 0)


class _EncodeWorker:
    """Ray actor body: loads each encoder once (on first use); per shard returns the shard's vectors, or the
    vectors added to a copy of an empty (trained) FAISS index, serialized."""

    def __init__(self, encoder_configs: list, templates: dict, env: dict, threads: int) -> None:
        _setup_worker(env, threads)
        self.encoder_configs = encoder_configs
        self.encoders: dict[int, Any] = {}
        self.templates = templates  # "generator/language" -> serialized empty (trained) index

    def _encoder(self, i: int):
        if i not in self.encoders:
            from xnorm.candidates.dense import make_encoder

            self.encoders[i] = make_encoder(self.encoder_configs[i])
        return self.encoders[i]

    def __call__(self, table):
        import faiss
        import pyarrow as pa

        payloads = []
        for texts, enc, key, mode in zip(table.column("texts").to_pylist(), table.column("enc").to_pylist(),
                                         table.column("key").to_pylist(), table.column("mode").to_pylist()):
            emb = np.ascontiguousarray(self._encoder(enc).encode(texts, kind="passage"), dtype=np.float32)
            if mode == "index":
                index = faiss.deserialize_index(np.frombuffer(self.templates[key], dtype=np.uint8).copy())
                index.add(emb)
                payloads.append(faiss.serialize_index(index).tobytes())
            else:
                payloads.append(emb.tobytes())
        return pa.table({"shard": table.column("shard"), "payload": pa.array(payloads, pa.large_binary())})


def _mergeable(index) -> bool:
    """FAISS can append one index of this type to another (``merge_from``): flat codes and IVF lists."""
    import faiss

    return isinstance(faiss.downcast_index(index), (faiss.IndexFlatCodes, faiss.IndexIVF))


def _merge(into, other) -> None:
    import faiss

    base = faiss.downcast_index(into)
    # IVF lists keep explicit ids: continue the numbering; flat codes number rows implicitly (add_id must be 0).
    base.merge_from(faiss.downcast_index(other), base.ntotal if isinstance(base, faiss.IndexIVF) else 0)


def _empty_index(gen, dim: int, faiss):
    try:
        return faiss.index_factory(dim, gen.factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise ConfigError(f"FAISS cannot build index {gen.factory!r} ({str(e).splitlines()[0][:200]}).",
                          field=f"generators.{gen.name}.index",
                          fix="use a FAISS factory string such as Flat, HNSW32 or IVF1024,PQ16.") from None


@dataclass
class _Shard:
    shard: int
    gen: int  # position among the dense generators
    lang: str
    mode: str  # "vectors" (returned as float32 bytes) or "index" (added to the template, serialized)
    sample: bool  # part of a training sample
    rows: np.ndarray  # global name rows


class _DensePlan:
    """What one dense generator needs: per language its empty index, training sample and shards."""

    def __init__(self, gen, position: int, enc: int, shard_size: int, rng, faiss) -> None:
        self.gen, self.position, self.enc = gen, position, enc
        self.dim = int(gen.encoder.dim)
        self.empty = {lang: _empty_index(gen, self.dim, faiss) for lang in gen.languages}
        self.samples: dict[str, np.ndarray | None] = {}
        for lang in gen.languages:  # sorted, with the local build's seeded draws in the same order
            rows = gen.lang_rows[lang]
            if self.empty[lang].is_trained:
                self.samples[lang] = None
                continue
            if len(rows) < 2:
                raise ConfigError(f"index {gen.factory!r} needs training but a language has only {len(rows)} "
                                  "names.", field=f"generators.{gen.name}.index",
                                  fix="use index: Flat or HNSW32 for small terminologies.")
            pick = np.arange(len(rows))
            if len(rows) > gen.train_size:
                pick = np.sort(rng.choice(len(rows), gen.train_size, replace=False))
            self.samples[lang] = rows[pick]
        self.shard_size = shard_size
        self.indexes: dict[str, Any] = {}
        self.sample_vectors: dict[str, list[np.ndarray]] = {lang: [] for lang in gen.languages}

    def whole(self, lang: str) -> bool:
        """The training sample is every name of ``lang`` (in order): encoded once, trained on, then added."""
        s = self.samples[lang]
        return s is not None and len(s) == len(self.gen.lang_rows[lang])

    def shards(self, first: int, second_pass: bool) -> list[_Shard]:
        """Pass 1: training samples + every shard of untrained index types. Pass 2: shards added to the
        trained indexes."""
        out: list[_Shard] = []
        size = self.shard_size
        for lang in self.gen.languages:
            sample, rows = self.samples[lang], self.gen.lang_rows[lang]
            mode = "index" if _mergeable(self.empty[lang]) else "vectors"
            if not second_pass:
                if sample is not None:
                    out += [_Shard(0, self.position, lang, "vectors", True, sample[a:a + size])
                            for a in range(0, len(sample), size)]
                else:
                    out += [_Shard(0, self.position, lang, mode, False, rows[a:a + size])
                            for a in range(0, len(rows), size)]
            elif sample is not None and not self.whole(lang):
                out += [_Shard(0, self.position, lang, mode, False, rows[a:a + size])
                        for a in range(0, len(rows), size)]
        for i, s in enumerate(out):
            s.shard = first + i
        return out

    def absorb(self, s: _Shard, payload: bytes, faiss) -> None:
        """Take one shard result, in shard order."""
        if s.sample:
            self.sample_vectors[s.lang].append(np.frombuffer(payload, np.float32).reshape(len(s.rows), self.dim))
        elif s.mode == "index":
            part = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8).copy())
            if s.lang in self.indexes:
                _merge(self.indexes[s.lang], part)
            else:
                self.indexes[s.lang] = part
        else:  # not mergeable (e.g. HNSW): the driver adds the vectors in order
            index = self.indexes.setdefault(s.lang, self.empty[s.lang])
            index.add(np.frombuffer(payload, np.float32).reshape(len(s.rows), self.dim))

    def train(self, faiss) -> dict[str, bytes]:
        """Train every index that needs it on its sample; return the templates pass 2 adds to."""
        templates = {}
        for lang, sample in self.samples.items():
            if sample is None:
                continue
            vectors = np.ascontiguousarray(np.concatenate(self.sample_vectors.pop(lang)))
            index = self.empty[lang]
            index.train(vectors)
            if self.whole(lang):
                index.add(vectors)
                self.indexes[lang] = index
            else:
                templates[f"{self.position}/{lang}"] = faiss.serialize_index(index).tobytes()
        return templates

    def templates(self, faiss) -> dict[str, bytes]:
        """Empty indexes that need no training, for pass 1."""
        return {f"{self.position}/{lang}": faiss.serialize_index(self.empty[lang]).tobytes()
                for lang, s in self.samples.items() if s is None}

    def finish(self) -> dict[str, Any]:
        for lang in self.gen.languages:
            idx = self.indexes.get(lang)
            expected = len(self.gen.lang_rows[lang])
            if idx is None or idx.ntotal != expected:
                raise ArtifactError(f"the assembled {lang!r} index holds {0 if idx is None else idx.ntotal} "
                                    f"vectors for {expected} names.", field=f"generators.{self.gen.name}",
                                    fix="rerun the build; if it persists, report it as a bug.")
        return {lang: self.indexes[lang] for lang in self.gen.languages}


def _run_shards(ray, shards: list[_Shard], texts: np.ndarray, plans: list[_DensePlan], templates: dict,
                env: dict, num_workers: int, cpus: int, gpus: float, encoder_configs: list) -> Iterator:
    """Encode shards on one actor pool; yield (shard, payload bytes) in shard order."""
    import pyarrow as pa

    refs = []
    for s in shards:
        refs.append(ray.put(pa.table({
            "shard": pa.array([s.shard], pa.int64()), "enc": pa.array([plans[s.gen].enc], pa.int64()),
            "key": pa.array([f"{s.gen}/{s.lang}"], pa.string()), "mode": pa.array([s.mode], pa.string()),
            "texts": pa.array([texts[s.rows].tolist()], pa.list_(pa.string()))})))
    ds = ray.data.from_arrow_refs(refs).map_batches(
        _EncodeWorker, batch_size=None, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=num_workers),
        num_cpus=cpus, num_gpus=gpus,
        fn_constructor_kwargs={"encoder_configs": encoder_configs, "templates": templates, "env": env,
                               "threads": cpus})
    by_id = {s.shard: s for s in shards}
    for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for shard, payload in zip(table.column("shard").to_pylist(), table.column("payload").to_pylist()):
            yield by_id[shard], payload


def index_with_ray(
    terminology,
    config: Mapping | str | os.PathLike | None,
    output: str | os.PathLike,
    *,
    address: str | None = None,
    num_workers: int = 1,
    shard_size: int = 16_384,
    cpus_per_worker: int = 1,
    gpus_per_worker: float | None = None,
    show_progress: bool = False,
    echo: Callable[[str], None] | None = None,
):
    """Build the ``CandidateIndex`` of ``config`` over ``terminology`` (object or spec) with dense names encoded
    on Ray in shards of ``shard_size`` names, and save it to ``output`` (same folder as ``CandidateIndex.save``).

    A memory estimate of each dense index (names x dim x bytes per index type) goes to ``echo`` before encoding
    starts. All dense generators share one actor pool per pass (pass 1: training samples and untrained index
    types; pass 2, only for IVF / PQ indexes larger than their sample: shards added to the trained indexes).
    Flat indexes give the local build's search results; IVF / PQ are trained on the local build's seeded sample
    and give near-equal results (vectors encoded in other batches differ by float rounding); HNSW graphs depend
    on insertion details and are near-equal too. Returns the built ``CandidateIndex``.
    """
    import faiss

    from ..candidates import CandidateIndex
    from ..candidates.config import normalize_config
    from ..candidates.dense import ENCODER_KEYS, DenseGenerator, make_encoder
    from ..candidates.sparse import SparseGenerator
    from ..terminology import load_terminology

    echo = echo or log.info
    if num_workers < 1 or shard_size < 1 or cpus_per_worker < 1:
        raise ConfigError("num_workers, shard_size and cpus_per_worker must be >= 1.", field="--workers",
                          fix="give positive numbers.")
    if not hasattr(terminology, "name_texts"):
        terminology = load_terminology(terminology)
    cfg = normalize_config(config)
    if terminology.n_names == 0:
        raise ConfigError("the terminology has no names to index.", field="terminology",
                          fix="check the terminology recipe (languages, sources).")
    start = time.perf_counter()
    texts = np.asarray([str(t) for t in terminology.name_texts], dtype=object)
    generators: list = []
    plans: list[_DensePlan] = []
    encoder_configs: list[dict] = []
    for g in cfg["generators"]:
        if g["type"] == "sparse":  # TF-IDF is fitted on the driver (one vocabulary over all names)
            generators.append(SparseGenerator.from_config(g).fit(terminology, show_progress=show_progress))
            continue
        # Generators with the same encoder settings share one encoder per worker.
        enc_cfg = {k: g[k] for k in ("model", *ENCODER_KEYS) if k in g}
        if enc_cfg not in encoder_configs:
            encoder_configs.append(enc_cfg)
        gen = DenseGenerator.from_config(g, encoder=make_encoder(g))
        gen._set_languages(terminology)
        plans.append(_DensePlan(gen, len(plans), encoder_configs.index(enc_cfg), shard_size,
                                np.random.default_rng(0), faiss))  # seeded per generator, as fit() does
        _estimate(echo, gen, terminology.n_names)
        generators.append(gen)
    if plans:
        with ray_session(address) as ray, _data_context(show_progress):
            gpus = _worker_resources(ray, gpus_per_worker)
            env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ} if address is None else {}
            run = (lambda shards, templates: _run_shards(ray, shards, texts, plans, templates, env, num_workers,
                                                          cpus_per_worker, gpus, encoder_configs))
            shards, templates = [], {}
            for p in plans:
                shards += p.shards(len(shards), second_pass=False)
                templates.update(p.templates(faiss))
            for s, payload in run(shards, templates):
                plans[s.gen].absorb(s, payload, faiss)
            templates = {}
            for p in plans:
                templates.update(p.train(faiss))
            shards = []
            for p in plans:
                shards += p.shards(len(shards), second_pass=True)
            if shards:
                for s, payload in run(shards, templates):
                    plans[s.gen].absorb(s, payload, faiss)
    for p in plans:
        p.gen.indexes = p.finish()
        p.gen._apply_search_params()
    built = CandidateIndex(terminology, cfg, generators, time.perf_counter() - start)
    built.save(output)
    return built


def _estimate(echo: Callable[[str], None], gen, n_names: int) -> None:
    from .memory import estimate_index_memory, human_bytes

    dim = int(gen.encoder.dim)
    # One index per name language: the fixed parts (centroids, codebooks) count once per language.
    total = sum(estimate_index_memory(len(gen.lang_rows[lang]), dim, gen.factory).total for lang in gen.languages)
    est = estimate_index_memory(n_names, dim, gen.factory)
    note = "" if est.known else " (index type not modelled: counted as Flat)"
    echo(f"memory estimate {gen.name}: {n_names:,} names x {dim} dims, {gen.factory}: {human_bytes(total)} "
         f"({human_bytes(est.per_million())} per million names){note}")
