"""Word-piece translation tables between a language and the terminology's pivot (English), for the feature reranker.

IBM Model 1 (Brown et al., 1993), fitted by EM on (name in language L, preferred name of the same concept) pairs —
the translations a multilingual terminology already holds — in both directions: ``to_pivot`` = t(piece of L |
English piece), ``from_pivot`` = t(English piece | piece of L). A candidate's features are how well one side's
pieces are explained by the other's (IBM Model 1's per-piece log-likelihood, best over the candidate's English
names) and how many pieces nothing on the other side explains (a word one side has and the other lacks: right /
left, toe / nail; one piece in thirty barely moves a mean). Why: a dense encoder trained on the same translations
ranks the concepts that have *no* name in L poorly in languages far from English (Japanese, Chinese labels: acc@1
0.64); the tables read a new label piece by piece, as compositional as HPO's labels are.

Pieces come from a subword tokenizer (default: the embedded multilingual-e5-small's XLM-R sentencepiece) over
normalised text (NFKC, lower case), plus, for Chinese and Japanese script, each character and character bigram:
sentencepiece cuts CJK text into multi-character words that a new compound rarely repeats, while its characters
recur (on the benchmark, Japanese 0.793 -> 0.807, Chinese 0.753 -> 0.763); plus each whole word of three letters
or more in other scripts (marked ``§``): sentencepiece cuts microcephaly and brachycephaly into pieces they share,
while 短头 can align to the whole word. Tables are stored as their pieces (strings), so they stay readable and do
not depend on token ids.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from ..candidates.base import mention_langs
from ..errors import ConfigError
from ..types import Candidates, Mentions

if TYPE_CHECKING:
    import pyarrow as pa

PIVOT = "en"
DIRECTIONS = ("to_pivot", "from_pivot")
UNEXPLAINED_SUFFIX = "_unexplained"  # a direction's feature of unexplained-piece counts: to_pivot_unexplained
DEFAULT_TOKENIZER = "multilingual-e5-small"
FLOOR = 1e-4  # probability floor: log(FLOOR) for a piece the other side does not explain
UNEXPLAINED = 0.05  # a piece is unexplained when Σ over the other side's pieces (and NULL) of t(piece | ·) is below
MIN_PROB = 1e-3  # table entries below this are dropped after fitting (they only ever add < MIN_PROB / (l + 1))
EM_ITERATIONS = 10
NULL = "<null>"  # the empty word of Model 1: a piece may be explained by nothing on the other side
CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")  # kana and CJK ideographs
WORD = re.compile(r"[^\W\d_]{3,}")  # three letters or more: a whole word, next to its word pieces
WORD_MARK = "§"


class Table:
    """t(source piece | target piece) of one language and direction: ``matrix`` [sources, targets + NULL]."""

    def __init__(self, sources: Sequence[str], targets: Sequence[str], matrix: sp.csr_matrix) -> None:
        self.sources = {s: i for i, s in enumerate(sources)}
        self.targets = {t: i for i, t in enumerate(targets)}
        if self.targets.get(NULL) != 0:
            raise ValueError(f"target 0 must be {NULL}")
        self.matrix = matrix.tocsr()

    @classmethod
    def fit(cls, source_docs: Sequence[Sequence[str]], target_docs: Sequence[Sequence[str]],
            iterations: int = EM_ITERATIONS, min_prob: float = MIN_PROB) -> "Table":
        """EM over aligned (source pieces, target pieces) pairs, vectorised over every (source piece, target piece)
        link of every pair."""
        sources: dict[str, int] = {}
        targets: dict[str, int] = {NULL: 0}
        link_s, link_t, link_group, n_groups = [], [], [], 0
        for src, tgt in zip(source_docs, target_docs):
            if not src or not tgt:
                continue
            t_ids = np.asarray([0] + [targets.setdefault(t, len(targets)) for t in tgt], dtype=np.int64)
            for s in src:  # one group per source piece: its probability mass is shared over its pair's targets
                link_s.append(np.full(len(t_ids), sources.setdefault(s, len(sources)), dtype=np.int64))
                link_t.append(t_ids)
                link_group.append(np.full(len(t_ids), n_groups, dtype=np.int64))
                n_groups += 1
        n_t = len(targets)
        if not n_groups:
            return cls(list(sources), list(targets), sp.csr_matrix((0, n_t)))
        codes, link = np.unique(np.concatenate(link_s) * n_t + np.concatenate(link_t), return_inverse=True)
        group = np.concatenate(link_group)
        code_t = codes % n_t
        t = np.ones(len(codes))
        for _ in range(iterations):
            at = t[link]
            posterior = at / np.bincount(group, at)[group]
            counts = np.bincount(link, posterior, minlength=len(codes))
            t = counts / np.bincount(code_t, counts, minlength=n_t)[code_t]
        keep = t >= min_prob
        matrix = sp.csr_matrix((t[keep], (codes[keep] // n_t, code_t[keep])), shape=(len(sources), n_t))
        return cls(list(sources), list(targets), matrix)

    def score(self, source_docs: Sequence[Sequence[str]],
              target_docs: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Per pair: the mean over the source pieces the table knows of log(Σ_{t ∈ target + NULL} t(s | t) /
        (|target| + 1)) (at least log FLOOR; log FLOOR where it knows none), and how many source pieces are left
        unexplained (unknown to the table, or Σ_t t(s | t) < UNEXPLAINED)."""
        n = len(source_docs)
        s_ids, s_pair = _piece_ids(source_docs, self.sources)
        t_ids, t_pair = _piece_ids(target_docs, self.targets, NULL)
        sizes = np.asarray([len(doc) for doc in source_docs], dtype=np.float64)
        if not len(s_ids):
            return np.full(n, np.log(FLOOR)), sizes
        lengths = np.asarray([len(doc) + 1 for doc in target_docs], dtype=np.float64)
        bags = sp.csr_matrix((np.ones(len(t_ids)), (t_ids, t_pair)), shape=(len(self.targets), n))
        mass = explained_mass(self.matrix, bags, s_ids, s_pair)
        known = np.bincount(s_pair, minlength=n)
        total = np.bincount(s_pair, np.log(np.maximum(mass / lengths[s_pair], FLOOR)), minlength=n)
        weak = np.bincount(s_pair, (mass < UNEXPLAINED).astype(np.float64), minlength=n)
        return np.where(known > 0, total / np.maximum(known, 1), np.log(FLOOR)), sizes - known + weak

    def rows(self) -> tuple[list[str], list[str], np.ndarray]:
        """(source, target, probability) of every entry."""
        m = self.matrix.tocoo()
        s_names, t_names = list(self.sources), list(self.targets)
        return [s_names[i] for i in m.row], [t_names[j] for j in m.col], m.data


class TranslationModel:
    """Per language (other than the pivot), a :class:`Table` in each of :data:`DIRECTIONS`."""

    def __init__(self, tables: Mapping[tuple[str, str], Table], tokenizer: str = DEFAULT_TOKENIZER,
                 info: dict | None = None) -> None:
        self.tables = tables
        self.tokenizer = str(tokenizer)
        self.info = dict(info or {})
        self._tok = None
        self._pieces: dict[str, list[str]] = {}
        self._names: tuple | None = None

    @property
    def languages(self) -> list[str]:
        return sorted({lang for lang, _ in self.tables})

    # ---- fitting ---------------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, texts: Sequence[str], langs: Sequence[str], pivot_texts: Sequence[str],
            tokenizer: str = DEFAULT_TOKENIZER, iterations: int = EM_ITERATIONS) -> "TranslationModel":
        """Tables from parallel names: ``texts[i]`` (language ``langs[i]``) translates ``pivot_texts[i]``."""
        model = cls({}, tokenizer)
        langs = np.asarray(langs, dtype=object)
        pairs = {}
        for lang in sorted(set(langs.tolist()) - {PIVOT}):
            rows = np.flatnonzero(langs == lang)
            src = model.pieces([texts[i] for i in rows])
            tgt = model.pieces([pivot_texts[i] for i in rows], cache=True)  # the same names in every language
            model.tables[(lang, "to_pivot")] = Table.fit(src, tgt, iterations)
            model.tables[(lang, "from_pivot")] = Table.fit(tgt, src, iterations)
            pairs[lang] = int(len(rows))
        model.info = {"pairs": pairs, "em_iterations": iterations}
        return model

    @classmethod
    def from_terminology(cls, terminology, *, exclude: Iterable[str | tuple[str, str]] = (), languages=None,
                         tokenizer: str = DEFAULT_TOKENIZER) -> "TranslationModel":
        """Tables from a terminology's names in other languages than the pivot, each paired with its concept's
        preferred (pivot-language) name. ``exclude``: concepts whose names to leave out — a concept id (every
        language: test concepts) or a (language, concept id) pair (the training mentions' concepts in their
        language); ``languages``: only these."""
        names = np.flatnonzero(terminology.name_langs != PIVOT)
        if languages is not None:
            names = names[np.isin(terminology.name_langs[names], list(languages))]
        drop = set(exclude)
        ids = terminology.concept_ids
        names = np.asarray([i for i in names.tolist() if ids[terminology.name_concepts[i]] not in drop
                            and (terminology.name_langs[i], ids[terminology.name_concepts[i]]) not in drop], dtype=int)
        if not len(names):
            raise ConfigError("the terminology has no names outside the pivot language (English) to learn "
                              "translations from.", field="--translations",
                              fix="pass a multilingual terminology (e.g. hpo-multilingual), or drop --translations.")
        concepts = terminology.name_concepts[names]
        model = cls.fit(terminology.name_texts[names].tolist(), terminology.name_langs[names].tolist(),
                        terminology.preferred_names[concepts].tolist(), tokenizer)
        model.info["source"] = str(terminology.metadata.get("name", "terminology"))
        return model

    # ---- features --------------------------------------------------------------------------------------------
    def pieces(self, texts: Sequence[str], cache: bool = False) -> list[list[str]]:
        """The tokenizer's pieces of each normalised text; ``cache``: keep them (the terminology's names, which
        every batch of mentions meets again — not the mentions, which would grow the cache without bound)."""
        from .features import normalise

        missing = [t for t in dict.fromkeys(texts) if t not in self._pieces]
        found: dict[str, list[str]] = {}
        if missing:
            norm = [normalise(t) for t in missing]
            for text, clean, tokens in zip(missing, norm, self._tokens(norm)):
                found[text] = tokens + _cjk_grams(clean) + _words(clean)
            if cache:
                self._pieces.update(found)
        return [self._pieces[t] if t in self._pieces else found[t] for t in texts]

    def _tokens(self, texts: list[str]) -> list[list[str]]:
        """The tokenizer's pieces of each text, an unknown piece as the unknown token (what the ids say)."""
        from ..models.tokenizers import call_lock

        tok = self._tokenizer()
        backend = getattr(tok, "backend_tokenizer", None)
        with call_lock(tok):
            if backend is None:
                return [tok.convert_ids_to_tokens(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
            # the Rust tokenizer itself: transformers' conversion of each encoding costs twice the tokenizing
            encodings = backend.encode_batch(texts, add_special_tokens=False)
        unk, unk_id = tok.unk_token, tok.unk_token_id
        return [[unk if i == unk_id else t for t, i in zip(e.tokens, e.ids)] for e in encodings]

    def tokenizer_path(self) -> str:
        """Where the tokenizer lies (an embedded model is materialized on first use); ArtifactError if nowhere."""
        from ..models.registry import resolve_model

        return resolve_model(self.tokenizer)

    def _tokenizer(self):
        if self._tok is None:
            from ..models.tokenizers import load_tokenizer

            self._tok = load_tokenizer(self.tokenizer_path())
        return self._tok

    def features(self, mentions: Mentions, candidates: Candidates, terminology) -> dict[str, np.ndarray]:
        """``[n, k]`` per column of :func:`feature_columns`: per direction the score of the candidate's best English
        name and the fewest unexplained pieces over its names, zero for mentions in a language without tables (the
        pivot's own, others) and for empty slots; and the scores again per language, zero outside it (how much to
        trust a table differs with its size and quality)."""
        n, k = candidates.shape
        out = {c: np.zeros((n, k)) for d in DIRECTIONS for c in (d, d + UNEXPLAINED_SUFFIX)}
        langs = mention_langs(mentions)
        names_of = self._pivot_names(terminology)
        for lang in self.languages:
            rows = np.flatnonzero(langs == lang)
            if not len(rows):
                continue
            m_pieces = self.pieces(mentions.texts[rows].tolist())
            pair_row, pair_slot, src, tgt = [], [], [], []
            for a, i in enumerate(rows):
                for j in np.flatnonzero(candidates.concepts[i] >= 0):
                    for name in names_of(int(candidates.concepts[i, j])):
                        pair_row.append(i)
                        pair_slot.append(j)
                        src.append(m_pieces[a])
                        tgt.append(name)
            if not pair_row:
                continue
            tgt = self.pieces(tgt, cache=True)
            at = (np.asarray(pair_row), np.asarray(pair_slot))
            for d, (scores, unexplained) in (("to_pivot", self.tables[(lang, "to_pivot")].score(src, tgt)),
                                             ("from_pivot", self.tables[(lang, "from_pivot")].score(tgt, src))):
                best, fewest = np.full((n, k), -np.inf), np.full((n, k), np.inf)
                np.maximum.at(best, at, scores)
                np.minimum.at(fewest, at, unexplained)
                out[d][rows] = np.where(np.isfinite(best[rows]), best[rows], 0.0)
                out[d + UNEXPLAINED_SUFFIX][rows] = np.where(np.isfinite(fewest[rows]), fewest[rows], 0.0)
        cols = dict(out)
        for lang in self.languages:
            mask = (langs == lang)[:, None]
            cols.update({f"{d}@{lang}": np.where(mask, out[d], 0.0) for d in DIRECTIONS})
        return {f"translation_{key}": v for key, v in cols.items()}

    def _pivot_names(self, terminology):
        """concept row -> its pivot-language names (the preferred name when it has none), cached per terminology."""
        if self._names is None or self._names[0] is not terminology:
            by_concept: dict[int, list[str]] = {}
            for i in np.flatnonzero(terminology.name_langs == PIVOT):
                by_concept.setdefault(int(terminology.name_concepts[i]), []).append(str(terminology.name_texts[i]))
            preferred = terminology.preferred_names
            self._names = (terminology, lambda c: by_concept.get(c) or [str(preferred[c])])
        return self._names[1]

    # ---- persistence -----------------------------------------------------------------------------------------
    def to_arrow(self):
        """The tables as one Arrow table (lang, direction, source, target, prob), for a parquet file."""
        import pyarrow as pa

        cols: dict[str, list] = {"lang": [], "direction": [], "source": [], "target": []}
        probs = []
        for (lang, d), table in sorted(self.tables.items()):
            s, t, p = table.rows()
            cols["lang"] += [lang] * len(s)
            cols["direction"] += [d] * len(s)
            cols["source"] += s
            cols["target"] += t
            probs.append(p.astype(np.float32))
        prob = np.concatenate(probs) if probs else np.zeros(0, dtype=np.float32)
        return pa.table({**cols, "prob": pa.array(prob, type=pa.float32())})

    @classmethod
    def from_arrow(cls, table, tokenizer: str, info: dict | None = None) -> "TranslationModel":
        """Back from :meth:`to_arrow`'s table; each (language, direction) table is built on first use."""
        keys = table.group_by(["lang", "direction"]).aggregate([])
        return cls(ArrowTables(zip(keys["lang"].to_pylist(), keys["direction"].to_pylist()), lambda: table),
                   tokenizer, info)

    @classmethod
    def from_parquet(cls, path, languages: Sequence[str], tokenizer: str, info: dict | None = None
                     ) -> "TranslationModel":
        """A parquet file of :meth:`to_arrow`'s table with tables of ``languages``, read at the first use of one
        (linking English text under a ranker with tables costs neither the 0.5 s nor the 300 MB they take)."""
        import pyarrow.parquet as pq

        keys = [(lang, d) for lang in languages for d in DIRECTIONS]
        return cls(ArrowTables(keys, lambda: pq.read_table(path)), tokenizer, info)


class ArrowTables(Mapping):
    """(language, direction) -> :class:`Table`, each built from the rows of :meth:`TranslationModel.to_arrow`'s
    table on first use: a corpus in one language pays (time, memory) for that language's tables only. Pieces are
    dictionary-encoded by Arrow (hashing, not sorting strings): building all 14 HPO tables takes half a second."""

    def __init__(self, keys: Iterable[tuple[str, str]], read: Callable[[], "pa.Table"]) -> None:
        self._keys = sorted(set(keys))
        self._read = read
        self._rows = None
        self._built: dict[tuple[str, str], Table] = {}
        self._lock = threading.Lock()

    def __getitem__(self, key: tuple[str, str]) -> Table:
        if key not in self._built:
            if key not in self._keys:
                raise KeyError(key)
            with self._lock:
                if key not in self._built:
                    if self._rows is None:
                        self._rows = self._read()
                    self._built[key] = _table_of(self._rows, key)
                    if len(self._built) == len(self._keys):
                        self._rows = None  # every table built: the rows are not needed any more
        return self._built[key]

    @property
    def built(self) -> list[tuple[str, str]]:
        """The keys whose tables have been built so far."""
        return sorted(self._built)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def _table_of(rows, key: tuple[str, str]) -> Table:
    """The :class:`Table` of one (language, direction) from :meth:`TranslationModel.to_arrow`'s rows."""
    import pyarrow.compute as pc

    def encoded(column):
        array = pc.dictionary_encode(column).combine_chunks()
        return array.dictionary.to_pylist(), array.indices.to_numpy(zero_copy_only=False)

    rows = rows.filter(pc.and_(pc.equal(rows["lang"], key[0]), pc.equal(rows["direction"], key[1])))
    sources, s_ids = encoded(rows["source"])
    targets, t_ids = encoded(rows["target"])
    order = [NULL] + [t for t in targets if t != NULL]  # NULL is target 0, present or not
    is_null = np.asarray([t == NULL for t in targets], dtype=bool)
    remap = np.where(is_null, 0, np.cumsum(~is_null))  # order's index of each dictionary entry
    prob = rows["prob"].to_numpy().astype(np.float64)
    matrix = sp.csr_matrix((prob, (s_ids, remap[t_ids])), shape=(len(sources), len(order)))
    return Table(sources, order, matrix)


def _piece_ids(docs: Sequence[Sequence[str]], vocab: dict[str, int], lead: str | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(ids, doc of each id): the pieces of every doc that ``vocab`` knows (``lead`` first, e.g. NULL), looked up
    once per distinct doc object — a mention's pieces recur in every pair with its candidates' names."""
    memo: dict[int, np.ndarray] = {}
    arrays = []
    for doc in docs:
        ids = memo.get(id(doc))
        if ids is None:
            known = [vocab[p] for p in doc if p in vocab]
            ids = memo[id(doc)] = np.asarray(known if lead is None else [vocab[lead]] + known, dtype=np.int64)
        arrays.append(ids)
    counts = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    return flat, np.repeat(np.arange(len(arrays)), counts)


def explained_mass(matrix: sp.csr_matrix, bags: sp.csr_matrix, s_ids: np.ndarray, s_pair: np.ndarray) -> np.ndarray:
    """Σ over pair ``s_pair[i]``'s targets of t(``s_ids[i]`` | target): entries of the [sources, pairs] product."""
    explained = (matrix @ bags).tocsr()
    explained.sort_indices()  # sorted rows are binary-searched when sampled, unsorted ones scanned (5x slower)
    return np.asarray(explained[s_ids, s_pair]).ravel()


def _cjk_grams(text: str) -> list[str]:
    """The characters and character bigrams of each run of Chinese / Japanese script."""
    out: list[str] = []
    for run in CJK_RUN.findall(text):
        out += list(run) + [run[i:i + 2] for i in range(len(run) - 1)]
    return out


def _words(text: str) -> list[str]:
    """The whole words (three letters or more, outside Chinese / Japanese script) of a normalised text, marked."""
    return [WORD_MARK + w for w in WORD.findall(CJK_RUN.sub(" ", text))]


def feature_columns(languages: Sequence[str]) -> list[str]:
    """The translation feature names for tables of these languages, in :meth:`TranslationModel.features` order."""
    return ([f"translation_{c}" for d in DIRECTIONS for c in (d, d + UNEXPLAINED_SUFFIX)]
            + [f"translation_{d}@{lang}" for lang in languages for d in DIRECTIONS])
