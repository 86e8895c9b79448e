"""Calibration sets for INT8 quantization, drawn from the scene generator on seeds disjoint from training.

    ds = build_calibration_set(CalibrationConfig(n=300), out="data/calib")   # cached like any scenes data set
    batches = CalibrationBatches.from_dataset(ds)                             # iterable of {"image": x} batches
    ort_reader(batches) / nncf_dataset(batches)                               # what each quantizer wants
"""

from dualpath.missing import install_for_python_m

install_for_python_m()  # `python -m` lacking a package: one line, exit 2 (dualpath.missing)

from calibration.adapters import nncf_dataset, ort_reader
from calibration.sets import (
    ACCURACY_CONTROL_SEED,
    CALIBRATION_SEED,
    SEED_STREAM_START,
    CalibrationBatches,
    CalibrationConfig,
    build_calibration_set,
)

__all__ = [
    "ACCURACY_CONTROL_SEED",
    "CALIBRATION_SEED",
    "SEED_STREAM_START",
    "CalibrationBatches",
    "CalibrationConfig",
    "build_calibration_set",
    "nncf_dataset",
    "ort_reader",
]
