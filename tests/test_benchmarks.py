"""Smoke run of the speed benchmark (tiny sizes): it runs and reports sane figures."""

import importlib
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_speed_benchmark_smoke(tmp_path, monkeypatch):
    # imported by name so the fresh (spawned) processes can import it too
    monkeypatch.syspath_prepend(ROOT)
    speed = importlib.import_module("benchmarks.speed")
    result = speed.main(str(tmp_path), smoke=True, threads=1)
    saved = json.loads((tmp_path / "speed.json").read_text())
    assert {r["model"] for r in saved["equal_length"]} == {"ARGMINN", "standard CNN", "BPNet (bpnet-lite)"}
    assert all(r["train_seqs_per_s"] > 0 and r["infer_seqs_per_s"] > 0 for r in result["equal_length"])
    assert [r["length"] for r in saved["scaling"]] == [200, 500, 200, 500]
    assert all(r["peak_rss_mb"] > 0 for r in saved["scaling"])
    assert saved["regularizers"]["forward pass"]["relative_to_forward"] == 1.0
    assert (tmp_path / "scaling.png").stat().st_size > 0
