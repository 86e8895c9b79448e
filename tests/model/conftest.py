from __future__ import annotations

import pytest
import torch

from dualpath.model import ModelConfig


@pytest.fixture
def tiny():
    """ModelConfig factory at test size: densenet_tiny backbones, a small head."""

    def make(**overrides) -> ModelConfig:
        return ModelConfig(**{"backbone": "densenet_tiny", "hidden": 16, **overrides})

    return make


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
