"""The BERT-CRF teacher: backbone loading, character input, training, ensembles, and its emission cache."""

from transformers.utils import logging as _hf_logging

# Progress bars and notices of transformers' own loading would drown ours.
_hf_logging.set_verbosity_error()
_hf_logging.disable_progress_bar()
