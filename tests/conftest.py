import os

import pytest

# Tests run on small CPUs next to each other: keep every library to one thread unless a test says otherwise.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Every process a test starts dumps its Python stacks on a fatal signal (SIGSEGV...), so a crash seen once in CI says
# where it happened (the Ctrl-C export test once ended with -11 and nothing on stderr). Silent unless a process crashes.
os.environ.setdefault("PYTHONFAULTHANDLER", "1")


def pytest_collection_modifyitems(items):
    """`gpu` tests run where torch sees a CUDA GPU and skip, saying so, everywhere else."""
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu:
        return
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    if not cuda:
        skip = pytest.mark.skip(reason="needs a CUDA GPU: torch sees none (make test-gpu on a GPU machine)")
        for item in gpu:
            item.add_marker(skip)
