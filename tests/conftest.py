import os

# Tests run on small CPUs next to each other: keep every library to one thread unless a test says otherwise.
os.environ.setdefault("OMP_NUM_THREADS", "1")
