"""Tutorial 3: interpretable design, marginalization and ablation with the shipped model.

The learned rule (from the syntax read-out) places the discovered motifs into
dinucleotide-shuffled negatives; the designs are scored next to controls that
break the rule and next to tangermeme's greedy (black-box) design, and
tangermeme's marginalize/ablate give each motif's effect and the pair's
cooperativity. Each design and control is scored with the pair at every 5 bp
along the window. Figures: design/design.png; tables: design/design.tsv,
design/design_starts.tsv (each start's scores), design/effects.tsv; the designed
sequences: design/designs.fa.

Run:  python tutorials/03_design.py --out runs/tutorial3
"""

import argparse
import os
import runpy

import pandas as pd

from argminn_plugin.data import load_splits
from argminn_plugin.design import design_report
from argminn_plugin.train import load_model

HERE = os.path.dirname(os.path.abspath(__file__))


def main(out):
    # Motifs, instances and syntax as in tutorial 1 (the shipped model on the default data).
    tutorial1 = runpy.run_path(os.path.join(HERE, "01_motifs_instances_syntax.py"))
    tutorial1["main"](out)
    model = load_model(os.path.join(os.path.dirname(HERE), "kipoi_model"))  # config.json + weights.pth
    data = os.path.join(out, "data")
    splits, _ = load_splits(os.path.join(data, "genome.fa"), os.path.join(data, "peaks.bed"), 200, ["chr2"], ["chr3"])
    X, y, _ = splits["test"]
    table = design_report(model, X[y[:, 0] == 0], os.path.join(out, "motifs"),
                          pd.read_csv(os.path.join(out, "instances", "syntax.tsv"), sep="\t"),
                          os.path.join(out, "design"), n_backgrounds=100, n_greedy=4, force=True,
                          positives=X[y[:, 0] == 1])
    effects = pd.read_csv(os.path.join(out, "design", "effects.tsv"), sep="\t")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(effects.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return table, effects


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/tutorial3")
    main(parser.parse_args().out)
