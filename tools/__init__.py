"""Developer tools, each run from the repository root as `python -m tools.<name>`. Nothing in the project imports
them."""
