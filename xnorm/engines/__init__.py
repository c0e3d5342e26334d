"""Engines that run xnorm past one process.

- :mod:`.ray_engine`: ``link_with_ray`` (a saved ``Linker`` over partitions of a corpus, Ray Data
  ``map_batches``) and ``index_with_ray`` (names encoded in parallel shards, FAISS index assembled).
  Needs the optional extra ``pip install "xnorm[ray]"``.
- :mod:`.memory`: memory estimates of dense name indexes per FAISS index type (no Ray needed).

Importing this package does not import Ray: the local engine never loads it.
"""
from .memory import IndexMemory, estimate_index_memory

__all__ = ["IndexMemory", "estimate_index_memory"]
