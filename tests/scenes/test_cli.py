"""python -m dualpath.scenes: generate, preview, import-objects; errors as messages, never tracebacks."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from dualpath import contract
from dualpath.scenes import load_dataset, sprites
from dualpath.scenes.__main__ import main



@pytest.fixture()
def small_config_file(tmp_path, small_config):
    path = tmp_path / "small.json"
    path.write_text(json.dumps(small_config.to_dict()))
    return str(path)


def test_generate_reuse_and_refuse(tmp_path, small_config_file, capsys):
    out = str(tmp_path / "scenes")
    args = ["generate", "--n", "24", "--seed", "3", "--out", out, "--workers", "1", "--quiet", "--config", small_config_file]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(args) == 0
    assert "reusing" in capsys.readouterr().out
    assert main(args[:4] + ["4"] + args[5:]) == 2  # another seed into the same folder
    assert "holds a different data set" in capsys.readouterr().err
    assert len(load_dataset(out)) == 24


def test_preview_from_generator_and_from_data(tmp_path, small_config_file):
    assert main(["preview", "--out", str(tmp_path / "p.png"), "--count", "6", "--config", small_config_file]) == 0
    img = cv2.imread(str(tmp_path / "p.png"))
    assert img is not None and img.shape[0] > 200 and img.std() > 10
    data = str(tmp_path / "d")
    main(["generate", "--n", "8", "--out", data, "--workers", "1", "--quiet", "--config", small_config_file])
    assert main(["preview", "--data", data, "--out", str(tmp_path / "q.png"), "--count", "8"]) == 0
    assert (tmp_path / "q.png").stat().st_size > 10_000


def test_degradation_options_reach_the_config(tmp_path, small_config_file):
    out = tmp_path / "d"
    main(["generate", "--n", "6", "--out", str(out), "--workers", "1", "--quiet", "--config", small_config_file,
          "--severity", "2", "--jpeg-p", "0.5", "--cardinality", "0,0,1"])
    m = json.loads((out / "manifest.json").read_text())
    assert m["config"]["degrade"]["severity"] == 2.0 and m["config"]["degrade"]["jpeg_p"] == 0.5
    assert m["statistics"]["cardinality_counts"] == {"1": 0, "2": 0, "3": 6}


def test_bad_config_is_a_message(tmp_path, capsys):
    assert main(["generate", "--n", "5", "--out", str(tmp_path / "d"), "--cardinality", "1,2,3,4"]) == 2
    assert "cardinality_weights" in capsys.readouterr().err


def _photo(rng, cls):
    """A 'photo' of one utensil on a plain, slightly uneven light background, as EKUD has them."""
    rgba = sprites.render_utensil(cls, rng, px_per_cm=6.0)
    h, w = rgba.shape[:2]
    side = int(max(h, w) * 1.3)
    img = np.full((side, side, 3), 225, np.float32) + rng.normal(0, 3, (side, side, 3))
    y, x = (side - h) // 2, (side - w) // 2
    a = rgba[..., 3:4] / 255.0
    img[y : y + h, x : x + w] = img[y : y + h, x : x + w] * (1 - a) + rgba[..., :3] * a
    img = cv2.rotate(np.clip(img, 0, 255).astype(np.uint8), cv2.ROTATE_90_CLOCKWISE)
    return img[..., ::-1]  # BGR for cv2.imwrite


def test_import_objects_then_generate_with_them(tmp_path, capsys):
    rng = np.random.default_rng(0)
    photos = tmp_path / "ekud"
    for c, name in enumerate(contract.CLASS_NAMES):
        folder = photos / name.replace(" ", "_")
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / "a.jpg"), _photo(rng, c))
    (photos / "whisk" / "broken.jpg").write_bytes(b"not a jpeg")
    bank = tmp_path / "objects.npz"
    assert main(["import-objects", str(photos), "--out", str(bank)]) == 0
    out = capsys.readouterr().out
    assert "imported 20 objects" in out and "skipped 1" in out
    data = tmp_path / "real"
    assert main(["generate", "--n", "20", "--out", str(data), "--workers", "1", "--quiet", "--objects", str(bank)]) == 0
    ds = load_dataset(data)
    assert ds.manifest["inputs"]["object_bank_sha256"]
    assert ds.labels.sum(1).min() >= 1 and ds.clean.std() > 10


def test_import_objects_needs_every_class_to_generate(tmp_path, capsys):
    rng = np.random.default_rng(1)
    photos = tmp_path / "ekud" / "whisk"
    photos.mkdir(parents=True)
    cv2.imwrite(str(photos / "a.png"), _photo(rng, "whisk"))
    bank = tmp_path / "objects.npz"
    assert main(["import-objects", str(tmp_path / "ekud"), "--out", str(bank)]) == 0
    assert main(["generate", "--n", "4", "--out", str(tmp_path / "d"), "--objects", str(bank), "--quiet"]) == 2
    assert "no sprites for 19 classes" in capsys.readouterr().err


def test_module_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "dualpath.scenes", "generate", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--workers" in out.stdout and "--overwrite" in out.stdout
