from __future__ import annotations

import dataclasses
import importlib
import logging

import pytest

from train.config import TINY, RunOptions

N_SCENES = 60  # 12 held-out test, 48 development: 38 train / 10 validation with --folds 1


@pytest.fixture(scope="session")
def scenes(tmp_path_factory):
    """A real generated data set, tiny (generation takes well under a second)."""
    from dualpath.scenes import SceneConfig, generate_dataset

    out = tmp_path_factory.mktemp("data") / f"n{N_SCENES}-seed0"
    return generate_dataset(SceneConfig(), seed=0, n=N_SCENES, out=out, workers=1, progress=False)


@pytest.fixture
def tiny_cfg():
    return dataclasses.replace(TINY, n_scenes=N_SCENES)


@pytest.fixture
def opts():
    return RunOptions(device="cpu", progress=False, threads=1)


@pytest.fixture
def train_log(caplog):
    caplog.set_level(logging.INFO, logger="train")
    return caplog


def _argv(scenes, out, *extra: str) -> list[str]:
    return ["--preset", "tiny", "--data", str(scenes.path), "--out", str(out), "--device", "cpu",
            "--threads", "1", "--quiet", *extra]


@pytest.fixture
def cli_args(scenes):
    """argv for `main` on the tiny preset and the session's data set."""
    return lambda out, *extra: _argv(scenes, out, *extra)


@pytest.fixture(scope="session")
def tiny_run(scenes, tmp_path_factory):
    """One finished `python -m train --preset tiny` run folder, shared by the tests that only read it."""
    from train.cli import main

    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(_argv(scenes, out)) == 0
    return out


@pytest.fixture(scope="session")
def load_benchmark():
    """load_benchmark("recipe") -> the module benchmarks.recipe."""
    def load(name: str):
        return importlib.import_module(f"benchmarks.{name}")

    return load
