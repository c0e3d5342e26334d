"""A spaCy pipeline component: ``nlp.add_pipe("xnorm_linker")`` links ``doc.ents`` like scispaCy's linker.

Each entity gets ``ent._.kb_ents``: the ranked ``[(concept_id, score), ...]``. Abbreviations defined in the
document ("... attention deficit hyperactivity disorder (ADHD) ...") are resolved to their long forms with
scispaCy's ``AbbreviationDetector`` before linking. The factory is registered through the ``spacy_factories``
entry point, so ``add_pipe`` works without importing xnorm first.
"""
from __future__ import annotations

from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span

from .candidates.abbreviations import quiet_w036
from .types import Mentions


@Language.factory(
    "xnorm_linker",
    default_config={"linker": None, "config": None, "index": None, "top_k": 5, "threshold": None, "lang": None,
                    "resolve_abbreviations": True},
)
def create_xnorm_linker(nlp: Language, name: str, linker: str | None, config: str | None, index: str | None,
                        top_k: int, threshold: float | None, lang: str | None,
                        resolve_abbreviations: bool) -> "XnormLinker":
    return XnormLinker(nlp, linker=linker, config=config, index=index, top_k=top_k, threshold=threshold,
                       lang=lang, resolve_abbreviations=resolve_abbreviations)


class XnormLinker:
    """Sets ``ent._.kb_ents`` on each entity. ``linker``: a saved linker folder; ``config``: a YAML config;
    ``index``: a saved candidate index; none of them: the embedded default (English HPO + the embedded
    multilingual encoder)."""

    def __init__(self, nlp: Language, linker: str | None = None, config: str | None = None,
                 index: str | None = None, top_k: int = 5, threshold: float | None = None,
                 lang: str | None = None, resolve_abbreviations: bool = True) -> None:
        from .linker import Linker

        if linker:
            self.linker = Linker.load(linker)
        elif config:
            self.linker = Linker.from_config(config)
        elif index:
            self.linker = Linker.from_config({"index": index})
        else:
            self.linker = Linker.default()
        if threshold is not None:
            self.linker.config.threshold = threshold
        self.top_k = top_k
        self.lang = lang or (nlp.lang if nlp.lang != "xx" else "en")
        self.abbreviations = None
        if resolve_abbreviations:
            from scispacy.abbreviation import AbbreviationDetector

            self.abbreviations = AbbreviationDetector(nlp)
        if not Span.has_extension("kb_ents"):
            Span.set_extension("kb_ents", default=[])

    def __call__(self, doc: Doc) -> Doc:
        ents = list(doc.ents)
        if not ents:
            return doc
        long_forms = [""] * len(ents)
        if self.abbreviations is not None:
            if not doc.has_annotation("SENT_START"):
                # The detector needs sentences; a blank pipeline has none, so treat the doc as one sentence.
                doc[0].is_sent_start = True
                for tok in doc[1:]:
                    tok.is_sent_start = False
            with quiet_w036():
                doc = self.abbreviations(doc)
            expansions = {(a.start, a.end): a._.long_form.text for a in doc._.abbreviations}
            long_forms = [expansions.get((e.start, e.end), "") for e in ents]
        mentions = Mentions(texts=[e.text for e in ents], langs=[self.lang] * len(ents),
                            long_forms=long_forms, types=[e.label_ for e in ents])
        preds = self.linker.predict(mentions, self.top_k)
        ids = preds.concept_ids(self.linker.terminology)
        for i, ent in enumerate(ents):
            ent._.kb_ents = [(ids[i, j], float(preds.scores[i, j])) for j in range(ids.shape[1]) if ids[i, j]]
        return doc

    def to_disk(self, path: Any, exclude: tuple = ()) -> None:
        self.linker.save(path)

    def from_disk(self, path: Any, exclude: tuple = ()) -> "XnormLinker":
        from .linker import Linker

        self.linker = Linker.load(path)
        return self
