import pytest

from dualpath.files import read_json


def test_read_json_names_what_is_wrong(tmp_path):
    good = tmp_path / "good.json"
    good.write_text('{"a": [1, 2]}')
    assert read_json(good, ValueError, missing="nope", corrupt="bad") == {"a": [1, 2]}
    with pytest.raises(KeyError, match="no file here"):
        read_json(tmp_path / "none.json", KeyError, missing="no file here", corrupt="bad")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"^broken\.json is corrupt \(Expecting property name.*\); redo it$"):
        read_json(broken, ValueError, missing="nope", corrupt="broken.json is corrupt ({error}); redo it")
