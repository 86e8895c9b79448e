from __future__ import annotations

import json

import pytest

from train.cli import main
from train.compare import PAPER, ROWS


@pytest.mark.slow  # four trainings
def test_compare_trains_the_four_rows_on_the_same_splits_and_writes_the_tables(cli_args, tmp_path):
    out = tmp_path / "compare"
    assert main(["compare", *cli_args(out, "--epochs", "1")]) == 0
    for row in ROWS:
        assert (out / row.name / "metrics.json").is_file()
    splits = {(out / row.name / "splits.json").read_text() for row in ROWS}
    assert len(splits) == 1

    text = (out / "comparison.md").read_text()
    for table in ("Table I", "Table II", "Table III", "Table IV"):
        assert table in text
    assert "(paper 0.8925)" in text  # proposed + ASL macro mAP, Table I
    assert "(paper 7.1012)" in text  # proposed + ASL PSNR, Table III
    assert (out / "table_iv.png").stat().st_size > 10_000

    payload = json.loads((out / "comparison.json").read_text())
    assert set(payload) == {row.name for row in ROWS}
    assert payload["densenet_bce"]["ours"]["ssim"] is None  # no decoder, as in the paper's Table III
    ours = json.loads((out / "dualpath_asl" / "metrics.json").read_text())
    assert payload["dualpath_asl"]["ours"]["macro_map"] == ours["macro_map"]
    assert payload["cae_bce"]["paper"] == PAPER["cae_bce"]
    cae = json.loads((out / "cae_bce" / "config.json").read_text())["train_config"]
    assert (cae["arch"], cae["loss"], cae["pretrained"]) == ("cae", "bce", "none")
