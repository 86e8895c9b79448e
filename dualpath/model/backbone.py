"""torchvision's DenseNet as a feature pyramid: the paper's encoder E and the classifier path's extractor."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.densenet import DenseNet

from dualpath.model.config import BackboneSpec


class DenseNetBackbone(DenseNet):
    """torchvision DenseNet without its classifier; state-dict keys stay torchvision's ("features.*").

    For a 64x64 input (densenet121 widths):
      skips: stem relu0 (64, 32x32), block1 (256, 16x16), block2 (512, 8x8), block3 (1024, 4x4)
      f5:    norm5 (1024, 2x2), the bottleneck
    A block's skip is its output after the following transition's BN-ReLU (before the 1x1 conv and the
    pooling), as segmentation_models_pytorch's DenseNet encoder takes it.
    """

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__(
            growth_rate=spec.growth_rate,
            block_config=spec.block_config,
            num_init_features=spec.num_init_features,
            bn_size=spec.bn_size,
        )
        del self.classifier
        f = self.features
        # Widths read off the built modules, so every DenseNet size gets a matching decoder.
        self.skip_widths: tuple[int, ...] = (f.norm0.num_features,) + tuple(
            f.get_submodule(f"transition{i}").norm.num_features for i in (1, 2, 3)
        )
        self.out_width: int = f.norm5.num_features

    def forward(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        f = self.features
        stem = f.relu0(f.norm0(f.conv0(x)))  # (N, c0, H/2, W/2)
        skips = [stem]
        x = f.pool0(stem)
        for i in (1, 2, 3):
            x = f.get_submodule(f"denseblock{i}")(x)
            transition = f.get_submodule(f"transition{i}")
            skip = transition.relu(transition.norm(x))  # (N, c_i, H / 2^(i+1), ...)
            skips.append(skip)
            x = transition.pool(transition.conv(skip))
        f5 = f.norm5(f.denseblock4(x))  # (N, out_width, H/32, W/32)
        return skips, f5

    def embed(self, x: Tensor) -> Tensor:
        """Image -> GAP(ReLU(features)), torchvision's pre-classifier vector (N, out_width)."""
        return global_pool(self.features(x))


def global_pool(f5: Tensor) -> Tensor:
    """z = GAP(ReLU(f5)) exactly as torchvision's DenseNet.forward does before its classifier."""
    return torch.flatten(F.adaptive_avg_pool2d(F.relu(f5), 1), 1)


def is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)
