"""Where scorings run: admission, worker processes (or threads), the time limit, cleanup.

**Admission** (`Admission`): at most ``max_concurrent`` scorings run, and at most ``queue`` more
requests are admitted to upload and wait; beyond, a request is refused at once with 503 and a
``Retry-After`` estimated from recent scoring times. A request that waits longer than
``timeout`` for a free scorer also gets 503.

**Workers.** `ProcessRunner` (what ``python -m mclcr_keras.serve`` uses) starts
``max_concurrent`` spawned processes that each load the model once and then score one upload at a
time. A scoring that passes ``timeout`` is answered 504, and its process is **killed** and
replaced by a fresh one (which reloads the model): a decoder stuck on a hostile file cannot keep
its slot, and a crash (a segfault in a codec) costs one request, not the server. Python threads
cannot be stopped, hence processes. `ThreadRunner` scores in threads of the server process with
a model already loaded (``create_app(settings, scorer)``: tests, notebooks); there a timed-out
request is answered 504 too, but its scoring runs to its end and keeps its slot until then.

Either way the request's temporary folder is deleted once its scoring has really ended.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import shutil
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from mclcr_keras.errors import UsageError
from mclcr_keras.serve.scoring import model_info, score_upload, warm_up
from mclcr_keras.serve.settings import ServeSettings
from mclcr_keras.serve.upload import RequestError

logger = logging.getLogger(__name__)

__all__ = ["Admission", "ProcessRunner", "ThreadRunner", "worker_main"]


class Admission:
    """Counts admitted requests (uploading, waiting or scoring) against ``slots + queue``."""

    def __init__(self, slots: int, queue: int):
        self.slots, self.queue = slots, queue
        self.admitted = 0
        self.busy = 0  # slots in use (a timed-out thread still holds its slot)
        self.mean_seconds: float | None = None

    def admit(self) -> None:
        """Takes a place, or raises 503 with ``Retry-After`` when all are taken."""
        if self.admitted >= self.slots + self.queue:
            raise self.refusal(f"busy: {self.slots} scoring(s) running and {self.queue} "
                               "waiting, the most this server takes")
        self.admitted += 1

    def leave(self) -> None:
        self.admitted -= 1

    def refusal(self, message: str) -> RequestError:
        return RequestError(503, message, {"Retry-After": str(self.retry_after())})

    def retry_after(self) -> int:
        """Seconds until a place is likely free: mean scoring time x (queue ahead + 1) / slots."""
        ahead = max(0, self.admitted - self.slots) + 1
        return max(1, min(600, math.ceil((self.mean_seconds or 5.0) * ahead / self.slots)))

    def record(self, seconds: float) -> None:
        self.mean_seconds = seconds if self.mean_seconds is None else (
            0.7 * self.mean_seconds + 0.3 * seconds)

    def state(self) -> dict:
        return {"busy": self.busy, "waiting": max(0, self.admitted - self.busy),
                "max_concurrent": self.slots, "queue": self.queue}


def run_task(settings: ServeSettings, scorer, task: dict) -> tuple:
    """``("done", (status, report))`` or ``("error", one line)``: a scoring never raises."""
    try:
        return "done", score_upload(settings, scorer, **task)
    except Exception as error:  # a bug or an odd file: a 500 for this request only
        logger.debug("scoring %s failed", task.get("filename"), exc_info=True)
        reason = (str(error).strip().splitlines() or [""])[0]
        return "error", f"scoring failed: {type(error).__name__}: {reason}"


def _result(outcome: tuple) -> tuple[int, dict]:
    kind, value = outcome
    if kind == "error":
        raise RequestError(500, value)
    return value


def _timed_out(timeout: float, note: str) -> RequestError:
    return RequestError(504, f"scoring took longer than the time limit of {timeout:g} s{note}")


class ThreadRunner:
    """Scores in threads of this process with an already loaded ``scorer`` (see module doc)."""

    def __init__(self, settings: ServeSettings, scorer):
        self.settings, self.scorer = settings, scorer
        self.admission = Admission(settings.max_concurrent, settings.queue)
        self.info = model_info(settings, scorer)
        self._executor = ThreadPoolExecutor(settings.max_concurrent,
                                            thread_name_prefix="mclcr-serve")
        self._slots: asyncio.Semaphore | None = None

    def start(self) -> None:
        """Nothing to start: the model is loaded."""

    def attach(self) -> None:
        self._slots = asyncio.Semaphore(self.settings.max_concurrent)

    def state(self) -> dict:
        return {"runner": "thread", "workers_ready": self.settings.max_concurrent,
                **self.admission.state()}

    def _score(self, task: dict) -> tuple:
        try:
            return run_task(self.settings, self.scorer, task)
        finally:
            shutil.rmtree(task["folder"], ignore_errors=True)

    async def score(self, task: dict) -> tuple[int, dict]:
        timeout = self.settings.timeout
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout)
        except asyncio.TimeoutError:
            shutil.rmtree(task["folder"], ignore_errors=True)
            raise self.admission.refusal(f"no scorer free within {timeout:g} s") from None
        self.admission.busy += 1
        started = time.monotonic()
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._score, task)

        def finished(_):  # the slot is the thread's until the scoring really ends
            self.admission.busy -= 1
            self.admission.record(time.monotonic() - started)
            self._slots.release()

        future.add_done_callback(finished)
        try:
            return _result(await asyncio.wait_for(asyncio.shield(future), timeout))
        except asyncio.TimeoutError:
            raise _timed_out(timeout, " (it goes on in its thread, holding its slot, until it "
                                      "ends)") from None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def worker_main(settings: ServeSettings, initializers: Sequence[Callable], connection) -> None:
    """A scoring process: load the model once, then score the tasks the server sends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when workers stop
    for initialize in initializers:
        initialize()
    from mclcr_keras.inference.predict import load

    try:
        scorer = load(settings.model)
        warm_up(scorer)
        connection.send(("ready", model_info(settings, scorer)))
    except Exception as error:
        connection.send(("failed", (str(error).strip().splitlines() or [repr(error)])[0]))
        return
    while True:
        try:
            task = connection.recv()
        except (EOFError, OSError):  # the server is gone
            return
        if task is None:
            return
        connection.send(run_task(settings, scorer, task))


class _Worker:
    """One scoring process and the pipe to it."""

    def __init__(self, context, settings: ServeSettings, initializers: Sequence[Callable]):
        self.connection, child = context.Pipe()
        self.process = context.Process(target=worker_main, name="mclcr-serve-worker",
                                       args=(settings, tuple(initializers), child), daemon=True)
        self.process.start()
        child.close()

    def wait_ready(self) -> dict:
        try:
            kind, value = self.connection.recv()
        except (EOFError, OSError):
            self.process.join(5)
            raise UsageError(f"the scoring process exited (code {self.process.exitcode}) while "
                             "loading the model") from None
        if kind != "ready":
            raise UsageError(value)
        return value

    def call(self, task: dict) -> tuple:
        try:
            self.connection.send(task)
            return self.connection.recv()
        except (EOFError, OSError):
            self.process.join(5)
            return "died", f"the scoring process died (exit code {self.process.exitcode})"

    def stop(self, kill: bool = False) -> None:
        if not kill:
            try:
                self.connection.send(None)
            except OSError:
                pass
            self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(10)
        self.connection.close()


class ProcessRunner:
    """``max_concurrent`` worker processes, each with the model loaded once (see module doc).

    Args:
        settings: the service's settings.
        initializers: picklable callables each worker runs first (the CLI passes its logging
            set-up and its quiet TensorFlow import).
    """

    def __init__(self, settings: ServeSettings, initializers: Sequence[Callable] = ()):
        self.settings, self.initializers = settings, tuple(initializers)
        self.admission = Admission(settings.max_concurrent, settings.queue)
        self.info: dict | None = None
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._idle: asyncio.Queue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def start(self) -> None:
        """Starts the workers and waits until each has loaded the model (once; `UsageError`)."""
        if self._workers:
            return
        workers = [_Worker(self._context, self.settings, self.initializers)
                   for _ in range(self.settings.max_concurrent)]
        try:
            infos = [worker.wait_ready() for worker in workers]
        except BaseException:
            for worker in workers:
                worker.stop(kill=True)
            raise
        self._workers, self.info = workers, infos[0]

    def attach(self) -> None:
        """Binds the idle queue to the serving event loop (from the app's start-up)."""
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Queue()
        for worker in self._workers:
            self._idle.put_nowait(worker)

    def state(self) -> dict:
        return {"runner": "process", "workers_ready": len(self._workers),
                "worker_pids": [w.process.pid for w in self._workers], **self.admission.state()}

    async def score(self, task: dict) -> tuple[int, dict]:
        timeout = self.settings.timeout
        try:
            try:
                worker = await asyncio.wait_for(self._idle.get(), timeout)
            except asyncio.TimeoutError:
                raise self.admission.refusal(f"no scorer free within {timeout:g} s") from None
            self.admission.busy += 1
            started = time.monotonic()
            try:
                outcome = await asyncio.wait_for(asyncio.to_thread(worker.call, task), timeout)
            except asyncio.TimeoutError:
                await asyncio.to_thread(worker.stop, True)
                self._replace(worker, "passed the time limit")
                raise _timed_out(timeout, " (its worker was ended and is being replaced)") from None
            except asyncio.CancelledError:  # the server is stopping: the worker's task is lost
                worker.stop(kill=True)
                self._replace(worker, "was cancelled")
                raise
            finally:
                self.admission.busy -= 1
            if outcome[0] == "died":
                self._replace(worker, "died")
                raise RequestError(500, outcome[1])
            self._idle.put_nowait(worker)
            self.admission.record(time.monotonic() - started)
            return _result(outcome)
        finally:
            shutil.rmtree(task["folder"], ignore_errors=True)

    def _replace(self, old: _Worker, why: str) -> None:
        """Drops ``old`` and loads a fresh worker in the background (it joins the idle queue)."""
        if old in self._workers:
            self._workers.remove(old)
        logger.warning("scoring process %s %s; starting a replacement", old.process.pid, why)

        def spawn():
            try:
                fresh = _Worker(self._context, self.settings, self.initializers)
                fresh.wait_ready()
            except Exception as error:
                logger.error("could not start a replacement scoring process: %s", error)
                return
            self._loop.call_soon_threadsafe(self._add, fresh)

        threading.Thread(target=spawn, name="mclcr-serve-respawn", daemon=True).start()

    def _add(self, worker: _Worker) -> None:
        if self._closed:
            worker.stop()
            return
        self._workers.append(worker)
        self._idle.put_nowait(worker)

    def close(self) -> None:
        self._closed = True
        for worker in self._workers:
            worker.stop()
        self._workers = []
