"""benchmarks/recipe.py: the pieces its table rests on (the rows themselves need the 6000-scene set and minutes)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def recipe(load_benchmark):
    return load_benchmark("recipe")


def test_plain_cnn_reference_is_the_issue_s_network(recipe):
    model = recipe.PlainCNN().eval()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 32, 64, 64, 128, 128, 256, 256]
    assert all(c.kernel_size == (3, 3) for c in convs)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.logits.shape == (2, 20) and out.recon is None


def test_learning_rate_warms_up_then_decays_to_zero_over_the_budget(recipe):
    peak = 2e-3
    assert recipe.lr_at(peak, 0.0) < 0.01 * peak
    assert recipe.lr_at(peak, 0.03) == pytest.approx(peak)
    values = [recipe.lr_at(peak, f / 100) for f in range(3, 101)]
    assert all(a >= b for a, b in zip(values, values[1:])) and values[-1] == pytest.approx(0.0, abs=1e-12)


def test_cpu_preset_row_is_what_the_preset_trains(recipe):
    from train.config import CPU

    v = recipe.preset_variant("cpu")
    assert (v.backbone, v.model_options, v.loss, v.lr, v.batch_size, v.augment, v.extra_scenes) == (
        CPU.backbone, CPU.model_options, CPU.loss, CPU.phase2_lr, CPU.batch_size, CPU.augment, CPU.extra_scenes)
    assert (v.recon_weight, v.cls_weight) == (CPU.recon_weight, CPU.cls_weight)


def test_every_variant_builds_a_model_with_logits(recipe):
    for name, v in recipe.VARIANTS.items():
        model = recipe.build(v).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 3, 64, 64)).logits.shape == (1, 20), name


def test_table_lists_every_row_with_its_budget(recipe):
    row = {"row": "plain_cnn", "budget_s": 240.0, "threads": 1, "images_per_s": 234.0, "epochs": 14.6,
           "accuracy": 0.869, "macro_map": 0.328, "macro_auc": 0.739, "ssim": None, "description": "plain"}
    table = recipe.format_table({"a": row, "b": {**row, "row": "x", "budget_s": None, "budget_epochs": 8.0,
                                                 "ssim": 0.7}})
    assert "| plain_cnn | 240 s x 1t | 234 | 14.6 | 0.869 | 0.328 | 0.739 | - |" in table
    assert "| x | 8 epochs x 1t |" in table and "| 0.700 |" in table
