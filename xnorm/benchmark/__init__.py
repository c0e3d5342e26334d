"""Benchmarks: named datasets built from open release files, and the grid runner behind ``xnorm benchmark``.

- :mod:`.datasets`: ``build_dataset(key, options, data_root)`` -> gold BigBIO kb documents (+ metadata).
- :mod:`.hpo_obo`: current HPO ids, alt_id / replaced_by aliases and UMLS xrefs from hp.obo.
- :mod:`.runner`: ``run_benchmark(config_path, output_dir, resume)`` -> results.json, results.md, plots.
"""
from __future__ import annotations

from .datasets import DATASETS, Dataset, ExtraNames, build_dataset, default_data_root
from .hpo_obo import HpoIds, read_hpo_ids

__all__ = ["DATASETS", "Dataset", "ExtraNames", "HpoIds", "build_dataset", "default_data_root", "read_hpo_ids"]
