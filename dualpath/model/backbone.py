"""torchvision's DenseNet as a feature pyramid: the paper's encoder E and the classifier path's extractor."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.densenet import DenseNet

from dualpath.model.config import STEMS, BackboneSpec


class DenseNetBackbone(DenseNet):
    """torchvision DenseNet without its classifier; state-dict keys stay torchvision's ("features.*").

    For a 64x64 input (densenet121 widths) with torchvision's ImageNet stem (7x7 stride-2 conv, 3x3 max-pool):
      skips: stem relu0 (64, 32x32), block1 (256, 16x16), block2 (512, 8x8), block3 (1024, 4x4)
      f5:    norm5 (1024, 2x2), the bottleneck
    With stem="3x3" (3x3 stride-2 conv, no max-pool) the dense blocks work at twice the resolution: skips block1
    (32x32), block2 (16x16), block3 (8x8), f5 4x4. The stem gives no skip of its own there: it has block1's size, and
    block1's output (a dense block concatenates its input) already holds its channels.
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
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {', '.join(map(repr, STEMS))}; got {stem!r}")
        self.stem_skip: bool = stem == "imagenet"
        if stem == "3x3":
            # DenseNet-BC's small-image idea in torchvision's class: a 3x3 stride-2 conv for the 7x7 one, no max-pool.
            f.conv0 = nn.Conv2d(3, spec.num_init_features, kernel_size=3, stride=2, padding=1, bias=False)
            nn.init.kaiming_normal_(f.conv0.weight)  # as torchvision initialises its convs
            f.pool0 = nn.Identity()
        # Widths read off the built modules, so every DenseNet size gets a matching decoder.
        self.skip_widths: tuple[int, ...] = (f.norm0.num_features,) * self.stem_skip + tuple(
            f.get_submodule(f"transition{i}").norm.num_features for i in (1, 2, 3)
        )
        self.out_width: int = f.norm5.num_features

    def forward(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        f = self.features
        stem = f.relu0(f.norm0(f.conv0(x)))  # (N, c0, H/2, W/2)
        skips = [stem] if self.stem_skip else []
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
