"""One real export of a tiny dual-path checkpoint (INT8, FP16 and bf16, every backend, benchmark table) shared by the
tests in this folder."""
from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items):
    """Every test here that reads the shared export is `slow`: building it is the suite's largest single cost."""
    for item in items:
        if "exported" in getattr(item, "fixturenames", ()) and Path(item.path).is_relative_to(HERE):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from export.config import export_config as ExportConfig
    from export.pipeline import run_export
    from export_helpers import make_checkpoint

    root = tmp_path_factory.mktemp("export")
    config = ExportConfig(checkpoint=make_checkpoint(root / "best.pt"), out=root / "out", int8=True, fp16=True, bf16=True,
                          backends=("onnx", "openvino", "tensorrt"), calib_n=16, drift_n=20, severities=(),
                          parity_n=8, data_root=root / "data", threads=1, benchmark=True, bench_threads=1,
                          bench_iters=20, bench_rounds=2)
    logs: list[str] = []
    manifest = run_export(config, log=logs.append)
    return config, manifest, logs
