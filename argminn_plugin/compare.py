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
    return read_predictions(output)


def read_predictions(path):
    """The (N, T) predictions in ``kipoi predict``'s TSV, in the model's output order: its writer sorts the
    columns as text (preds/0, preds/1, preds/10, preds/2, ...)."""
    table = pd.read_csv(path, sep="\t")
    columns = [c for c in table.columns if c == "preds" or c.startswith("preds/")]
    columns.sort(key=lambda c: int(c.split("/", 1)[1]) if c.split("/", 1)[-1].isdigit() else -1)
    return table[columns].to_numpy()


def column_labels(model_dir):
    """The names the model's model.yaml gives its outputs (schema.targets.column_labels: a list, or a file of one
    name a line beside model.yaml, as Kipoi allows), or None where it names none (targets as a list of arrays,
    say)."""
    import yaml

    path = model_yaml(model_dir)
    try:
        with open(path) as handle:
            spec = yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ArgminnError(f"{path}: not a readable model.yaml ({type(exc).__name__})") from None
    for key in ("schema", "targets", "column_labels"):
        spec = spec.get(key) if isinstance(spec, dict) else None
    if isinstance(spec, str):  # a file of labels
        try:
            with open(os.path.join(model_dir, spec)) as handle:
                return [line.strip() for line in handle if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise ArgminnError(f"{path}: column_labels file {spec!r} cannot be read ({type(exc).__name__})") from None
    return [str(label) for label in spec] if isinstance(spec, list) else None


def _label_order(model_dir, names, bed_path, named=True):
    """Which prediction column holds each of the BED's task columns: by name where the model names its outputs
    (model.yaml column_labels) and the BED's header names its tasks (``named``; a subset, in any order); None
    (by position) where either names none, the two agree, or no BED name is among the model's (another naming
    altogether, as for a Kipoi model trained elsewhere; said on stderr)."""
    if not named:  # a BED without a header: its names (task0, task1, ...) are read_bed's, not the user's
        return None
    labels = column_labels(model_dir)
    if labels is None or labels == names:
        return None
    missing = [n for n in names if n not in labels]
    if len(missing) == len(names):
        print(f"compare-kipoi: no task column of {bed_path} is among {model_dir}'s outputs by name; paired by "
              "position", file=sys.stderr)
        return None
    if missing:
        shown = ", ".join(map(repr, labels[:10])) + (f", ... ({len(labels)} in all)" if len(labels) > 10 else "")
        raise ArgminnError(f"{bed_path}: task column(s) {', '.join(map(repr, missing))} are not among "
                           f"{model_dir}'s outputs ({shown}; model.yaml column_labels); name the BED's label "
                           "columns after them, or remove its header to pair them by position")
    return [labels.index(n) for n in names]


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
    check_intervals(bed, fasta_file, length, bed_path, skip_option=None)  # compare-kipoi skips no line
    check_letters(fasta_file, bed, length, fasta, source=bed_path)


def _check_finite(preds, model_dir, bed, bed_path):
    """A model's predictions must be numbers: a NaN or infinite one (a broken weight file) is an error naming the
    model and the BED line of the first, not a metric's traceback."""
    bad = ~np.isfinite(np.asarray(preds, dtype=np.float64))
    if bad.any():
        row = int(np.flatnonzero(bad.any(1))[0])  # (N, T), as the labels
        raise ArgminnError(f"{model_dir}: kipoi predict gave {int(bad.sum())} prediction(s) that are not finite "
                           f"numbers (NaN or infinite; the first for {bed_path} line {bed['line'].iloc[row]}); "
                           "its weights may be broken")


def compare_models(model_dirs, fasta, bed_path, output=None, force=False):
    """auROC / auPRC per model and task, from ``kipoi predict`` on a labelled BED."""
    from .train import classification_metrics

    if output:
        check_writable(output, force)  # before any model runs, not after them all
    for model_dir in model_dirs:
        model_yaml(model_dir)
    bed, names = read_bed(bed_path, label_columns=True)
    y = bed[names].to_numpy()
    orders = [_label_order(model_dir, names, bed_path, bed.attrs["named_tasks"])
              for model_dir in model_dirs]  # before any model runs
    n_labelled = [None if order is None else len(column_labels(model_dir))
                  for order, model_dir in zip(orders, model_dirs)]
    for model_dir in model_dirs:
        _check_windows(model_dir, bed, fasta, bed_path)
    for t, name in enumerate(names):  # said once, before the models run: the table shows NaN for them
        if len(np.unique(y[:, t])) < 2:
            print(f"compare-kipoi: task {name!r} of {bed_path} has only label {y[0, t]:g}: its auROC and auPRC are "
                  "undefined (NaN); score the models on a BED with both labels", file=sys.stderr)
    rows = []
    shown = [os.path.basename(os.path.normpath(d)) for d in model_dirs]
    if len(set(shown)) < len(shown):  # runA/kipoi_model and runB/kipoi_model: the paths tell them apart
        shown = [os.path.normpath(d) for d in model_dirs]
    with tempfile.TemporaryDirectory() as tmp:
        plain = os.path.join(tmp, "intervals.bed")
        bed[["chrom", "start", "end"]].to_csv(plain, sep="\t", header=False, index=False)
        for k, model_dir in enumerate(model_dirs):
            preds = kipoi_predict(model_dir, plain, fasta, os.path.join(tmp, f"pred{k}.tsv"))
            if orders[k] is not None:  # paired by name: the columns must be the outputs model.yaml names
                if preds.ndim != 2 or preds.shape[1] != n_labelled[k]:
                    raise ArgminnError(f"{model_dir}: predictions have shape {preds.shape}, but model.yaml's "
                                       f"column_labels names {n_labelled[k]} outputs, so the BED's tasks cannot be "
                                       "paired with them by name")
                preds = preds[:, orders[k]]
            if preds.shape != y.shape:
                raise ArgminnError(f"{model_dir}: predictions have shape {preds.shape}, labels {y.shape}")
            _check_finite(preds, model_dir, bed, bed_path)
            for name, m in zip(names, classification_metrics(y, preds)):
                rows.append({"model": shown[k], "task": name,
                             "n": len(y), "positives": int(np.sum(y[:, names.index(name)])), **m})
    table = pd.DataFrame(rows)
    if output:
        with atomic_write(output, force=force) as handle:
            table.to_csv(handle, sep="\t", index=False)
    return table
