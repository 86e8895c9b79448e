"""build_model(config): the one constructor the trainer, the exporter and the tests use."""
from __future__ import annotations

from dualpath.model.base import Model
from dualpath.model.baselines import ConvAutoencoder, DenseNetClassifier
from dualpath.model.config import ModelConfig
from dualpath.model.dual_path import DualPathAutoencoder
from dualpath.model.weights import apply_weights, check_card, load_weights

ARCHITECTURES: dict[str, type[Model]] = {
    "dualpath": DualPathAutoencoder,
    "cae": ConvAutoencoder,
    "densenet": DenseNetClassifier,
}


def build_model(config: ModelConfig, load_pretrained: bool = True) -> Model:
    """The model for `config`, with its pretrained weights loaded into every DenseNet backbone.

    load_pretrained=False skips the weights (e.g. when a checkpoint's state dict follows right after).
    Raises PretrainedWeightsUnavailable when the weights cannot be had, ValueError when they do not fit.
    """
    model = ARCHITECTURES[config.arch](config)
    if load_pretrained and config.uses_pretrained:
        check_card(config.pretrained, config.backbone, config.stem)
        state = load_weights(config.pretrained)
        for backbone in model.backbones():
            apply_weights(backbone, state, config.pretrained)
        model.pretrained_loaded = True
    return model
