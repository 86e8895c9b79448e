"""The metadata each artifact carries (runtime.backends reads it back): from the checkpoint and the contract."""
from __future__ import annotations

import importlib.metadata
from typing import Any

from dualpath import contract
from dualpath.metrics import METRIC_KEYS
from runtime.backends.metadata import ModelMetadata

PACKAGES = ("dualpath", "torch", "numpy", "onnx", "onnxruntime", "onnxslim", "onnxscript", "openvino", "nncf", "tensorrt")
OUTPUTS = {
    contract.OUTPUT_PROBS: "float32 (N, 20): sigmoid probability per class, in class_names order",
    contract.OUTPUT_RECON: "float32 (N, 3, S, S): reconstruction, tanh in [-1, 1], RGB; (recon + 1) / 2 gives [0, 1]",
}


def library_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def check_checkpoint_contract(ckpt: dict[str, Any], source: str) -> None:
    """A checkpoint trained for other labels or another input cannot be served with this contract."""
    names = tuple(ckpt.get("class_names", ()))
    if names != contract.CLASS_NAMES:
        raise ValueError(f"{source} was trained on other classes ({len(names)}: {names[:3]}...) than dualpath.contract's")
    pre = ckpt.get("preprocessing", {})
    if pre.get("size") != contract.IMAGE_SIZE or tuple(pre.get("mean", ())) != contract.MEAN or \
            tuple(pre.get("std", ())) != contract.STD:
        raise ValueError(f"{source} uses other preprocessing ({pre}) than dualpath.contract; export cannot serve it")
    if ckpt.get("model_config", {}).get("arch") != "dualpath":
        raise ValueError(
            f"{source} is a {ckpt.get('model_config', {}).get('arch')!r} model; export serves the dual-path model "
            "(both outputs, probs and recon)"
        )


def model_metadata(ckpt: dict[str, Any], checkpoint_sha256: str, precision: str, **extra: Any) -> ModelMetadata:
    from dualpath.seeds import training_ranges

    metrics = ckpt.get("metrics") or {}
    train_config = ckpt.get("train_config")
    # the scenes it was trained on: runtime.drift refuses drift scenes that overlap them (dualpath.seeds)
    scenes = [r.to_dict() for r in training_ranges(train_config if isinstance(train_config, dict) else None)]
    return ModelMetadata.from_contract(
        training_scenes=scenes,
        outputs=OUTPUTS,
        precision=precision,
        model_config=ckpt.get("model_config", {}),
        # the scalar training metrics; per-class tables stay in the run folder
        training_metrics={k: metrics[k] for k in METRIC_KEYS if isinstance(metrics.get(k), (int, float))},
        checkpoint_sha256=checkpoint_sha256,
        epoch=ckpt.get("epoch"),
        versions=library_versions(),
        **extra,
    )
