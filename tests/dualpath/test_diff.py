"""dualpath.diff.differences: the one recursive dict difference behind "this folder holds something else" messages."""
from dualpath.diff import differences


def test_nested_keys_are_dotted_sorted_and_formatted():
    a = {"seed": 0, "scenes": {"severity": 1.0, "n": 60}, "only_a": 1}
    b = {"seed": 0, "scenes": {"severity": 2.0, "n": 60}, "only_b": 2}
    assert differences(a, b, line="{key}: {a!r} on disk, {b!r} asked") == [
        "only_a: 1 on disk, None asked", "only_b: None on disk, 2 asked", "scenes.severity: 1.0 on disk, 2.0 asked"]


def test_ignored_keys_are_skipped_at_every_level_and_equal_dicts_give_nothing():
    a, b = {"path": "x", "data": {"path": "y", "n": 1}}, {"path": "z", "data": {"path": "w", "n": 1}}
    assert differences(a, b, ignore=("path",)) == []
    assert differences(a, b) == ["data.path: 'y', 'w'", "path: 'x', 'z'"]
    assert differences({"a": {"b": 1}}, {"a": 1}) == ["a: {'b': 1}, 1"]  # a dict against a scalar differs whole
