"""Commands that run worker processes (scene generation, pretraining's scene worker) end them all when they end.

SIGTERM (kill, systemd, a CI timeout) is taken as an interruption, as Ctrl-C is: the command stops its workers,
removes what it was writing, prints its one `interrupted` line and exits 130 (exitcodes.INTERRUPTED); nothing it
started (workers, multiprocessing's resource tracker) outlives it. Workers ignore Ctrl-C themselves (the terminal
sends it to the whole process group): their parent stops them, so no worker prints a traceback. Standard library only.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from concurrent.futures import Executor
from typing import Iterator


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises KeyboardInterrupt in the main thread (once: a second SIGTERM while cleaning up is
    ignored), so the command's Ctrl-C path runs: workers stopped, temporaries removed, one line, exit 130."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = []

    def handler(signum, frame) -> None:
        if not fired:
            fired.append(signum)
            raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def ignore_interrupts_in_worker() -> None:
    """A worker initializer's first step: Ctrl-C goes to the parent, which ends its workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def stop_pool(pool: Executor | None, timeout: float = 5.0) -> None:
    """End a ProcessPoolExecutor now: queued tasks cancelled, running workers terminated (then killed if they do not
    go within `timeout` s) and reaped. For an interrupted or failed run; a finished run shuts down normally."""
    if pool is None:
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)  # shutdown() drops this reference: take it first
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        with contextlib.suppress(Exception):
            p.terminate()
    for p in processes:
        with contextlib.suppress(Exception):
            p.join(timeout)
            if p.is_alive():
                p.kill()
                p.join(timeout)
    _release_manager(manager)


def _release_manager(thread: threading.Thread | None, wait_s: float = 2.0) -> None:
    """A worker terminated while writing its result leaves the pool's manager thread waiting in recv() for the rest of
    that message, and the interpreter's exit joins that thread forever (seen: 2 of 8 runs of the SIGTERM / SIGINT fault
    test of `generate` at f65468f; py-spy: _python_exit -> Thread.join, the manager thread in Connection._recv, every
    worker gone; closing our end of the result pipe instead makes the thread die with a traceback). A thread still
    waiting `wait_s` after the workers were reaped is left out of the two joins at exit (concurrent.futures' and
    threading's), as a daemon thread would be. Everything else shuts down as usual, so
    multiprocessing's finalizers still release the pool's semaphores."""
    if thread is None:
        return
    thread.join(wait_s)
    if not thread.is_alive():
        return
    import concurrent.futures.process as cf_process

    with contextlib.suppress(Exception):
        cf_process._threads_wakeups.pop(thread, None)
    with contextlib.suppress(Exception):
        with threading._shutdown_locks_lock:
            threading._shutdown_locks.discard(thread._tstate_lock)
