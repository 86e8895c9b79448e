"""The paper's two baselines: a plain convolutional autoencoder and DenseNet-121 alone."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from dualpath.model.backbone import DenseNetBackbone
from dualpath.model.base import Model, ModelOutput, classifier_head
from dualpath.model.config import ModelConfig
from dualpath.model.decoder import conv_bn_relu, upsample2x


class ConvAutoencoder(Model):
    """Four stride-2 conv-BN-ReLU down to a 4x4 latent, mirrored upsample + conv-BN-ReLU back to 64x64,
    tanh; the classification head reads GAP(latent). No pretrained weights, skips, CBAM or fusion.

    Widths (c, 2c, 4c, 8c) with c = half the backbone's stem width, so the backbone size scales this
    baseline too: densenet121 -> (32, 64, 128, 256).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        c = config.backbone_spec.num_init_features // 2
        widths = (c, 2 * c, 4 * c, 8 * c)
        self.encoder = nn.Sequential(
            *(conv_bn_relu(i, o, stride=2) for i, o in zip((3,) + widths[:-1], widths))
        )  # (N, 8c, 4, 4) for 64x64
        ups = tuple(reversed(widths))  # 8c, 4c, 2c, c
        self.decoder = nn.ModuleList(conv_bn_relu(i, o) for i, o in zip(ups, ups[1:] + (c,)))
        self.to_rgb = nn.Conv2d(c, 3, 3, padding=1)
        self.head = classifier_head(widths[-1], config)

    def forward(self, x: Tensor) -> ModelOutput:
        latent = self.encoder(x)
        y = latent
        for block in self.decoder:
            y = block(upsample2x(y))
        recon = self.to_rgb(y).tanh()
        z = F.adaptive_avg_pool2d(latent, 1).flatten(1)
        return ModelOutput(self.head(z), recon)


class DenseNetClassifier(Model):
    """DenseNet on the noisy input, GAP(ReLU(features)) -> the same head as the dual path; no recon."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.backbone = DenseNetBackbone(config.backbone_spec, config.stem)
        self.head = classifier_head(self.backbone.out_width, config)

    def forward(self, x: Tensor) -> ModelOutput:
        return ModelOutput(self.head(self.backbone.embed(x)), None)
