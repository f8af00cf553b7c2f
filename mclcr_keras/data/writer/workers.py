"""The conversion workers: processes that decode, detect, align and PNG-encode one input at a time.

Workers are ``spawn``ed (never forked from a process holding TensorFlow) and never import
TensorFlow; each holds one `mclcr_keras.data.faces.FaceAligner`. A worker whose parent dies gets
SIGKILL (Linux), so ``kill -9`` of the converter leaves no orphans. `start` returns the results in
task order, from a process pool or, with one worker, lazily in this process.

Example:

```python
results, stop = start([("video", ("clip.mp4",))], options.crop_options(), workers=2)
next(results)["frames"][0][0]  # 0: the frame index of the first crop
stop()
```
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence

from mclcr_keras.data import crops, faces, schema

_WORKER: dict = {}


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent dies (so ``kill -9`` of the CLI leaves no orphans)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def _sigint_ignored():
    """SIGINT ignored in this process meanwhile (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Converter:
    """Decodes, detects, aligns and encodes inputs: the one conversion of every engine (the
    local worker processes here, the Beam pipeline's DoFn in `mclcr_keras.beam.records`).

    Args:
        options: ``frames``, ``size``, ``margin``, ``crop``, ``image_format``, ``jpeg_quality``
            (`mclcr_keras.data.writer.options.BuildOptions.crop_options`).
    """

    def __init__(self, options: dict):
        self.options = dict(options)
        self.aligner = faces.FaceAligner(size=options["size"], margin=options["margin"])

    def convert(self, kind: str, paths: tuple[str, ...]) -> dict:
        """Turns one input into encoded face crops.

        Returns:
            ``{"frames": [(frame_index, image_bytes, box, landmarks)], "sampled": n,
            "failure": None | reason}``; ``box``/``landmarks`` are lists (frame pixels).
        """
        o = self.options
        frames, sampled, failure = crops.crop_input(kind, paths, self.aligner, o["frames"],
                                                    o["crop"], o["size"])
        if failure:
            return {"frames": [], "sampled": sampled, "failure": failure}
        try:
            encoded = [(index, schema.encode_image(image, o["image_format"], o["jpeg_quality"]),
                        box, landmarks) for index, image, box, landmarks in frames]
        except Exception as error:
            return {"frames": [], "sampled": sampled, "failure": crops.failure_reason(error)}
        return {"frames": encoded, "sampled": sampled, "failure": None}


def init_worker(options: dict, parent_pid: int | None = None, single_thread: bool = True) -> None:
    """Sets up a conversion process: its `Converter`.

    Args:
        options: the crop options of `Converter`.
        parent_pid: the converter's pid; a worker exits when it is orphaned.
        single_thread: limit OpenCV to one thread (one process per core already).
    """
    if parent_pid is not None:
        _die_with_parent()
        # Ctrl-C reaches the whole process group: the converter handles it (it stops the pool
        # and exits 130); a worker printing its own KeyboardInterrupt traceback would only add
        # noise, and its input is converted again on --resume.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2

    if single_thread:
        cv2.setNumThreads(1)
    _WORKER.clear()
    _WORKER["parent_pid"] = parent_pid
    _WORKER["converter"] = Converter(options)


def convert_item(task: tuple[str, tuple[str, ...]]) -> dict:
    """`Converter.convert` of one ``(kind, paths)`` task, in a worker set up by `init_worker`."""
    parent = _WORKER.get("parent_pid")
    if parent is not None and os.getppid() != parent:
        os._exit(1)  # orphaned: the converter is gone
    kind, paths = task
    return _WORKER["converter"].convert(kind, paths)


def start(tasks: Sequence[tuple], options: dict,
          workers: int) -> tuple[Iterator[dict], Callable[..., None]]:
    """Starts converting: returns the results in task order and a function that stops the work.

    ``stop()`` waits for the pool to finish; ``stop(abort=True)`` terminates the workers at once.

    With one worker (or a single task) the conversion runs lazily in this process; otherwise
    every task is submitted at once to ``spawn``ed worker processes, which start working before
    this call returns.
    """
    if workers == 1 or len(tasks) <= 1:
        init_worker(options, None, single_thread=False)
        return (convert_item(task) for task in tasks), lambda abort=False: None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # A worker that dies (e.g. a native crash) breaks the executor with an error instead of
    # hanging like multiprocessing.Pool; --resume then carries on from the journal.
    context = multiprocessing.get_context("spawn")
    # Workers start with Ctrl-C ignored (a disposition that survives spawn's exec), so that a
    # Ctrl-C while one is still importing prints no traceback; this process handles it.
    with _sigint_ignored():
        executor = ProcessPoolExecutor(min(workers, len(tasks)), mp_context=context,
                                       initializer=init_worker,
                                       initargs=(options, os.getpid(), True))
        results = executor.map(convert_item, tasks, chunksize=1)

    def stop(abort: bool = False) -> None:
        if abort:  # Ctrl-C or an error: unjournaled inputs are converted again on --resume
            for process in list(getattr(executor, "_processes", {}).values()):
                process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)

    return results, stop
