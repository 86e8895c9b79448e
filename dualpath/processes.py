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
