from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dualpath.contract import MEAN, STD
from dualpath.model import (
    ARCHITECTURES, BACKBONES, DenseNetBackbone, Model, ModelConfig, ModelOutput, build_model, model_class,
)
from dualpath.model.decoder import CBAM, UNetDecoder

ABLATIONS = [
    {},
    {"cbam": False},
    {"stop_gradient": False},
    {"fusion": "concat"},
    {"fusion": "none"},
    {"stem": "3x3"},
    {"fusion_norm": True},
    {"stem": "3x3", "fusion_norm": True, "fusion": "concat"},
]


@pytest.mark.parametrize("overrides", ABLATIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "paper")
def test_dualpath_outputs(tiny, images, overrides):
    model = build_model(tiny(**overrides))
    out = model(images)
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (3, 20)
    assert out.recon.shape == (3, 3, 64, 64)
    assert out.recon.abs().max() <= 1.0  # tanh
    assert model.config.fusion == overrides.get("fusion", "multiply")
    assert not model.pretrained_loaded


def test_ablation_switches_change_the_modules(tiny):
    width = DenseNetBackbone(BACKBONES["densenet_tiny"]).out_width
    assert build_model(tiny()).reconstruction.cbam is not None
    assert build_model(tiny(cbam=False)).reconstruction.cbam is None
    assert build_model(tiny(fusion="multiply")).head[0].in_features == width
    assert build_model(tiny(fusion="concat")).head[0].in_features == 2 * width
    assert build_model(tiny(fusion="none")).head[0].in_features == width


def test_baselines(tiny, images):
    cae = build_model(tiny(arch="cae"))
    out = cae(images)
    assert out.logits.shape == (3, 20) and out.recon.shape == (3, 3, 64, 64)
    assert not any(isinstance(m, DenseNetBackbone) for m in cae.modules())

    densenet = build_model(tiny(arch="densenet"))
    out = densenet(images)
    assert out.logits.shape == (3, 20) and out.recon is None


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_registered_architecture_builds_a_model_of_its_class(tiny, images, arch):
    model = build_model(tiny(arch=arch))
    assert type(model) is model_class(arch) and issubclass(model_class(arch), Model)
    assert isinstance(model(images), ModelOutput)
    assert bool(model.backbones()) == ARCHITECTURES[arch].backbones  # what ModelConfig's weight check relies on


def test_densenet121_feature_pyramid_matches_the_paper():
    encoder = DenseNetBackbone(BACKBONES["densenet121"]).eval()
    with torch.no_grad():
        skips, f5 = encoder(torch.randn(1, 3, 64, 64))
    assert [tuple(s.shape[1:]) for s in skips] == [(64, 32, 32), (256, 16, 16), (512, 8, 8), (1024, 4, 4)]
    assert tuple(f5.shape[1:]) == (1024, 2, 2)
    z = encoder.embed(torch.randn(1, 3, 64, 64))
    assert z.shape == (1, 1024)


@pytest.mark.parametrize("name", ["densenet_small", "densenet_tiny"])
def test_smaller_backbones_size_the_decoder_from_their_own_widths(name):
    encoder = DenseNetBackbone(BACKBONES[name]).eval()
    with torch.no_grad():
        skips, f5 = encoder(torch.randn(2, 3, 64, 64))
        z = encoder.embed(torch.randn(2, 3, 64, 64))
        decoder = UNetDecoder(encoder.out_width, encoder.skip_widths).eval()
        features = decoder(f5, skips)
    assert tuple(s.shape[1] for s in skips) == encoder.skip_widths
    assert [s.shape[-1] for s in skips] == [32, 16, 8, 4] and f5.shape[-1] == 2
    assert f5.shape[1] == encoder.out_width == z.shape[1] < 1024
    assert features.shape == (2, decoder.out_width, 64, 64)


@pytest.mark.parametrize("name", ["densenet_small", "densenet_tiny"])
def test_3x3_stem_puts_the_dense_blocks_at_twice_the_resolution(name):
    spec = BACKBONES[name]
    ref, encoder = DenseNetBackbone(spec).eval(), DenseNetBackbone(spec, stem="3x3").eval()
    with torch.no_grad():
        ref_skips, _ = ref(torch.randn(2, 3, 64, 64))
        skips, f5 = encoder(torch.randn(2, 3, 64, 64))
        decoder = UNetDecoder(encoder.out_width, encoder.skip_widths).eval()
        features = decoder(f5, skips)
    conv0 = encoder.features.conv0
    assert (conv0.kernel_size, conv0.stride) == ((3, 3), (2, 2))
    assert isinstance(encoder.features.pool0, torch.nn.Identity)
    # block1..3 at 32, 16, 8 (the ImageNet stem: 16, 8, 4) and no separate stem skip: it would have block1's size
    assert [s.shape[-1] for s in skips] == [32, 16, 8] and f5.shape[-1] == 4
    assert [s.shape[1] for s in skips] == [s.shape[1] for s in ref_skips[1:]] == list(encoder.skip_widths)
    assert len(decoder.blocks) == 4 and features.shape == (2, decoder.out_width, 64, 64)
    model = build_model(ModelConfig(backbone=name, stem="3x3"))
    assert len(model.decoder.blocks) == 4 and len(build_model(ModelConfig(backbone=name)).decoder.blocks) == 5
    assert model.classifier_backbone.features.conv0.stride == (2, 2)


def test_unknown_stem_and_imagenet_weights_with_another_stem_are_refused():
    with pytest.raises(ValueError, match="stem must be one of"):
        ModelConfig(stem="5x5")
    with pytest.raises(ValueError, match="'imagenet' stem"):
        ModelConfig(stem="3x3", pretrained="imagenet")


def test_fusion_norm_normalises_the_fused_vector_before_the_head(tiny, images):
    model = build_model(tiny(fusion_norm=True)).train()
    assert isinstance(model.fusion_norm, torch.nn.BatchNorm1d)
    seen = []
    model.head.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    model(images)
    fused = seen[0]
    # BatchNorm in training mode with its initial affine (1, 0): each feature has batch mean 0 and variance ~1
    assert torch.allclose(fused.mean(0), torch.zeros(fused.shape[1]), atol=1e-5)
    assert isinstance(build_model(tiny()).fusion_norm, torch.nn.Identity)


def test_z_is_torchvision_pooling_of_relu_f5(tiny, images):
    model = build_model(tiny(fusion="none")).eval()
    encoder = model.encoder
    with torch.no_grad():
        _, f5 = encoder(images)
        expected = F.relu(f5).mean(dim=(2, 3))
        # torchvision's own path: features -> relu -> GAP, the same tensor before its classifier
        torchvision_z = F.adaptive_avg_pool2d(F.relu(encoder.features(images)), 1).flatten(1)
        assert torch.allclose(encoder.embed(images), expected, atol=1e-6)
        assert torch.allclose(torchvision_z, expected, atol=1e-6)


def test_classifier_path_sees_the_imagenet_normalised_reconstruction(tiny, images):
    model = build_model(tiny()).eval()
    seen = []
    model.classifier_backbone.features.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    with torch.no_grad():
        out = model(images)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(seen[0], ((out.recon + 1) / 2 - mean) / std, atol=1e-6)


def test_encoder_and_classifier_backbones_are_independent(tiny):
    model = build_model(tiny())
    a, b = model.encoder.features.conv0.weight, model.classifier_backbone.features.conv0.weight
    assert a.data_ptr() != b.data_ptr() and not torch.equal(a, b)


def test_cbam_is_channel_then_spatial_attention():
    torch.manual_seed(0)
    cbam = CBAM(32).eval()
    x = torch.randn(2, 32, 8, 8)
    mlp = cbam.channel.mlp
    m_c = torch.sigmoid(mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True)))
    refined = x * m_c
    pooled = torch.cat([refined.mean(1, keepdim=True), refined.amax(1, keepdim=True)], dim=1)
    m_s = torch.sigmoid(F.conv2d(pooled, cbam.spatial.conv.weight, padding=3))
    with torch.no_grad():
        assert torch.allclose(cbam(x), refined * m_s, atol=1e-6)


def test_reconstruction_head_adds_the_residual(tiny):
    head = build_model(tiny()).reconstruction.eval()
    x = torch.randn(2, head.to_rgb.in_channels, 64, 64)
    with torch.no_grad():
        expected = torch.tanh(head.to_rgb(x + head.cbam(x)))  # F_out = F_att + F (Eq. 4)
        assert torch.allclose(head(x), expected, atol=1e-6)


@pytest.mark.parametrize("arch", ["dualpath", "cae", "densenet"])
def test_channels_last_gives_the_same_outputs(tiny, images, arch):
    model = build_model(tiny(arch=arch)).eval()
    with torch.no_grad():
        ref = model(images)
        model = model.to(memory_format=torch.channels_last)
        out = model(images.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(out.logits, ref.logits, atol=1e-5)
    if ref.recon is not None:
        assert torch.allclose(out.recon, ref.recon, atol=1e-5)


@pytest.mark.parametrize("arch", ["dualpath", "cae", "densenet"])
def test_bf16_autocast_forward_on_cpu(tiny, images, arch):
    model = build_model(tiny(arch=arch)).eval()
    with torch.no_grad():
        ref = model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(images)
    assert out.logits.dtype == torch.bfloat16
    assert torch.allclose(out.logits.float(), ref.logits, atol=0.05, rtol=0.05)
    if ref.recon is not None:
        assert torch.allclose(out.recon.float(), ref.recon, atol=0.05)


def test_batch_size_is_free(tiny):
    model = build_model(tiny()).eval()
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        whole = model(x)
        single = model(x[2:3])
    assert torch.allclose(whole.logits[2:3], single.logits, atol=1e-5)
    assert torch.allclose(whole.recon[2:3], single.recon, atol=1e-5)


def test_config_is_attached(tiny):
    cfg = tiny(fusion="concat")
    assert build_model(cfg).config is cfg
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg  # every field survives the round trip, not only the type
