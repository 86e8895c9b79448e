"""build_model(config): the one constructor the trainer, the exporter and the tests use."""
from __future__ import annotations

import importlib

from dualpath.architectures import ARCHITECTURES
from dualpath.model.base import Model
from dualpath.model.config import ModelConfig
from dualpath.model.weights import apply_model_weights, apply_weights, check_card, load_weights, read_model_card


def model_class(arch: str) -> type[Model]:
    """The Model subclass of architecture `arch` (a key of dualpath.architectures.ARCHITECTURES)."""
    module, _, name = ARCHITECTURES[arch].model.partition(":")
    return getattr(importlib.import_module(module), name)


def build_model(config: ModelConfig, load_pretrained: bool = True) -> Model:
    """The model for `config`, with its pretrained weights loaded into every DenseNet backbone (or into every weight,
    when config.pretrained is a whole pretrained model with its card: dualpath.model.weights.read_model_card).

    load_pretrained=False skips the weights (e.g. when a checkpoint's state dict follows right after).
    Raises PretrainedWeightsUnavailable when the weights cannot be had, ValueError when they do not fit.
    """
    model = model_class(config.arch)(config)
    whole = read_model_card(config.pretrained) if load_pretrained and config.uses_pretrained else None
    if whole is not None:  # a whole pretrained model (`python -m train pretrain --model dualpath`): every weight
        apply_model_weights(model, config, whole, config.pretrained)
        model.pretrained_loaded = True
    elif load_pretrained and config.uses_pretrained:
        check_card(config.pretrained, config.backbone, config.stem)
        state = load_weights(config.pretrained)
        for backbone in model.backbones():
            apply_weights(backbone, state, config.pretrained, made_for=(config.backbone, config.stem))
        model.pretrained_loaded = True
    return model
