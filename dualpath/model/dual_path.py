"""The attention-aware dual-path autoencoder (paper Fig. 1, section III)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from dualpath.model.backbone import DenseNetBackbone, global_pool
from dualpath.model.base import ImageNetNormalize, Model, ModelOutput, classifier_head
from dualpath.model.config import ModelConfig
from dualpath.model.decoder import ReconstructionHead, UNetDecoder


class DualPathAutoencoder(Model):
    """Encoder E -> (z, skips) -> decoder + CBAM -> recon; recon (detached) -> second DenseNet -> z_c;
    head(fuse(z, z_c)) -> logits."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        spec = config.backbone_spec
        self.encoder = DenseNetBackbone(spec, config.stem)
        self.decoder = UNetDecoder(self.encoder.out_width, self.encoder.skip_widths)
        self.reconstruction = ReconstructionHead(self.decoder.out_width, cbam=config.cbam)
        self.normalize = ImageNetNormalize()
        self.classifier_backbone = DenseNetBackbone(spec, config.stem)  # same architecture, independent weights
        width = self.encoder.out_width
        fused = 2 * width if config.fusion == "concat" else width
        # Optional: z * z_c of two ReLU-pooled vectors starts near zero; BatchNorm gives the head unit-scale inputs.
        self.fusion_norm = nn.BatchNorm1d(fused) if config.fusion_norm else nn.Identity()
        self.head = classifier_head(fused, config)

    def forward(self, x: Tensor) -> ModelOutput:
        skips, f5 = self.encoder(x)  # f5: (N, D, 2, 2) for 64x64 (4x4 with the 3x3 stem)
        z = global_pool(f5)  # (N, D), Eq. 2
        recon = self.reconstruction(self.decoder(f5, skips))  # (N, 3, 64, 64) in [-1, 1]
        # Stop-gradient (Sec. III.C): the classification loss must not train the decoder.
        x_hat = recon.detach() if self.config.stop_gradient else recon
        z_c = self.classifier_backbone.embed(self.normalize(x_hat))  # (N, D), Eq. 6
        return ModelOutput(self.head(self.fusion_norm(fuse(z, z_c, self.config.fusion))), recon)


def fuse(z: Tensor, z_c: Tensor, mode: str) -> Tensor:
    if mode == "multiply":  # Eq. 7
        return z * z_c
    if mode == "concat":
        return torch.cat([z, z_c], dim=1)
    if mode == "none":
        return z_c
    raise ValueError(f"unknown fusion {mode!r}; use 'multiply', 'concat' or 'none'")
