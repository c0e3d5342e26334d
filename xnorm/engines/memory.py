"""Memory of a dense name index on paper: bytes for n vectors of dimension d per FAISS index type.

Used to print an estimate before a large build starts (``xnorm index --engine ray``) and for the benchmark's
"per million names" table. The formulas follow FAISS's storage layout:

- ``Flat``: the vectors themselves, 4·d bytes each (float32).
- ``HNSW{M}`` (over Flat): the vectors + level-0 links (2·M int32) + upper-level links (M int32 on a
  1/(M·ln M)-ish fraction, counted as ~M/(M-1)·4 bytes) + a level byte and offsets (~12 bytes).
- ``IVF{nlist},PQ{m}[x{b}]``: per vector m·b/8 code bytes + an 8-byte id; fixed: nlist·d·4 (coarse centroids)
  + 2^b·d·4 (PQ codebooks).
- ``IVF{nlist},Flat`` / ``IVF{nlist},SQ8`` / ``PQ{m}``: analogous.

A factory string the parser does not know is counted as Flat and said so (``exact`` is False).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

FLOAT = 4
ID = 8  # IVF lists store an int64 id per vector


@dataclass(frozen=True)
class IndexMemory:
    """Estimated bytes of one index: ``per_vector`` · n + ``fixed``."""

    factory: str
    n: int
    dim: int
    per_vector: float
    fixed: int
    known: bool = True

    @property
    def total(self) -> int:
        return int(round(self.per_vector * self.n + self.fixed))

    def per_million(self) -> int:
        """Bytes per million vectors (fixed part included once)."""
        return int(round(self.per_vector * 1_000_000 + self.fixed))


def _pq(spec: str) -> tuple[int, int] | None:
    m = re.fullmatch(r"PQ(\d+)(?:x(\d+))?(?:np)?", spec)
    return (int(m.group(1)), int(m.group(2) or 8)) if m else None


def estimate_index_memory(n: int, dim: int, factory: str = "Flat") -> IndexMemory:
    """Estimated memory of a FAISS index ``factory`` holding ``n`` vectors of dimension ``dim``."""
    parts = [p.strip() for p in factory.split(",") if p.strip()]
    head, tail = (parts[0] if parts else "Flat"), (parts[1] if len(parts) > 1 else None)
    flat = FLOAT * dim
    if head == "Flat" and tail is None:
        return IndexMemory(factory, n, dim, flat, 0)
    hnsw = re.fullmatch(r"HNSW(\d+)", head)
    if hnsw and tail in (None, "Flat"):
        m = int(hnsw.group(1))
        return IndexMemory(factory, n, dim, flat + 2 * m * 4 + m / max(m - 1, 1) * 4 + 12, 0)
    pq = _pq(head)
    if pq and tail is None:
        m, b = pq
        return IndexMemory(factory, n, dim, m * b / 8, (1 << b) * dim * FLOAT)
    ivf = re.fullmatch(r"IVF(\d+)", head)
    if ivf and tail is not None:
        nlist = int(ivf.group(1))
        coarse = nlist * dim * FLOAT
        if tail == "Flat":
            return IndexMemory(factory, n, dim, flat + ID, coarse)
        if tail in ("SQ8", "SQ4", "SQfp16"):
            per = {"SQ8": dim, "SQ4": dim / 2, "SQfp16": 2 * dim}[tail]
            return IndexMemory(factory, n, dim, per + ID, coarse + 2 * dim * FLOAT)
        pq = _pq(tail)
        if pq:
            m, b = pq
            return IndexMemory(factory, n, dim, m * b / 8 + ID, coarse + (1 << b) * dim * FLOAT)
    return IndexMemory(factory, n, dim, flat, 0, known=False)


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KB' (binary units)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
