"""Terminologies: the columnar ``Terminology``, its loaders and YAML recipes."""
from .babelon import load_babelon, load_robot_synonyms
from .core import NAME_TYPES, Terminology, TerminologyBuilder
from .default import DEFAULT_RECIPE, builtin_recipes, default_terminology
from .obo import load_obo, read_obo, read_xrefs
from .recipe import Recipe, build_recipe, load_terminology, read_recipe
from .tabular import load_jsonl, load_table
from .umls import load_umls

__all__ = [
    "NAME_TYPES", "Terminology", "TerminologyBuilder", "DEFAULT_RECIPE", "Recipe", "build_recipe",
    "builtin_recipes", "default_terminology", "load_babelon", "load_jsonl", "load_obo", "load_robot_synonyms",
    "load_table", "load_terminology", "load_umls", "read_obo", "read_recipe", "read_xrefs",
]
