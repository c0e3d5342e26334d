"""BRAT standoff folders (``name.txt`` + ``name.ann``) to and from kb documents.

Reading, per ``.ann`` line kind:

- ``T1<TAB>Type 0 5;10 15<TAB>text`` an entity; discontinuous pieces split on ``;``. Its ``text`` holds one string
  per piece when the brat text is the pieces joined by a space (as brat writes it), else the brat text as is.
- ``N1<TAB>Reference T1 HPO:HP:0001250<TAB>name`` a normalization: ``{db_name: "HPO", db_id: "HP:0001250",
  name}`` in the target's ``normalized`` (db name = text before the first colon). A name column holding a JSON
  object (xnorm writes one for predictions: ``{"score": 0.93}``) is merged into the dict.
- ``R1<TAB>Type Arg1:T1 Arg2:T2`` a relation; ``E1<TAB>Type:T3 Role:T1`` an event (its trigger T line becomes
  the event's ``trigger``); ``*<TAB>Equiv T1 T2`` a coreference.
- ``A1<TAB>Negated T1`` / ``M1`` attributes: ``{"type", "value"}`` (value ``true`` for binary ones) in the
  target's ``attributes`` list; ``#1<TAB>AnnotatorNotes T1<TAB>note``: the note in the target's ``notes`` list.
- Any other line is kept verbatim in the document's ``brat_lines`` and written back as is.

Ids become unique across a folder by prefixing the document id (``<document id>_T1``); the document id is the
file's path relative to the folder, without suffix. A ``.txt`` with no ``.ann`` is a document with no annotations;
an ``.ann`` with no ``.txt`` is an error. The writer recovers brat ids from such ids, so read -> write -> read is
lossless. BRAT keeps one text per document: passages are written as the document text and read back as one
passage; top-level keys other than the schema's (e.g. ``lang``) cannot be stored in brat and are reported by a
warning when written.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Iterable, Iterator

from .._io import atomic_dir
from ..errors import InputError
from .schema import DOCUMENT_FIELDS, as_list, document_text
from .validate import DocumentValidator

_SPAN = re.compile(r"^\d+ \d+$")
_ENTITY_KEYS = {"id", "type", "text", "offsets", "normalized", "attributes", "notes"}


def brat_documents(root: Path) -> list[tuple[str, Path | None, Path]]:
    """``(document id, .ann or None, .txt)`` of a brat folder (recursive, sorted) or of one .ann/.txt file."""
    if root.is_file():
        txt = root.with_suffix(".txt")
        ann = root.with_suffix(".ann")
        if not txt.is_file():
            raise InputError("this .ann file has no .txt beside it.", file=str(ann),
                             fix=f"put the document text in {txt.name}.")
        return [(root.stem, ann if ann.is_file() else None, txt)]
    if not root.is_dir():
        raise InputError("brat folder not found.", file=str(root), fix="check the path.")
    out = []
    for ann in sorted(root.rglob("*.ann")):
        txt = ann.with_suffix(".txt")
        if not txt.is_file():
            raise InputError("this .ann file has no .txt beside it.", file=str(ann),
                             fix=f"put the document text in {txt.name}, or remove the .ann file.")
        out.append((ann.relative_to(root).with_suffix("").as_posix(), ann, txt))
    for txt in sorted(root.rglob("*.txt")):
        if not txt.with_suffix(".ann").is_file():
            out.append((txt.relative_to(root).with_suffix("").as_posix(), None, txt))
    return sorted(out, key=lambda x: x[0])


def read_brat(path: str | os.PathLike, validate: bool = True, lang: str | None = None) -> Iterator[dict]:
    """Yield one kb document per ``.txt``/``.ann`` pair under ``path`` (a folder, or one .ann file)."""
    root = Path(path)
    check = DocumentValidator(str(root)) if validate else None
    for doc_id, ann, txt in brat_documents(root):
        # newline="" keeps \r\n as two characters: brat offsets count them.
        with open(txt, encoding="utf-8", newline="") as f:
            text = f.read()
        doc = parse_ann(doc_id, text, ann)
        if lang:
            doc["lang"] = lang
        if check is not None:
            check.source = str(ann or txt)
            check(doc)
        yield doc


def parse_ann(doc_id: str, text: str, ann: Path | None) -> dict:
    """One kb document from a document text and its ``.ann`` file (None: no annotations)."""
    lines = []
    if ann is not None:
        with open(ann, encoding="utf-8", newline="") as f:
            lines = [(i, line.rstrip("\r\n")) for i, line in enumerate(f, 1)]
    doc: dict = {"id": doc_id, "document_id": doc_id,
                 "passages": [{"id": f"{doc_id}_text", "type": "text", "text": [text], "offsets": [[0, len(text)]]}],
                 "entities": [], "events": [], "coreferences": [], "relations": []}
    gid = (lambda bid: f"{doc_id}_{bid}")  # noqa: E731  (brat id -> dataset-wide unique id)

    def bad(line_no: int, what: str) -> InputError:
        return InputError(f"malformed brat line: {what}.", file=str(ann), line=line_no, document=doc_id,
                          fix="see the brat standoff format (http://brat.nlplab.org/standoff.html).")

    spans: dict[str, dict] = {}  # T id -> {type, text, offsets}
    triggers: set[str] = set()
    events = []
    for line_no, line in lines:
        if line.startswith("T"):
            parts = line.split("\t")
            if len(parts) < 3:
                raise bad(line_no, "a T line needs `id<TAB>type start end[;start end]<TAB>text`")
            etype, _, span_text = parts[1].partition(" ")
            pieces = span_text.split(";")
            if not etype or not all(_SPAN.match(p.strip()) for p in pieces):
                raise bad(line_no, f"bad type or offsets {parts[1]!r}")
            if parts[0] in spans:
                raise bad(line_no, f"id {parts[0]!r} is used twice in this file")
            offsets = [[int(a), int(b)] for a, b in (p.split() for p in pieces)]
            surface = "\t".join(parts[2:])
            found = [text[s:e] for s, e in offsets]
            texts = found if len(offsets) > 1 and " ".join(found) == surface else [surface]
            spans[parts[0]] = {"id": gid(parts[0]), "type": etype, "text": texts, "offsets": offsets,
                               "normalized": [], "_line": line_no}
        elif line.startswith("E"):
            parts = line.split("\t")
            args = parts[1].split() if len(parts) >= 2 else []
            if len(parts) < 2 or not args or ":" not in args[0]:
                raise bad(line_no, "an E line needs `id<TAB>Type:Trigger Role:Arg ...`")
            etype, trig = args[0].split(":", 1)
            triggers.add(trig)
            events.append((line_no, parts[0], etype, trig, [a.split(":", 1) for a in args[1:]]))
    # A trigger stays an entity only if something other than its event refers to it.
    referenced = set()
    for line_no, line in lines:
        if line[:1] in "RNAM*#":
            referenced.update(re.findall(r"\b([TE]\d+)\b", line.split("\t")[1] if "\t" in line else ""))
    for line_no, _, _, _, args in events:
        referenced.update(a[1] for a in args if len(a) == 2)
    for tid, span in spans.items():
        if tid not in triggers or tid in referenced:
            span.pop("_line")
            doc["entities"].append(span)
    targets = {tid: span for tid, span in spans.items() if "_line" not in span}
    for line_no, eid, etype, trig, args in events:
        if trig not in spans:
            raise bad(line_no, f"event trigger {trig!r} is not a T line of this file")
        t = spans[trig]
        event = {"id": gid(eid), "type": etype, "trigger": {"text": t["text"], "offsets": t["offsets"]},
                 "arguments": []}
        if t["type"] != etype:
            event["trigger_type"] = t["type"]
        for arg in args:
            if len(arg) != 2:
                raise bad(line_no, f"event argument {':'.join(arg)!r} is not Role:Id")
            event["arguments"].append({"role": arg[0], "ref_id": gid(arg[1])})
        doc["events"].append(event)
        targets[eid] = event
    n_coref = 0
    for line_no, line in lines:
        kind = line[:1]
        if kind in ("T", "E") or not line.strip():
            continue
        parts = line.split("\t")
        if kind == "R" and len(parts) >= 2:
            fields = parts[1].split()
            if len(fields) != 3 or not all(":" in f for f in fields[1:]):
                raise bad(line_no, "an R line needs `id<TAB>Type Arg1:T1 Arg2:T2`")
            (r1, a1), (r2, a2) = (f.split(":", 1) for f in fields[1:])
            rel = {"id": gid(parts[0]), "type": fields[0], "arg1_id": gid(a1), "arg2_id": gid(a2), "normalized": []}
            if (r1, r2) != ("Arg1", "Arg2"):
                rel["roles"] = [r1, r2]
            doc["relations"].append(rel)
            targets[parts[0]] = rel
        elif kind == "*" and len(parts) >= 2 and parts[1].split()[:1] == ["Equiv"]:
            n_coref += 1
            doc["coreferences"].append({"id": f"{doc_id}_*{n_coref}",
                                        "entity_ids": [gid(t) for t in parts[1].split()[1:]]})
        elif kind == "N" and len(parts) >= 2:
            fields = parts[1].split(" ")
            if len(fields) != 3 or fields[1] not in targets:
                raise bad(line_no, "an N line needs `id<TAB>Reference T1 db:id[<TAB>name]` with a known target")
            db, _, db_id = fields[2].partition(":")
            item = {"db_name": db, "db_id": db_id} if db_id else {"db_name": "", "db_id": db}
            name = "\t".join(parts[2:])
            extra = _json_object(name)
            if extra is not None:
                item.update(extra)
            elif name:
                item["name"] = name
            targets[fields[1]].setdefault("normalized", []).append(item)
        elif kind in ("A", "M") and len(parts) == 2 and len(parts[1].split()) in (2, 3) \
                and parts[1].split()[1] in targets:
            fields = parts[1].split()
            targets[fields[1]].setdefault("attributes", []).append(
                {"type": fields[0], "value": fields[2] if len(fields) == 3 else True})
        elif kind == "#" and len(parts) >= 2 and parts[1].split(" ")[0] == "AnnotatorNotes" \
                and len(parts[1].split(" ")) == 2 and parts[1].split(" ")[1] in targets:
            targets[parts[1].split(" ")[1]].setdefault("notes", []).append("\t".join(parts[2:]))
        else:
            doc.setdefault("brat_lines", []).append(line)
    return doc


def _json_object(text: str) -> dict | None:
    if not text.startswith("{"):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


# ---- writing --------------------------------------------------------------------------------------------------
def _safe_relpath(doc_id: str) -> Path:
    rel = Path(doc_id)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise InputError(f"document id {doc_id!r} cannot be used as a file name.", document=doc_id, field="id",
                         fix="use ids without '..' or a leading '/'.")
    return rel


class _Ids:
    """Brat ids for one document: reuse ``<doc id>_T3`` as ``T3`` where possible, else the next free number."""

    def __init__(self, doc_id: str) -> None:
        self.prefix = f"{doc_id}_"
        self.used: set[str] = set()
        self.next: dict[str, int] = {}

    def reserve(self, global_id: str | None, kind: str) -> str | None:
        local = str(global_id or "")
        if local.startswith(self.prefix):
            local = local[len(self.prefix):]
        if re.fullmatch(re.escape(kind) + r"\d+", local) and local not in self.used:
            self.used.add(local)
            return local
        return None

    def fresh(self, kind: str) -> str:
        n = self.next.get(kind, 1)
        while f"{kind}{n}" in self.used:
            n += 1
        self.next[kind] = n + 1
        self.used.add(f"{kind}{n}")
        return f"{kind}{n}"


def _one_line(text: str) -> str:
    # brat's .ann is line based: a newline or tab inside a text column would break it.
    return re.sub(r"[\r\n\t]", " ", text)


def _name_type(value: str) -> str:
    return re.sub(r"\s", "_", str(value)) or "Entity"


def ann_lines(doc: dict) -> list[str]:
    """The ``.ann`` lines of one document (ids recovered from ``<doc id>_T1``-style ids where possible)."""
    doc_id = str(doc["id"])
    ids = _Ids(doc_id)
    entities = doc.get("entities") or []
    events = doc.get("events") or []
    relations = doc.get("relations") or []
    local: dict[str, str] = {}  # global id -> brat id
    plan = [(e, "T") for e in entities] + [(e, "E") for e in events] + [(r, "R") for r in relations]
    for obj, kind in plan:
        bid = ids.reserve(obj.get("id"), kind)
        if bid:
            local[str(obj["id"])] = bid
    for obj, kind in plan:
        if str(obj.get("id")) not in local:
            local[str(obj.get("id"))] = ids.fresh(kind)
    out: list[str] = []
    extras: list[tuple[str, dict]] = []  # (brat id, object) with normalized / attributes / notes

    def t_line(bid: str, etype: str, texts: list, offsets: list) -> str:
        span = ";".join(f"{int(s)} {int(e)}" for s, e in offsets)
        return f"{bid}\t{_name_type(etype)} {span}\t{_one_line(' '.join(texts))}"

    for ent in entities:
        bid = local[str(ent["id"])]
        out.append(t_line(bid, ent.get("type", "Entity"), as_list(ent.get("text")), ent.get("offsets") or []))
        extras.append((bid, ent))
    for ev in events:
        bid = local[str(ev["id"])]
        trig = ids.fresh("T")
        trigger = ev.get("trigger") or {}
        out.append(t_line(trig, ev.get("trigger_type", ev.get("type", "Event")), as_list(trigger.get("text")),
                          trigger.get("offsets") or []))
        args = " ".join(f"{a['role']}:{local.get(str(a['ref_id']), a['ref_id'])}" for a in ev.get("arguments") or [])
        out.append(f"{bid}\t{_name_type(ev.get('type', 'Event'))}:{trig}" + (f" {args}" if args else ""))
        extras.append((bid, ev))
    for rel in relations:
        bid = local[str(rel["id"])]
        r1, r2 = rel.get("roles") or ("Arg1", "Arg2")
        out.append(f"{bid}\t{_name_type(rel.get('type', 'Relation'))} {r1}:{local.get(str(rel['arg1_id']))} "
                   f"{r2}:{local.get(str(rel['arg2_id']))}")
        extras.append((bid, rel))
    for coref in doc.get("coreferences") or []:
        out.append("*\tEquiv " + " ".join(local.get(str(x), str(x)) for x in coref.get("entity_ids") or []))
    for bid, obj in extras:
        for item in obj.get("normalized") or []:
            db = f"{item.get('db_name')}:{item['db_id']}" if item.get("db_name") else str(item["db_id"])
            rest = {k: v for k, v in item.items() if k not in ("db_name", "db_id")}
            if set(rest) - {"name"}:
                name = json.dumps(rest, ensure_ascii=False, separators=(",", ":"))
            else:
                name = _one_line(str(rest.get("name", "")))
            out.append(f"{ids.fresh('N')}\tReference {bid} {_one_line(db).replace(' ', '_')}\t{name}")
        for attr in obj.get("attributes") or []:
            value = attr.get("value", True)
            out.append(f"{ids.fresh('A')}\t{_name_type(attr['type'])} {bid}" + ("" if value is True else f" {value}"))
        for note in obj.get("notes") or []:
            out.append(f"{ids.fresh('#')}\tAnnotatorNotes {bid}\t{_one_line(str(note))}")
    out.extend(doc.get("brat_lines") or [])
    return out


def write_brat(docs: Iterable[dict], path: str | os.PathLike) -> int:
    """Write each document as ``<path>/<document id>.txt`` + ``.ann``; the folder appears only when all is written.

    Returns the number of documents. Top-level keys that brat cannot hold (e.g. ``lang``) raise one warning.
    """
    n = 0
    dropped: set[str] = set()
    with atomic_dir(path) as tmp:
        for doc in docs:
            rel = _safe_relpath(str(doc["id"]))
            target = tmp / rel
            if target.with_name(target.name + ".ann").exists():
                raise InputError(f"two documents with id {doc['id']!r}.", document=str(doc["id"]), field="id",
                                 fix="give every document a unique id.")
            target.parent.mkdir(parents=True, exist_ok=True)
            # The .txt gets exactly the text that offsets index; newline="" writes \r\n back unchanged.
            with open(target.with_name(target.name + ".txt"), "w", encoding="utf-8", newline="") as f:
                f.write(document_text(doc))
            with open(target.with_name(target.name + ".ann"), "w", encoding="utf-8", newline="") as f:
                f.writelines(line + "\n" for line in ann_lines(doc))
            dropped.update(k for k in doc if k not in DOCUMENT_FIELDS and k != "brat_lines")
            dropped.update(f"entities.{k}" for e in doc.get("entities") or [] for k in e if k not in _ENTITY_KEYS)
            n += 1
    if dropped:
        warnings.warn(f"brat cannot store the document field(s) {', '.join(sorted(dropped))}; they are not in "
                      f"{path}. Write BigBIO JSONL to keep them.", stacklevel=2)
    return n
