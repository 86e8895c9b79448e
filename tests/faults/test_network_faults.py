"""Telemetry off means no network call of any kind, by any backend (issue 19, 11). ONNX Runtime 1.32 looked up
mobile.events.data.microsoft.com (DNS, about 8 s after a session was created) even after
onnxruntime.disable_telemetry_events(); its switch is ORT_DISABLE_TELEMETRY=1 before it is imported, which
dualpath.telemetry.telemetry_off() sets. Each backend runs here under `strace -f -e trace=connect,sendto` and any
attempt to reach an address that is not this machine's fails the test; a control run, opted in
(DUALPATH_TELEMETRY=1), shows the trace does see ONNX Runtime's lookup."""
from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fault_checks import ROOT

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

ENTRY_POINTS = ["runtime.__main__", "runtime.drift.__main__", "export.benchmark", "export.__main__"]
ORT_WAIT_S = 12  # ONNX Runtime's uploader looked the host up ~8 s after the first session (measured)
ADDRESS = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')


def _clean_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DUALPATH_TELEMETRY", "ORT_DISABLE_TELEMETRY", "NNCF_CI", "CI")}
    return env | {"HOME": str(tmp_path), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"} | extra


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_switches_onnxruntime_telemetry_off_before_importing_it(entry, tmp_path):
    probe = (f"import importlib, os, sys; importlib.import_module({entry!r}); "
             "print(os.environ.get('ORT_DISABLE_TELEMETRY'), 'onnxruntime' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=_clean_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    switch, imported = done.stdout.split()[-2:]
    assert switch == "1", done.stdout  # set, and (below) before onnxruntime could read it
    assert imported == "False" or entry.startswith("export"), done.stdout


def test_the_onnxruntime_backend_switches_it_off_for_library_users(tmp_path):
    """Without any entry point (a script that calls load_backend): the backend sets it before importing ORT."""
    from test_drift_faults import _model

    model = _model(tmp_path / "m.onnx")
    probe = ("import os; from runtime.backends import load_backend; "
             f"load_backend({str(model)!r}).close(); print(os.environ.get('ORT_DISABLE_TELEMETRY'))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=_clean_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split()[-1] == "1", done.stderr[-2000:]


def test_opting_in_leaves_the_libraries_their_own_switches(monkeypatch):
    from dualpath import telemetry

    monkeypatch.setenv("DUALPATH_TELEMETRY", "1")
    monkeypatch.delenv("ORT_DISABLE_TELEMETRY", raising=False)
    assert telemetry.telemetry_off() is False and "ORT_DISABLE_TELEMETRY" not in os.environ


# ------------------------------------------------------------------------------------------------ traced


# The real entry point, ended by its own SIGTERM after `wait` seconds (as a user's Ctrl-C would; a signal sent to strace
# would detach it and leave the runtime looping).
RUNTIME_PROBE = """
import os, runpy, signal, sys, threading
wait = float(sys.argv.pop(1))
threading.Timer(wait, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
sys.argv = ["runtime", *sys.argv[1:]]
runpy.run_module("runtime", run_name="__main__", alter_sys=True)
"""

NNCF_PROBE = """
from dualpath.telemetry import telemetry_off
telemetry_off()
import sys, time, numpy as np, openvino as ov, nncf
model = ov.convert_model(sys.argv[1])
nncf.quantize(model, nncf.Dataset([np.zeros((1, 3, 64, 64), np.float32)] * 4), subset_size=4)
time.sleep(3)
"""


def non_local(trace: str) -> list[str]:
    """connect / sendto lines of an strace log that name an address outside this machine."""
    bad = []
    for line in trace.splitlines():
        if "connect(" not in line and "sendto(" not in line:
            continue
        for v4, v6 in ADDRESS.findall(line):
            address = ipaddress.ip_address(v4 or v6)
            if not (address.is_loopback or address.is_unspecified):
                bad.append(line.strip())
    return bad


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    """Every probe at once under strace (they wait ~12 s each, for ONNX Runtime's uploader): name -> strace log."""
    if shutil.which("strace") is None:
        pytest.skip("needs strace to trace connect() (not installed; a network namespace would need root and ip)")
    import cv2

    from test_drift_faults import _model

    d = tmp_path_factory.mktemp("traced")
    model = _model(d / "m.onnx")
    image = d / "frame.png"
    cv2.imwrite(str(image), np.full((64, 64, 3), 90, np.uint8))
    runtime = [sys.executable, "-c", RUNTIME_PROBE, str(ORT_WAIT_S), "--model", str(model), "--source", str(image),
               "--headless", "--loop"]
    probes = {
        "onnxruntime": (runtime, {}),
        "openvino": (runtime + ["--backend", "openvino"], {}),
        "nncf": ([sys.executable, "-c", NNCF_PROBE, str(model)], {}),
        "control-opted-in": (runtime, {"DUALPATH_TELEMETRY": "1"}),
    }
    procs = {}
    for name, (argv, env) in probes.items():
        log = d / f"{name}.strace"
        procs[name] = (subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=connect,sendto", "-e", "signal=none",
                                         "-o", str(log), *argv], cwd=ROOT, env=_clean_env(d, **env),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), log)
    out = {}
    try:
        for name, (proc, log) in procs.items():
            _, err = proc.communicate(timeout=ORT_WAIT_S + 90)
            if proc.returncode != 0:
                pytest.fail(f"{name} probe failed ({proc.returncode}): {err[-1500:]}")
            out[name] = log.read_text()
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()  # strace, which kills what it traces (-f) as it exits
                proc.wait()
    return out


@pytest.mark.slow  # four traced processes, ~12 s of waiting for ONNX Runtime's uploader
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "nncf"])
def test_no_backend_reaches_the_network(traces, backend):
    if backend != "onnxruntime":
        pytest.importorskip(backend)
    assert non_local(traces[backend]) == [], f"{backend} tried to reach the network"


@pytest.mark.slow
def test_the_trace_sees_onnxruntime_when_opted_in(traces):
    """The control: opted in, ONNX Runtime's own telemetry looks its host up, and the trace shows it."""
    seen = non_local(traces["control-opted-in"])
    if not seen:
        pytest.skip("ONNX Runtime made no network attempt even opted in (a build without telemetry?)")
    assert any("mobile" in line or "sin_port=htons(53)" in line or "sin_port=htons(443)" in line for line in seen)
