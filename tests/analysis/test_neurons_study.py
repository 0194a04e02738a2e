"""``python -m pellucid study neurons --fast`` through the CLI: it finishes and names the planted neurons."""
from __future__ import annotations

import json

from pellucid.cli import main


def test_neurons_study_fast_names_the_planted_neurons(tmp_path):
    out = tmp_path / "study"
    assert main(["study", "neurons", "--fast", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    planted = summary["planted"]
    assert planted["planted_neurons"] == [3, 11, 17, 26, 29]
    assert planted["all_rankings_exact"] is True
    assert all(v == planted["planted_neurons"] for v in planted["found"].values())
    assert planted["duplicates_share_a_cluster"] is True
    abl = planted["model_accuracy_ablated"]
    assert abl["top k (planted)"]["zero"] < 0.5 < 0.95 < abl["random k"]["zero"]
    assert all(s > 0.99 for s in planted["conductance_share_on_signal_input"])
    assert (out / "index.html").exists()
    minilm = summary["minilm"]
    assert "skipped" in minilm or (minilm["layer_probe_accuracy"] and len(minilm["top_colour_neurons"]) == minilm["k"])


def test_neurons_study_without_minilm_says_so_and_runs_the_planted_part(tmp_path, monkeypatch):
    import pellucid.data.minilm as minilm
    from pellucid.analysis.studies import run_study

    monkeypatch.setattr(minilm, "minilm_available", lambda: False)
    logged = []
    result = run_study("neurons", tmp_path, fast=True, log=logged.append)
    assert "text extra" in result.summary["minilm"]["skipped"]
    assert any("skipped" in line for line in logged)
    assert result.summary["planted"]["all_rankings_exact"] is True
