"""The dual-path autoencoder and its baselines (torch). Start with build_model(ModelConfig(...))."""
from dualpath.model.backbone import DenseNetBackbone
from dualpath.model.base import Model, ModelOutput
from dualpath.architectures import ARCHITECTURES
from dualpath.model.build import build_model, model_class
from dualpath.model.config import BACKBONES, BackboneSpec, ModelConfig
from dualpath.model.weights import PretrainedWeightsUnavailable

__all__ = [
    "ARCHITECTURES",
    "BACKBONES",
    "BackboneSpec",
    "DenseNetBackbone",
    "Model",
    "ModelConfig",
    "ModelOutput",
    "PretrainedWeightsUnavailable",
    "build_model",
    "model_class",
]
