"""Shared logic of the teacher -> student -> pruned -> int8 pipeline; stages/ holds the thin scripts."""
import os

# TensorFlow's C++ start-up chatter (oneDNN notices, graph attribute warnings) buries the Keras
# progress lines in every stage log; Python-level warnings and exceptions are unaffected.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
