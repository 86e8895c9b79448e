import pytest

from dualpath.scenes import DegradeConfig, SceneConfig
from dualpath.scenes.backgrounds import BACKGROUND_KINDS


def test_json_round_trip():
    cfg = SceneConfig(cardinality_weights=(0.2, 0.5, 0.3), degrade=DegradeConfig(severity=1.5, jpeg_p=0.3))
    assert SceneConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cardinality_weights": (0.5, 0.5, 0.0, 0.1)}, "1 to 3 non-negative"),
        ({"cardinality_weights": (-1.0, 1.0)}, "non-negative"),
        ({"render_size": 32}, "image_size <= render_size"),
        ({"overlap_p": 1.5}, r"overlap_p must be in \[0, 1\]"),
        ({"scale_jitter": (1.2, 0.8)}, "min <= max"),
        ({"background_kinds": ()}, "need a background"),
        ({"background_kinds": ("wood", "formica")}, r"procedural kinds \(wood, marble, granite, tiles, steel, laminate\)"),
        ({"background_kinds": "wood"}, "must be a tuple"),
    ],
)
def test_bad_values_say_what_to_do(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SceneConfig(**kwargs)


def test_every_background_kind_is_the_default():
    assert SceneConfig().background_kinds == BACKGROUND_KINDS
    assert SceneConfig.from_dict({"background_kinds": ["tiles", "steel"]}).background_kinds == ("tiles", "steel")


def test_bad_degradation():
    with pytest.raises(ValueError, match="severity must be in"):
        DegradeConfig(severity=-1)
    with pytest.raises(ValueError, match="probability"):
        DegradeConfig(jpeg_p=2)


def test_unknown_field_from_json():
    with pytest.raises(ValueError, match=r"unknown SceneConfig keys \['sever1ty'\]"):
        SceneConfig.from_dict({"sever1ty": 2})


def test_with_severity():
    assert SceneConfig().with_severity(2).degrade.severity == 2.0
