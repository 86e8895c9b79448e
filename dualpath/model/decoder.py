"""Attention-aware decoder (paper III.B): U-Net blocks over the DenseNet skips, CBAM, conv + tanh."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


def upsample2x(x: Tensor) -> Tensor:
    # A constant scale factor exports as one ONNX Resize (nearest) with no shape arithmetic.
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class DecoderBlock(nn.Module):
    """Upsample x2, concatenate the skip (if any), two conv-BN-ReLU."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(conv_bn_relu(in_ch + skip_ch, out_ch), conv_bn_relu(out_ch, out_ch))

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        x = upsample2x(x)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv(x)


def decoder_widths(skip_widths: Sequence[int]) -> tuple[int, ...]:
    """Block widths, deepest first, scaled from the backbone's own skips.

    A quarter of each skip's width, rounded up to a multiple of 8 (friendly to channels_last and INT8
    kernels); the final 64x64 block repeats the 32x32 width. densenet121 -> (256, 128, 64, 16, 16), close
    to segmentation_models_pytorch's U-Net default (256, 128, 64, 32, 16).
    """
    widths = tuple(_round_up(max(w // 4, 1), 8) for w in reversed(skip_widths))
    return widths + widths[-1:]


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class UNetDecoder(nn.Module):
    """f5 + skips (shallowest first) -> feature map F at the input resolution (one block per skip + one)."""

    def __init__(self, bottleneck_width: int, skip_widths: Sequence[int]) -> None:
        super().__init__()
        widths = decoder_widths(skip_widths)
        skips = tuple(reversed(skip_widths)) + (0,)  # the last block upsamples to full size without a skip
        ins = (bottleneck_width,) + widths[:-1]
        self.blocks = nn.ModuleList(DecoderBlock(i, s, o) for i, s, o in zip(ins, skips, widths))
        self.out_width = widths[-1]

    def forward(self, f5: Tensor, skips: Sequence[Tensor]) -> Tensor:
        x = f5
        for block, skip in zip(self.blocks, [*reversed(skips), None]):
            x = block(x, skip)
        return x


class ChannelAttention(nn.Module):
    """M_c = sigmoid(MLP(avgpool F) + MLP(maxpool F)), one MLP shared by both pools (Woo et al. 2018)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        # 1x1 convs instead of Linear: no flatten/reshape, so the graph stays NCHW Conv ops.
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))


class SpatialAttention(nn.Module):
    """M_s = sigmoid(conv7x7([mean_c F; max_c F]))."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)  # (N, 2, H, W)
        return torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """F_att = F * M_c * M_s, spatial attention computed on the channel-refined map (paper Eq. 3)."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        x = x * self.channel(x)
        return x * self.spatial(x)


class ReconstructionHead(nn.Module):
    """F -> (F_out = CBAM(F) + F, Eq. 4) -> tanh(conv(F_out)) in [-1, 1] (Eq. 5)."""

    def __init__(self, channels: int, cbam: bool = True) -> None:
        super().__init__()
        self.cbam = CBAM(channels) if cbam else None
        self.to_rgb = nn.Conv2d(channels, 3, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        if self.cbam is not None:
            x = x + self.cbam(x)
        return torch.tanh(self.to_rgb(x))
