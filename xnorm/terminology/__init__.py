"""Terminologies: the columnar ``Terminology``, its loaders and YAML recipes."""
from .core import NAME_TYPES, Terminology, TerminologyBuilder

__all__ = ["NAME_TYPES", "Terminology", "TerminologyBuilder"]
