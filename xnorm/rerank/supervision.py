"""Training examples for the reranker: mentions with their gold concept row, from annotations or from synonyms.

- Supervised: BigBIO kb documents whose entities carry gold ids in ``normalized`` (GSC+ dev, Mantra, ...), or
  plain (text, language, concept id) labels such as the training concepts of the HPO translations.
- Weakly supervised (a language without annotations): a synonym of a concept is the mention; its candidates
  come from the index with that synonym's own name row left out, so the gold concept must be recognised from
  its *other* names (otherwise the task is a trivial string match).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Iterable, Sequence

import numpy as np

from ..errors import InputError
from ..types import GENERATOR_LISTS, Candidates, Mentions


@dataclass
class Examples:
    """Mentions with the row of their gold concept (``-1``: none in the terminology) and, for weak
    supervision, the name row that must not be offered as evidence (``-1``: none).

    ``gold_sets`` (optional, ``[n, g]``, padded with ``-1``) holds every acceptable concept row of a mention whose
    annotation names several (e.g. one UMLS CUI mapped to three HPO terms); training uses ``gold``, scoring any.
    """

    mentions: Mentions
    gold: np.ndarray
    exclude_names: np.ndarray | None = None
    description: str = ""
    gold_sets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.mentions)

    def __getitem__(self, index) -> "Examples":
        def take(a):
            return None if a is None else a[index]
        return Examples(self.mentions[index], self.gold[index], take(self.exclude_names), self.description,
                        take(self.gold_sets))

    def known(self) -> "Examples":
        """Only the mentions whose gold concept is in the terminology."""
        return self[self.gold >= 0]

    @staticmethod
    def concat(parts: Sequence["Examples"], description: str = "") -> "Examples":
        """One set of the ``parts``' mentions, in order (gold sets padded to the widest; name exclusions kept)."""
        mentions = Mentions(**{f.name: np.concatenate([getattr(p.mentions, f.name) for p in parts])
                               for f in fields(Mentions)})
        exclude = (np.concatenate([p.exclude_names if p.exclude_names is not None else np.full(len(p), -1)
                                   for p in parts]) if any(p.exclude_names is not None for p in parts) else None)
        sets = None
        if any(p.gold_sets is not None for p in parts):
            rows = [p.all_gold.reshape(len(p), -1) for p in parts]
            width = max(r.shape[1] for r in rows)
            sets = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1])), constant_values=-1) for r in rows])
        return Examples(mentions, np.concatenate([p.gold for p in parts]), exclude, description, sets)

    @property
    def all_gold(self) -> np.ndarray:
        """Every acceptable gold row: ``gold_sets`` when there are several, else ``gold``."""
        return self.gold if self.gold_sets is None else self.gold_sets

    def gold_ids(self, terminology) -> list[list[str]]:
        """Every acceptable gold concept of each mention, as ids (what ``xnorm.eval`` functions take)."""
        ids = terminology.concept_ids
        return [[ids[g] for g in row if g >= 0] for row in self.all_gold.reshape(len(self), -1)]

    def hits(self, concepts: np.ndarray) -> np.ndarray:
        """Which of ``concepts`` (``[n]`` or ``[n, k]`` concept rows, one row per mention) are a gold concept."""
        return is_gold(concepts, self.all_gold)


def is_gold(concepts: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """``concepts`` (``[n]`` or ``[n, k]``) that are one of their mention's gold rows (``gold``: ``[n]`` or
    ``[n, g]``, ``-1`` = none; an empty candidate slot, ``-1``, is never a hit)."""
    c = concepts.reshape(len(concepts), -1)
    g = gold.reshape(len(gold), -1)
    out = ((c[:, :, None] == g[:, None, :]) & (g[:, None, :] >= 0)).any(axis=2)
    return out.reshape(concepts.shape)


def _gold_sets(terminology, ids: Iterable[Sequence[str]]) -> np.ndarray:
    """``[n, g]``: per mention, the rows of all its ids known to ``terminology``, in order, padded with ``-1``."""
    rows = [list(dict.fromkeys(terminology.concept_index(c) for c in cands if c in terminology)) for cands in ids]
    out = np.full((len(rows), max([1] + [len(r) for r in rows])), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def examples_from_documents(docs: Sequence[dict], terminology, *, context_chars: int = 100,
                            default_lang: str = "en", description: str = "") -> Examples:
    """One example per entity with a gold id (``normalized``): its first id known to ``terminology`` is ``gold``,
    all of them ``gold_sets``."""
    from ..data import gold_ids, mentions_from_documents

    mentions, refs = mentions_from_documents(docs, default_lang=default_lang, context_chars=context_chars)
    ids = gold_ids(docs, refs)
    if not any(ids):
        raise InputError("no entity carries a gold id in 'normalized'; nothing to train on.", field="normalized",
                         fix="give annotated documents (BigBIO kb with normalized db_ids).")
    sets = _gold_sets(terminology, ids)
    return Examples(mentions, sets[:, 0], None, description, sets if sets.shape[1] > 1 else None)


def examples_from_labels(texts: Sequence[str], langs: Sequence[str], concept_ids: Sequence[str], terminology,
                         description: str = "") -> Examples:
    """Examples from bare labels (no context), e.g. the HPO translations of the training concepts."""
    gold = _gold_sets(terminology, ([c] for c in concept_ids))[:, 0]
    return Examples(Mentions(texts=list(texts), langs=list(langs)), gold, None, description)


def examples_from_synonyms(terminology, *, languages: Sequence[str] | None = None, max_examples: int | None = None,
                           seed: int = 0, concepts: np.ndarray | None = None) -> Examples:
    """Weak supervision: name rows of concepts with at least two names become mentions (their own row excluded).

    ``languages``: only names in these languages; ``concepts``: only these concept rows (e.g. a training
    split); ``max_examples``: a seeded sample.
    """
    t = terminology
    counts = np.bincount(t.name_concepts, minlength=len(t))
    ok = counts[t.name_concepts] >= 2  # the concept must stay reachable through another name
    if languages is not None:
        ok &= np.isin(np.asarray(t.name_langs, dtype=object).astype(str), list(languages))
    if concepts is not None:
        ok &= np.isin(t.name_concepts, concepts)
    rows = np.flatnonzero(ok)
    if max_examples is not None and len(rows) > max_examples:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_examples, replace=False))
    mentions = Mentions(texts=t.name_texts[rows].tolist(), langs=t.name_langs[rows].tolist())
    return Examples(mentions, t.name_concepts[rows].astype(np.int64), rows.astype(np.int64),
                    f"synonyms of {t.metadata.get('name', 'the terminology')}"
                    + (f" ({', '.join(languages)})" if languages else ""))


def candidates_for(index, examples: Examples, k: int) -> Candidates:
    """The index's candidates for the examples; with ``exclude_names``, each mention's own name row is left out
    of every generator's search before fusion (the concept can still be found through its other names)."""
    if examples.exclude_names is None or not (examples.exclude_names >= 0).any():
        return index.candidates(examples.mentions, k)
    from ..candidates.fusion import fuse_by_config

    cfg = index.config
    lists = [_generator_excluding(g, examples.mentions, k, cfg["routing"], cfg["default_lang"],
                                  examples.exclude_names) for g in index.generators]
    out = lists[0].top(k) if len(lists) == 1 else fuse_by_config(lists, k, cfg["fusion"])  # a copy: no self-reference
    out.meta[GENERATOR_LISTS] = {g.name: c for g, c in zip(index.generators, lists)}
    return out


def _generator_excluding(gen, mentions: Mentions, k: int, routing: str, default_lang: str,
                         exclude: np.ndarray) -> Candidates:
    """``CandidateGenerator.candidates`` with one excluded name row per mention (searched one name deeper)."""
    from ..candidates.base import mention_langs, pack, route_plan

    n = len(mentions)
    k_names = max(k * gen.names_per_concept, k) + 1
    langs = mention_langs(mentions, default_lang)
    texts = np.asarray(mentions.texts, dtype=object)
    parts = []
    for lang in sorted(set(langs.tolist())):
        idx = np.flatnonzero(langs == lang)
        queries = gen.encode_queries(texts[idx].tolist())
        for name_lang, route in route_plan(lang, gen.languages, routing, default_lang):
            kn = min(k_names, len(gen.lang_rows[name_lang]))
            name_rows, scores = gen.search(queries, name_lang, kn)
            m, kk = name_rows.shape
            parts.append((np.repeat(idx, kk), name_rows.ravel(), scores.ravel(), np.full(m * kk, route, np.int8)))
    if not parts:
        return Candidates.empty(n, k, gen.name)
    rows, name_rows, scores, routes = (np.concatenate(p) for p in zip(*parts))
    ok = (name_rows >= 0) & (name_rows != exclude[rows])
    rows, name_rows, scores, routes = rows[ok], name_rows[ok], scores[ok], routes[ok]
    concepts = gen.terminology.name_concepts[name_rows].astype(np.int64)
    return pack(rows, concepts, scores, name_rows, routes, n, k, gen.name)


SYNONYMS = "synonyms"


def load_examples(spec: str, terminology, *, max_examples: int | None = None, seed: int = 0,
                  context_chars: int = 100, lang: str | None = None) -> Examples:
    """Examples from ``spec``: a documents file/folder with gold ids (BigBIO kb JSONL, brat, PubTator, HF dataset;
    ``lang`` for formats without one), or ``synonyms`` / ``synonyms:es,fr`` for weak supervision from the
    terminology's own names. ``max_examples``: a seeded sample."""
    if spec == SYNONYMS or spec.startswith(SYNONYMS + ":"):
        langs = [x for x in spec[len(SYNONYMS) + 1:].split(",") if x] or None
        ex = examples_from_synonyms(terminology, languages=langs, max_examples=max_examples, seed=seed)
        if len(ex) == 0:
            raise InputError(f"no synonyms to train on{' in ' + ', '.join(langs) if langs else ''} (concepts need "
                             "two or more names).", field="--train",
                             fix=f"check the languages against the terminology's ({', '.join(terminology.languages)}).")
        return ex
    from ..data import read_documents

    opts = {}
    from ..data import detect_format

    fmt = detect_format(spec)
    if lang and fmt in ("brat", "pubtator"):
        opts["lang"] = lang
    docs = list(read_documents(spec, format=fmt, **opts))
    ex = examples_from_documents(docs, terminology, context_chars=context_chars, description=str(spec))
    n_unknown = int((ex.gold < 0).sum())
    ex = ex.known()
    if len(ex) == 0:
        raise InputError(f"none of the gold ids is in the index's terminology ({n_unknown} mentions).", file=spec,
                         field="normalized", fix="train with documents annotated with this terminology's ids.")
    if max_examples is not None and len(ex) > max_examples:
        ex = ex[np.sort(np.random.default_rng(seed).choice(len(ex), size=max_examples, replace=False))]
    ex.description = f"{spec} ({len(ex)} mentions" + (f", {n_unknown} with ids outside the terminology dropped)"
                                                      if n_unknown else ")")
    return ex
