"""OpenVINO / NNCF telemetry is off in every entry point unless DUALPATH_TELEMETRY=1 (dualpath.telemetry).

Each entry point is imported in a fresh interpreter (not under pytest, which NNCF itself treats as "no telemetry"),
then OpenVINO's converter and NNCF are imported and asked which telemetry object they got."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = ["export.__main__", "export.benchmark", "runtime.__main__", "runtime.drift.__main__",
                "benchmarks.inference", "benchmarks.openvino_profile"]

PROBE = """
import importlib, importlib.util, json, sys
entry = sys.argv[1]
importlib.import_module(entry)
found = {}
try:
    import openvino_telemetry  # noqa: F401
    found["openvino_telemetry"] = "importable"
except ImportError:
    found["openvino_telemetry"] = "blocked"
if importlib.util.find_spec("openvino") is not None:
    from openvino.tools.ovc import telemetry_utils
    found["ovc"] = telemetry_utils.tm.__name__
if importlib.util.find_spec("nncf") is not None:
    from nncf.telemetry import wrapper
    found["nncf"] = type(wrapper.telemetry).__name__
print(json.dumps(found))
"""


def _probe(entry: str, tmp_path: Path, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("DUALPATH_TELEMETRY", "NNCF_CI", "NNCF_DEV", "CI")}
    # HOME in tmp: an opted-in library may write its consent / client-id files there, never in the user's home
    done = subprocess.run([sys.executable, "-c", PROBE, entry], cwd=ROOT, capture_output=True, text=True,
                          env=clean | {"HOME": str(tmp_path), "PYTHONPATH": str(ROOT)} | env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # a fresh interpreter importing OpenVINO and NNCF per entry point
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_turns_telemetry_off(entry, tmp_path):
    found = _probe(entry, tmp_path)
    assert found["openvino_telemetry"] == "blocked", found
    if "ovc" in found:
        assert found["ovc"].endswith("telemetry_stub"), found  # OpenVINO's converter falls back to its stub
    if "nncf" in found:
        assert found["nncf"] == "MagicMock", found  # NNCF's NNCFTelemetryStub


@pytest.mark.slow
def test_opt_in_leaves_the_libraries_alone(tmp_path):
    pytest.importorskip("openvino_telemetry")
    found = _probe("runtime.drift.__main__", tmp_path, DUALPATH_TELEMETRY="1")
    assert found["openvino_telemetry"] == "importable"
    if "ovc" in found:
        assert found["ovc"] == "openvino_telemetry"


def test_telemetry_off_is_a_no_op_when_opted_in(monkeypatch):
    from dualpath import telemetry

    monkeypatch.setenv("DUALPATH_TELEMETRY", "1")
    assert telemetry.opted_in() and telemetry.telemetry_off() is False
    monkeypatch.setenv("DUALPATH_TELEMETRY", "0")
    assert not telemetry.opted_in()
