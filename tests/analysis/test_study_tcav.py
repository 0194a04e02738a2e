"""`python -m pellucid study tcav --fast` runs end to end and writes its summary."""
from __future__ import annotations

import json

from pellucid.cli import main


def test_tcav_study_fast(tmp_path):
    assert main(["study", "tcav", "--fast", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["study"] == "tcav" and summary["fast"] is True
    for layer in ("conv2", "features"):
        s = summary["layers"][layer]
        assert len(s["sign_count"]) == 4 and all(0.0 <= v <= 1.0 for row in s["sign_count"] for v in row)
    assert (tmp_path / "index.html").exists() and (tmp_path / "tcav_scores.png").exists()
