"""Inference requests in flight: the async surface beside `Backend.infer`.

    runner = backend.runner(requests=None, batch=1)   # None: the device's optimal number of requests
    runner.start(x, done)                              # returns at once; done(outputs) or done(BackendError) later,
    ...                                                # once, from another thread (SyncRunner: before start returns)
    runner.close()                                     # waits for what is in flight

`x` is a float32 (batch, 3, size, size) array (the caller pads a short batch to `batch`); the outputs are the same
dict `infer` returns, copied (the request's buffers are reused). The caller keeps at most `runner.requests` started
and not yet done. Each backend makes its own: OpenVINO an AsyncInferQueue (runtime.backends.ov), ONNX Runtime and
TensorRT a ThreadRunner (one thread per request; ONNX Runtime releases the GIL in run, TensorRT's requests each have
their own execution context and CUDA stream). A backend without a `runner` method gets a SyncRunner: one request at
a time, said once on stderr.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

import numpy as np

from runtime.backends.base import BackendError

log = logging.getLogger("runtime")

Done = Callable[[object], None]  # called with the outputs dict, or with a BackendError


class Runner:
    requests: int = 1  # how many the caller may keep started and not yet done
    batch: int = 1  # frames per request
    description: str = ""  # for the benchmark line: "AsyncInferQueue, THROUGHPUT hint"

    def start(self, x: np.ndarray, done: Done) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SyncRunner(Runner):
    """backend.infer in the caller's thread: what a backend without an async path gets."""

    def __init__(self, backend, batch: int = 1) -> None:
        self.backend, self.batch, self.requests = backend, batch, 1
        self.description = "synchronous"

    def start(self, x: np.ndarray, done: Done) -> None:
        done(_infer(self.backend.infer, {self.backend.metadata.input_name: x}))


class ThreadRunner(Runner):
    """`requests` worker threads, worker i running `infers[i]` (its own execution context, or one shared session
    whose run is thread-safe); jobs are taken in the order they were started."""

    def __init__(self, infers: list[Callable[[np.ndarray], dict]], batch: int = 1, description: str = "") -> None:
        self.requests, self.batch, self.description = len(infers), batch, description
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, args=(infer,), name=f"infer-{i}", daemon=True)
                         for i, infer in enumerate(infers)]
        for t in self._threads:
            t.start()

    def _work(self, infer: Callable[[np.ndarray], dict]) -> None:
        while (job := self._jobs.get()) is not None:
            x, done = job
            done(_infer(infer, x))

    def start(self, x: np.ndarray, done: Done) -> None:
        self._jobs.put((x, done))

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)  # after the jobs already queued
        for t in self._threads:
            t.join()
        self._threads = []


def _infer(infer: Callable, x) -> object:
    try:
        return infer(x)
    except BackendError as e:
        return e
    except Exception as e:  # noqa: BLE001 - a backend's own error type, mid-run: the run ends with it
        return BackendError(f"{type(e).__name__}: {e}")


_said: set[str] = set()


def sync_runner(backend, requests: int | None = None, batch: int = 1) -> SyncRunner:
    """A SyncRunner for a backend without an async path; says so once per backend name."""
    name = getattr(backend, "name", "?") or "?"
    if name not in _said:
        _said.add(name)
        ignored = f" (--requests {requests} ignored)" if requests not in (None, 1) else ""
        log.warning("the %s backend has no async path: it runs one request at a time%s", name, ignored)
    return SyncRunner(backend, batch)


def runner_for(backend, requests: int | None = None, batch: int = 1) -> Runner:
    """The backend's own runner (its `runner` method), or a SyncRunner for a backend without one."""
    make = getattr(backend, "runner", None)
    return make(requests=requests, batch=batch) if make is not None else sync_runner(backend, requests, batch)
