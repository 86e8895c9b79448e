from __future__ import annotations

import re
import urllib.error

import pytest
import torch
import torchvision
from torchvision.models import DenseNet

from dualpath.model import BACKBONES, ModelConfig, PretrainedWeightsUnavailable, build_model

LEGACY = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.")


def _legacy(state):
    """As the published ImageNet file: 'denselayer1.norm.1.weight' for 'denselayer1.norm1.weight', and no
    BatchNorm num_batches_tracked (it predates them)."""
    return {LEGACY.sub(r"\1.\2.", k): v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def _torchvision_densenet(name: str) -> DenseNet:
    spec = BACKBONES[name]
    torch.manual_seed(123)
    return DenseNet(spec.growth_rate, spec.block_config, spec.num_init_features, spec.bn_size)


def _assert_backbone_holds(backbone, reference_state):
    own = backbone.state_dict()
    assert set(own) == {k for k in reference_state if not k.startswith("classifier.")}
    for key, value in own.items():
        assert torch.equal(value, reference_state[key]), key


@pytest.mark.parametrize("legacy_keys", [False, True], ids=["current-keys", "legacy-keys"])
def test_local_state_dict_loads_into_both_backbones(tiny, tmp_path, legacy_keys):
    reference = _torchvision_densenet("densenet_tiny").state_dict()
    path = tmp_path / "tiny.pth"
    torch.save(_legacy(reference) if legacy_keys else reference, path)
    assert legacy_keys == any(".norm.1." in k for k in torch.load(path, weights_only=True))

    model = build_model(tiny(pretrained=str(path)))
    assert model.pretrained_loaded
    _assert_backbone_holds(model.encoder, reference)
    _assert_backbone_holds(model.classifier_backbone, reference)
    # two copies, not one shared tensor
    assert model.encoder.features.conv0.weight.data_ptr() != model.classifier_backbone.features.conv0.weight.data_ptr()


def test_legacy_keys_load_without_torchvisions_private_helper(tiny, tmp_path, monkeypatch):
    monkeypatch.delattr(torchvision.models.densenet, "_load_state_dict")
    reference = _torchvision_densenet("densenet_tiny").state_dict()
    torch.save(_legacy(reference), tmp_path / "tiny.pth")
    model = build_model(tiny(arch="densenet", pretrained=str(tmp_path / "tiny.pth")))
    _assert_backbone_holds(model.backbone, reference)


def test_a_torchvision_densenet121_file_loads(tmp_path):
    reference = torchvision.models.densenet121().state_dict()
    torch.save(_legacy(reference), tmp_path / "densenet121.pth")
    cfg = ModelConfig(arch="densenet", backbone="densenet121", pretrained=str(tmp_path / "densenet121.pth"))
    model = build_model(cfg)
    assert model.pretrained_loaded
    _assert_backbone_holds(model.backbone, reference)


def test_load_pretrained_false_skips_the_file(tiny, tmp_path):
    model = build_model(tiny(pretrained=str(tmp_path / "not-there.pth")), load_pretrained=False)
    assert not model.pretrained_loaded


def test_a_file_for_another_size_is_refused_clearly(tiny, tmp_path):
    torch.save(_torchvision_densenet("densenet_small").state_dict(), tmp_path / "small.pth")
    with pytest.raises(ValueError, match=r"do not fit this DenseNet backbone: .*shape mismatches") as err:
        build_model(tiny(pretrained=str(tmp_path / "small.pth")))
    assert "backbone='densenet121'" in str(err.value)


def test_a_file_that_is_not_a_state_dict_is_refused(tiny, tmp_path):
    torch.save([torch.zeros(3)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="is not a state dict"):
        build_model(tiny(pretrained=str(tmp_path / "list.pth")))
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot read"):
        build_model(tiny(pretrained=str(tmp_path / "junk.pth")))


def _assert_says_what_to_do(message: str):
    assert "--weights PATH" in message and "--pretrained none" in message


def test_missing_file_says_what_to_do(tiny, tmp_path):
    with pytest.raises(PretrainedWeightsUnavailable, match="does not exist") as err:
        build_model(tiny(pretrained=str(tmp_path / "nope.pth")))
    _assert_says_what_to_do(str(err.value))


def test_offline_imagenet_download_says_what_to_do(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(PretrainedWeightsUnavailable, match="could not download") as err:
        build_model(ModelConfig(arch="densenet", pretrained="imagenet"))
    _assert_says_what_to_do(str(err.value))


def test_imagenet_download_path_loads_what_torchvision_returns(monkeypatch):
    reference = torchvision.models.densenet121().state_dict()
    calls = []

    def fake_download(url, *args, **kwargs):
        calls.append(url)
        return _legacy(reference)  # the published file uses the legacy key names

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", fake_download)
    model = build_model(ModelConfig(arch="densenet", pretrained="imagenet"))
    assert calls == [torchvision.models.DenseNet121_Weights.IMAGENET1K_V1.url]
    assert model.pretrained_loaded
    _assert_backbone_holds(model.backbone, reference)
