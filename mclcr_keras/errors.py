"""The error a library raises when the user must fix something before any work is done.

Libraries raise `UsageError` for bad options, missing or unreadable inputs and outputs that are in
the way; the command-line shell (`mclcr_keras.cli`) prints its message as one line and exits with
status 2. Everything else a library raises is its own, documented exception type.
"""

from __future__ import annotations

import re


class UsageError(Exception):
    """A problem the user must fix before anything is done; ``str(error)`` is one line."""


def op_error_summary(message: str, limit: int = 400) -> str:
    r"""The informative line of a TensorFlow runtime error (`tf.errors.OpError.message`).

    Graph errors read "Graph execution error:", "Detected at node ... defined at", an indented
    stack, and only then the description (e.g. "assertion failed: [corrupt TFRecord shard] ...").

    >>> op_error_summary("Graph execution error:\n\nDetected at node x defined at:\n  File a.py\n"
    ...                  "{{function_node __inference_f_1}} assertion failed: [corrupt shard] a")
    'assertion failed: [corrupt shard] a'
    """
    lines = [line.strip() for line in (message or "").splitlines()
             if line.strip() and not line.startswith((" ", "\t"))]
    skip = ("Graph execution error", "Detected at node", "Detected unsupported operations")
    useful = [line for line in lines if not line.startswith(skip)]
    text = (useful or lines or ["(no message)"])[0]
    # Function-call errors prefix the description with "{{function_node __inference_...}}".
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", text)
    return " ".join(text.split())[:limit]
