"""Tutorial 1: motifs, motif instances, syntax and variant effects, read off the model itself.

Uses the model shipped in kipoi_model/ (trained by `argminn demo` on the
default simulated data) and regenerates that data (deterministic, a few
seconds). Steps:

1. motifs read from where each filter fires, matched to JASPAR with TOMTOM (logos.png);
2. motif instances from one forward pass by tracing attention, compared with
   the discovered motifs scanned by FIMO (coverage.png);
3. the syntax: spacing and orientation between called instances (spacing.png);
4. variant effects (tangermeme) of SNVs inside planted motifs, and the called
   instance each one hits.

Run:  python tutorials/01_motifs_instances_syntax.py --out runs/tutorial1
"""

import argparse
import json
import os

import pandas as pd

from argminn_plugin.data import load_splits, rows_with_label
from argminn_plugin.errors import ArgminnError
from argminn_plugin.interpret import instance_report, variant_instances
from argminn_plugin.report import motif_report
from argminn_plugin.simulate import SimulationConfig, dataset_meta, planted_instances, simulate
from argminn_plugin.train import load_model
from argminn_plugin.variants import read_variants, score_variants

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _default_data(saved):
    """Whether a simulation.json's config is the default one (read as the demo reads it: a key added since it was
    written takes its default)."""
    if not isinstance(saved, dict):
        return False
    try:
        return SimulationConfig.from_dict(saved).to_dict() == SimulationConfig().to_dict()
    except ArgminnError:
        return False


def main(out):
    data = os.path.join(out, "data")
    if not os.path.exists(os.path.join(data, "simulation.json")):
        simulate(data)
    elif not _default_data(dataset_meta(data).get("config")):  # e.g. tutorial 2's --quick data
        raise SystemExit(f"{data}: holds other simulated data than the default this tutorial reads; give another "
                         f"--out, or remove {data}")
    model = load_model(os.path.join(ROOT, "kipoi_model"))  # the Kipoi directory's config.json + weights.pth
    splits, _ = load_splits(os.path.join(data, "genome.fa"), os.path.join(data, "peaks.bed"),
                            model.config.input_length, ["chr2"], ["chr3"])

    # 1. motifs
    table = motif_report(model, splits["train"][0], os.path.join(out, "motifs"), force=True,
                         planted=os.path.join(data, "simulation.json"))
    print(table[["name", "active", "consensus", "best_match", "best_q"]].to_string(index=False))

    # 2 + 3. instances and syntax on the held-out positives
    positives, _, bed = rows_with_label(*splits["test"])
    summary = instance_report(model, positives, bed, os.path.join(out, "motifs"), os.path.join(out, "instances"),
                              truth=planted_instances(data, bed), force=True)
    print(json.dumps(summary, indent=1))

    # 4. variant effects: the 4th base of the first planted instances on chr3
    inst = pd.read_csv(os.path.join(data, "instances.tsv"), sep="\t")
    inst = inst[(inst.split == "test") & (inst.label == 1)].head(6)
    import pyfaidx

    genome = pyfaidx.Fasta(os.path.join(data, "genome.fa"))
    lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    for r in inst.itertuples():
        pos = r.start + 4
        ref = str(genome[r.chrom][pos - 1:pos]).upper()
        lines.append(f"{r.chrom}\t{pos}\tsnv_in_{r.motif}_{r.Index}\t{ref}\t{'ACGT'[('ACGT'.index(ref) + 2) % 4]}"
                     "\t.\t.\t.")
    vcf = os.path.join(out, "variants.vcf")
    with open(vcf, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    variants = read_variants(vcf)
    effects = score_variants(model, variants, os.path.join(data, "genome.fa"))
    hits = variant_instances(model, variants, os.path.join(data, "genome.fa"), os.path.join(out, "motifs"))
    effects = pd.concat([effects, hits], axis=1)
    effects.to_csv(os.path.join(out, "variant_effects.tsv"), sep="\t", index=False)
    print(effects[["id", "label_ref", "label_alt", "label_diff", "hit_motif", "hit_attention"]].to_string(index=False))
    return summary, effects


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/tutorial1")
    main(parser.parse_args().out)
