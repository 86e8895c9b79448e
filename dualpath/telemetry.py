"""OpenVINO, NNCF and ONNX Runtime usage telemetry: off unless the user opts in with DUALPATH_TELEMETRY=1.

Both libraries send usage events through the `openvino_telemetry` package (OpenVINO's model converter on every
`convert_model`, NNCF on every `quantize`), unless a consent file in ~/intel says no. Both also run without that
package ("openvino_telemetry package not found. No telemetry will be sent."), so every entry point of this project
calls `telemetry_off()` before anything imports openvino or nncf, in one place: importing dualpath.cli (every
`__main__` and the benchmarks package import it first): the package is then unimportable in that process, and nothing is written to the
user's home. Opt in with `DUALPATH_TELEMETRY=1` (the libraries then follow their own consent file).

ONNX Runtime (1.29 and later, the PyPI wheels on Linux and macOS too) starts a 1DS uploader with every inference
session: measured with ORT 1.32 on Linux, about 8 s after the first session it looks up
mobile.events.data.microsoft.com (DNS, UDP port 53), even after `onnxruntime.disable_telemetry_events()`. Its opt-out
is the environment variable ORT_DISABLE_TELEMETRY=1, read once when the native library initialises: it must be set
before `import onnxruntime` (set after it, the lookup still happens; measured). telemetry_off() sets it, and so does
the ONNX Runtime backend before its import, for library users who did not call telemetry_off().
Standard library only.
"""
from __future__ import annotations

import os
import sys

OPT_IN_VAR = "DUALPATH_TELEMETRY"
TELEMETRY_MODULES = ("openvino_telemetry",)
# library switch -> its "off" value, set unless the user opted in (inherited by child processes)
TELEMETRY_ENV = {"NNCF_CI": "1", "ORT_DISABLE_TELEMETRY": "1"}


def opted_in() -> bool:
    return os.environ.get(OPT_IN_VAR, "").strip().lower() in ("1", "true", "yes", "on")


def telemetry_off() -> bool:
    """Make OpenVINO's and NNCF's telemetry package unimportable in this process and switch ONNX Runtime's off
    (ORT_DISABLE_TELEMETRY=1) unless the user opted in. Returns True when telemetry is off. Call it before importing
    openvino, nncf or onnxruntime (a library that already started its telemetry keeps it)."""
    if opted_in():
        return False
    for name in TELEMETRY_MODULES:
        if sys.modules.get(name) is None:  # None in sys.modules: `import name` raises ImportError
            sys.modules[name] = None  # type: ignore[assignment]
    for name, value in TELEMETRY_ENV.items():  # NNCF's switch (its telemetry is then a stub); ONNX Runtime's opt-out
        os.environ.setdefault(name, value)
    return True
