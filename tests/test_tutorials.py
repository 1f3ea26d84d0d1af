"""The tutorials run end to end and produce their figures."""

import os
import runpy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_tutorial_motifs_instances_syntax(tmp_path):
    module = runpy.run_path(os.path.join(ROOT, "tutorials", "01_motifs_instances_syntax.py"))
    summary, effects = module["main"](str(tmp_path))
    for name in ("motifs/logos.png", "instances/coverage.png", "instances/spacing.png", "variant_effects.tsv"):
        assert (tmp_path / name).stat().st_size > 0
    assert summary["top_syntax"]["spacing"] == 22
    # every SNV sits in a planted motif; most are traced to a called instance of that motif
    named = effects["id"].str.extract(r"snv_in_(\w+?)_")[0]
    assert (effects["hit_motif"] == named).mean() >= 0.5
    hit = effects[effects["hit_motif"] != ""]  # the instance's genome span holds the variant (BED coordinates)
    assert len(hit) and ((hit["hit_start"] <= hit["pos"] - 1) & (hit["pos"] - 1 < hit["hit_end"])).all()
    assert (effects["label_diff"].abs() > 0).all()


def test_tutorial_motifs_refuses_other_data_in_its_out(tmp_path):
    """Data of another simulation in --out (tutorial 2's --quick data) is not read, nor its reports replaced."""
    import json

    import pytest

    from argminn_plugin.simulate import SimulationConfig

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "simulation.json").write_text(json.dumps({
        "config": SimulationConfig(n_train=1500, n_valid=300, n_test=300).to_dict(),
        "splits": {"train": "chr1", "valid": "chr2", "test": "chr3"}}))
    module = runpy.run_path(os.path.join(ROOT, "tutorials", "01_motifs_instances_syntax.py"))
    with pytest.raises(SystemExit, match="holds other simulated data than the default this tutorial reads"):
        module["main"](str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    # the default data written before a config key existed is the default data (the key takes its default)
    default = SimulationConfig().to_dict()
    assert module["_default_data"]({k: v for k, v in default.items() if k != "orientation"})
    assert not module["_default_data"](None) and not module["_default_data"]({"n_train": "many"})


def test_tutorial_train_from_scratch_quick(tmp_path):
    module = runpy.run_path(os.path.join(ROOT, "tutorials", "02_train_from_scratch.py"))
    metrics, summary = module["main"](str(tmp_path), quick=True)
    assert metrics["auroc"] > 0.9  # it learns the rule, even in 6 epochs
    for name in ("run/model.pt", "motifs/logos.png", "motifs/motifs.meme", "instances/coverage.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert summary["n_calls"] > 0


def test_tutorial_design(tmp_path):
    module = runpy.run_path(os.path.join(ROOT, "tutorials", "03_design.py"))
    table, effects = module["main"](str(tmp_path))
    scores = table.set_index("design")["mean"]
    assert scores["learned syntax"] > 0.8 > scores["wrong orientation"]
    assert (tmp_path / "design" / "design.png").stat().st_size > 0
    assert (tmp_path / "design" / "designs.fa").read_text().startswith(">learned_syntax|background=0|")
    assert len(effects) >= 7
