"""Compare Kipoi models on the same labelled intervals through ``kipoi predict``.

Each model directory is run with ``kipoi predict DIR --source dir`` on the same
FASTA + BED (its windows centred on the intervals), and the predictions are
scored against the BED's 0/1 labels (auROC, auPRC) side by side.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pandas as pd

from .data import check_intervals, check_letters, open_fasta, read_bed
from .errors import ArgminnError
from .fileio import atomic_write, check_writable


def model_yaml(model_dir):
    """The path of ``model_dir``'s model.yaml; an error if it is not a Kipoi model directory."""
    path = os.path.join(model_dir, "model.yaml")
    if not os.path.isfile(path):
        raise ArgminnError(f"{model_dir}: not a Kipoi model directory (no model.yaml)")
    return path


def kipoi_predict(model_dir, intervals, fasta, output, batch_size=64):
    """Run ``kipoi predict`` in a subprocess; returns the (N, T) predictions it wrote."""
    model_yaml(model_dir)
    args = json.dumps({"intervals_file": os.path.abspath(intervals), "fasta_file": os.path.abspath(fasta)})
    cmd = [sys.executable, "-m", "kipoi", "predict", os.path.abspath(model_dir), "--source", "dir",
           "--dataloader_args", args, "--batch_size", str(batch_size), "-o", os.path.abspath(output)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ArgminnError(f"kipoi predict failed for {model_dir}: {tail[0]}")
    table = pd.read_csv(output, sep="\t")
    return table.filter(like="preds").to_numpy()


def _check_windows(model_dir, bed, fasta, bed_path):
    """The BED's windows checked against the FASTA for a model exported by argminn (its config.json names
    the input length), so a bad interval is an error naming the user's BED and line, not kipoi's temporary
    copy. Other Kipoi models are left to their own dataloaders."""
    path = os.path.join(model_dir, "config.json")
    try:
        with open(path) as handle:
            length = json.load(handle)["config"]["input_length"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    fasta_file = open_fasta(fasta)
    check_intervals(bed, fasta_file, length, bed_path)
    check_letters(fasta_file, bed, length, fasta, source=bed_path)


def compare_models(model_dirs, fasta, bed_path, output=None, force=False):
    """auROC / auPRC per model and task, from ``kipoi predict`` on a labelled BED."""
    from .train import classification_metrics

    if output:
        check_writable(output, force)  # before any model runs, not after them all
    for model_dir in model_dirs:
        model_yaml(model_dir)
    bed, names = read_bed(bed_path, label_columns=True)
    y = bed[names].to_numpy()
    for model_dir in model_dirs:
        _check_windows(model_dir, bed, fasta, bed_path)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        plain = os.path.join(tmp, "intervals.bed")
        bed[["chrom", "start", "end"]].to_csv(plain, sep="\t", header=False, index=False)
        for k, model_dir in enumerate(model_dirs):
            preds = kipoi_predict(model_dir, plain, fasta, os.path.join(tmp, f"pred{k}.tsv"))
            if preds.shape != y.shape:
                raise ArgminnError(f"{model_dir}: predictions have shape {preds.shape}, labels {y.shape}")
            for name, m in zip(names, classification_metrics(y, preds)):
                rows.append({"model": os.path.basename(os.path.normpath(model_dir)), "task": name,
                             "n": len(y), "positives": int(np.sum(y[:, names.index(name)])), **m})
    table = pd.DataFrame(rows)
    if output:
        with atomic_write(output, force=force) as handle:
            table.to_csv(handle, sep="\t", index=False)
    return table
