from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from train.arguments import resolve_config
from train.cli import build_parser, main
from train.compare import build_parser as compare_parser
from train.config import CPU, PAPER, PRESETS, TINY, RunOptions, TrainConfig, preset


def test_presets_follow_the_paper_and_the_brief():
    assert (PAPER.backbone, PAPER.pretrained, PAPER.folds, PAPER.n_scenes) == ("densenet121", "imagenet", 5, 6000)
    assert (PAPER.phase1_epochs, PAPER.epochs, PAPER.phase1_lr, PAPER.phase2_lr) == (30, 100, 1e-3, 1e-4)
    assert (PAPER.recon_weight, PAPER.cls_weight, PAPER.select_metric) == (1.5, 0.5, "macro_map")
    assert (CPU.backbone, CPU.n_scenes) == ("densenet_small", 6000)
    assert (TINY.backbone, TINY.phase1_epochs, TINY.epochs) == ("densenet_tiny", 1, 2)
    assert preset("tiny") is TINY and set(PRESETS) == {"paper", "cpu", "tiny"}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"arch": "resnet"}, "arch must be one of"),
        ({"loss": "focal"}, "loss must be one of"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"phase1_epochs": 120}, "phase1_epochs must be"),
        ({"phase2_lr": 0.0}, "phase2_lr must be > 0"),
        ({"test_fraction": 1.0}, "test_fraction must be in"),
        ({"batch_size": True}, "batch_size must be a positive integer"),
        ({"augment": "rotate"}, "augment must be one of"),
        ({"extra_scenes": -1}, "extra_scenes must be an integer >= 0"),
        ({"extra_scenes": 10, "extra_seed": 0}, "extra_seed must differ from data_seed"),
        ({"extra_scenes": 10, "extra_seed": 1_000_003}, r"extra_seed must .* lie in \[0, 1000000\)"),
    ],
)
def test_bad_config_says_what_to_do(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(PAPER, **change)


def test_config_round_trips_and_refuses_unknown_keys():
    assert TrainConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({**TINY.to_dict(), "lr": 1})


def test_cae_never_claims_pretrained_weights():
    assert dataclasses.replace(PAPER, arch="cae").pretrained == "none"


def test_run_options_validate():
    with pytest.raises(ValueError, match="device must be one of"):
        RunOptions(device="tpu")


def _resolve(*argv):
    return resolve_config(build_parser().parse_args(["--out", "unused", *argv]))


def test_cli_flags_override_the_preset():
    cfg = _resolve("--preset", "paper", "--model", "cae", "--loss", "bce", "--folds", "3", "--epochs", "10", "--lr2", "0.01")
    assert (cfg.arch, cfg.loss, cfg.folds, cfg.epochs, cfg.phase2_lr) == ("cae", "bce", 3, 10, 0.01)
    assert cfg.phase1_epochs == 10  # the preset's 30 clipped into the shorter run
    assert _resolve().backbone == CPU.backbone  # default preset: cpu
    assert _resolve("--preset", "paper", "--weights", "w.pth").pretrained == "w.pth"
    assert _resolve("--select-metric", "hamming_loss").select_mode == "min"


def test_recipe_flags_reach_the_config_and_bad_model_options_fail_before_any_data():
    cfg = _resolve("--preset", "tiny", "--stem", "3x3", "--augment", "dihedral", "--extra-scenes", "50",
                   "--extra-seed", "7")
    assert (cfg.model_options["stem"], cfg.augment, cfg.extra_scenes, cfg.extra_seed) == ("3x3", "dihedral", 50, 7)
    with pytest.raises(ValueError, match="stem must be one of"):
        _resolve("--stem", "9x9")


def test_training_seed_range_ends_where_calibration_and_drift_seeds_begin():
    from calibration.sets import ACCURACY_CONTROL_SEED, CALIBRATION_SEED, SEED_STREAM_START
    from runtime.drift.sets import DRIFT_SEED
    from train.config import TRAINING_SEEDS_END

    assert TRAINING_SEEDS_END == SEED_STREAM_START
    assert min(CALIBRATION_SEED, ACCURACY_CONTROL_SEED, DRIFT_SEED) >= TRAINING_SEEDS_END


def test_cli_refuses_contradictions():
    with pytest.raises(ValueError, match="contradict"):
        _resolve("--weights", "w.pth", "--pretrained", "none")
    with pytest.raises(ValueError, match="metrics.json key"):
        _resolve("--select-metric", "loss")


def test_help_explains_both_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for needle in ("--preset", "--resume", "--folds", "phase 1", "compare", "torchrun"):
        assert needle in text
    assert "Tables I-III" in compare_parser().format_help()


def test_python_m_train_help_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "train", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: python -m train" in result.stdout


def test_bad_arguments_exit_2(tmp_path):
    assert main(["--preset", "tiny", "--out", str(tmp_path / "r"), "--data", str(tmp_path / "missing")]) == 2


def test_default_data_set_is_generated_once_under_the_data_root_and_reused(tmp_path):
    from dualpath.scenes import SceneConfig, cache_tag
    from train.arguments import resolve_dataset

    args = build_parser().parse_args(["--out", str(tmp_path / "run"), "--preset", "tiny", "--n-scenes", "30",
                                      "--data-root", str(tmp_path / "scenes"), "--quiet"])
    cfg = resolve_config(args)
    first = resolve_dataset(args, cfg)
    assert first.path == tmp_path / "scenes" / f"n30-seed0-{cache_tag(SceneConfig())}" and len(first) == 30
    assert resolve_dataset(args, cfg).manifest == first.manifest  # reused, not regenerated
    # A data root that is itself this data set (made by `python -m dualpath.scenes generate`) is used as is.
    first.path.rename(tmp_path / "root")
    args.data_root = tmp_path / "root"
    assert resolve_dataset(args, cfg).path == tmp_path / "root"


def test_extra_training_scenes_are_generated_beside_the_data_set_on_their_own_seed(tmp_path):
    import numpy as np

    from dualpath.scenes import SceneConfig, cache_tag, generate_dataset
    from train.arguments import resolve_extra

    base = generate_dataset(SceneConfig(), seed=0, n=12, out=tmp_path / "scenes", workers=1, progress=False)
    argv = ["--out", str(tmp_path / "run"), "--preset", "tiny", "--data", str(base.path), "--quiet"]
    args = build_parser().parse_args(argv + ["--data-root", str(base.path), "--extra-scenes", "6"])
    extra = resolve_extra(args, resolve_config(args), base)
    assert extra.path == tmp_path / f"extra-n6-seed1-{cache_tag(SceneConfig())}"  # beside the set, not inside it
    assert extra.seed == 1 and len(extra) == 6 and not np.array_equal(extra.noisy, base.noisy[:6])
    assert resolve_extra(build_parser().parse_args(argv), resolve_config(build_parser().parse_args(argv)), base) is None
    args = build_parser().parse_args(argv + ["--extra-scenes", "6", "--extra-seed", "5"])
    same_seed = generate_dataset(SceneConfig(), seed=5, n=12, out=tmp_path / "seed5", workers=1, progress=False)
    with pytest.raises(ValueError, match="the data set's own seed"):
        resolve_extra(args, resolve_config(args), same_seed)


def test_resume_with_a_preset_continues_only_that_presets_run(tmp_path):
    """`make demo` passes --preset cpu --resume: a rerun continues its own run and refuses another config's."""
    import json

    from train.config import preset

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"train_config": preset("tiny").to_dict(), "data": {}}))
    parse = lambda *a: build_parser().parse_args(["--out", str(run), "--resume", *a])  # noqa: E731
    assert resolve_config(parse("--preset", "tiny")) == preset("tiny")
    assert resolve_config(parse()) == preset("tiny")  # no preset: the saved config as it was
    with pytest.raises(ValueError, match="another configuration.*epochs 2 \\(saved\\) vs 5"):
        resolve_config(parse("--preset", "tiny", "--epochs", "5"))
    with pytest.raises(ValueError, match="backbone 'densenet_tiny' \\(saved\\) vs 'densenet_small'"):
        resolve_config(parse("--preset", "cpu"))


def test_cosine_schedule_warms_up_then_decays_per_step_within_each_phase():
    import math

    from train.config import TrainConfig
    from train.loop import Phase, lr_at

    phase = Phase(2, first_epoch=3, last_epoch=6, lr=0.01)  # 4 epochs of 10 steps
    const = TrainConfig(epochs=6, phase1_epochs=2)
    assert {lr_at(const, phase, e, s, 10) for e in range(3, 7) for s in range(10)} == {0.01}
    cfg = TrainConfig(epochs=6, phase1_epochs=2, lr_schedule="cosine", warmup_epochs=0.5, min_lr_fraction=0.1)
    lrs = [lr_at(cfg, phase, e, s, 10) for e in range(3, 7) for s in range(10)]
    assert lrs[:5] == pytest.approx([0.01 * k / 6 for k in range(1, 6)])  # linear warm-up over 5 steps
    assert lrs[5] == pytest.approx(0.01) and lrs[-1] == pytest.approx(0.001)  # peak, then down to 0.1x at the end
    assert all(a > b for a, b in zip(lrs[5:], lrs[6:]))
    mid = 5 + (len(lrs) - 6) / 2  # halfway through the decay: the mean of peak and floor
    assert lr_at(cfg, phase, 3 + int(mid) // 10, int(mid) % 10, 10) == pytest.approx(0.0055, rel=0.05)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="step")
    with pytest.raises(ValueError, match="min_lr_fraction"):
        TrainConfig(min_lr_fraction=2.0)
    assert math.isclose(_resolve("--lr-schedule", "cosine", "--warmup-epochs", "1").warmup_epochs, 1.0)
