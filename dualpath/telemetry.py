"""OpenVINO and NNCF usage telemetry: off unless the user opts in with DUALPATH_TELEMETRY=1.

Both libraries send usage events through the `openvino_telemetry` package (OpenVINO's model converter on every
`convert_model`, NNCF on every `quantize`), unless a consent file in ~/intel says no. Both also run without that
package ("openvino_telemetry package not found. No telemetry will be sent."), so every entry point of this project
(python -m export, runtime, runtime.drift, export.benchmark, the benchmarks/ scripts) calls `telemetry_off()` before
anything imports openvino or nncf: the package is then unimportable in that process, and nothing is written to the
user's home. Opt in with `DUALPATH_TELEMETRY=1` (the libraries then follow their own consent file).
Standard library only.
"""
from __future__ import annotations

import os
import sys

OPT_IN_VAR = "DUALPATH_TELEMETRY"
TELEMETRY_MODULES = ("openvino_telemetry",)


def opted_in() -> bool:
    return os.environ.get(OPT_IN_VAR, "").strip().lower() in ("1", "true", "yes", "on")


def telemetry_off() -> bool:
    """Make OpenVINO's and NNCF's telemetry package unimportable in this process unless the user opted in.
    Returns True when telemetry is off. Call it before importing openvino or nncf (a library that already imported
    the package keeps it)."""
    if opted_in():
        return False
    for name in TELEMETRY_MODULES:
        if sys.modules.get(name) is None:  # None in sys.modules: `import name` raises ImportError
            sys.modules[name] = None  # type: ignore[assignment]
    os.environ.setdefault("NNCF_CI", "1")  # NNCF's own switch (its telemetry is a stub when set); child processes
    return True
