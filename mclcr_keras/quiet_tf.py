"""TensorFlow imported without its native start-up lines (``cudart_stub``, ``port.cc``, absl's
"before InitializeLog" notice), in the tools (`mclcr_keras.cli`) and in the Beam engines' worker
processes alike.

TensorFlow prints them from C++ straight to file descriptor 2, before its log level applies, so
they are caught there (in a temporary file) and everything else written meanwhile is replayed.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

# TensorFlow's native log lines ("I0000 00:00:1796.. 123 file.cc:31] ...") and absl's notice.
_NATIVE_LOG_LINE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [^\]\s]+:\d+\] )"
)

_PYTHON_WARNING = re.compile(r"^\S.*\b\w*(Warning|Error)\b: ")


def import_tensorflow(verbose: bool = False) -> None:
    """Imports TensorFlow and probes its devices, dropping the native start-up log lines.

    `tf.config.list_physical_devices` runs the CUDA probe without fixing the logical
    device configuration (tests and ``--distribute mirrored`` may still split the CPU).
    """
    if verbose:
        import tensorflow as tf

        tf.config.list_physical_devices()
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode("utf-8", errors="replace")
    kept, native = [], False
    for line in text.splitlines(keepends=True):
        # A native message may span lines ("To enable the following instructions: ..."): drop
        # what follows a native line, up to a Python warning or the next native line.
        if _NATIVE_LOG_LINE.match(line):
            native = True
        elif not native or _PYTHON_WARNING.match(line):
            native = False
            kept.append(line)
    if kept:
        sys.stderr.write("".join(kept))
        sys.stderr.flush()
