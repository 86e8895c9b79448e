"""What machine a benchmark ran on, for its table and JSON: figures without a machine mean nothing."""
from __future__ import annotations

import os
import platform


# Instruction sets that decide INT8 and FP32 speed on x86 (VNNI: INT8 dot products in one instruction).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def describe() -> dict[str, str | int]:
    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
        cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), cpu)
        flags = set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))
    except OSError:
        pass
    isa = " ".join(f for f in ISA_FLAGS if f in flags) or "unknown"
    return {"cpu": cpu, "cores": os.cpu_count() or 0, "isa": isa, "python": platform.python_version(),
            "system": platform.platform()}


def headline(info: dict) -> str:
    return f"{info['cores']}-core {info['cpu']}, {info.get('isa', 'isa unknown')} ({info['system']})"
