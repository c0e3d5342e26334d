"""The ``Linker``: candidate generation + an optional reranker (cross-encoder or feature) + NIL threshold.

A linker is one folder (manifest + config + the candidate index [+ the reranker]), built in code, from a YAML
config, or the embedded default (English HPO + the embedded multilingual encoder), which works offline right
after install.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import yaml

from . import __version__
from ._io import atomic_dir, read_yaml_mapping, sha256_file
from .errors import ArtifactError, ConfigError
from .candidates.config import QUERY_PRECISION
from .models.encoder import PRECISIONS
from .rerank.model import DEFAULT_PRECISION as RERANK_PRECISION, PRECISIONS as RERANK_PRECISIONS
from .paths import indexes_dir
from .terminology.core import read_manifest, verify_checksums
from .types import ROUTE_NAMES, Candidates, Mentions

log = logging.getLogger(__name__)

FORMAT = "xnorm-linker"
FORMAT_VERSION = 1

# The best pipeline xnorm ships: TF-IDF over character n-grams and a multilingual encoder, fused by min-max
# calibrated scores (encoder weighted 2:1, and 4:1 for candidates reached through English names from another
# language; see benchmarks/configs/candidates/fusion.yaml for why), English names as the fallback route.
DEFAULT_TERMINOLOGY = "hpo-en"
DEFAULT_CANDIDATES: dict[str, Any] = {
    "generators": [
        {"type": "sparse", "ngram_range": [2, 4]},
        {"type": "dense", "model": "multilingual-e5-small"},
    ],
    "routing": "fallback",
    "fusion": {"method": "minmax", "weights": [1, 2], "fallback_weights": [0.5, 2]},
}
# The encoder of the default pipeline per terminology (its db_name): an encoder adapter of the zoo trained on that
# terminology's names where one ships (HPO: ja acc@1 0.21 -> 0.42, zh 0.13 -> 0.38, GSC+ 0.715 -> 0.745 on concepts
# it never saw; benchmarks/results/fusion_aligned/), else the embedded e5-small above.
DOMAIN_ENCODERS = {"HPO": "hpo-align-e5small"}
# The reranker of that default pipeline per terminology, where one ships: for HPO a feature reranker with translation
# tables and a memory of GSC+ dev's annotations (HPO labels of unseen concepts: ja 0.640 -> 0.823, zh 0.630 -> 0.800;
# GSC+ test, English abstracts, 0.750 -> 0.779; benchmarks/results/default_reranker.md, over hpo-multilingual
# default_reranker_multilingual.md). Used when a linker's reranker is AUTO and its index is that pipeline: the
# reranker's weights are fitted to that pipeline's scores.
DOMAIN_RERANKERS = {"HPO": "hpo-translate-rerank-e5small"}
AUTO = "auto"


def default_reranker(index) -> str | None:
    """The shipped reranker for ``index`` (a zoo name) when the index is its terminology's default pipeline (same
    generators, encoders, routing and fusion as :func:`default_candidates`; English names only or with
    translations, both measured), else None."""
    name = DOMAIN_RERANKERS.get(index.terminology.metadata.get("db_name"))
    if name is None:
        return None
    return name if _pipeline(index.config) == _pipeline(default_candidates(index.terminology)) else None


def _pipeline(candidates: dict) -> tuple:
    """What a reranker's features depend on in a candidate config (not batch sizes, caches or precision)."""
    fusion = candidates.get("fusion") or {}
    weights = lambda key: tuple(float(w) for w in fusion.get(key) or ())  # noqa: E731
    return (tuple((g.get("type"), g.get("model")) for g in candidates.get("generators", [])),
            candidates.get("routing"), fusion.get("method"), weights("weights"), weights("fallback_weights"))


def default_candidates(terminology=None) -> dict[str, Any]:
    """The default candidate config for ``terminology`` (a ``Terminology``; None: no domain encoder)."""
    cfg = json.loads(json.dumps(DEFAULT_CANDIDATES))
    db_name = terminology.metadata.get("db_name") if terminology is not None else None
    if db_name in DOMAIN_ENCODERS:
        cfg["generators"][1]["model"] = DOMAIN_ENCODERS[db_name]
    return cfg


@dataclass
class LinkerConfig:
    """What a linker is made of; every field has a default, unknown keys are errors."""

    terminology: str | None = DEFAULT_TERMINOLOGY  # saved folder, recipe path or built-in recipe name
    index: str | None = None  # a saved CandidateIndex folder (overrides terminology + candidates)
    candidates: dict | None = None  # candidate config; None: default_candidates(the terminology)
    k: int = 64  # candidates per mention passed to later stages
    top_k: int = 1  # predictions written per mention
    threshold: float | None = None  # NIL: top score below it -> no prediction (calibrate_threshold sets it)
    db_name: str | None = None  # written into `normalized`; default: from the terminology (e.g. "HPO")
    abbreviations: bool = True  # expand abbreviations defined in the document (scispaCy detector)
    context_chars: int = 100
    default_lang: str = "en"
    # a reranker folder (`xnorm train-reranker`), CrossEncoder folder or zoo name; "auto": the shipped reranker of
    # the terminology's default pipeline when the index is that pipeline (DOMAIN_RERANKERS), else none; None: none
    reranker: str | None = AUTO
    rerank_k: int | None = None  # candidates the reranker re-scores (the rest keep their order, score 0);
    # None: the k it was trained with (16 for a reranker that does not record it)
    rerank_precision: str = RERANK_PRECISION  # the reranker's forward pass: auto (bf16 where native), fp32, bf16
    query_model: str | None = None  # a query encoder for the mentions (distilled from the index's dense model)
    query_precision: str = QUERY_PRECISION  # the query encoder's: auto (bf16 where native), fp32, bf16, int8(-full)
    candidate_cache_mb: float = 64  # candidate rows kept across batches (a repeated mention is searched once); 0: off
    under: list[str] | None = None  # predict only these concepts and their is_a descendants (e.g. [HP:0000707])

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "LinkerConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"unknown key(s) {', '.join(unknown)}.", file=source, field=unknown[0],
                fix=f"use only: {', '.join(sorted(known))}.",
            )
        cfg = cls(**d)
        if isinstance(cfg.under, str):  # one root written without a list
            cfg.under = [cfg.under]
        if cfg.under is not None and (not isinstance(cfg.under, list) or not all(
                isinstance(u, str) and u for u in cfg.under)):
            raise ConfigError("under must be a list of concept ids.", file=source, field="under",
                              fix="e.g. under: [HP:0000707] (the concepts whose branches predictions may come from).")
        if cfg.top_k < 1 or cfg.k < cfg.top_k:
            raise ConfigError(f"need 1 <= top_k <= k, got top_k={cfg.top_k}, k={cfg.k}.", file=source,
                              field="top_k", fix="lower top_k or raise k.")
        if cfg.rerank_k is not None and cfg.rerank_k < 1:
            raise ConfigError(f"rerank_k must be >= 1, got {cfg.rerank_k}.", file=source, field="rerank_k",
                              fix="use e.g. 16.")
        _check_rerank_precision(cfg.rerank_precision, source)
        if cfg.query_precision not in PRECISIONS:
            raise ConfigError(f"unknown query_precision {cfg.query_precision!r}.", file=source,
                              field="query_precision", fix=f"use one of {', '.join(PRECISIONS)}.")
        if isinstance(cfg.candidate_cache_mb, bool) or not isinstance(cfg.candidate_cache_mb, (int, float)) \
                or not cfg.candidate_cache_mb >= 0:
            raise ConfigError(f"candidate_cache_mb must be >= 0, got {cfg.candidate_cache_mb}.", file=source,
                              field="candidate_cache_mb", fix="use e.g. 64, or 0 to turn the cache off.")
        return cfg


@dataclass(frozen=True)
class ThresholdChoice:
    """A NIL threshold chosen on a dev set, and the dev set's linking decisions at it."""

    threshold: float  # a mention is linked when its top score is >= this
    precision: float  # of the linked mentions, the share linked to a gold id
    recall: float  # of the mentions with a gold id in the terminology, the share linked to one
    f1: float
    linked: int
    mentions: int
    with_gold: int  # mentions with a gold id in the terminology (the others should stay unlinked)


class Linker:
    """Maps mentions to ranked concept ids. ``link(documents)`` fills each entity's ``normalized`` list."""

    def __init__(self, index, config: LinkerConfig | None = None, reranker=None) -> None:
        self.index = index
        self.config = config or LinkerConfig()
        self.reranker = None
        self.index.set_cache(self.config.candidate_cache_mb)
        if self.config.under is not None:
            self.set_under(self.config.under)
        if reranker is not None or self.config.reranker:
            self.set_reranker(reranker if reranker is not None else self.config.reranker)
        if self.config.query_model:
            self.set_query_model(self.config.query_model, self.config.query_precision)

    def set_under(self, under: list[str] | None) -> None:
        """Predict only the concepts ``under`` and their is_a descendants (``None``: any concept). Checked now:
        ``ConfigError`` for an id the terminology lacks or a terminology without hierarchy."""
        if under is not None:
            self.index.subtree(under)
        self.config.under = None if under is None else list(under)

    def set_query_model(self, model: str | None, precision: str = QUERY_PRECISION) -> None:
        """Encode mentions with ``model``, a query encoder distilled from the model that encoded the index's names
        (faster linking, same index), at ``precision`` (``int8``: ONNX Runtime, faster still); ``None`` = the
        index's own model."""
        self.index.set_query_model(model, precision=precision)
        self.config.query_model, self.config.query_precision = model, precision

    def set_reranker(self, reranker, precision: str | None = None) -> None:
        """Use a reranker: a ``Reranker`` / ``FeatureReranker``, its folder, a CrossEncoder folder or an adapter-zoo
        name; ``"auto"``: :func:`default_reranker` (the shipped one for the default pipeline, else none); ``None``
        or ``"none"`` = off.
        ``precision`` (default: the config's ``rerank_precision``): ``auto`` (bf16 where native), fp32 or bf16."""
        precision = _check_rerank_precision(precision or self.config.rerank_precision)
        self.config.rerank_precision = precision
        if reranker == AUTO:
            reranker = default_reranker(self.index)
        if reranker == "none":
            reranker = None
        if reranker is None or hasattr(reranker, "rerank"):
            self.reranker = reranker
            self.config.reranker = getattr(reranker, "path", None) if reranker is not None else None
        else:
            from .rerank import load_reranker

            path = _resolve_reranker(str(reranker))
            self.reranker = load_reranker(path)
            self.config.reranker = str(path)
        if hasattr(self.reranker, "set_precision"):
            self.reranker.set_precision(precision)

    # ---- construction --------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: str | os.PathLike | dict | LinkerConfig, show_progress: bool = False) -> "Linker":
        """Build from a YAML file, a dict or a ``LinkerConfig``; indexes built on the fly are cached."""
        source = "config"
        if isinstance(config, (str, os.PathLike)):
            source = str(config)
            config = read_yaml_mapping(config, "linker config")
        if isinstance(config, dict):
            config = LinkerConfig.from_dict(config, source)
        from .candidates import CandidateIndex

        if config.index:
            index = CandidateIndex.load(config.index)
        else:
            index = _cached_index(config.terminology or DEFAULT_TERMINOLOGY, config.candidates, show_progress)
        if config.candidates is None:  # record what the default resolved to (saved with the linker)
            config.candidates = index.config
        return cls(index, config)

    @classmethod
    def default(cls, show_progress: bool = False) -> "Linker":
        """The embedded default: English HPO + the embedded multilingual encoder (offline)."""
        return cls.from_config(LinkerConfig(), show_progress=show_progress)

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        with atomic_dir(path) as tmp:
            self.index.save(tmp / "index")
            cfg = asdict(self.config)
            cfg["index"] = "index"  # relative to the linker folder
            if self.reranker is not None:
                _save_reranker(self.reranker, tmp / "reranker")
                cfg["reranker"] = "reranker"
            (tmp / "linker.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
            manifest = {
                "format": FORMAT, "format_version": FORMAT_VERSION, "xnorm_version": __version__,
                "sha256": {"linker.yaml": sha256_file(tmp / "linker.yaml")},
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Linker":
        from .candidates import CandidateIndex

        path = Path(path)
        manifest = read_manifest(path, FORMAT, FORMAT_VERSION)
        verify_checksums(path, manifest)
        cfg_file = path / "linker.yaml"
        cfg = LinkerConfig.from_dict(read_yaml_mapping(cfg_file, "linker config"), str(cfg_file))
        index = CandidateIndex.load(path / (cfg.index or "index"))
        cfg.index = str(path / (cfg.index or "index"))
        if cfg.reranker:
            rr = path / cfg.reranker
            if not rr.is_dir():
                raise ArtifactError("the linker's reranker folder is missing.", file=str(rr), field="reranker",
                                    fix="save the linker again with Linker.save.")
            cfg.reranker = str(rr)
        return cls(index, cfg)

    # ---- linking -------------------------------------------------------------------------------------------
    @property
    def terminology(self):
        return self.index.terminology

    @property
    def rerank_k(self) -> int:
        """Candidates per mention the reranker re-scores: the config's, else the k the reranker was trained with."""
        info = getattr(self.reranker, "info", None) or {}
        return int(self.config.rerank_k or info.get("k") or 16)

    @property
    def db_name(self) -> str:
        return self.config.db_name or self.terminology.metadata.get("db_name") or self.terminology.metadata.get(
            "name", "") or ""

    @property
    def pipeline(self) -> str:
        """One line saying what runs (printed by `--explain` and stored in output metadata)."""
        text = self.index.describe()
        if self.reranker is not None:
            text += f"; top {self.rerank_k} reranked by {self.reranker.describe()}"
        return text

    def candidates(self, mentions: Mentions, k: int | None = None) -> Candidates:
        """Ranked candidates for a batch of mentions (all stages before the NIL threshold).

        With a reranker: the first ``rerank_k`` candidates are re-scored in one batch across mentions (language
        adapter chosen per mention language), scores = softmax over each mention's reranked candidates; any
        candidates beyond ``rerank_k`` follow in their generator order with score 0.
        """
        k = k or self.config.k
        rk = self.rerank_k
        cands = self.index.candidates(mentions, k=max(k, rk) if self.reranker else k, under=self.config.under)
        if self.reranker is None or len(mentions) == 0:
            return cands
        head = self.reranker.rerank(mentions, cands.top(rk), self.terminology)
        if cands.shape[1] > rk:
            tail = cands[np.arange(len(cands))]
            tail = Candidates(tail.concepts[:, rk:], np.where(tail.concepts[:, rk:] >= 0, 0.0, -np.inf),
                              tail.names[:, rk:], tail.routes[:, rk:])
            head = Candidates(np.hstack([head.concepts, tail.concepts]), np.hstack([head.scores, tail.scores]),
                              np.hstack([head.names, tail.names]), np.hstack([head.routes, tail.routes]),
                              head.source, head.meta)
        # A reranker may add candidates (a feature reranker's memory): the same branch and type rules apply to them.
        return self.index.restrict(mentions, head, under=self.config.under).top(k)

    def calibrate_threshold(self, mentions: Mentions, gold, *, target_precision: float | None = None
                            ) -> ThresholdChoice:
        """Set the NIL threshold from a dev set with gold ids (``None``/empty, or ids outside the terminology: a
        mention that should get no prediction); returns it with the dev set's precision / recall / F1 at it.

        A mention is linked when its top score is >= the threshold. Without ``target_precision`` the threshold
        maximises F1 of the linking decisions (true positive: linked to a gold id; false positive: linked but
        wrong, or linked though NIL; false negative: a non-NIL mention not linked correctly); with it, the
        lowest threshold whose precision reaches the target (the most recall at that precision).
        """
        from .errors import InputError

        term = self.terminology
        gold_sets = [{term.resolve(c) for c in ([g] if isinstance(g, str) else (g or ())) if c and c in term}
                     for g in gold]
        if len(gold_sets) != len(mentions) or not len(mentions):
            raise InputError(f"{len(gold_sets)} gold entries for {len(mentions)} mentions.", field="gold",
                             fix="give one gold id (or set of ids, empty for NIL) per mention.")
        top = self.candidates(mentions).top(1)
        ids = top.concept_ids(term)[:, 0]
        scores = top.scores[:, 0].astype(np.float64)
        correct = np.fromiter((i is not None and i in g for i, g in zip(ids, gold_sets)), dtype=bool,
                              count=len(ids))
        n_pos = sum(1 for g in gold_sets if g)
        # Candidate thresholds: every top score (link the mentions scoring at least it), descending.
        order = np.argsort(-scores, kind="stable")
        tp = np.cumsum(correct[order])
        linked = np.arange(1, len(order) + 1)
        precision = tp / linked
        recall = tp / max(1, n_pos)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
        # A threshold links every mention with its score, so only the last of a run of tied scores is a choice.
        sorted_scores = scores[order]
        choice = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
        precision, recall, f1 = (np.where(choice, v, -1.0) for v in (precision, recall, f1))
        if target_precision is None:
            if not tp[-1]:
                raise InputError("no dev mention's first answer is right, so no threshold helps.", field="gold",
                                 fix="check that the gold ids are this terminology's, or give a larger dev set.")
            best = int(np.argmax(f1))
        else:
            ok = np.flatnonzero(precision >= target_precision)
            if not len(ok):
                raise InputError(f"no threshold reaches precision {target_precision} on these mentions (best "
                                 f"{precision.max():.3f}; mentions with the same top score are linked together).",
                                 field="target_precision",
                                 fix="lower the target precision, give a larger dev set, or use a pipeline with a "
                                     "reranker (its scores tie less than the fused ones).")
            best = int(ok.max())
        threshold = float(sorted_scores[best])
        self.config.threshold = threshold
        return ThresholdChoice(threshold, float(precision[best]), float(recall[best]), float(f1[best]), best + 1,
                               len(mentions), n_pos)

    def predict(self, mentions: Mentions, top_k: int | None = None) -> Candidates:
        """Top-k predictions; rows whose best score is under the threshold are emptied (NIL)."""
        top_k = top_k or self.config.top_k
        cands = self.candidates(mentions).top(top_k)
        if self.config.threshold is not None and len(cands):
            nil = cands.scores[:, 0] < self.config.threshold
            cands.concepts[nil] = -1
            cands.scores[nil] = -np.inf
            cands.names[nil] = -1
            cands.routes[nil] = 0
        return cands

    def link(
        self,
        documents: Iterable[dict],
        *,
        top_k: int | None = None,
        field: str = "normalized",
        overwrite: bool = False,
        explain: bool = False,
        batch_size: int = 64,
        lang: str | None = None,
        progress=None,
    ) -> Iterator[dict]:
        """Yield the documents with each entity's ``field`` set to its ranked predictions.

        Streams: ``batch_size`` documents at a time. ``lang``: the language of every mention; ``"auto"``: each
        document's ``lang`` field, else detected from its text; ``None``: the ``lang`` field, else the default.
        Gold annotations in ``field`` are never silently replaced: with ``overwrite=False`` a non-empty
        ``field`` raises; write to another field or pass ``overwrite=True``.
        ``progress`` (optional) is called with the number of mentions done after each batch.
        """
        batch: list[dict] = []
        for doc in documents:
            batch.append(doc)
            if len(batch) >= batch_size:
                yield from self._link_batch(batch, top_k, field, overwrite, explain, lang, progress)
                batch = []
        if batch:
            yield from self._link_batch(batch, top_k, field, overwrite, explain, lang, progress)

    def link_dataset(self, dataset, *, top_k: int | None = None, field: str = "normalized",
                     overwrite: bool = False, batch_size: int = 64, lang: str | None = None):
        """Link a 🤗 ``datasets.Dataset`` in the BigBIO kb schema with ``dataset.map(batched=True)``.

        Returns a new dataset whose entities' ``field`` holds the predictions (same rules as ``link``).
        """
        columns = dataset.column_names

        def link_columns(batch: dict) -> dict:
            n = len(batch[columns[0]])
            docs = [{c: batch[c][i] for c in columns} for i in range(n)]
            linked = list(self.link(docs, top_k=top_k, field=field, overwrite=overwrite, batch_size=n or 1,
                                    lang=lang))
            return {"entities": [d["entities"] for d in linked]}

        return dataset.map(link_columns, batched=True, batch_size=batch_size,
                           features=None, desc="xnorm link")

    def mentions(self, docs: list[dict], lang: str | None = None) -> tuple[Mentions, np.ndarray]:
        """The entity mentions of ``docs`` as :meth:`link` sees them — language (``lang`` as in ``link``), context,
        long forms of abbreviations the document defines — and their ``refs`` (document, entity) indices."""
        from .data import document_text, mentions_from_documents

        mentions, refs = mentions_from_documents(docs, default_lang=self.config.default_lang,
                                                 context_chars=self.config.context_chars)
        if lang == "auto":  # documents that say their language keep it; the others are detected from their text
            from .data.language import detect_language

            doc_langs = [d.get("lang") or detect_language(document_text(d), self.config.default_lang) for d in docs]
            if len(mentions):
                mentions.langs[:] = np.asarray(doc_langs, dtype=object)[refs[:, 0]]
        elif lang:
            mentions.langs[:] = lang
        if self.config.abbreviations and len(mentions):
            from .candidates.abbreviations import fill_long_forms

            fill_long_forms(docs, mentions)
        return mentions, refs

    def _link_batch(self, docs, top_k, field, overwrite, explain, lang, progress):
        from .data import set_predictions

        if not overwrite:
            _check_no_gold(docs, field)
        mentions, refs = self.mentions(docs, lang)
        preds = self.predict(mentions, top_k)
        extra = None
        if explain:
            extra = _explanations(preds, self.terminology)
        set_predictions(docs, refs, preds.concept_ids(self.terminology), preds.scores, field=field,
                        db_name=self.db_name, extra=extra)
        if progress is not None:
            progress(len(mentions))
        yield from docs


def _explanations(preds: Candidates, terminology) -> np.ndarray:
    """Per prediction: the name that matched and the route that found it."""
    out = np.empty(preds.shape, dtype=object)
    for (i, j), c in np.ndenumerate(preds.concepts):
        if c < 0:
            continue
        n = preds.names[i, j]
        out[i, j] = {
            "matched_name": terminology.name_texts[n] if n >= 0 else terminology.preferred_names[c],
            "route": ROUTE_NAMES[preds.routes[i, j]],
        }
    return out


def _check_rerank_precision(precision: str, source: str | None = None) -> str:
    if precision not in RERANK_PRECISIONS:
        raise ConfigError(f"unknown rerank_precision {precision!r}.", file=source, field="rerank_precision",
                          fix=f"use one of {', '.join(RERANK_PRECISIONS)}.")
    return precision


def _resolve_reranker(spec: str) -> Path:
    """A reranker folder, or the name of a reranker in the adapter zoo."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    try:
        from . import zoo

        return zoo.reranker_folder(spec)
    except (ImportError, ArtifactError):
        raise ArtifactError("reranker folder not found (and no adapter-zoo entry of that name).", file=spec,
                            field="reranker", fix="train one with `xnorm train-reranker ... -o DIR` and pass DIR.") \
            from None


def _save_reranker(reranker, dest: Path) -> None:
    """The reranker's folder inside the linker folder (copied when it was loaded from one, else saved), with its
    generator weight as it is now (it may have been calibrated since it was loaded)."""
    import shutil

    from .rerank.model import update_manifest

    src = getattr(reranker, "path", None)
    if src and Path(src).is_dir():
        shutil.copytree(src, dest)
        if (dest / "manifest.json").is_file() and reranker.mode != "features":  # an xnorm cross-encoder's weight
            update_manifest(dest, generator_weight=reranker.info.get("generator_weight"))
    else:
        reranker.save(dest)


def _check_no_gold(docs: list[dict], field: str) -> None:
    from .errors import InputError

    for doc in docs:
        for ent in doc.get("entities", []):
            if ent.get(field):
                raise InputError(
                    f"entity {ent.get('id')!r} already has a non-empty {field!r} (gold annotations?) and would be"
                    " overwritten.", document=str(doc.get("id")), field=field,
                    fix="pass --overwrite to replace it, or --field NAME to write predictions to another field.",
                )


def _cached_index(terminology_spec: str, candidates_config: dict | None, show_progress: bool):
    """Load the index for (terminology, config) from the cache, building and saving it on first use."""
    from .candidates import CandidateIndex
    from .terminology import load_terminology

    terminology = load_terminology(terminology_spec)
    if candidates_config is None:
        candidates_config = default_candidates(terminology)
    # The key covers the terminology's content, not its name: an edited source gives a new index; the dense
    # models' weights, not their names: an adapter retrained under the same name gives a new index too; and the
    # config with its defaults filled in: a changed default (e.g. precision) gives a new index, not a stale one.
    from .candidates.config import normalize_config
    from .models.registry import weights_fingerprint

    full = normalize_config(candidates_config, source=f"{terminology_spec} candidates")
    weights = [weights_fingerprint(g["model"]) for g in full["generators"] if g["type"] == "dense"]
    h = hashlib.sha256(json.dumps({"candidates": full, "xnorm": __version__, "weights": weights},
                                  sort_keys=True, default=str).encode())
    for column in (terminology.concept_ids, terminology.name_texts, terminology.name_langs):
        h.update("\x1f".join(column.tolist()).encode())
    h.update(terminology.name_concepts.tobytes())
    h.update(terminology.is_a.tobytes())  # the hierarchy travels in the index (filters, lenient scoring)
    key = h.hexdigest()[:16]
    name = Path(str(terminology_spec)).name.replace(".yaml", "")
    path = indexes_dir() / f"{name}-{key}"
    if (path / "manifest.json").is_file():
        try:
            return CandidateIndex.load(path)
        except ArtifactError as e:  # a damaged cache is rebuilt, not fatal
            log.warning("cached index unusable (%s); rebuilding", e)
    log.info("building the candidate index for %s (first use; cached in %s)", terminology_spec, path)
    index = CandidateIndex.build(terminology, candidates_config, show_progress=show_progress)
    index.save(path)
    return index
