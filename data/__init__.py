"""Corpus I/O: files in, sentences out (and back). Imports nothing else of the project.

Readers yield :class:`Sentence` objects (characters + BIOES tags, or characters only) and fill a
:class:`ReadReport` with the format, the detected scheme and every repair made. Bad input raises
:class:`DataError` naming the file, the line and what was expected.
"""

from .batching import bucket_batches, pad
from .column import read_column, write_column
from .datasets import (
    DEV_FRACTION,
    SPLITS,
    Dataset,
    default_unlabeled_path,
    embedded_dataset,
    load_dataset,
    plain_texts,
)
from .errors import DataError
from .formats import FORMATS, read_file, read_raw_text, sniff_format, write_file
from .jsonl import read_jsonl, write_jsonl
from .rawtext import read_text, split_sentences, write_text
from .report import ReadReport
from .schemes import (
    SCHEMES,
    Span,
    SpanReader,
    allowed_transitions,
    convert_tags,
    label_mismatch,
    label_scheme,
    label_set,
    spans_to_tags,
    split_tag,
    tags_to_spans,
)
from .sentence import Sentence
from .stats import CorpusStats, corpus_stats, dataset_file_stats
from .substitution import substitute_mentions

__all__ = [
    "DEV_FRACTION",
    "FORMATS",
    "SCHEMES",
    "SPLITS",
    "CorpusStats",
    "DataError",
    "Dataset",
    "ReadReport",
    "Sentence",
    "Span",
    "SpanReader",
    "allowed_transitions",
    "bucket_batches",
    "convert_tags",
    "corpus_stats",
    "dataset_file_stats",
    "default_unlabeled_path",
    "embedded_dataset",
    "label_mismatch",
    "label_scheme",
    "label_set",
    "load_dataset",
    "pad",
    "plain_texts",
    "read_column",
    "read_file",
    "read_jsonl",
    "read_raw_text",
    "read_text",
    "sniff_format",
    "spans_to_tags",
    "split_sentences",
    "split_tag",
    "substitute_mentions",
    "tags_to_spans",
    "write_column",
    "write_file",
    "write_jsonl",
    "write_text",
]
