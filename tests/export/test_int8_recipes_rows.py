"""benchmarks/int8_recipes.py: each row's recipe overrides reach export.quantize_onnx while it runs, and only then."""
from __future__ import annotations

import dataclasses
import json

import pytest

from benchmarks import int8_recipes
from export import quantize_onnx as q


def test_every_row_is_plain_json_and_names_known_flags():
    from export.config import ExportConfig

    fields = {f.name for f in dataclasses.fields(ExportConfig)} | {"qat_options"}
    for name, (flags, overrides) in int8_recipes.ROWS.items():
        json.dumps([flags, overrides])  # written to the results JSON as they are
        assert set(flags) <= fields, name
        assert all(k == "s8_floats" or hasattr(q, k) for k in overrides), name


def test_s8_floats_changes_the_s8_variant_for_the_row_only():
    before = q.VARIANTS
    with int8_recipes.recipe(int8_recipes.ROWS["ptq-s8-two-float-blocks"][1]):
        assert q.VARIANTS["s8"].floats == q.FloatRecipe(head=False, decoder_blocks=2)
        assert q.variant("s8").floats == q.FloatRecipe(head=False, decoder_blocks=2)  # what the export step calls
        assert q.VARIANTS["u8"] == before["u8"]
    assert q.VARIANTS is before


def test_module_constants_are_restored_after_an_error():
    before = q.FLOAT_SCOPES
    with pytest.raises(RuntimeError):
        with int8_recipes.recipe({"FLOAT_SCOPES": ("/model/decoder/",)}):
            assert q.FLOAT_SCOPES == ("/model/decoder/",)
            raise RuntimeError("a row failed")
    assert q.FLOAT_SCOPES == before
