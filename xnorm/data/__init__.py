"""Documents in the BigBIO kb schema: readers, writers, validation and mention extraction.

- :mod:`.schema`: the document model (plain dicts) and ``document_text``; ``kb_features`` for ``datasets``.
- :mod:`.io`: ``read_documents`` / ``write_documents`` / ``detect_format`` over every format below.
- :mod:`.jsonl`, :mod:`.brat`, :mod:`.pubtator`, :mod:`.hf`: one module per format (streaming readers,
  atomic writers).
- :mod:`.validate`: ``validate_document`` and ``DocumentValidator`` (errors name file, line, document, field, fix).
- :mod:`.mentions`: ``mentions_from_documents`` (documents -> ``Mentions`` + refs), ``gold_ids`` and
  ``set_predictions``.
"""
from .brat import read_brat, write_brat
from .hf import dataset_to_jsonl, documents_to_dataset, jsonl_to_dataset, load_hf, read_hf
from .io import detect_format, read_documents, write_documents
from .jsonl import read_jsonl, write_jsonl
from .mentions import gold_ids, mentions_from_documents, set_predictions
from .pubtator import read_pubtator, write_pubtator
from .schema import document_text, kb_features, new_document
from .validate import DocumentValidator, same_text, validate_document, validate_stream

__all__ = [
    "DocumentValidator", "dataset_to_jsonl", "detect_format", "document_text", "documents_to_dataset",
    "gold_ids", "jsonl_to_dataset", "kb_features", "load_hf", "mentions_from_documents", "new_document", "read_brat",
    "read_documents", "read_hf", "read_jsonl", "read_pubtator", "same_text", "set_predictions",
    "validate_document", "validate_stream", "write_brat", "write_documents", "write_jsonl", "write_pubtator",
]
