"""`study padding --fast` through the command line: summary keys, the padding facts of its two input sizes."""
from __future__ import annotations

import json

from pellucid.cli import main


def test_study_padding_fast(tmp_path):
    out = tmp_path / "pad"
    assert main(["study", "padding", "--fast", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["study"] == "padding" and s["fast"] is True and s["seconds"] > 0
    assert s["sizes"] == {"uneven": 32, "even": 33}
    # the two stride-2 layers read their top/left padding only at 32, both sides at 33
    assert s["padding_report"]["uneven"]["uneven_layers"] == ["conv2", "conv3"]
    assert s["padding_report"]["even"]["uneven_layers"] == []
    assert s["padding_report"]["uneven"]["suggestions"][0] == [33, 33]
    assert set(s["variants"]) == {"uneven 32, zeros", "uneven 32, symmetric", "even 33, zeros", "even 33, symmetric"}
    for v in s["variants"].values():
        assert {"test_accuracy", "filter_lr_asymmetry", "feature_map_border_skew", "sweep"} <= set(v)
        assert set(v["filter_lr_asymmetry"]) == {"conv1", "conv2", "conv3", "conv4"}
    # foveation at the even size is mirror-symmetric for every mode: no top/left skew
    for mode in ("zeros", "reflect", "replicate", "circular", "symmetric", "partial"):
        assert abs(s["foveation"][f"{mode} 33"]["border_skew"]) < 1e-9
    assert s["foveation"]["zeros 32"]["border_skew"] > 0
    assert set(s["claims"]) >= {"filters_most_asymmetric_when_uneven_zero", "feature_maps_most_skewed_when_uneven_zero"}
    for f in ("index.html", "foveation.png", "blind_spot_sweep.png", "mean_feature_maps.png", "mean_filters.png"):
        assert (out / f).exists()
