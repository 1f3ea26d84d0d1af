"""The tutorials run end to end and produce their figures."""

import os
import runpy
import sys

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
    assert (effects["label_diff"].abs() > 0).all()
