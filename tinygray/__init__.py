"""Shared logic of the teacher -> student -> pruned -> int8 pipeline; stages/ holds the thin scripts.
One subpackage per job: data, models, train, distill, compress, evaluate; pipeline/ is the plumbing (imports none
of them); at the top level, what a user runs or loads: predict, experiments, registry, litert."""
import os

# TensorFlow's C++ start-up chatter (oneDNN notices, graph attribute warnings) buries the Keras
# progress lines in every stage log; Python-level warnings and exceptions are unaffected.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
