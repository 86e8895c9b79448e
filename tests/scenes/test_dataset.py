import json
import os

import numpy as np
import pytest

from dualpath.scenes import DatasetError, generate_dataset, load_dataset, render_scene
from dualpath.scenes import dataset as dataset_module


def test_same_bytes_with_one_and_two_workers(small_config, tmp_path):
    a = generate_dataset(small_config, 7, 90, tmp_path / "w1", workers=1, progress=False)
    b = generate_dataset(small_config, 7, 90, tmp_path / "w2", workers=2, progress=False)
    assert a.manifest["files"] == b.manifest["files"]  # sha256 of every array
    np.testing.assert_array_equal(a.noisy, b.noisy)
    # and scene i in the file is render_scene(config, seed, i)
    sc = render_scene(small_config, 7, 57)
    np.testing.assert_array_equal(a.noisy[57], sc.noisy)
    np.testing.assert_array_equal(a.masks[57, : len(sc.classes)], sc.masks)
    assert a.objects[57, : len(sc.classes)].tolist() == list(sc.classes)
    assert (a.objects[57, len(sc.classes) :] == -1).all()


def test_manifest_records_what_made_it(small_config, tmp_path):
    ds = generate_dataset(small_config, 1, 60, tmp_path / "d", progress=False)
    m = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert m["seed"] == 1 and m["n"] == 60 and m["generator_version"]
    assert m["config"] == small_config.to_dict()
    assert set(m["files"]) == {"noisy", "clean", "labels", "masks", "objects", "boxes"}
    assert all(len(f["sha256"]) == 64 for f in m["files"].values())
    assert sum(m["statistics"]["cardinality_counts"].values()) == 60
    assert len(ds) == 60 and ds.config == small_config and ds.seed == 1


def test_identical_data_set_is_reused(small_config, tmp_path):
    first = generate_dataset(small_config, 0, 30, tmp_path / "d", progress=False)
    stamp = os.stat(tmp_path / "d" / "noisy.npy").st_mtime_ns
    again = generate_dataset(small_config, 0, 30, tmp_path / "d", progress=False)
    assert again.reused and not first.reused
    assert os.stat(tmp_path / "d" / "noisy.npy").st_mtime_ns == stamp


def test_different_data_set_is_refused_with_the_differences(small_config, tmp_path):
    generate_dataset(small_config, 0, 30, tmp_path / "d", progress=False)
    with pytest.raises(DatasetError, match=r"(?s)holds a different data set.*seed: 0 on disk, 1 asked.*--overwrite"):
        generate_dataset(small_config, 1, 30, tmp_path / "d", progress=False)
    with pytest.raises(DatasetError, match="n: 30 on disk, 40 asked"):
        generate_dataset(small_config, 0, 40, tmp_path / "d", progress=False)
    replaced = generate_dataset(small_config, 1, 30, tmp_path / "d", progress=False, overwrite=True)
    assert replaced.seed == 1


def test_killed_generation_leaves_nothing_that_looks_complete(small_config, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = dataset_module.render_range

    def dying(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # a user's Ctrl-C halfway
        return real(*args)

    monkeypatch.setattr(dataset_module, "render_range", dying)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(small_config, 0, 60, tmp_path / "d", progress=False)
    assert not (tmp_path / "d").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left either


def test_stale_temporary_from_a_dead_process_is_cleaned(small_config, tmp_path):
    stale = tmp_path / ".d.tmp-999999999"
    (stale).mkdir()
    (stale / "noisy.npy").write_bytes(b"half")
    generate_dataset(small_config, 0, 20, tmp_path / "d", progress=False)
    assert not stale.exists()


def test_folder_without_manifest_is_not_a_data_set(small_config, tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "noisy.npy").write_bytes(b"x")
    with pytest.raises(DatasetError, match="not a complete scenes data set"):
        generate_dataset(small_config, 0, 20, tmp_path / "d", progress=False)
    with pytest.raises(DatasetError, match="not a complete scenes data set"):
        load_dataset(tmp_path / "d")


def test_corrupt_arrays_are_detected(small_config, tmp_path):
    generate_dataset(small_config, 0, 20, tmp_path / "d", progress=False)
    labels = tmp_path / "d" / "labels.npy"
    data = bytearray(labels.read_bytes())
    data[-1] ^= 1
    labels.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="labels.npy does not match its sha256"):
        load_dataset(tmp_path / "d")
    labels.write_bytes(bytes(data[:100]))
    with pytest.raises(DatasetError, match="labels.npy cannot be read"):
        load_dataset(tmp_path / "d")


def test_missing_folder_says_how_to_make_it(tmp_path):
    with pytest.raises(DatasetError, match="python -m dualpath.scenes generate"):
        load_dataset(tmp_path / "nothing")


def test_bad_arguments(small_config, tmp_path):
    with pytest.raises(ValueError, match="n must be >= 1"):
        generate_dataset(small_config, 0, 0, tmp_path / "d")
    with pytest.raises(ValueError, match="workers must be >= 1"):
        generate_dataset(small_config, 0, 5, tmp_path / "d", workers=0)


def test_cache_tag_names_the_generator_version_and_the_config():
    import dataclasses

    from dualpath.scenes import GENERATOR_VERSION, SceneConfig, cache_tag

    tag = cache_tag(SceneConfig())
    assert tag.startswith(f"g{GENERATOR_VERSION}-") and tag == cache_tag(SceneConfig())
    assert cache_tag(dataclasses.replace(SceneConfig(), field_of_view_cm=30.0)) != tag
    assert cache_tag(SceneConfig().with_severity(2.0)) != tag
