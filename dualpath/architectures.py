"""The model architectures by name: the one list that ModelConfig, TrainConfig, `python -m train --model` and the
benchmarks take their choices from. Free of torch, like dualpath.contract, so configs and --help name them without
importing it; dualpath.model.build_model imports an architecture's class when it builds one.

A new architecture is one entry here plus its module in dualpath/model/: a dualpath.model.base.Model subclass whose
constructor takes a ModelConfig and whose forward returns a ModelOutput.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    model: str  # "module:Class" of its dualpath.model.base.Model subclass
    summary: str  # one line for --help
    backbones: bool = True  # built on DenseNet backbones, which can load pretrained weights


ARCHITECTURES: dict[str, Architecture] = {
    "dualpath": Architecture("dualpath.model.dual_path:DualPathAutoencoder", "the paper's dual-path autoencoder"),
    "cae": Architecture("dualpath.model.baselines:ConvAutoencoder", "a plain convolutional autoencoder (baseline)",
                        backbones=False),
    "densenet": Architecture("dualpath.model.baselines:DenseNetClassifier",
                             "DenseNet alone on the noisy input (baseline)"),
}
