"""Developer tools, each run from the repository root as `python -m tools.<name>`. Nothing in the project imports
them."""

from dualpath.missing import install_for_python_m

install_for_python_m()  # `python -m` lacking a package: one line, exit 2 (dualpath.missing)
