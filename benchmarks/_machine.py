"""What machine a benchmark ran on, for its table and JSON: figures without a machine mean nothing."""
from __future__ import annotations

import os
import platform


def describe() -> dict[str, str | int]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count() or 0, "python": platform.python_version(), "system": platform.platform()}


def headline(info: dict) -> str:
    return f"{info['cores']}-core {info['cpu']} ({info['system']})"
