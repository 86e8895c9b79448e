"""What machine a benchmark ran on, for its table and JSON: figures without a machine mean nothing."""
from __future__ import annotations

import os
import platform


# Instruction sets that decide INT8 and FP32 speed on x86 (VNNI: INT8 dot products in one instruction).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def _cpuinfo() -> tuple[str | None, set[str] | None]:
    """(model name, flags) from /proc/cpuinfo's first CPU; (None, None) where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return None, None
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    return name, set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))


def cpu_flags() -> set[str] | None:
    """This CPU's /proc/cpuinfo flags on x86, None elsewhere (ARM, or no /proc: nothing to say)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return None
    return _cpuinfo()[1]


def describe() -> dict[str, str | int]:
    name, flags = _cpuinfo()
    cpu = name or platform.processor() or platform.machine()
    isa = " ".join(f for f in ISA_FLAGS if f in (flags or ())) or "unknown"
    return {"cpu": cpu, "cores": os.cpu_count() or 0, "isa": isa, "python": platform.python_version(),
            "system": platform.platform()}


def headline(info: dict) -> str:
    return f"{info['cores']}-core {info['cpu']}, {info.get('isa', 'isa unknown')} ({info['system']})"
