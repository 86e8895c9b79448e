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
from pathlib import Path

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


# ------------------------------------------------------------------------------------------------ issue 19: one writer
# per run folder


def test_two_trainings_into_one_out_the_second_is_refused(tmp_path, dataset, capsys):
    out = tmp_path / "tt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    first = subprocess.Popen([sys.executable, "-m", "train", *train_argv(dataset.path, out, "--epochs", 3)], cwd=ROOT,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / ".dualpath.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    code = main(train_argv(dataset.path, out, "--epochs", 2, "--seed", 7, "--loss", "bce"))
    line = error_line(capsys.readouterr().err)
    _, err = first.communicate(timeout=300)
    assert code == 2 and first.returncode == 0, err
    assert line == (f"error: another training (pid {first.pid}) is writing {out}; wait for it or choose another "
                    "--out")
    saved = json.loads((out / "config.json").read_text())["train_config"]
    assert (saved["seed"], saved["loss"], saved["epochs"]) == (0, "asl", 3)  # the first run's, all through
    assert torch.load(out / "best.pt", weights_only=True)["train_config"] == saved
    assert not (out / ".dualpath.lock").exists()


def _hold(out, what="training"):
    from fault_checks import hold_lock

    return hold_lock(out, what)


@pytest.mark.parametrize("command", ["train", "train-resume", "compare", "pretrain", "export", "drift"])
def test_every_folder_writer_refuses_a_held_folder(request, tmp_path, dataset, trained, capsys, command):
    out = tmp_path / "busy"
    holder = _hold(out)
    try:
        if command == "train":
            code = main(train_argv(dataset.path, out))
        elif command == "train-resume":
            code = main(["--resume", "--out", str(out), "--device", "cpu", "--quiet"])
        elif command == "compare":
            code = main(["compare", *train_argv(dataset.path, out), "--rows", "cae_bce"])
        elif command == "pretrain":
            from train.pretrain import main as pretrain_main

            code = pretrain_main(["--out", str(out), "--backbone", "densenet_tiny", "--scenes", "8", "--chunk", "8",
                                  "--held-out", "8", "--device", "cpu", "--quiet"])
        elif command == "export":
            pytest.importorskip("onnx")
            from export.__main__ import main as export_main

            code = export_main(["--checkpoint", str(trained / "best.pt"), "--out", str(out), "--backends", "onnx",
                                "--data-root", str(tmp_path / "data")])
        else:
            from runtime.drift.__main__ import main as drift_main

            model = request.getfixturevalue("onnx_model")
            code = drift_main(["--reference", str(model), "--candidate", str(model), "--out", str(out), "--n", "20",
                               "--data-root", str(tmp_path / "data"), "--no-plots"])
        assert code == 2
        err = capsys.readouterr().err
        assert f"another training (pid {holder.pid}) is writing {out}; wait for it or choose another --out" in \
            error_line(err)
        assert sorted(p.name for p in out.iterdir()) == [".dualpath.lock"]  # nothing written beside the holder's
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_training_does_not_leave_its_folder_locked(tmp_path, dataset):
    out = tmp_path / "run"
    holder = _hold(out)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (out / ".dualpath.lock").exists()  # the file stays; the lock went with the process
    assert main(train_argv(dataset.path, out, "--epochs", 1)) == 0
    assert finished_files(out) == ["metrics.json", "best.pt"] and not (out / ".dualpath.lock").exists()


# ------------------------------------------------------------------------------------------------ issue 19: --resume
# continues only this run's own checkpoints


def _stopped_run(trained, tmp_path):
    """A copy of the tiny run, stopped after epoch 1 (its metrics.json and top-level best.pt removed)."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(trained, out)
    (out / "metrics.json").unlink()
    (out / "best.pt").unlink()
    return out


def _edit_checkpoint(path, edit):
    ckpt = torch.load(path, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, path)


@pytest.mark.parametrize("changes, named", [
    ({"seed": 7, "loss": "bce"}, ["seed 7 in the checkpoint, 0 in this run", "loss 'bce' in the checkpoint"]),
    ({"epochs": 4}, ["epochs 4 in the checkpoint, 2 in this run"]),
    ({"batch_size": 8}, ["batch_size"]),
    ({"arch": "cae"}, ["arch 'cae'"]),
])
@pytest.mark.parametrize("name", ["last.pt", "best.pt"])
def test_resume_refuses_another_runs_checkpoint(trained, tmp_path, capsys, changes, named, name):
    out = _stopped_run(trained, tmp_path)
    _edit_checkpoint(out / "fold0" / name, lambda c: c["train_config"].update(changes))
    before = (out / "fold0" / "log.csv").read_text()
    assert main(["--resume", "--out", str(out), "--device", "cpu", "--threads", "1", "--quiet"]) == 2
    line = error_line(capsys.readouterr().err)
    assert f"{out / 'fold0' / name} is a checkpoint of another run" in line
    for text in named:
        assert text in line
    assert (out / "fold0" / "log.csv").read_text() == before and finished_files(out) == []


def test_resume_takes_a_checkpoint_written_before_a_config_field_was_added(trained, tmp_path):
    """A field added since (here backbone_lr_scale) had its default then: the run resumes."""
    out = _stopped_run(trained, tmp_path)
    for name in ("last.pt", "best.pt"):
        _edit_checkpoint(out / "fold0" / name, lambda c: c["train_config"].pop("backbone_lr_scale"))
    assert main(["--resume", "--out", str(out), "--device", "cpu", "--threads", "1", "--quiet"]) == 0


@pytest.mark.parametrize("edit, field", [
    (lambda c: c["state"].pop("rng_cpu"), "state.rng_cpu is missing"),
    (lambda c: c["state"].update(rng_cpu=[1, 2]), "state.rng_cpu is list"),
    (lambda c: c.update(epoch="1"), "field epoch is str '1'"),
    (lambda c: c.update(phase=3), "field phase is int 3"),
    (lambda c: c["state"].update(history=None), "state.history is NoneType"),
    (lambda c: c["state"].update(best_value="0.5"), "state.best_value"),
    (lambda c: c.update(state=[]), "field state is list"),
])
def test_resume_refuses_a_torn_loop_state(trained, tmp_path, capsys, edit, field):
    out = _stopped_run(trained, tmp_path)
    _edit_checkpoint(out / "fold0" / "last.pt", edit)
    assert main(["--resume", "--out", str(out), "--device", "cpu", "--threads", "1", "--quiet"]) == 2
    line = error_line(capsys.readouterr().err)
    assert str(out / "fold0" / "last.pt") in line and field in line


# ------------------------------------------------------------------------------------------------ issue 19: checkpoints
# are read against their schema (train's loader, which export uses)


@pytest.mark.parametrize("edit, field", [
    (lambda c: c["model_config"].update(dropout="0.3"), "model_config.dropout is str '0.3'"),
    (lambda c: c["model_config"].update(hidden=1.5), "model_config.hidden is float"),
    (lambda c: c["model_config"].update(colour="red"), "model_config.colour is not a ModelConfig field"),
    (lambda c: c.update(model_config=None), "field model_config is NoneType"),
    (lambda c: c.update(preprocessing=None), "field preprocessing is NoneType"),
    (lambda c: c["preprocessing"].update(mean=[0.5]), "preprocessing.mean"),
    (lambda c: c.update(metrics=[1, 2]), "field metrics is list"),
    (lambda c: c.update(class_names=None), "field class_names is NoneType"),
    (lambda c: c.update(model=None), "field model is NoneType"),
    (lambda c: c["model"].update({"extra.weight": torch.zeros(1)}), "model does not fit its own model_config"),
    (lambda c: c["train_config"].update(seed="0"), "train_config.seed is str"),
    (lambda c: c.update(train_config=None), "field train_config is NoneType"),
])
def test_a_checkpoint_with_a_wrongly_typed_field_is_refused(trained, tmp_path, edit, field):
    from train.checkpoint import load_model

    path = tmp_path / "best.pt"
    torch.save(torch.load(trained / "best.pt", weights_only=True), path)
    _edit_checkpoint(path, edit)
    with pytest.raises(ValueError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message and field in message and "\n" not in message


@pytest.mark.parametrize("edit, field", [
    (lambda c: c["model_config"].update(dropout="0.3"), "model_config.dropout"),
    (lambda c: c.update(metrics=[1, 2]), "field metrics"),
])
def test_export_of_a_wrongly_typed_checkpoint_is_one_line(trained, tmp_path, capsys, edit, field):
    pytest.importorskip("onnx")
    from export.__main__ import main as export_main

    path = tmp_path / "best.pt"
    torch.save(torch.load(trained / "best.pt", weights_only=True), path)
    _edit_checkpoint(path, edit)
    code = export_main(["--checkpoint", str(path), "--out", str(tmp_path / "e"), "--backends", "onnx",
                        "--data-root", str(tmp_path / "data")])
    assert code == 2
    line = error_line(capsys.readouterr().err)
    assert str(path) in line and field in line


@pytest.mark.parametrize("card, field", [
    ({"format": "dualpath-scene-pretrained-backbone/1"}, "has no field backbone"),
    ({"format": "dualpath-scene-pretrained-backbone/1", "backbone": 3}, "field backbone is int"),
    ({"format": "dualpath-scene-pretrained-backbone/1", "backbone": "densenet_tiny", "stem": None},
     "field stem is NoneType"),
    ({"format": "dualpath-scene-pretrained-backbone/1", "backbone": "densenet_huge"}, "field backbone is 'densenet_huge'"),
])
def test_a_weights_card_with_a_wrong_field_is_refused(tmp_path, dataset, capsys, card, field):
    weights = tmp_path / "backbone.pth"
    weights.write_bytes(b"not read: the card is checked first")
    (tmp_path / "backbone.json").write_text(json.dumps(card))
    assert main(train_argv(dataset.path, tmp_path / "run", "--weights", weights)) == 2
    line = error_line(capsys.readouterr().err)
    assert str(tmp_path / "backbone.json") in line and field in line


@pytest.mark.parametrize("edit, field", [
    (lambda c: c.pop("torch_rng"), "torch_rng is missing"),
    (lambda c: c["progress"].update(chunks_done="1"), "progress.chunks_done is str"),
    (lambda c: c.update(optimizer=None), "field optimizer is NoneType"),
])
def test_pretrain_resume_refuses_a_torn_checkpoint(tmp_path, capsys, edit, field):
    from dataclasses import asdict

    from train.pretrain import PretrainConfig, Progress
    from train.pretrain import main as pretrain_main

    out = tmp_path / "pre"
    out.mkdir()
    cfg = PretrainConfig(backbone="densenet_tiny", scenes=8, chunk=8, held_out=8)
    ckpt = {"pretrain_config": asdict(cfg), "model": {}, "optimizer": {}, "progress": asdict(Progress()),
            "torch_rng": torch.get_rng_state()}
    edit(ckpt)
    torch.save(ckpt, out / "pretrain.pt")
    code = pretrain_main(["--out", str(out), "--backbone", "densenet_tiny", "--scenes", "8", "--chunk", "8",
                          "--held-out", "8", "--device", "cpu", "--quiet", "--resume"])
    assert code == 2
    line = error_line(capsys.readouterr().err)
    assert str(out / "pretrain.pt") in line and field in line


# ------------------------------------------------------------------------------------------------ issue 19: argument
# errors before any long work


@pytest.mark.parametrize("extra, message", [
    (["--threads", "0"], "threads must be a positive integer"),
    (["--workers", "0"], "--workers must be >= 1"),
])
def test_argument_errors_are_found_before_the_data_is_generated(tmp_path, capsys, extra, message):
    t0 = time.perf_counter()
    argv = ["--preset", "tiny", "--n-scenes", "5000", "--data-root", str(tmp_path / "data"), "--out",
            str(tmp_path / "run"), "--device", "cpu", "--quiet", *extra]
    assert main(argv) == 2
    assert message in error_line(capsys.readouterr().err)
    assert time.perf_counter() - t0 < 5 and not (tmp_path / "data").exists() and not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------ issue 19: SIGTERM


@pytest.mark.slow
def test_sigterm_to_training_is_an_interruption(tmp_path, dataset):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "train", *train_argv(dataset.path, out, "--epochs", 4)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "fold0" / "last.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("interrupted") and "--resume" in err
    assert finished_files(out) == [] and not (out / ".dualpath.lock").exists()


@pytest.mark.slow
def test_sigterm_to_pretrain_leaves_no_scene_worker(tmp_path):
    from fault_checks import alive, children

    out = tmp_path / "pre"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "train", "pretrain", "--out", str(out), "--backbone",
                             "densenet_tiny", "--scenes", "100000", "--chunk", "400", "--held-out", "400",
                             "--device", "cpu", "--threads", "1", "--quiet", "--workers", "2"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, kids = time.monotonic() + 120, []
    while time.monotonic() < deadline:
        kids = children(proc.pid)
        if sum("spawn_main" in Path(f"/proc/{k}/cmdline").read_text(errors="replace") for k in kids) >= 2:
            break
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("interrupted")
    deadline = time.monotonic() + 10
    while any(alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kids and not [k for k in kids if alive(k)]
