"""How far a candidate artifact (INT8) drifts from its FP32 reference, with budgets a CI gate can enforce.

    python -m runtime.drift --reference model.onnx --candidate model_int8.xml --n 1000 --out report/
"""
from runtime.drift.budgets import DEFAULT_BUDGETS, Budget, load_budgets, parse_budget
from runtime.drift.compare import compare, run_backend
from runtime.drift.report import DriftConfig, drift_report
from runtime.drift.sets import DRIFT_SEED, drift_dataset

__all__ = [
    "DEFAULT_BUDGETS",
    "DRIFT_SEED",
    "Budget",
    "DriftConfig",
    "compare",
    "drift_dataset",
    "drift_report",
    "load_budgets",
    "parse_budget",
    "run_backend",
]
