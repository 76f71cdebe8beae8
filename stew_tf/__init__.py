"""stew_tf: CM-StEW (cross-modal stronger-enhancing-weaker) in Keras 3 on TensorFlow 2.

Importing stew_tf imports TensorFlow without its start-up lines (CUDA probes, oneDNN and CPU
feature notes, absl's notice) and with its C++ log at fatal errors only, so that every entry
point shows stew_tf's own lines and real problems. Setting TF_CPP_MIN_LOG_LEVEL (e.g. to 0)
keeps TensorFlow's log as TensorFlow prints it, for debugging.
"""

import contextlib
import os
import re
import sys
import tempfile

# Recorded in every run's record, teacher identity and results.json; bump it when a change alters
# trained models or the records' format.
__version__ = "0.6.0"

# Whether the user asked for TensorFlow's own log (absl's Python log follows it in stew_tf.main).
TENSORFLOW_LOG_REQUESTED = "TF_CPP_MIN_LOG_LEVEL" in os.environ

# What TensorFlow prints while it is imported, before its log level applies: C++ log lines,
# absl's notice about them and the CPU-feature note's second line.
_START_UP_LINE = re.compile(r"[IWE]\d{4} [\d:. ]+\d+ [\w.]+:\d+\] |WARNING: All log messages "
                            r"before absl::InitializeLog\(\)|To enable the following instructions:")


@contextlib.contextmanager
def _start_up_lines_filtered():
  """Takes TensorFlow's start-up lines out of what is written to file descriptor 2 meanwhile
  (C++ writes them there before any setting applies); no descriptor 2: nothing to filter."""
  try:
    sys.stderr.flush()
    saved = os.dup(2)
  except (AttributeError, OSError):  # sys.stderr is None, or descriptor 2 is closed
    yield
    return
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      lines = captured.read().decode(errors="replace").splitlines(keepends=True)
      sys.stderr.write("".join(line for line in lines if not _START_UP_LINE.match(line)))


def _import_tensorflow_quietly():
  """Imports TensorFlow with its C++ log at fatal errors only and without its start-up lines.
  TensorFlow reads TF_CPP_MIN_LOG_LEVEL when imported; the variable is unset again so that
  child processes quiet themselves the same way."""
  os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
  try:
    with _start_up_lines_filtered():
      import tensorflow  # pylint: disable=g-import-not-at-top,import-outside-toplevel,unused-import
  finally:
    del os.environ["TF_CPP_MIN_LOG_LEVEL"]


if not TENSORFLOW_LOG_REQUESTED and "tensorflow" not in sys.modules:
  _import_tensorflow_quietly()
