"""``argminn export-kipoi``: publish a trained model as a Kipoi model directory.

Writes, atomically (staged, then moved in), everything ``kipoi test DIR --source dir``
and ``kipoi predict`` need offline: config.json + weights.pth (a plain CPU
state_dict), model.py, dataloader.py, dataloader.yaml, model.yaml (with the
weights' md5 and the training metrics), small example files (a FASTA slice and
a BED of held-out intervals) and test.expect.h5 (inputs + predictions that
``kipoi test`` compares against).
"""

import hashlib
import io
import json
import os
import shutil
import tempfile

import numpy as np
import torch

from .errors import ArgminnError
from .fileio import (MKSTEMP_PART, atomic_write, check_writable, hold, model_fingerprint, read_json_object,
                     remove_abandoned, replace_together, signals_deferred)

MODEL_PY = '''"""Kipoi entry point: the model built from config.json (sigmoid outputs).

Kipoi builds the model inside this directory, so config_path is relative to it.
"""
from argminn_plugin.kipoi_support import KipoiModel


class Model(KipoiModel):
    def __init__(self, config_path="config.json"):
        super().__init__(config_path)
'''

DATALOADER_PY = '''"""Kipoi dataloader: one-hot (4, L) windows centred on BED intervals of a FASTA."""
from argminn_plugin.kipoi_support import IntervalDataLoader


class ARGMINNIntervalDl(IntervalDataLoader):
    pass
'''

DATALOADER_YAML = """type: Dataset
defined_as: dataloader.ARGMINNIntervalDl
args:
  intervals_file:
    doc: BED file of intervals (chrom, start, end); a {length}-bp window is centred on each
    example: example_files/intervals.bed
  fasta_file:
    doc: Reference genome FASTA (indexed with pyfaidx; a missing or stale .fai is rebuilt)
    example: example_files/sequences.fa
  auto_resize_len:
    doc: Window length; must equal the model's input length
    optional: true
    default: {length}
  summits:
    doc: The intervals file is a narrowPeak; centre each window on its summit (column 10), as bpnet-lite's summits=True
    optional: true
    default: false
  skip_outside:
    doc: Leave out intervals whose window is not inside a chromosome of the FASTA (counted on stderr) instead of refusing the file
    optional: true
    default: false
info:
  authors:
    - name: argminn-plugin developers
  doc: >
    Reads a BED and a FASTA, centres a {length}-bp window on each interval
    (mid = start + (end - start) // 2, as tangermeme does), upper-cases the
    sequence and one-hot encodes it as (4, {length}) float32 with rows A, C, G, T;
    N becomes an all-zero column and other letters are rejected.
dependencies:
  pip:
    - argminn-plugin
    - kipoiseq
postprocessing:
  variant_effects:
    bed_input:
      - intervals_file
output_schema:
  inputs:
    name: seq
    shape: (4, {length})
    special_type: DNASeq
    associated_metadata: ranges
    doc: One-hot DNA, rows A, C, G, T
  metadata:
    ranges:
      type: GenomicRanges
      doc: The window that was read; its id is the interval's index in intervals_file (from 0)
"""

MODEL_YAML = """defined_as: kipoi.model.PyTorchModel
args:
  module_file: model.py
  module_class: Model
  module_kwargs:
    config_path: config.json
  weights: weights.pth  # md5 {md5}
default_dataloader: .
info:
  authors:
    - name: argminn-plugin developers
  doc: >
    {description} Outputs sigmoid probabilities per task. {trained_doc}
  cite_as: "Tseng, Eraslan, Biancalani, Scalia. A mechanistically interpretable neural network for regulatory genomics."
  trained_on: {trained_on}
  license: MIT
  tags:
    - DNA binding
dependencies:
  conda:  # Kipoi's PyTorchModel looks for 'pytorch' among the dependencies
    - pytorch::pytorch
  pip:
    - argminn-plugin
    - kipoiseq
schema:
  inputs:
    name: seq
    shape: (4, {length})
    doc: One-hot DNA (rows A, C, G, T; N all-zero)
  targets:
    name: {targets_name}
    shape: ({n_tasks}, )
    doc: {targets_doc}
    column_labels:
{column_labels}
# Read by argminn's kipoi-veff bridge (kipoi 0.8.6 no longer parses this block).
postprocessing:
  variant_effects:
    seq_input:
      - seq
    use_rc: false
test:
  # Kipoi looks for the expected predictions in downloaded/model_files/ and
  # downloads the url only when that file is missing or its md5 differs; the
  # file ships there, so `kipoi test` runs offline.
  expect:
    url: file:downloaded/model_files/test.expect.h5
    md5: {expect_md5}
  precision_decimal: 5
"""


def _metric(value):
    """A metric of metrics.json for the model's description: null (undefined: one class in the split) as n/a."""
    return "n/a" if value is None else f"{value:.3f}"


def _description(model, both_strands=False):
    both = (" Each window is read twice, as given and reverse-complemented: its output is the sigmoid of the mean "
            "of the two logits." if both_strands else "")
    return _architecture(model) + both


def _architecture(model):
    c = model.config
    if model.architecture == "argminn":
        strands = "both strands" if c.scan_reverse_complement else "forward strand only"
        return (f"ARGMINN, a mechanistically interpretable neural network for regulatory genomics: a motif "
                f"scanner ({c.n_filters} filters of width {c.filter_width}, {strands}) feeding a memory-stream "
                f"attention syntax builder ({c.n_layers} layers x {c.n_heads} heads).")
    if model.architecture == "explainn":
        return (f"Baseline ExplaiNN ({c.n_units} independent units, each one convolutional filter of width "
                f"{c.filter_width} with its own small fully connected layers, summed by a linear layer), trained "
                f"on the same data as the ARGMINN model for comparison.")
    return (f"Baseline standard CNN ({c.n_filters} filters of width {c.filter_width}, max-pool {c.pool}, a second "
            f"convolution, global max-pool, linear head), trained on the same data as the ARGMINN model for "
            f"comparison.")


def md5sum(path):
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _yaml_quoted(text):
    """``text`` as a YAML double-quoted scalar in ASCII: every other character escaped, one past U+FFFF as one
    ``\\U`` escape (JSON's two surrogate halves would be read back as two broken characters)."""
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _write_text(path, text):
    with atomic_write(path, force=True) as handle:
        handle.write(text)


def _examples(data_dir, out_dir, n_examples, length):
    """A FASTA slice of the test chromosome, up to the end of the last example's ``length``-bp window, and a BED
    of its first intervals whose windows lie inside the chromosome."""
    from .data import _outside, centred_windows, open_fasta, read_bed
    from .simulate import dataset_meta

    meta = dataset_meta(data_dir, hint="give the directory of the data the model was trained on (argminn simulate)")
    chrom = meta["splits"]["test"]
    bed, _ = read_bed(os.path.join(data_dir, "peaks.bed"), label_columns=True)
    fasta = open_fasta(os.path.join(data_dir, "genome.fa"))
    bed = bed[bed["chrom"] == chrom]
    if bed.empty:
        raise ArgminnError(f"{data_dir}: no test intervals on {chrom}")
    bed = bed[~_outside(bed, fasta, length)[3]].head(n_examples)  # what a model of this length can read
    if bed.empty:
        raise ArgminnError(f"{data_dir}: no test interval on {chrom} has its {length}-bp window (the model's input "
                           f"length) inside the chromosome")
    _, ends = centred_windows(bed, length)
    seq = str(fasta[chrom][:int(ends.max())])
    example_dir = os.path.join(out_dir, "example_files")
    os.makedirs(example_dir, exist_ok=True)
    _write_text(os.path.join(example_dir, "sequences.fa"),
                f">{chrom}\n" + "\n".join(seq[i:i + 80] for i in range(0, len(seq), 80)) + "\n")
    rows = [f"{c}\t{s}\t{e}\tinterval{i}" for i, (c, s, e) in enumerate(zip(bed["chrom"], bed["start"], bed["end"]))]
    _write_text(os.path.join(example_dir, "intervals.bed"), "\n".join(rows) + "\n")
    return os.path.join(example_dir, "intervals.bed"), os.path.join(example_dir, "sequences.fa"), meta


def _examples_from(fasta_path, bed_path, length, out_dir, n_examples, summits=False, skip=False):
    """Example files from any FASTA + BED (a model trained on real data): the BED's first ``n_examples``
    intervals, each with the ``length``-bp window centred on it cut from the FASTA as a record of its own
    (``interval<i>_<chrom>_<start>_<end>`` of the window; a whole genome is not copied), the interval shifted
    into it."""
    from .data import centred_windows, check_intervals, check_letters, open_fasta, read_bed, skip_outside

    bed, _ = read_bed(bed_path, summits=summits)  # summits: the windows on the summits, written as plain intervals
    fasta = open_fasta(fasta_path)
    if skip:
        bed = skip_outside(bed, fasta, length, bed_path)
    bed = bed.head(n_examples)
    check_intervals(bed, fasta, length, bed_path)
    check_letters(fasta, bed, length, fasta_path, source=bed_path)
    starts, ends = centred_windows(bed, length)
    records, rows = [], []
    for i, (chrom, s, e, ws, we) in enumerate(zip(bed["chrom"], bed["start"], bed["end"], starts, ends)):
        name = f"interval{i}_{chrom}_{ws}_{we}"  # unique: intervals may share a centre (several summits a peak)
        records.append(f">{name}\n" + "\n".join(str(fasta[chrom][int(ws):int(we)])[j:j + 80]
                                                for j in range(0, int(we - ws), 80)))
        # the interval cut to the window keeps its centre, so the dataloader cuts the same window
        lo, hi = max(s, ws) - ws, min(e, we) - ws
        if (lo + hi) // 2 != length // 2:  # an interval longer than the window on one side only
            lo, hi = length // 2, length // 2 + 1
        rows.append(f"{name}\t{lo}\t{hi}\tinterval{i}")
    example_dir = os.path.join(out_dir, "example_files")
    os.makedirs(example_dir, exist_ok=True)
    _write_text(os.path.join(example_dir, "sequences.fa"), "\n".join(records) + "\n")
    _write_text(os.path.join(example_dir, "intervals.bed"), "\n".join(rows) + "\n")
    return os.path.join(example_dir, "intervals.bed"), os.path.join(example_dir, "sequences.fa")


def write_expect(path, model, intervals, fasta, batch_size=64, both_strands=False):
    """test.expect.h5: 'inputs' and 'preds' as ``kipoi predict --keep_inputs`` writes them (``both_strands``: the
    model read on both strands, as the directory's KipoiModel reads it)."""
    import h5py

    from .kipoi_support import IntervalDataLoader
    from .model import StrandAveraged

    dl = IntervalDataLoader(intervals, fasta, model.config.input_length)
    X = np.stack([dl[i]["inputs"] for i in range(len(dl))])
    with torch.no_grad():
        preds = torch.sigmoid((StrandAveraged(model) if both_strands else model)(torch.from_numpy(X))).numpy()
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as handle:
        handle.create_dataset("inputs", data=X)
        handle.create_dataset("preds", data=preds)
    os.replace(tmp, path)
    return X, preds


# What an export writes (relative to its directory); each is refused over an existing file unless forced
EXPORT_FILES = ("model.yaml", "config.json", "weights.pth", "model.py", "dataloader.py", "dataloader.yaml",
                "example_files/intervals.bed", "example_files/sequences.fa", "example_files/sequences.fa.fai",
                "downloaded/model_files/test.expect.h5")


def export_kipoi(model_path, out_dir, data_dir=None, n_examples=20, force=False, fasta=None, bed=None,
                 trained_on=None, summits=False, skip=False, both_strands=None):
    """Write the Kipoi model directory for the model in ``model_path``.

    The example files come from ``data_dir`` (a dataset of ``argminn
    simulate``: its test split) or from any ``fasta`` + ``bed`` (a model
    trained on real data: the BED's first intervals, e.g. held-out peaks);
    ``trained_on`` describes the training data in model.yaml; ``summits``
    (a narrowPeak ``bed``: the example windows on its summits) and ``skip``
    (intervals outside the genome left out) as in ``data.load_intervals``;
    ``both_strands``: True, Kipoi reads the model on both strands (config.json's
    ``"both_strands": true``; the mean of the logits for each window and its
    reverse complement, then the sigmoid), the weights unchanged; False, in one
    pass; None (the default), as the source reads it: a Kipoi directory
    exported so is exported so again, a run's model in one pass.

    Everything is written into a staging directory inside ``out_dir`` first
    and moved in only once all of it is written, model.yaml (which holds the
    other files' md5 sums) last: bad data or a failure on the way leaves an
    existing export as it was.
    """
    from .train import load_model, reads_both_strands

    if (data_dir is None) == (fasta is None or bed is None) or (data_dir is not None and (fasta or bed)):
        raise ArgminnError("export-kipoi: give the dataset directory (--data), or a FASTA and a BED of example "
                           "intervals (--fasta and --bed)")
    if data_dir is not None and (summits or skip):
        flags = " and ".join(flag for flag, given in (("--summits", summits), ("--skip-outside", skip)) if given)
        raise ArgminnError(f"export-kipoi: {flags} only go{'es' if ' and ' not in flags else ''} with --fasta and "
                           f"--bed; with --data the examples are test intervals whose windows lie inside the "
                           f"chromosome")
    model = load_model(model_path)
    if both_strands is None:  # a Kipoi directory's model read as it was
        both_strands = reads_both_strands(model_path)
    trained_doc = _trained_doc(model_path, model, both_strands)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ArgminnError(f"{out_dir}: exists and is not a directory")
    for rel in EXPORT_FILES:  # model.yaml first: the usual one to find there
        check_writable(os.path.join(out_dir, rel), force)
    made = []  # the directories this export makes, deepest first: a failure removes those it leaves empty
    parent = os.path.abspath(out_dir)
    while not os.path.exists(parent):
        made.append(parent)
        parent = os.path.dirname(parent)
    stage = stage_fd = None
    try:
        os.makedirs(out_dir, exist_ok=True)
        remove_abandoned(out_dir, r"\.export-" + MKSTEMP_PART + r"\.tmp")  # a killed export's staging
        # inside out_dir: the same file system (os.replace cannot cross one) and the same permission as the export
        stage = tempfile.mkdtemp(dir=out_dir, prefix=".export-", suffix=".tmp")
        try:
            stage_fd = os.open(stage, os.O_RDONLY)
            hold(stage_fd)  # while this export runs
        except OSError:  # a directory cannot be opened so here (Windows): not held, and never taken as abandoned
            stage_fd = None
        _write_export(model, stage, data_dir, n_examples, fasta, bed, trained_on, summits, skip, trained_doc,
                      both_strands)
        written = sorted(os.path.relpath(os.path.join(root, name), stage)
                         for root, _, names in os.walk(stage) for name in names)
        assert set(written) <= set(EXPORT_FILES), sorted(set(written) - set(EXPORT_FILES))
        written.sort(key=lambda rel: rel == "model.yaml")  # model.yaml last
        for rel in written:
            os.makedirs(os.path.dirname(os.path.join(out_dir, rel)), exist_ok=True)
        replace_together([(os.path.join(stage, rel), os.path.join(out_dir, rel)) for rel in written])
    except BaseException:
        _remove_stage(stage, stage_fd)
        for directory in made:  # a failed first export leaves no empty directory behind
            if os.path.isdir(directory) and not os.listdir(directory):
                os.rmdir(directory)
        raise
    _remove_stage(stage, stage_fd)
    return out_dir


def _remove_stage(stage, stage_fd):
    """Remove the staging directory (what is left of it) as one step: a Ctrl-C or SIGTERM meanwhile takes effect
    after it."""
    with signals_deferred():
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
        if stage_fd is not None:
            os.close(stage_fd)


def _trained_doc(model_path, model, both_strands=False):
    """The held-out metrics of the training run (its metrics.json beside the model, if any) for model.yaml's doc,
    read as the export reads the model (``both_strands``: its 'test_both_strands', recorded since 2026-12-06;
    a run without them is quoted read in one pass, so named); a metrics.json that is not the one argminn train
    writes, or is another model's (its tasks, or the model it records, differ), is an error naming it."""
    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), "metrics.json")
    if os.path.isdir(model_path) or not os.path.isfile(path):  # a Kipoi model directory's model: no run beside it
        return ""
    metrics = read_json_object(path, "metrics file")
    if both_strands and metrics.get("test_both_strands") is not None:
        key, reading = "test_both_strands", ", read on both strands"
    else:
        key, reading = "test", ", read in one pass" if both_strands else ""
    test = metrics.get(key) or {}  # a run without a test split has none

    def number(value):
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))

    if not isinstance(test, dict) or not all(isinstance(m, dict) and {"auroc", "auprc"} <= set(m)
                                             and number(m["auroc"]) and number(m["auprc"]) for m in test.values()):
        raise ArgminnError(f"{path}: not a readable metrics file (its '{key}' should map each task to its auroc "
                           "and auprc, as argminn train writes); move it away or train again")
    fingerprint = metrics.get("model_fingerprint")  # recorded since 2026-12-05
    names = model.config.names
    if (test and list(test) != names) or (fingerprint is not None and fingerprint != model_fingerprint(model)):
        what = (f"scores tasks {', '.join(map(repr, test))} (this model's: {', '.join(map(repr, names))})"
                if test and list(test) != names else "scores another model (its model_fingerprint differs)")
        raise ArgminnError(f"{path}: {what}: another run's, or the run's model.pt's if {model_path} is its "
                           f"last.pt; export that model, or move metrics.json away to export without scores")
    if not test:
        return ""
    return f"Held-out test chromosome{reading}: " + ", ".join(
        f"{t} auROC {_metric(m['auroc'])}, auPRC {_metric(m['auprc'])}" for t, m in test.items()) + "."


def _write_export(model, out_dir, data_dir, n_examples, fasta_path=None, bed_path=None,
                  trained_on=None, summits=False, skip=False, trained_doc="", both_strands=False):
    from .data import open_fasta

    c = model.config
    weights = os.path.join(out_dir, "weights.pth")
    buffer = io.BytesIO()
    torch.save({"model." + k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, buffer)
    with atomic_write(weights, "wb", force=True) as handle:
        handle.write(buffer.getvalue())
    spec = {"architecture": model.architecture, "config": c.to_dict()}
    if both_strands:  # a one-pass directory's config.json is as it was before the option
        spec["both_strands"] = True
    _write_text(os.path.join(out_dir, "config.json"), json.dumps(spec, indent=2) + "\n")
    _write_text(os.path.join(out_dir, "model.py"), MODEL_PY)
    _write_text(os.path.join(out_dir, "dataloader.py"), DATALOADER_PY)
    _write_text(os.path.join(out_dir, "dataloader.yaml"), DATALOADER_YAML.format(length=c.input_length))
    if data_dir is not None:
        intervals, fasta, meta = _examples(data_dir, out_dir, n_examples, c.input_length)
        trained_on = trained_on or (f"argminn simulate dataset ({meta.get('rule', 'no rule recorded')}); "
                                    f"splits by chromosome {meta['splits']}")
    else:
        intervals, fasta = _examples_from(fasta_path, bed_path, c.input_length, out_dir, n_examples, summits, skip)
        trained_on = trained_on or "not recorded (export-kipoi --trained-on TEXT describes it)"
    expect_dir = os.path.join(out_dir, "downloaded", "model_files")
    os.makedirs(expect_dir, exist_ok=True)
    expect = os.path.join(expect_dir, "test.expect.h5")
    write_expect(expect, model, intervals, fasta, both_strands=both_strands)

    names = c.names
    text = MODEL_YAML.format(
        md5=md5sum(weights), description=_description(model, both_strands), trained_doc=trained_doc,
        length=c.input_length, n_tasks=c.n_tasks, targets_name="probabilities",
        targets_doc=_yaml_quoted("Probability per task, in this order - " + ", ".join(names)),
        column_labels="\n".join(f"      - {_yaml_quoted(n)}" for n in names), trained_on=_yaml_quoted(trained_on),
        expect_md5=md5sum(expect))
    _write_text(os.path.join(out_dir, "model.yaml"), text)
    # the example FASTA's index, built after it (so pyfaidx finds it fresh): shipped, since a read-only model
    # directory (a zoo checkout) cannot have one built
    open_fasta(fasta)
    if not os.path.isfile(fasta + ".fai"):
        raise ArgminnError(f"{fasta}: pyfaidx wrote no index")
