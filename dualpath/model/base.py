"""Pieces every architecture shares: the output tuple, the classifier head, backbone freezing."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from dualpath.contract import MEAN, STD
from dualpath.model.backbone import DenseNetBackbone, is_norm
from dualpath.model.config import ModelConfig


class ModelOutput(NamedTuple):
    logits: Tensor  # (N, num_classes) raw logits; sigmoid gives probabilities
    recon: Tensor | None  # (N, 3, 64, 64) tanh output in [-1, 1]; None for the classifier-only baseline


def classifier_head(in_features: int, config: ModelConfig) -> nn.Sequential:
    """FC + ReLU + dropout -> logits (paper Eq. 8 without the sigmoid, which the loss applies)."""
    return nn.Sequential(
        nn.Linear(in_features, config.hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(config.dropout),
        nn.Linear(config.hidden, config.num_classes),
    )


class ImageNetNormalize(nn.Module):
    """A reconstruction in [-1, 1] -> the ImageNet-normalised input the DenseNet was trained on."""

    def __init__(self) -> None:
        super().__init__()
        # Not persistent: constants from dualpath.contract, not learned state.
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, recon: Tensor) -> Tensor:
        return ((recon + 1.0) * 0.5 - self.mean) / self.std


class Model(nn.Module):
    """Base of the three architectures: holds the config and knows its DenseNet backbones."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.pretrained_loaded = False  # set by build_model once weights are in

    def backbones(self) -> list[DenseNetBackbone]:
        return [m for m in self.children() if isinstance(m, DenseNetBackbone)]

    def set_backbones_frozen(self, frozen: bool) -> None:
        """Phase 1 (True): freeze the DenseNet backbones except BatchNorm. False: everything trainable."""
        if not frozen:
            self.requires_grad_(True)
            return
        for backbone in self.backbones():
            for module in backbone.modules():
                # The paper keeps all BatchNorm layers trainable so they adapt to the new domain.
                for param in module.parameters(recurse=False):
                    param.requires_grad_(is_norm(module))
