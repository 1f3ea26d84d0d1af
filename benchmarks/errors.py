"""Where a trained benchmark model errs: its held-out (or training) negatives grouped by what was planted in them.

After ``python -m benchmarks.discovery --out DIR``: for each trained method of
one dataset, the score threshold that keeps ``--sensitivity`` of the held-out
positives (default 95%), and per kind of negative (nothing relevant planted,
one motif alone, a pair of motifs, ...) how many score above it. A pair is
told apart by what its dataset's label depends on (``PAIR_DETAIL``): its
spacing and relative strand on fixed_spacing, its relative strand on
fixed_orientation, only which two motifs elsewhere. Distractor motifs are
ignored; a pair's spacing is counted in the first motif's frame (start to
start on its strand, so a reverse-complemented block has the same spacing as
its forward copy; negative when the second motif starts first). A negative
whose background holds, by chance, an exact copy of the consensus of a
relevant motif not planted in it (on either strand) is counted apart, its
kind followed by ``+ chance`` and that motif (``CEBPB alone + chance GATA1``):
such a copy can complete the rule, and a model that reads the rule then
scores the negative like a positive.

With ``--split train`` (or ``valid``) the same count on the sequences the
models were trained (or stopped) on: a kind of negative scored high there too
is one the model did not fit, not one it failed to generalise to.

Run:  python -m benchmarks.errors --out runs/bench --dataset fixed_spacing [--split train]
Prints the table and writes ``<out>/<dataset>/errors.json`` (``errors_train.json``,
``errors_valid.json`` for the other splits).
"""

import argparse
import json
import os
import re

import numpy as np
import torch

from argminn_plugin.data import decode, load_splits
from argminn_plugin.design import COMPLEMENT
from argminn_plugin.errors import ArgminnError
from argminn_plugin.fileio import atomic_write
from argminn_plugin.motifs import consensus
from argminn_plugin.simulate import jaspar_motif, planted_instances
from argminn_plugin.train import evaluate, load_model

from . import one_line_errors
from .datasets import GRAMMARS
from .discovery import read_dataset_summary

TRAINED = ("ARGMINN", "CNN", "ExplaiNN")
# What a pair's label says beyond its two motifs, per dataset (default "motifs": nothing)
PAIR_DETAIL = {"fixed_spacing": "spacing", "fixed_orientation": "strand"}
DETAILS = ("spacing", "strand", "motifs")
SPLITS = ("test", "valid", "train")


def negative_kinds(truth, n_rows, relevant, detail="spacing"):
    """Per sequence row, a label for what of ``relevant`` was planted in it.

    ``detail``: how a pair of two different motifs is labelled: "spacing"
    (spacing and relative strand), "strand" (relative strand) or "motifs"
    (the two motifs only).
    """
    if detail not in DETAILS:
        raise ArgminnError(f"errors: 'detail' must be one of {', '.join(DETAILS)}, got {detail!r}")
    kinds = []
    order = {m: k for k, m in enumerate(relevant)}
    for row in range(n_rows):
        inst = truth[(truth["sequence"] == row) & truth["motif"].isin(relevant)]
        inst = inst.assign(rank=inst["motif"].map(order)).sort_values(["rank", "start"])
        if len(inst) == 0:
            kinds.append("none")
        elif len(inst) == 1:
            kinds.append(f"{inst.iloc[0].motif} alone")
        elif len(inst) == 2 and inst.iloc[0].motif != inst.iloc[1].motif:
            a, b = inst.iloc[0], inst.iloc[1]
            spacing = b.start - a.start if a.strand == "+" else a.end - b.end
            strand = "same strand" if a.strand == b.strand else "opposite strands"
            if detail == "spacing":
                kinds.append(f"{a.motif}+{b.motif} spacing {int(spacing)}, {strand}")
            else:
                kinds.append(f"{a.motif}+{b.motif}" + (f", {strand}" if detail == "strand" else ""))
        else:
            kinds.append(" + ".join(inst["motif"]))
    return np.array(kinds, dtype=object)


def consensus_bases(ppm):
    """A (4, w) probability matrix's consensus: its most probable base per column (motifs.consensus, upper case)."""
    return consensus(np.asarray(ppm)).upper()


def chance_copies(X, truth, consensuses):
    """Per row of one-hot ``X`` (N, 4, L), the motifs of ``consensuses`` ({name: consensus}) not planted in it
    (``truth``) whose consensus its sequence holds exactly, on either strand; a row's names in ``consensuses``'
    order. An N base (an all-zero column) matches nothing."""
    seqs = decode(X)
    found = [[] for _ in seqs]
    for name, cons in consensuses.items():
        rc = cons.translate(COMPLEMENT)[::-1]
        planted = set(truth.loc[truth["motif"] == name, "sequence"])
        for row, seq in enumerate(seqs):
            if row not in planted and (cons in seq or rc in seq):
                found[row].append(name)
    return found


def row_kinds(X, truth, relevant, consensuses, detail="spacing", bin_width=5):
    """Per row, what of ``relevant`` was planted (:func:`negative_kinds`, spacings binned), followed by
    ``+ chance M`` for each relevant motif M not planted there whose consensus the row holds
    (:func:`chance_copies`)."""
    kinds = [spacing_bin(k, bin_width) for k in negative_kinds(truth, len(X), relevant, detail)]
    return np.array([kind + "".join(f" + chance {m}" for m in chance)
                     for kind, chance in zip(kinds, chance_copies(X, truth, consensuses))], dtype=object)


def spacing_bin(kind, width=5):
    """Pairs grouped into spacing bins of ``width`` bases (``A+B spacing 9-13, same strand``)."""
    if " spacing " not in kind:
        return kind
    head, rest = kind.split(" spacing ")
    spacing, strand = rest.split(", ")
    lo = (int(spacing) // width) * width
    return f"{head} spacing {lo}-{lo + width - 1}, {strand}"


def discovery_dir(out, name):
    """``out``, or ``out``/discovery where the whole suite (`python -m benchmarks --out DIR`) put it."""
    suite = os.path.join(out, "discovery")
    if not os.path.exists(os.path.join(out, name, "data")) and os.path.exists(os.path.join(suite, name, "data")):
        return suite
    return out


def dataset_errors(out, name, sensitivity=0.95, bin_width=5, split="test"):
    """{method: {"threshold", "positives", "by_kind": {kind: [n negatives, n above threshold]}}} on ``split``."""
    if split not in SPLITS:
        raise ArgminnError(f"errors: unknown split {split!r} (one of {', '.join(SPLITS)})")
    if not 0 < sensitivity < 1:
        raise ArgminnError(f"errors: 'sensitivity' must be in (0, 1), got {sensitivity}")
    if name not in GRAMMARS:
        raise ArgminnError(f"errors: unknown dataset {name!r} (one of {', '.join(GRAMMARS)})")
    out = discovery_dir(out, name)
    data_dir = os.path.join(out, name, "data")
    if not os.path.exists(os.path.join(data_dir, "simulation.json")):
        raise ArgminnError(f"{data_dir}: no benchmark data; run python -m benchmarks.discovery --out {out} first")
    summary = read_dataset_summary(data_dir)
    length = summary["length"]
    data, _ = load_splits(os.path.join(data_dir, "genome.fa"), os.path.join(data_dir, "peaks.bed"), length,
                          ["chr2"], ["chr3"])
    X, y, bed = data[split]
    labels = y[:, 0].numpy()
    truth = planted_instances(data_dir, bed)
    detail = PAIR_DETAIL.get(name, "motifs")
    relevant = GRAMMARS[name].relevant
    ids = summary.get("relevant")  # the planted JASPAR IDs, as recorded
    if not isinstance(ids, dict) or not set(relevant) <= set(ids):
        raise ArgminnError(f"{os.path.join(data_dir, 'simulation.json')}: no JASPAR ID recorded for every relevant "
                           f"motif ({', '.join(relevant)}); delete that dataset's folder to draw it again")
    consensuses = {m: consensus_bases(jaspar_motif(ids[m])[1]) for m in relevant}
    kinds = row_kinds(X, truth, relevant, consensuses, detail, bin_width)
    report = {}
    for method in TRAINED:
        path = os.path.join(out, name, method, "model.pt")
        if not os.path.exists(path):
            continue
        _, probs = evaluate(load_model(path), X, y)
        score = probs[:, 0].numpy()
        positive = np.sort(score[labels == 1])
        threshold = float(positive[int(np.floor((1 - sensitivity) * len(positive)))])
        by_kind = {}
        for kind in sorted(set(kinds[labels == 0])):
            rows = (labels == 0) & (kinds == kind)
            by_kind[kind] = [int(rows.sum()), int((score[rows] >= threshold).sum())]
        report[method] = {"threshold": threshold, "positives": int(len(positive)),
                          "positives_above": int((positive >= threshold).sum()), "by_kind": by_kind}
    if not report:
        raise ArgminnError(f"{os.path.join(out, name)}: no trained model (model.pt) of {', '.join(TRAINED)}")
    return report


def _kind_order(kind):
    """Sort key: pairs by motifs, strand, then spacing as a number."""
    if " spacing " not in kind:
        return (kind, "", 0)
    head, rest = kind.split(" spacing ")
    spacing, strand = rest.split(", ")
    return (head, strand, int(re.match(r"-?\d+", spacing).group()))  # a bin's low end, negative too: "-40--36"


def table_text(report, sensitivity, split="test"):
    methods = list(report)
    kinds = sorted({k for r in report.values() for k in r["by_kind"]}, key=_kind_order)
    lines = [f"{split} negatives scoring above the threshold that keeps {sensitivity:.0%} of the {split} positives",
             f"{'negatives':48s}{'n':>6s}" + "".join(f"{m:>10s}" for m in methods)]
    for kind in kinds:
        n = next(r["by_kind"][kind][0] for r in report.values() if kind in r["by_kind"])
        lines.append(f"{kind:48s}{n:>6d}" + "".join(f"{report[m]['by_kind'].get(kind, [0, 0])[1]:>10d}"
                                                     for m in methods))
    total = sum(next(r["by_kind"][k][0] for r in report.values() if k in r["by_kind"]) for k in kinds)
    lines.append(f"{'all negatives':48s}{total:>6d}" + "".join(
        f"{sum(v[1] for v in report[m]['by_kind'].values()):>10d}" for m in methods))
    return "\n".join(lines)


def main(out, name, sensitivity=0.95, bin_width=5, split="test"):
    report = dataset_errors(out, name, sensitivity, bin_width, split)
    print(f"{name}: {GRAMMARS[name].rule}")
    print(table_text(report, sensitivity, split))
    filename = "errors.json" if split == "test" else f"errors_{split}.json"
    with atomic_write(os.path.join(discovery_dir(out, name), name, filename), force=True) as handle:
        json.dump({"dataset": name, "split": split, "sensitivity": sensitivity, "bin_width": bin_width,
                   "methods": report}, handle, indent=1)
    return report


def cli(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.errors", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="a benchmarks.discovery output folder")
    parser.add_argument("--dataset", required=True, choices=list(GRAMMARS))
    parser.add_argument("--sensitivity", type=float, default=0.95)
    parser.add_argument("--bin-width", type=int, default=5, help="spacing bins of this many bases")
    parser.add_argument("--split", choices=SPLITS, default="test",
                        help="the sequences to score (default: the held-out chromosome)")
    args = parser.parse_args(argv)
    if args.bin_width < 1:
        parser.error("--bin-width must be >= 1")
    torch.set_num_threads(2)
    with one_line_errors("benchmarks.errors"):  # e.g. discovery not run there yet
        main(args.out, args.dataset, args.sensitivity, args.bin_width, args.split)


if __name__ == "__main__":
    cli()
