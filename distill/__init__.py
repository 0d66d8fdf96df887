"""distill: knowledge distillation for Chinese NER, from a BERT-CRF teacher to a BiLSTM-CRF student.

This package holds the command line and the core that teacher and student share (CRF, metrics,
artefacts); the core imports neither ``teacher`` nor ``student``.
"""

__version__ = "0.1.0"
