"""``python -m pellucid explore``: serves the demo on 127.0.0.1, prints the URL, answers /api/health, and loads the
demo model from the cache directory named by $PELLUCID_CACHE_DIR (the test puts a model there, so nothing trains)."""
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("matplotlib")

from pellucid.data import SimpleCNN  # noqa: E402
from pellucid.explorer.demo import CACHE_VERSION, cache_dir  # noqa: E402


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PELLUCID_CACHE_DIR", str(tmp_path / "a"))
    assert cache_dir() == tmp_path / "a" and (tmp_path / "a").is_dir()
    monkeypatch.delenv("PELLUCID_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "pellucid"


def test_explore_serves_the_cached_demo_and_health_answers(tmp_path):
    torch.manual_seed(0)
    marker = SimpleCNN(3, 4)
    torch.save(marker.state_dict(), tmp_path / f"explorer-shapes-cnn-{CACHE_VERSION}-s0.pt")
    env = {**os.environ, "PELLUCID_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pellucid", "explore", "--port", "0", "--no-text"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        t0 = time.time()
        line = proc.stdout.readline()
        assert line.startswith("pellucid explorer: http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
        assert time.time() - t0 < 60
        url = line.split(": ", 1)[1].strip()
        with urllib.request.urlopen(url + "api/health", timeout=10) as r:
            assert json.loads(r.read())["status"] == "ok"
        while True:  # the URL is printed at once; the dataset joins when its model is loaded
            with urllib.request.urlopen(url + "api/info", timeout=10) as r:
                info = json.loads(r.read())
            if info["datasets"] or time.time() - t0 > 60:
                break
            time.sleep(0.2)
        assert [d["name"] for d in info["datasets"]] == ["shapes"]
        assert info["datasets"][0]["models"] == ["cnn", "cnn_smoothed"]
        assert info["datasets"][0]["classes"] == ["square", "plus", "cross", "ring"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "training" not in err  # the cached model was used


def test_explore_rejects_a_bad_port(capsys):
    from pellucid.cli import main

    assert main(["explore", "--port", "70000", "--no-text"]) == 2
    assert "--port" in capsys.readouterr().err
