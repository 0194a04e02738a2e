"""`python -m pellucid study backdoor --fast` runs end to end and writes its summary."""
from __future__ import annotations

import json

from pellucid.cli import main


def test_backdoor_study_fast(tmp_path):
    assert main(["study", "backdoor", "--fast", "--out", str(tmp_path)]) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["study"] == "backdoor" and set(s["models"]) == {"backdoored", "clean"}
    for m in s["models"].values():
        assert sorted(m["ranking"]) == [0, 1, 2, 3]
        assert 0.0 <= m["trigger_iou_class0"] <= m["trigger_iou_class0_translated"] <= 1.0
    assert (tmp_path / "class_maps.png").exists()
