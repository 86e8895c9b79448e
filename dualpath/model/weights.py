"""Pretrained DenseNet weights: torchvision's ImageNet download or a local torchvision state dict."""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from dualpath.model.backbone import DenseNetBackbone
from dualpath.model.config import PRETRAINED_KEYWORDS

_HOW_TO_FIX = (
    "pass --pretrained PATH (alias --weights PATH) of a local DenseNet state dict: the project's own scene-pretrained "
    "backbones lie in weights/<name>/backbone.pth (restore them with `git checkout -- weights/`, or make one with "
    "`python -m train pretrain`), and a torchvision DenseNet-121 ImageNet file can be saved with "
    "torch.save(torchvision.models.densenet121(weights='IMAGENET1K_V1').state_dict(), PATH) on a machine with "
    "internet; or pass --pretrained none to train from random initialisation"
)


# The project's own scene-pretrained backbones (`python -m train pretrain`), one folder per backbone and stem:
# weights/<name>/backbone.pth beside its card backbone.json. A relative weights path that does not exist from the
# working directory is looked up from the project root, so the presets' "weights/..." works from anywhere.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_WEIGHTS = PROJECT_ROOT / "weights"
CARD_FORMAT = "dualpath-scene-pretrained-backbone/1"  # the card's "format"; any version after the slash is read
# A whole pretrained model (`python -m train pretrain --model dualpath`): OUT/model.pth beside its card OUT/model.json
MODEL_CARD_FORMAT = "dualpath-scene-pretrained-model/1"


class PretrainedWeightsUnavailable(RuntimeError):
    """The requested pretrained weights cannot be had here (offline, missing file)."""


def resolve_source(source: str) -> str:
    """'imagenet' / 'none' unchanged; a path as given when it exists, else from the project root when it exists
    there (the shipped weights/...), else as given (the loader then says it is missing)."""
    if source in PRETRAINED_KEYWORDS:
        return source
    path = Path(source)
    if not path.exists() and not path.is_absolute() and (PROJECT_ROOT / path).exists():
        return str(PROJECT_ROOT / path)
    return source


def fitting_weights(backbone: str, stem: str) -> list[Path]:
    """The shipped weights files (weights/*/, with a card) made for this backbone and stem."""
    fits = []
    for card_path in sorted(SHIPPED_WEIGHTS.glob("*/*.json")):
        weights = card_path.with_suffix(".pth")
        try:
            card = read_card(str(weights)) if weights.is_file() else None
        except ValueError:
            continue
        if card is not None and (card.get("backbone"), card.get("stem", "imagenet")) == (backbone, stem):
            fits.append(weights)
    return fits


def fitting_hint(backbone: str, stem: str) -> str:
    """One sentence naming the file that fits this backbone and stem, or how to make one."""
    fits = fitting_weights(backbone, stem)
    if fits:
        shown = _shown(fits[0])
        return f"the file that fits backbone {backbone!r} with stem {stem!r} is {shown} (--pretrained {shown})"
    return (f"no shipped weights fit backbone {backbone!r} with stem {stem!r}: make them with `python -m train pretrain "
            f"--backbone {backbone} --stem {stem} --out weights/<name>`, or pass --pretrained none to train from scratch")


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_weights(source: str) -> dict[str, Tensor]:
    """'imagenet' or a file path -> a DenseNet state dict with torchvision's current key names."""
    state = _download_imagenet() if source == "imagenet" else _read_file(Path(resolve_source(source)))
    return _strip_classifier(_modernise_keys(dict(state)))


def check_card(source: str, backbone: str, stem: str) -> None:
    """A weights file with a card beside it (`python -m train pretrain` writes PATH.json, or backbone.json in its
    folder) must have been made for this backbone and stem; a file without a card gets the shape check only."""
    card = read_card(source)
    if card is None:
        return
    made_for = (card.get("backbone"), card.get("stem", "imagenet"))
    if made_for != (backbone, stem):
        raise ValueError(
            f"weights {source} were pretrained for backbone {made_for[0]!r} with stem {made_for[1]!r} (its card says "
            f"so), not {backbone!r} with stem {stem!r}: pass --backbone {made_for[0]} --stem {made_for[1]} to use "
            f"them; {fitting_hint(backbone, stem)}"
        )


def read_card(source: str) -> dict | None:
    """The card beside a weights file (PATH with the suffix .json, as `python -m train pretrain` writes it), or None."""
    found = _card_json(source)
    if found is None:
        return None
    card, data = found
    is_card = isinstance(data, dict) and str(data.get("format", "")).startswith(CARD_FORMAT.split("/")[0])
    if is_card:
        check_card_schema(card, data)
    return data if is_card else None


def _card_json(source: str) -> tuple[Path, object] | None:
    """(path, parsed JSON) of the file PATH.json beside a weights file, None where there is none ('imagenet', 'none',
    no such file); ValueError naming the card when it cannot be read."""
    import json

    if source in PRETRAINED_KEYWORDS:
        return None
    card = Path(resolve_source(source)).with_suffix(".json")
    if not card.is_file():
        return None
    try:
        return card, json.loads(card.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the card {card} of {source} ({err}); fix or remove it") from err


# The card's fields a reader uses, with their types (the card of `python -m train pretrain`; others are kept as is).
_CARD_FIELDS = {"backbone": str, "stem": str, "dtype": str, "weights_file": str, "weights_sha256": str,
                "held_out": dict, "training": dict, "scenes_seen": int, "seed_range": dict}
_REQUIRED_CARD_FIELDS = ("backbone",)


def check_card_schema(path: Path, card: dict) -> None:
    """A weights card against its schema: ValueError naming the card and the first field missing or mistyped."""
    from dualpath.model.config import BACKBONES, STEMS

    for name in _REQUIRED_CARD_FIELDS:
        if name not in card:
            raise ValueError(f"the weights card {path} has no field {name}; fix or remove the card")
    for name, kind in _CARD_FIELDS.items():
        if name in card and (not isinstance(card[name], kind) or isinstance(card[name], bool)):
            raise ValueError(f"the weights card {path}: field {name} is {type(card[name]).__name__} "
                             f"{repr(card[name])[:40]}, a {kind.__name__} belongs there; fix or remove the card")
    if card["backbone"] not in BACKBONES:
        raise ValueError(f"the weights card {path}: field backbone is {card['backbone']!r}, one of "
                         f"{', '.join(BACKBONES)} belongs there; fix or remove the card")
    if card.get("stem", "imagenet") not in STEMS:
        raise ValueError(f"the weights card {path}: field stem is {card['stem']!r}, one of {', '.join(STEMS)} belongs "
                         "there; fix or remove the card")


def apply_weights(backbone: DenseNetBackbone, state: Mapping[str, Tensor], source: str,
                  made_for: tuple[str, str] | None = None) -> None:
    """Copy `state` into `backbone`, or say plainly why it does not fit (with `made_for`, the (backbone, stem) the
    model asked for: which shipped file would)."""
    own = backbone.state_dict()
    # Files older than BatchNorm's num_batches_tracked (the published ImageNet one) lack it; BatchNorm's
    # own loader fills it in, as it does for torchvision.
    missing = sorted(k for k in set(own) - set(state) if not k.endswith(".num_batches_tracked"))
    unexpected = sorted(set(state) - set(own))
    mismatched = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        details = "; ".join(
            f"{len(keys)} {what} (e.g. {keys[0]})"
            for what, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                               ("shape mismatches", mismatched))
            if keys
        )
        raise ValueError(
            f"weights from {source} do not fit this DenseNet backbone: {details}. "
            "A torchvision densenet121 state dict goes with backbone='densenet121'; the smaller backbones "
            "need a state dict saved from the same size" + (f"; {fitting_hint(*made_for)}" if made_for else "")
        )
    backbone.load_state_dict(state, strict=True)


def _download_imagenet() -> dict[str, Tensor]:
    from torchvision.models import DenseNet121_Weights

    try:
        # torchvision caches the file under $TORCH_HOME; a second call reads the cache.
        return DenseNet121_Weights.IMAGENET1K_V1.get_state_dict(progress=True, check_hash=True)
    except (OSError, RuntimeError) as err:  # URLError/socket errors are OSErrors; a bad hash a RuntimeError
        raise PretrainedWeightsUnavailable(
            f"could not download torchvision's ImageNet DenseNet-121 weights ({type(err).__name__}: {err}); "
            + _HOW_TO_FIX
        ) from err


def _read_file(path: Path) -> Mapping[str, Tensor]:
    if not path.is_file():
        raise PretrainedWeightsUnavailable(f"pretrained weights file {str(path)!r} does not exist; " + _HOW_TO_FIX)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load raises many kinds (pickle, zip, weights_only refusals)
        raise ValueError(f"cannot read {str(path)!r} as a torch state dict: {err}") from err
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(
            f"{str(path)!r} is not a state dict (a mapping of names to tensors); save one with "
            "torch.save(model.state_dict(), PATH)"
        )
    return state


# torchvision's own legacy-key rename (torchvision.models.densenet._load_state_dict): old checkpoints,
# the published ImageNet file among them, name layers 'denselayer1.norm.1.weight' instead of 'norm1'.
_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def _modernise_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    try:
        from torchvision.models.densenet import _load_state_dict
    except ImportError:  # private helper; keep working if torchvision drops it
        return {_rename_legacy(k): v for k, v in state.items()}
    # Reuse torchvision's rename: it reads from a weights object and writes into a model, so hand it
    # a stand-in for both.
    sink = _StateDictSink()
    _load_state_dict(model=sink, weights=_StateDictSource(state), progress=False)
    return sink.state


def _rename_legacy(key: str) -> str:
    match = _LEGACY_KEY.match(key)
    return match.group(1) + match.group(2) if match else key


def _strip_classifier(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v for k, v in state.items() if not k.startswith("classifier.")}


class _StateDictSource:
    def __init__(self, state: dict[str, Tensor]) -> None:
        self._state = state

    def get_state_dict(self, progress: bool = False, check_hash: bool = False) -> dict[str, Tensor]:
        return dict(self._state)


class _StateDictSink:
    state: dict[str, Tensor]

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.state = state


def read_model_card(source: str) -> dict | None:
    """The card of a whole pretrained model (MODEL_CARD_FORMAT, PATH with the suffix .json), or None when `source` is
    not one (a backbone's weights, 'imagenet', 'none')."""
    found = _card_json(source)
    if found is None:
        return None
    card, data = found
    if not (isinstance(data, dict) and str(data.get("format", "")).startswith(MODEL_CARD_FORMAT.split("/")[0])):
        return None
    for name in ("arch", "backbone", "stem"):
        if not isinstance(data.get(name), str):
            raise ValueError(f"the model card {card} has no text field {name}; fix or remove the card")
    if not isinstance(data.get("model"), dict):
        raise ValueError(f"the model card {card} has no object field model (the model's options); fix or remove it")
    return data


def apply_model_weights(model, config, card: dict, source: str) -> None:
    """Every weight of `model` from a whole pretrained model's file, or say plainly why it does not fit: the card's
    architecture, backbone, stem and model options must be the model's own."""
    own = {k: v for k, v in config.to_dict().items() if k != "pretrained"}
    theirs = {**card["model"], "arch": card["arch"], "backbone": card["backbone"], "stem": card["stem"]}
    differ = [f"{k} {theirs.get(k)!r} (card) vs {own[k]!r}" for k in own if k in theirs and theirs[k] != own[k]]
    if differ:
        raise ValueError(f"weights {source} are a pretrained model of another configuration ({'; '.join(differ)}): "
                         "train with that configuration, or pass a backbone.pth (weights/<name>/backbone.pth) to "
                         "start only the DenseNets")
    state = _read_file(Path(resolve_source(source)))
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    except RuntimeError as err:
        raise ValueError(f"weights {source} do not fit the model its card names ({str(err).splitlines()[0]}); the "
                         "file and its card do not belong together: make them again with `python -m train pretrain "
                         "--model dualpath`") from err
