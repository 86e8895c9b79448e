"""python -m train against bad inputs, unwritable and full disks, interrupts and NaN: exit 2 (bad input or
environment) or 1 (a failed run) with one line, nothing half-written that looks complete, and resumable state kept."""
from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

import train.experiment  # noqa: E402
from fault_checks import ROOT, default_sigint, error_line, temporaries, train_argv  # noqa: E402
from train.cli import main  # noqa: E402

def finished_files(out):
    """Files that say "this run finished"; none may exist after a failure."""
    return [name for name in ("metrics.json", "best.pt") if (out / name).exists()]


# ------------------------------------------------------------------------------------------------ unwritable --out


@pytest.mark.parametrize("sub", ["", "run", "a/b/run"])
def test_out_read_only_is_refused_before_any_work(readonly_dir, dataset, capsys, sub):
    out = readonly_dir / sub if sub else readonly_dir
    t0 = time.perf_counter()
    assert main(train_argv(dataset.path, out)) == 2
    line = error_line(capsys.readouterr().err)
    assert str(out) in line and "choose another --out" in line
    assert time.perf_counter() - t0 < 5 and list(readonly_dir.iterdir()) == []


@pytest.mark.parametrize("sub", ["", "run", "a/run"])
def test_out_under_a_file(afile, dataset, capsys, sub):
    out = afile / sub if sub else afile
    assert main(train_argv(dataset.path, out)) == 2
    assert str(afile) in error_line(capsys.readouterr().err)
    assert afile.read_text() == "not a folder\n"


def test_data_root_read_only_when_the_data_must_be_generated(readonly_dir, tmp_path, capsys):
    argv = ["--preset", "tiny", "--n-scenes", "40", "--data-root", str(readonly_dir), "--out", str(tmp_path / "run"),
            "--device", "cpu", "--quiet"]
    assert main(argv) == 2
    assert str(readonly_dir) in error_line(capsys.readouterr().err)
    assert list(readonly_dir.iterdir()) == [] and finished_files(tmp_path / "run") == []


# ------------------------------------------------------------------------------------------------ full disk


def test_disk_full_while_saving_a_checkpoint(full_disk, dataset, capsys):
    disk = full_disk("1m")  # config, splits and one ~0.9 MB checkpoint fit; the second does not
    out = disk / "run"
    assert main(train_argv(dataset.path, out)) == 2
    line = error_line(capsys.readouterr().err)
    assert line.startswith(f"error: no space left on {out}") and ".pt" in line
    assert "unexpected pos" not in line and "enforce fail" not in line
    assert finished_files(out) == [] and not temporaries(disk)
    for ckpt in out.rglob("*.pt"):  # what is there is whole: it loads
        assert torch.load(ckpt, weights_only=True)["epoch"] >= 1


def test_disk_full_at_the_end_leaves_no_finished_look(trained, full_disk, dataset, capsys):
    """Room for training (three checkpoints at once while one is replaced) and half the report: the run fails at
    the end, and the folder has neither metrics.json nor the top-level best.pt, the marks of a finished run."""
    ckpt = (trained / "fold0" / "last.pt").stat().st_size
    report = sum(p.stat().st_size for p in trained.iterdir() if p.suffix in (".png", ".npz", ".md"))
    disk = full_disk(f"{(3 * ckpt + report // 2 + 96 * 1024) // 1024}k")
    out = disk / "run"
    assert main(train_argv(dataset.path, out)) == 2
    assert error_line(capsys.readouterr().err).startswith(f"error: no space left on {out}")
    assert finished_files(out) == [] and not temporaries(disk)
    assert torch.load(out / "fold0" / "best.pt", weights_only=True)["epoch"] >= 1  # training itself finished


def test_disk_full_from_the_start(full_disk, dataset, capsys):
    disk = full_disk("4k")
    out = disk / "run"
    code = main(train_argv(dataset.path, out))
    assert code == 2
    assert "no space left on" in error_line(capsys.readouterr().err)
    assert finished_files(out) == [] and not temporaries(disk)


def test_disk_full_with_logging_on(full_disk, dataset, capsys):
    """Without --quiet train.log is written too: a full disk still ends in one line, not logging's tracebacks."""
    disk = full_disk("1m")
    argv = [a for a in train_argv(dataset.path, disk / "run") if a != "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Logging error" not in err
    assert [line for line in err.splitlines() if line.startswith("error")][0].startswith("error: no space left on")


# ------------------------------------------------------------------------------------------------ bad data


@pytest.mark.parametrize("damage, message", [
    ("missing", "no scenes data set at"),
    ("a-file", "no scenes data set at"),
    ("empty-folder", "no manifest.json"),
    ("manifest-list", "JSON array where a JSON object belongs"),
    ("manifest-not-json", "manifest.json is corrupt"),
    ("manifest-other-format", "is not a scenes data set"),
    ("labels-truncated", "cannot be read"),
    ("labels-flipped", "does not match its sha256"),
])
def test_bad_data_sets(tmp_path, dataset, afile, capsys, damage, message):
    import shutil

    data = tmp_path / "data"
    if damage == "a-file":
        data = afile
    elif damage == "empty-folder":
        data.mkdir()
    elif damage != "missing":
        shutil.copytree(dataset.path, data)
        manifest, labels = data / "manifest.json", data / "labels.npy"
        if damage == "manifest-list":
            manifest.write_text("[1, 2, 3]")
        elif damage == "manifest-not-json":
            manifest.write_text("{")
        elif damage == "manifest-other-format":
            manifest.write_text(json.dumps({"format": "other"}))
        elif damage == "labels-truncated":
            labels.write_bytes(labels.read_bytes()[:100])
        else:
            raw = labels.read_bytes()
            labels.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    out = tmp_path / "run"
    assert main(train_argv(data, out)) == 2
    assert message in error_line(capsys.readouterr().err)
    assert not out.exists() or finished_files(out) == []


# ------------------------------------------------------------------------------------------------ bad flags


@pytest.mark.parametrize("extra, message", [
    (["--epochs", "0"], "epochs"),
    (["--folds", "0"], "folds"),
    (["--folds", "1000"], "folds"),
    (["--batch-size", "0"], "batch"),
    (["--select-metric", "speed"], "--select-metric must be a metrics.json key"),
    (["--weights", "/nonexistent/densenet.pth"], "densenet.pth"),
    (["--weights", "x.pth", "--pretrained", "none"], "contradict"),
    (["--lr1", "-1"], "lr"),
])
def test_bad_settings(tmp_path, dataset, capsys, extra, message):
    out = tmp_path / "run"
    assert main(train_argv(dataset.path, out, *extra)) == 2
    assert message in error_line(capsys.readouterr().err)
    assert finished_files(out) == [] and not temporaries(tmp_path)


# ------------------------------------------------------------------------------------------------ existing runs


@pytest.mark.parametrize("config, message", [
    ("{", "is not a run's config"),
    ("[1, 2]", "JSON array where a JSON object belongs"),
    ('{"train_config": 3}', "no train_config or data"),
    ('"text"', "JSON string"),
])
def test_resume_with_a_damaged_config(tmp_path, dataset, capsys, config, message):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(config)
    assert main(["--resume", "--out", str(out), "--device", "cpu", "--quiet"]) == 2
    assert message in error_line(capsys.readouterr().err)
    assert (out / "config.json").read_text() == config  # left as found


def test_a_finished_run_is_not_overwritten(trained, tmp_path, dataset, capsys):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained, out)
    before = (out / "metrics.json").read_bytes()
    assert main(train_argv(dataset.path, out)) == 2
    assert "already holds a run" in error_line(capsys.readouterr().err)
    assert (out / "metrics.json").read_bytes() == before


def test_resume_with_other_settings_is_refused(trained, tmp_path, capsys):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained, out)
    assert main(["--resume", "--out", str(out), "--loss", "bce", "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "different setup" in err


# ------------------------------------------------------------------------------------------------ failed runs


def _poison_after_epoch_1(end):
    if end.epoch == 1:
        with torch.no_grad():
            next(end.model.parameters()).fill_(float("nan"))


def test_nan_loss_is_a_failed_run_exit_1(monkeypatch, tmp_path, dataset, capsys):
    monkeypatch.setattr(train.experiment, "run_experiment",
                        functools.partial(train.experiment.run_experiment, hooks=(_poison_after_epoch_1,)))
    out = tmp_path / "run"
    assert main(train_argv(dataset.path, out)) == 1
    line = error_line(capsys.readouterr().err)
    assert "nan" in line and "last good checkpoint" in line
    assert not (out / "metrics.json").exists() and not temporaries(out)
    assert torch.load(out / "fold0/last.pt", weights_only=True)["epoch"] == 1


@pytest.mark.slow  # a training process, signalled, then resumed
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGKILL, -signal.SIGKILL)])
def test_interrupted_training_leaves_only_whole_files_and_resumes(tmp_path, dataset, sig, code):
    out, epochs = tmp_path / "run", 4  # the signal lands within 50 ms of epoch 1's checkpoint, long before the end
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "train", *train_argv(dataset.path, out, "--epochs", epochs)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    deadline = time.monotonic() + 120
    while not (out / "fold0" / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert "Traceback" not in err
    if sig == signal.SIGINT:  # one line, saying how to go on
        assert len(err.strip().splitlines()) == 1 and err.startswith("interrupted") and "--resume" in err
    assert finished_files(out) == [] and not [t for t in temporaries(out) if not t.endswith(".pt")]
    stopped = torch.load(out / "fold0" / "last.pt", weights_only=True)["epoch"]  # whole, not torn
    assert 1 <= stopped < epochs
    assert main(["--resume", "--out", str(out), "--device", "cpu", "--threads", "1", "--quiet"]) == 0
    assert torch.load(out / "fold0" / "last.pt", weights_only=True)["epoch"] == epochs
    assert finished_files(out) == ["metrics.json", "best.pt"] and not temporaries(out)
