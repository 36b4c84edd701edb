"""Shared logic of the teacher -> student -> pruned -> int8 pipeline; stages/ holds the thin scripts.
One subpackage per job: data, models, train, distill, compress, evaluate; pipeline/ is the plumbing (imports none
of them); at the top level, what a user runs or loads: predict, experiments, registry, litert."""
import os

# TensorFlow's C++ start-up chatter (oneDNN notices, graph attribute warnings) buries the Keras
# progress lines in every stage log; Python-level warnings and exceptions are unaffected.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import sys  # noqa: E402


def _user_error_in_one_line(exc_type, exc, tb):
    """An error tinygray raises on purpose (a parameter, an image, a model file, a store it refuses: every exception
    class defined in a tinygray module) is one line on stderr, exit status 1: its message names the file or the
    parameter and, under DVC, ends with the way back. Anything else is a bug and keeps its traceback, as does every
    error with TINYGRAY_DEBUG=1 (docs/reference.md, 'What bad input gets')."""
    if exc_type.__module__.startswith("tinygray.") and os.environ.get("TINYGRAY_DEBUG") != "1":
        print(exc, file=sys.stderr, flush=True)
    else:
        sys.__excepthook__(exc_type, exc, tb)


sys.excepthook = _user_error_in_one_line

import logging  # noqa: E402
import warnings  # noqa: E402

# Expected messages that read like faults in a stage log (issue 48): the int8 converter asks for input statistics
# that a representative dataset makes unnecessary, and scoring many models in one process retraces each one's
# predict function once. Unexpected warnings still show.
warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")


class _ExpectedRetracing(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


logging.getLogger("tensorflow").addFilter(_ExpectedRetracing())
