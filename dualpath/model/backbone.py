"""torchvision's DenseNet as a feature pyramid: the paper's encoder E and the classifier path's extractor."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.densenet import DenseNet

from dualpath.model.config import STEM_STRIDES, BackboneSpec


class DenseNetBackbone(DenseNet):
    """torchvision DenseNet without its classifier; state-dict keys stay torchvision's ("features.*").

    For a 64x64 input (densenet121 widths) with torchvision's ImageNet stem (7x7 stride-2 conv, 3x3 max-pool):
      skips: stem relu0 (64, 32x32), block1 (256, 16x16), block2 (512, 8x8), block3 (1024, 4x4)
      f5:    norm5 (1024, 2x2), the bottleneck
    With stem="3x3" (3x3 stride-1 conv, then the same max-pool) every size doubles: the stem skip is 64x64,
    block1 works at 32x32 and f5 is 4x4.
    A block's skip is its output after the following transition's BN-ReLU (before the 1x1 conv and the
    pooling), as segmentation_models_pytorch's DenseNet encoder takes it.
    """

    def __init__(self, spec: BackboneSpec, stem: str = "imagenet") -> None:
        super().__init__(
            growth_rate=spec.growth_rate,
            block_config=spec.block_config,
            num_init_features=spec.num_init_features,
            bn_size=spec.bn_size,
        )
        del self.classifier
        f = self.features
        if stem not in STEM_STRIDES:
            raise ValueError(f"stem must be one of {', '.join(map(repr, STEM_STRIDES))}; got {stem!r}")
        if stem == "3x3":
            # A 3x3 stride-1 conv in place of the 7x7 stride-2 one (DenseNet-BC's CIFAR stem, as torchvision's
            # class is otherwise kept): at 64x64 the first dense block then works at 32x32 instead of 16x16.
            f.conv0 = nn.Conv2d(3, spec.num_init_features, kernel_size=3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(f.conv0.weight)  # as torchvision initialises its convs
        self.stem_stride: int = STEM_STRIDES[stem]  # input size / stem skip size
        # Widths read off the built modules, so every DenseNet size gets a matching decoder.
        self.skip_widths: tuple[int, ...] = (f.norm0.num_features,) + tuple(
            f.get_submodule(f"transition{i}").norm.num_features for i in (1, 2, 3)
        )
        self.out_width: int = f.norm5.num_features

    def forward(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        f = self.features
        stem = f.relu0(f.norm0(f.conv0(x)))  # (N, c0, H/s, W/s), s = stem_stride
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
