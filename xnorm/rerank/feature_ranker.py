"""The feature reranker: a linear ranking model over cheap (mention, candidate) features, trained in seconds on CPU.

Each of a mention's k candidates gets a score ``w · z``: ``z`` its standardised features (:mod:`.features`:
generator scores, lexical overlap with the matched name, position in the is_a hierarchy, and a memory of the
training annotations), once as they are and once more for mentions *in domain* — in context and in a language the
training set annotated in context — so a corpus's conventions (its granularity, its favourite concepts) are
learnt there without being imposed on bare labels or other languages. Trained as a conditional logit: softmax
cross-entropy over each mention's candidates (any gold counts) + L2, by L-BFGS, each training mention seeing the
memory without its own document's annotations (as a test mention would); the L2 weight is chosen on dev
sets by the worst-set acc@1 gain over the candidates (the criterion the cross-encoders are kept by; among equals,
the best mean gain; dev mentions of untrained languages scored as reranking leaves them), one for the shared and
one for the in-domain half of the weights. Mentions in a language no training mention was in keep the candidate
stage's list: the weights know nothing of them (on XL-BEL, Thai lost 13 mentions to weights fitted to other
languages' labels); their scores become probabilities too, softmax(``fallback_scale`` × the candidate stage's
score), the scale fitted on the training mentions, so one NIL threshold means the same for every mention.

Saved as a folder: ``manifest.json`` (weights, feature names, standardisation) + ``memory.parquet`` (+
``translation.parquet``, :mod:`.translation`) — no pickles, nothing executable. ``xnorm train-reranker --mode
features``; the ``Linker`` loads it like any reranker.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from .. import __version__
from .._io import atomic_dir, sha256_file
from ..candidates.base import mention_langs
from ..errors import ArtifactError, InputError
from ..terminology.core import read_manifest, verify_checksums
from ..types import Candidates, Mentions
from .features import CorpusMemory, add_remembered, candidate_features, feature_names, has_context, own_documents
from .model import reorder, softmax_rows
from .supervision import Examples, candidates_for
from .translation import TranslationModel

FORMAT = "xnorm-feature-reranker"
FORMAT_VERSION = 1
MEMORY = "memory.parquet"
TRANSLATION = "translation.parquet"
L2_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
DEFAULT_L2 = 1e-2
CROSS_VALIDATION = "cross-validation"  # the dev-set name of the held-out folds' acc@1 in a report


class FeatureReranker:
    """Scores candidates with learnt weights over :func:`~xnorm.rerank.features.candidate_features`."""

    mode = "features"

    def __init__(self, weights: np.ndarray, mean: np.ndarray, std: np.ndarray, generators: list[str],
                 context_languages: list[str], memory: CorpusMemory, info: dict | None = None,
                 translation: TranslationModel | None = None, languages: list[str] | None = None,
                 fallback_scale: float | None = None) -> None:
        self.generators = list(generators)
        self.translation = translation
        n = len(self.features)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.mean, self.std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
        if self.weights.shape != (2 * n,) or self.mean.shape != (n,) or self.std.shape != (n,):
            raise ValueError(f"{n} features need {2 * n} weights and {n} means / stds")
        self.context_languages = sorted(context_languages)
        self.languages = None if languages is None else sorted(languages)  # None: rerank every language
        # Unseen languages' scores: softmax(fallback_scale * candidate stage's score), fitted on the training
        # mentions, so every mention's scores are probabilities (one NIL threshold); None: their scores as they were.
        self.fallback_scale = None if fallback_scale is None else float(fallback_scale)
        self.memory = memory
        self.info = dict(info or {})
        self.path: str | None = None

    @property
    def features(self) -> list[str]:
        return feature_names(self.generators, self.translation.languages if self.translation is not None else None)

    def design(self, mentions: Mentions, candidates: Candidates, terminology) -> np.ndarray:
        """``[n, k, 2F]``: standardised features, then the same again for in-domain mentions (zeros elsewhere)."""
        return self._expand(candidate_features(mentions, candidates, terminology, self.memory, self.generators,
                                               translation=self.translation), mentions)

    def _expand(self, x: np.ndarray, mentions: Mentions) -> np.ndarray:
        z = (x - self.mean) / self.std
        domain = has_context(mentions) & np.isin(mention_langs(mentions), self.context_languages)
        return np.concatenate([z, z * domain[:, None, None]], axis=-1)

    def logits(self, mentions: Mentions, candidates: Candidates, terminology) -> np.ndarray:
        """``[n, k]`` scores before the softmax (``-inf`` in empty slots)."""
        s = self.design(mentions, candidates, terminology) @ self.weights
        return np.where(candidates.concepts >= 0, s, -np.inf)

    def rerank_scores(self, mentions: Mentions, candidates: Candidates, terminology, **_) -> np.ndarray:
        """Softmax over each mention's candidates, in their own order; for a mention in a language the training
        never saw, the softmax of the candidate stage's scores times ``fallback_scale`` (their order kept)."""
        scale = 1.0 if self.fallback_scale is None else self.fallback_scale
        logits = np.where(candidates.concepts >= 0, scale * candidates.scores, -np.inf).astype(np.float64)
        seen = np.flatnonzero(~self._unseen(mentions))
        if len(seen):  # no features for the others: an English corpus under a ranker of other languages costs nothing
            logits[seen] = self.logits(mentions[seen], candidates[seen], terminology)
        return softmax_rows(logits)

    def rerank(self, mentions: Mentions, candidates: Candidates, terminology, **_) -> Candidates:
        """``candidates`` with the concepts the memory holds for a mention's exact text added
        (:func:`~xnorm.rerank.features.add_remembered`), re-ordered by :meth:`rerank_scores` (ties keep the
        generator's order); a mention in a language the training never saw keeps its row as it was, with
        probabilities as scores where the ranker has a ``fallback_scale`` (else the scores as they were)."""
        candidates = add_remembered(mentions, candidates, terminology, self.memory)
        scores = self.rerank_scores(mentions, candidates, terminology)
        out = reorder(candidates, scores)
        unseen = self._unseen(mentions)
        for field in ("concepts", "names", "routes"):
            getattr(out, field)[unseen] = getattr(candidates, field)[unseen]
        out.scores[unseen] = (scores if self.fallback_scale is not None else candidates.scores)[unseen]
        return out

    def _unseen(self, mentions: Mentions) -> np.ndarray:
        """Mentions in a language no training mention was in."""
        if self.languages is None:
            return np.zeros(len(mentions.texts), dtype=bool)
        return ~np.isin(mention_langs(mentions), self.languages)

    def describe(self) -> str:
        langs = ",".join(self.context_languages) or "none"
        trained = ",".join(self.languages) if self.languages is not None else "all"
        tables = (f", translation tables: {','.join(self.translation.languages)}" if self.translation is not None
                  else "")
        return (f"feature reranker({len(self.features)} features, {len(self.memory):,} remembered annotations, "
                f"languages: {trained}, in-domain: {langs}{tables})")

    # ---- training ------------------------------------------------------------------------------------------
    @classmethod
    def train(cls, index, train: Examples, *, k: int = 16, dev: Mapping[str, Examples] | None = None,
              l2: float | tuple[float, float] | None = None, l2_grid=L2_GRID, memory: bool = True,
              translation: TranslationModel | None = None) -> tuple["FeatureReranker", dict]:
        """Fit on ``train`` (gold rows over ``index``'s terminology) with ``index``'s top-k candidates.

        ``l2``: a fixed weight, or a fixed (shared, in-domain) pair (e.g. one chosen on dev, to refit on train +
        dev); else two, one for the shared and one for the in-domain half of the weights, the
        best pair from ``l2_grid`` on the ``dev`` sets — two, because a dev set of bare labels depends on the
        shared half only, and should not hold the in-domain half back. Without dev sets, one L2 for both, chosen by
        cross-validation over the training documents (:func:`document_folds`; fewer than two documents:
        ``DEFAULT_L2``): a small training set needs a much larger L2 than a large one.
        ``memory=False``: remember no annotations (the prior and memory features stay zero), for a ranker meant
        for other corpora than the one it was trained on.
        ``translation``: word-piece translation tables (:mod:`.translation`) whose scores become features — fitted
        on names that are none of the training mentions' (else the training sees its own answers).
        Returns the reranker and a report (sizes, time, per-l2 dev acc@1).
        """
        t0 = time.perf_counter()
        term = index.terminology
        train = train.known()
        if len(train) == 0:
            raise InputError("no training mention has a gold concept in the index's terminology.", field="--train",
                             fix="train with documents annotated with this terminology's ids.")
        ids = term.concept_ids
        annotations = CorpusMemory.from_examples(train if memory else train[np.arange(0)], term)
        generators = [g.name for g in index.generators]
        context_languages = sorted(set(mention_langs(train.mentions)[has_context(train.mentions)].tolist()))
        languages = sorted(set(mention_langs(train.mentions).tolist()))
        # every training mention's own document, counted before any mention is dropped below
        held_out = own_documents(train.mentions, [ids[g] for g in train.gold]) if len(annotations) else None
        cands = add_remembered(train.mentions, candidates_for(index, train, k), term, annotations, held_out)
        n_train = len(train)
        keep = np.flatnonzero(train.hits(cands.concepts).any(axis=1))  # the gold is among the candidates
        if not len(keep):
            raise InputError(f"no training mention has its gold concept among its {k} candidates.", field="--train",
                             fix="check that the annotations use the index's terminology, or raise --k.")
        train, cands = train[keep], cands[keep]
        held_out = (held_out[0][keep], held_out[1]) if held_out is not None else None
        x = candidate_features(train.mentions, cands, term, annotations, generators, held_out, translation)
        valid = cands.concepts >= 0
        mean, std = x[valid].mean(axis=0), x[valid].std(axis=0)
        n_feat = x.shape[-1]
        probe = cls(np.zeros(2 * n_feat), mean, np.where(std > 1e-6, std, 1.0), generators, context_languages,
                    annotations, translation=translation, languages=languages)
        z = probe._expand(x, train.mentions)
        gold = train.hits(cands.concepts)
        dev_sets = {}
        for name, ex in (dev or {}).items():
            ex = ex.known()
            c = add_remembered(ex.mentions, candidates_for(index, ex, k), term, annotations)
            dev_sets[name] = (ex, c, probe.design(ex.mentions, c, term), probe._unseen(ex.mentions))
        folds = None if dev_sets or l2 is not None else document_folds(train.mentions)
        if l2 is not None:
            grid = [tuple(float(v) for v in l2)] if isinstance(l2, (tuple, list)) else [(float(l2), float(l2))]
        elif dev_sets:
            grid = [(a, b) for a in sorted(l2_grid) for b in sorted(l2_grid)]
        else:  # cross-validation: one training distribution, so one L2 for both halves
            grid = [(a, a) for a in sorted(l2_grid)] if folds is not None else [(DEFAULT_L2, DEFAULT_L2)]
        fits, scores = [], []
        for shared, domain in grid:
            penalty = np.repeat([shared, domain], n_feat)
            fits.append(_fit(z, valid, gold, penalty))
            if folds is not None:
                scores.append({CROSS_VALIDATION: _cross_validated(z, valid, gold, folds, penalty)})
            else:
                scores.append({name: _acc1(fits[-1], *d) for name, d in dev_sets.items()})
        base = {name: float(ex.hits(c.concepts[:, 0]).mean()) for name, (ex, c, *_) in dev_sets.items()}
        if folds is not None:
            base = {CROSS_VALIDATION: float(gold[:, 0].mean())}
        best = choose_l2(grid, scores, base)
        probe.weights = fits[best]
        chosen = {"shared": grid[best][0], "in_domain": grid[best][1]}
        report = {"train_mentions": n_train, "trained_on": int(len(keep)), "k": int(k), "l2": chosen,
                  "dev_candidates": base, "dev_chosen": scores[best],
                  "dev": [{"l2": list(v), **s} for v, s in zip(grid, scores)],
                  "train_seconds": round(time.perf_counter() - t0, 2), "description": train.description}
        probe.fallback_scale = fallback_scale(x[..., probe.features.index("fused")], valid, gold)
        report["fallback_scale"] = probe.fallback_scale
        probe.info.update({"k": int(k), "l2": chosen, "training": report})
        if translation is not None:
            probe.info["translation"] = translation.info
        return probe, report

    # ---- persistence ---------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the folder atomically: manifest (weights) + memory table (+ translation tables)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        with atomic_dir(path) as tmp:
            m = self.memory
            pq.write_table(pa.table({"lang": m.langs.astype(str).tolist(), "text": m.texts.astype(str).tolist(),
                                     "concept_id": m.concept_ids.astype(str).tolist(), "count": m.counts}),
                           tmp / MEMORY)
            files = [MEMORY]
            if self.translation is not None:
                # zstd: a third smaller than the default snappy for these string-heavy tables
                pq.write_table(self.translation.to_arrow(), tmp / TRANSLATION, compression="zstd")
                files.append(TRANSLATION)
            manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "xnorm_version": __version__,
                        "mode": self.mode, "generators": self.generators, "features": self.features,
                        "languages": self.languages, "context_languages": self.context_languages,
                        "weights": self.weights.tolist(), "fallback_scale": self.fallback_scale,
                        "translation": None if self.translation is None else
                        {"tokenizer": self.translation.tokenizer, "languages": self.translation.languages},
                        "mean": self.mean.tolist(), "std": self.std.tolist(),
                        "info": json.loads(json.dumps(self.info, default=str)),
                        "sha256": {f: sha256_file(tmp / f) for f in files}}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        self.path = str(path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureReranker":
        import pyarrow.parquet as pq

        path = Path(path)
        manifest = read_manifest(path, FORMAT, FORMAT_VERSION)
        verify_checksums(path, manifest)
        tables = manifest.get("translation")
        if not features_match(manifest):
            raise ArtifactError("this feature reranker was written with other features than this version of xnorm "
                                "computes.", file=str(path / "manifest.json"), field="features",
                                fix="retrain it with `xnorm train-reranker --mode features`.")
        t = pq.read_table(path / MEMORY).to_pydict()
        obj = lambda key: np.asarray(t[key], dtype=object)  # noqa: E731
        memory = CorpusMemory(obj("lang"), obj("text"), obj("concept_id"), np.asarray(t["count"], dtype=np.int64))
        translation = None
        if tables:
            translation = TranslationModel.from_parquet(path / TRANSLATION, tables["languages"], tables["tokenizer"],
                                                        manifest.get("info", {}).get("translation"))
            try:  # now, not at the first mention linked: the tables mean nothing without their tokenizer
                translation.tokenizer_path()
            except ArtifactError as e:
                raise ArtifactError(f"the tokenizer of its translation tables, {tables['tokenizer']!r}, is not "
                                    f"here ({e.message})", file=str(path / "manifest.json"),
                                    field="translation.tokenizer",
                                    fix="install that model (or copy its folder) where the manifest says, or "
                                        "retrain with --tokenizer set to a model this machine has.") from None
        out = cls(manifest["weights"], manifest["mean"], manifest["std"], manifest["generators"],
                  manifest["context_languages"], memory, manifest.get("info"), translation,
                  manifest.get("languages"), manifest.get("fallback_scale"))
        out.path = str(path)
        return out


def features_match(manifest: dict) -> bool:
    """Whether a saved feature reranker's manifest lists the features this version computes for its generators and
    translation tables (else its weights mean nothing here)."""
    tables = manifest.get("translation")
    return manifest.get("features") == feature_names(manifest.get("generators", []),
                                                     tables["languages"] if tables else None)


def is_feature_reranker(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a saved feature reranker (its manifest says so)."""
    try:
        return json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def choose_l2(grid: list[tuple[float, float]], scores: list[dict[str, float]], base: dict[str, float]) -> int:
    """The index of the grid's best L2 pair: the best worst-set dev acc@1 gain over the candidates (``base``); among
    equals the best mean gain (a dev set that every pair leaves unchanged must not decide for the others), then the
    larger L2s."""
    gains = [[s[n] - base[n] for n in s] or [0.0] for s in scores]
    return max(range(len(grid)), key=lambda i: (round(min(gains[i]), 9), round(float(np.mean(gains[i])), 9), grid[i]))


def document_folds(mentions: Mentions, n_folds: int = 5, seed: int = 0) -> np.ndarray | None:
    """Per mention, its cross-validation fold: whole documents (a mention without a document id is one), dealt
    round-robin in a seeded order; ``None`` with fewer than two documents."""
    groups = np.asarray([str(d) if d else f"#{i}" for i, d in enumerate(mentions.doc_ids)], dtype=object)
    uniq, inverse = np.unique(groups, return_inverse=True)
    if len(uniq) < 2:
        return None
    order = np.random.default_rng(seed).permutation(len(uniq))
    fold_of_group = np.empty(len(uniq), dtype=np.int64)
    fold_of_group[order] = np.arange(len(uniq)) % min(n_folds, len(uniq))
    return fold_of_group[inverse]


def _cross_validated(z: np.ndarray, valid: np.ndarray, gold: np.ndarray, folds: np.ndarray,
                     l2: np.ndarray) -> float:
    """acc@1 of the held-out folds, each ranked by weights fitted on the other folds."""
    right = 0
    for f in np.unique(folds):
        out = folds == f
        w = _fit(z[~out], valid[~out], gold[~out], l2)
        s = np.where(valid[out], z[out] @ w, -np.inf)
        right += int(gold[out][np.arange(int(out.sum())), s.argmax(axis=1)].sum())
    return right / len(z)


def fallback_scale(fused: np.ndarray, valid: np.ndarray, gold: np.ndarray) -> float:
    """The temperature that turns the candidate stage's scores ``fused`` [n, k] into probabilities: the one weight
    of a conditional logit on them alone (what the training mentions' gold says a score is worth)."""
    return max(0.0, float(_fit(fused[..., None], valid, gold, np.zeros(1))[0]))


def _acc1(weights: np.ndarray, ex: Examples, cands: Candidates, design: np.ndarray, unseen: np.ndarray) -> float:
    """Dev acc@1 as :meth:`FeatureReranker.rerank` would score it: ``unseen`` mentions (a language the training
    never saw) keep the candidate stage's first."""
    s = np.where(cands.concepts >= 0, design @ weights, -np.inf)
    first = np.where(unseen, 0, s.argmax(axis=1))
    return float(ex.hits(cands.concepts[np.arange(len(ex)), first]).mean()) if len(ex) else 0.0


def _fit(z: np.ndarray, valid: np.ndarray, gold: np.ndarray, l2: np.ndarray) -> np.ndarray:
    """Conditional-logit weights: mean over mentions of ``-log Σ_gold p`` (p: softmax over the valid slots),
    plus ``Σ l2_f · w_f²`` (one L2 weight per feature), minimised by L-BFGS with the analytic gradient."""
    from scipy.optimize import minimize

    n = len(z)
    gold = gold & valid

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = np.where(valid, z @ w, -np.inf)
        s -= s.max(axis=1, keepdims=True)
        e = np.where(valid, np.exp(s), 0.0)
        eg = np.where(gold, e, 0.0)
        tot, tot_g = e.sum(axis=1), eg.sum(axis=1)
        loss = float(np.mean(np.log(tot) - np.log(tot_g))) + float(l2 @ (w * w))
        coef = e / tot[:, None] - eg / tot_g[:, None]  # p - q, q: p renormalised over the gold slots
        grad = np.einsum("nk,nkf->f", coef, z) / n + 2 * l2 * w
        return loss, grad

    res = minimize(objective, np.zeros(z.shape[-1]), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x
