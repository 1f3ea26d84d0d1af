"""The Kipoi model directory: kipoi test / kipoi predict offline, outputs equal to the library's."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from argminn_plugin import ArgminnError
from argminn_plugin.cli import main
from argminn_plugin.data import load_intervals
from argminn_plugin.kipoi_export import export_kipoi
from argminn_plugin.kipoi_support import IntervalDataLoader, KipoiModel, _flag
from argminn_plugin.train import load_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, "kipoi_model")


def kipoi(*args, cwd):
    return subprocess.run([sys.executable, "-m", "kipoi", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("kipoi")
    data, run, out = base / "data", base / "run", base / "kipoi_model"
    assert main(["simulate", "--out", str(data), "--set", "n_train=300", "--set", "n_valid=60",
                 "--set", "n_test=60", "--set", "length=120", "--set", "spacing=15"]) == 0
    assert main(["train", "--data", str(data), "--out", str(run), "--quiet", "--train-set", "max_epochs=1",
                 "--model-set", "n_layers=2", "--model-set", "stream_dim=32"]) == 0
    assert main(["export-kipoi", "--model", str(run / "model.pt"), "--data", str(data), "--out", str(out)]) == 0
    return data, run, out


def test_export_layout(exported, monkeypatch):
    import pyfaidx

    _, _, out = exported
    for name in ("model.yaml", "dataloader.yaml", "model.py", "dataloader.py", "config.json", "weights.pth",
                 "example_files/intervals.bed", "example_files/sequences.fa", "example_files/sequences.fa.fai",
                 "downloaded/model_files/test.expect.h5"):
        assert (out / name).exists(), name
    # the example FASTA's index is shipped, fresh: the dataloader reads the examples without building one (which a
    # read-only model directory, a zoo checkout, could not)
    monkeypatch.setattr(pyfaidx.Faidx, "build_index", lambda self: pytest.fail("an index was built"))
    dl = IntervalDataLoader(str(out / "example_files" / "intervals.bed"), str(out / "example_files" / "sequences.fa"),
                            120)
    assert dl[0]["inputs"].shape == (4, 120)
    monkeypatch.undo()
    state = torch.load(out / "weights.pth", weights_only=True)
    assert all(t.device.type == "cpu" for t in state.values())
    with h5py.File(out / "downloaded/model_files/test.expect.h5") as handle:
        assert handle["inputs"].shape == (20, 4, 120) and handle["preds"].shape == (20, 1)
    assert main(["export-kipoi", "--model", str(exported[1] / "model.pt"), "--data", str(exported[0]),
                 "--out", str(out)]) == 2  # no silent overwrite


def test_failed_export_leaves_the_directory_as_it_was(exported, tmp_path, capsys):
    """A re-export with --force that fails (bad data) changes no file and leaves no staging directory."""
    import shutil

    data, run, out = exported
    copy = tmp_path / "kipoi_model"
    shutil.copytree(out, copy)
    before = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    other = tmp_path / "other_run"
    assert main(["train", "--data", str(data), "--out", str(other), "--quiet", "--train-set", "max_epochs=1",
                 "--train-set", "seed=7", "--model-set", "n_layers=2", "--model-set", "stream_dim=32"]) == 0
    assert main(["export-kipoi", "--model", str(other / "model.pt"), "--data", str(tmp_path / "nodata"),
                 "--out", str(copy), "--force"]) == 2
    assert "nodata: not a dataset directory (no simulation.json); give the directory of the data" in \
        capsys.readouterr().err
    assert {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kipoi_model", "other_run"]
    # the same re-export with good data replaces the weights and model.yaml's md5 together
    assert main(["export-kipoi", "--model", str(other / "model.pt"), "--data", str(data), "--out", str(copy),
                 "--force"]) == 0
    from argminn_plugin.kipoi_export import md5sum
    assert (copy / "weights.pth").read_bytes() != before[pathlib.Path("weights.pth")]
    assert f"md5 {md5sum(copy / 'weights.pth')}" in (copy / "model.yaml").read_text()


def test_ctrl_c_during_the_export_moves_waits_for_them(exported, tmp_path, monkeypatch):
    """A Ctrl-C that arrives while the staged export is moved in takes effect once every file is in: the new
    weights and model.yaml (which holds their md5) together, and no staging directory."""
    import shutil
    import signal

    from argminn_plugin.kipoi_export import export_kipoi, md5sum
    data, run, out = exported
    copy = tmp_path / "kipoi_model"
    shutil.copytree(out, copy)
    old_weights = (copy / "weights.pth").read_bytes()
    other = tmp_path / "other_run"
    assert main(["train", "--data", str(data), "--out", str(other), "--quiet", "--train-set", "max_epochs=1",
                 "--train-set", "seed=8", "--model-set", "n_layers=2", "--model-set", "stream_dim=32"]) == 0
    real_replace, moved = os.replace, []

    def replace(source, target):  # the writers' own atomic renames into the staging directory pass through
        real_replace(source, target)
        if not os.path.relpath(target, copy).startswith(".export-"):
            moved.append(os.path.relpath(target, copy))
            if len(moved) == 1:
                os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in an interactive shell
    try:
        monkeypatch.setattr(os, "replace", replace)
        with pytest.raises(KeyboardInterrupt):
            export_kipoi(str(other / "model.pt"), str(copy), data_dir=str(data), force=True)
        monkeypatch.undo()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(moved) > 2 and moved[-1] == "model.yaml"
    assert (copy / "weights.pth").read_bytes() != old_weights
    assert f"md5 {md5sum(copy / 'weights.pth')}" in (copy / "model.yaml").read_text()
    assert not [p.name for p in copy.iterdir() if p.name.startswith(".export-")]
    # one that arrives as the emptied staging directory is being removed waits for that too
    import argminn_plugin.kipoi_export as kipoi_export
    real_rmtree = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return real_rmtree(path, *args, **kwargs)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        monkeypatch.setattr(kipoi_export.shutil, "rmtree", rmtree)
        with pytest.raises(KeyboardInterrupt):
            export_kipoi(str(run / "model.pt"), str(copy), data_dir=str(data), force=True)
        monkeypatch.undo()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert (copy / "weights.pth").read_bytes() == (out / "weights.pth").read_bytes()  # the new set is in
    assert f"md5 {md5sum(copy / 'weights.pth')}" in (copy / "model.yaml").read_text()
    assert not [p.name for p in copy.iterdir() if p.name.startswith(".export-")]


def test_export_refuses_what_it_would_overwrite_or_misread(exported, tmp_path):
    """Any file an export writes is refused over an existing one without --force (not only model.yaml); a
    metrics.json that is not train's is a one-line error, and a first export that fails leaves no directory; a
    task name with ': ' still gives a model.yaml that YAML reads."""
    import shutil

    import yaml

    data, run, _ = exported
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.py").write_text("# my own code\n")
    assert main(["export-kipoi", "--model", str(run / "model.pt"), "--data", str(data), "--out", str(mine)]) == 2
    assert (mine / "model.py").read_text() == "# my own code\n" and sorted(p.name for p in mine.iterdir()) == \
        ["model.py"]
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    for content in ('{"test": {"auroc": 0.9, "auprc": 0.8}}', '{"test": ',
                    '{"test": {"label": {"auroc": "0.9", "auprc": 0.8}}}'):
        (copy / "metrics.json").write_text(content)
        with pytest.raises(ArgminnError, match=re.escape(f"{copy / 'metrics.json'}: not a readable metrics file")):
            export_kipoi(str(copy / "model.pt"), str(tmp_path / "k"), data_dir=str(data))
        assert not (tmp_path / "k").exists()
    # another model's scores: its tasks, or the model it records, are not this one's
    from argminn_plugin.fileio import model_fingerprint
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["model_fingerprint"] == model_fingerprint(load_model(str(run / "model.pt")))  # model.pt's own
    for changed, text in (({"model_fingerprint": "0" * 64}, "scores another model (its model_fingerprint differs)"),
                          ({"test": {"CTCF": metrics["test"]["label"]}}, "scores tasks 'CTCF' (this model's: "
                                                                          "'label')")):
        (copy / "metrics.json").write_text(json.dumps({**metrics, **changed}))
        with pytest.raises(ArgminnError, match=re.escape(f"{copy / 'metrics.json'}: {text}: another run's, or the "
                                                         f"run's model.pt's if {copy / 'model.pt'} is its last.pt")):
            export_kipoi(str(copy / "model.pt"), str(tmp_path / "k"), data_dir=str(data))
    (copy / "metrics.json").unlink()
    # a failure while writing (an example interval off the genome) leaves none of the directories it made
    off = tmp_path / "off.bed"
    off.write_text("chr3\t0\t10\n")
    assert main(["export-kipoi", "--model", str(run / "model.pt"), "--fasta", str(data / "genome.fa"), "--bed",
                 str(off), "--out", str(tmp_path / "new" / "k")]) == 2
    assert not (tmp_path / "new").exists()
    model = load_model(str(run / "model.pt"))
    model.config = model.config.replace(task_names=("CTCF: K562 #1",))
    from argminn_plugin.train import save_model
    save_model(model, str(copy / "colon.pt"))
    export_kipoi(str(copy / "colon.pt"), str(tmp_path / "k"), data_dir=str(data))
    targets = yaml.safe_load((tmp_path / "k" / "model.yaml").read_text())["schema"]["targets"]
    assert targets["doc"] == "Probability per task, in this order - CTCF: K562 #1"
    assert targets["column_labels"] == ["CTCF: K562 #1"]
    # names past U+FFFF (one YAML escape, not JSON's two surrogate halves), quotes, backslashes and line breaks
    # read back as written
    name, trained_on = "DNA \U0001f9ec \"q\" \\ é", "cells \U0001f9ec\u2028x\n"
    model.config = model.config.replace(task_names=(name,))
    save_model(model, str(copy / "wide.pt"))
    export_kipoi(str(copy / "wide.pt"), str(tmp_path / "w"), data_dir=str(data), trained_on=trained_on)
    spec = yaml.safe_load((tmp_path / "w" / "model.yaml").read_text(encoding="utf-8"))
    assert spec["schema"]["targets"]["column_labels"] == [name] and spec["info"]["trained_on"] == trained_on


def test_export_explainn(exported, tmp_path):
    """An ExplaiNN baseline exports too; the directory's model gives the library's predictions."""
    data = exported[0]
    run, out = tmp_path / "run", tmp_path / "explainn_kipoi"
    assert main(["train", "--architecture", "explainn", "--data", str(data), "--out", str(run), "--quiet",
                 "--train-set", "max_epochs=1", "--model-set", "n_units=4"]) == 0
    assert main(["export-kipoi", "--model", str(run / "model.pt"), "--data", str(data), "--out", str(out)]) == 0
    assert "Baseline ExplaiNN (4 independent units" in (out / "model.yaml").read_text()
    model = load_model(str(run / "model.pt"))
    with h5py.File(out / "downloaded/model_files/test.expect.h5") as handle:
        X = torch.from_numpy(handle["inputs"][:])
        with torch.no_grad():
            assert np.allclose(handle["preds"][:], torch.sigmoid(model(X)).numpy(), atol=1e-6)
    # as Kipoi builds it: the model from config.json, then weights.pth as its state dict
    kipoi_model = KipoiModel(str(out / "config.json"))
    kipoi_model.load_state_dict(torch.load(out / "weights.pth", weights_only=True))
    with torch.no_grad():
        assert torch.allclose(kipoi_model(X), torch.sigmoid(model(X)), atol=1e-6)


def test_export_with_data_of_a_model_wider_than_the_intervals(exported, tmp_path, capsys):
    """--data: a model whose window runs well past the intervals exports the test intervals whose windows lie
    inside the chromosome, with the FASTA cut to the end of the last window; the description says which strands
    the scanner reads."""
    from argminn_plugin import ARGMINN, ModelConfig
    from argminn_plugin.data import open_fasta, read_bed
    from argminn_plugin.train import save_model

    data = exported[0]
    config = ModelConfig(input_length=520, n_filters=2, n_layers=1, stream_dim=16, scan_reverse_complement=False)
    save_model(ARGMINN(config), str(tmp_path / "wide.pt"))
    out = tmp_path / "wide_kipoi"
    assert main(["export-kipoi", "--model", str(tmp_path / "wide.pt"), "--data", str(data), "--out", str(out)]) == 0
    assert "filters of width 10, forward strand only)" in (out / "model.yaml").read_text()
    examples, _ = read_bed(str(out / "example_files/intervals.bed"))
    test, _ = read_bed(str(data / "peaks.bed"), label_columns=True)
    test = test[test["chrom"] == examples["chrom"].iloc[0]]
    size = len(open_fasta(str(data / "genome.fa"))[examples["chrom"].iloc[0]])
    middle = test["start"] + (test["end"] - test["start"]) // 2
    inside = test[(middle - 260 >= 0) & (middle + 260 <= size)]
    assert len(inside) < len(test)  # some test intervals are left out: their windows do not fit
    assert examples["start"].tolist() == inside["start"].head(20).tolist()
    fasta = (out / "example_files/sequences.fa").read_text().splitlines()
    assert len("".join(fasta[1:])) == int(examples["start"].iloc[-1] + 60 + 260)  # to the last window's end
    with h5py.File(out / "downloaded/model_files/test.expect.h5") as handle:
        assert handle["inputs"].shape == (20, 4, 520)
    capsys.readouterr()
    for flags in (["--summits"], ["--skip-outside"], ["--summits", "--skip-outside"]):
        assert main(["export-kipoi", "--model", str(tmp_path / "wide.pt"), "--data", str(data),
                     "--out", str(tmp_path / "x"), *flags]) == 2
        said = capsys.readouterr().err
        assert f"export-kipoi: {' and '.join(flags)} only go" in said and "with --fasta and --bed" in said


def test_export_from_any_fasta_and_bed(exported, tmp_path, capsys):
    """A model trained on real data exports from a FASTA and a BED: each example window is its own FASTA
    record, the dataloader cuts the same windows as the library, and kipoi test passes."""
    data, run, _ = exported
    out = tmp_path / "real_kipoi"
    bed = tmp_path / "held_out.bed"  # intervals wider than the window on one side, and narrow ones
    # and two intervals with one centre (a peak listed once per summit)
    bed.write_text("chr3\t30\t400\tp1\nchr3\t500\t505\tp2\nchr2\t2000\t2121\tp3\nchr3\t501\t504\tp4\n")
    assert main(["export-kipoi", "--model", str(run / "model.pt"), "--fasta", str(data / "genome.fa"),
                 "--bed", str(bed), "--out", str(out), "--trained-on", "my ChIP-seq peaks"]) == 0
    assert 'trained_on: "my ChIP-seq peaks"' in (out / "model.yaml").read_text()
    model = load_model(str(run / "model.pt"))
    expected = load_intervals(str(data / "genome.fa"), str(bed), 120)[0]
    with h5py.File(out / "downloaded/model_files/test.expect.h5") as handle:
        assert np.array_equal(handle["inputs"][:], expected.numpy())
        with torch.no_grad():
            assert np.allclose(handle["preds"][:], torch.sigmoid(model(expected)).numpy(), atol=1e-6)
    records = [line for line in (out / "example_files/sequences.fa").read_text().splitlines() if line[0] == ">"]
    assert records[0] == ">interval0_chr3_155_275" and len(records) == 4
    result = kipoi("test", str(out), "--source", "dir", cwd=tmp_path)
    assert result.returncode == 0 and "All predictions match" in result.stderr + result.stdout, result.stderr[-2000:]
    # a narrowPeak: the example windows on its summits; a peak on a contig the genome lacks left out
    peaks = tmp_path / "held_out.narrowPeak"
    peaks.write_text("chrUn_x\t0\t50\t.\t0\t.\t1\t-1\t-1\t5\n"
                     "chr3\t100\t300\t.\t0\t.\t1\t-1\t-1\t17\nchr2\t2000\t2121\t.\t0\t.\t1\t-1\t-1\t-1\n")
    assert main(["export-kipoi", "--model", str(run / "model.pt"), "--fasta", str(data / "genome.fa"),
                 "--bed", str(peaks), "--summits", "--out", str(tmp_path / "np_kipoi")]) == 2
    assert "chromosome 'chrUn_x' is not in the FASTA" in capsys.readouterr().err
    assert main(["export-kipoi", "--model", str(run / "model.pt"), "--fasta", str(data / "genome.fa"),
                 "--bed", str(peaks), "--summits", "--skip-outside", "--out", str(tmp_path / "np_kipoi")]) == 0
    with h5py.File(tmp_path / "np_kipoi/downloaded/model_files/test.expect.h5") as handle:
        summit_windows = load_intervals(str(data / "genome.fa"), str(peaks), 120, summits=True, skip=True)[0]
        assert np.array_equal(handle["inputs"][:], summit_windows.numpy())
    dl = IntervalDataLoader(str(peaks), str(data / "genome.fa"), 120, summits=True, skip_outside=True)
    assert len(dl) == 2 and np.array_equal(dl[0]["inputs"], summit_windows[0].numpy())
    # ids are the intervals' indices in the file, also where one before them was skipped
    assert [dl[i]["metadata"]["ranges"]["id"] for i in range(len(dl))] == ["1", "2"]
    with pytest.raises(ArgminnError, match='not in the FASTA .*; the dataloader argument "skip_outside": true leaves'):
        IntervalDataLoader(str(peaks), str(data / "genome.fa"), 120, summits=True)  # Kipoi's option, not the CLI's
    # a task named like a YAML keyword stays a string in model.yaml
    import yaml

    from argminn_plugin import ARGMINN
    from argminn_plugin.train import save_model
    save_model(ARGMINN(model.config.replace(task_names=["on"])), str(tmp_path / "on.pt"))
    assert main(["export-kipoi", "--model", str(tmp_path / "on.pt"), "--fasta", str(data / "genome.fa"),
                 "--bed", str(bed), "--out", str(tmp_path / "on_kipoi")]) == 0
    spec = yaml.safe_load((tmp_path / "on_kipoi" / "model.yaml").read_text())
    assert spec["schema"]["targets"]["column_labels"] == ["on"]
    capsys.readouterr()
    for extra in ([], ["--data", str(data), "--fasta", str(data / "genome.fa"), "--bed", str(bed)]):
        assert main(["export-kipoi", "--model", str(run / "model.pt"), "--out", str(tmp_path / "x"), *extra]) == 2
        assert "give the dataset directory (--data), or a FASTA and a BED" in capsys.readouterr().err


def test_kipoi_test_passes_offline(exported, tmp_path):
    result = kipoi("test", str(exported[2]), "--source", "dir", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All predictions match" in result.stderr + result.stdout
    assert "is not listed in the dependencies" not in result.stderr + result.stdout


@pytest.mark.parametrize("suffix", [".tsv", ".h5"])
def test_kipoi_predict_equals_library(exported, tmp_path, suffix):
    data, run, out = exported
    output = tmp_path / ("out" + suffix)
    args = '{"intervals_file": "%s", "fasta_file": "%s"}' % (data / "peaks.bed", data / "genome.fa")
    if suffix == ".h5":  # a narrowPeak moved 10 bp left with its summits 10 bp right of centre: the same windows
        bed = pd.read_csv(data / "peaks.bed", sep="\t", header=None, comment="#")
        peaks = tmp_path / "peaks.narrowPeak"
        peaks.write_text("".join(f"{c}\t{s - 10}\t{e - 10}\t.\t0\t.\t1\t-1\t-1\t{(e - s) // 2 + 10}\n"
                                 for c, s, e in zip(bed[0], bed[1], bed[2])))
        args = '{"intervals_file": "%s", "fasta_file": "%s", "summits": true}' % (peaks, data / "genome.fa")
    result = kipoi("predict", str(out), "--source", "dir", "--dataloader_args", args, "-o", str(output),
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    if suffix == ".tsv":
        preds = pd.read_csv(output, sep="\t").filter(like="preds").to_numpy()
    else:
        with h5py.File(output) as handle:
            preds = handle["preds"][:]
    model = load_model(str(run / "model.pt"))
    X = load_intervals(str(data / "genome.fa"), str(data / "peaks.bed"), 120)[0]
    with torch.no_grad():
        expected = torch.sigmoid(model(X)).numpy()
    assert preds.shape == expected.shape == (420, 1)
    assert np.allclose(preds, expected, atol=1e-5)


def test_export_read_on_both_strands(exported, tmp_path, capsys):
    """export-kipoi --both-strands: Kipoi (kipoi test, kipoi predict, kipoi-veff), argminn predict and a second
    export all read the model as StrandAveraged does, from the same weights; model.yaml quotes the run's
    both-strand test scores."""
    from argminn_plugin.kipoi_veff_bridge import kipoi_veff_scores
    from argminn_plugin.model import StrandAveraged
    from argminn_plugin.train import reads_both_strands
    from argminn_plugin.variants import read_variants, score_variants

    data, run, one_pass = exported
    out = tmp_path / "both"
    assert main(["export-kipoi", "--model", str(run / "model.pt"), "--data", str(data), "--out", str(out),
                 "--both-strands"]) == 0
    assert json.loads((out / "config.json").read_text())["both_strands"] is True
    assert "both_strands" not in json.loads((one_pass / "config.json").read_text())  # one pass: as before
    assert (out / "weights.pth").read_bytes() == (one_pass / "weights.pth").read_bytes()
    assert reads_both_strands(str(out)) and not reads_both_strands(str(one_pass))
    assert not reads_both_strands(str(run / "model.pt"))
    test = json.loads((run / "metrics.json").read_text())["test_both_strands"]["label"]
    doc = (out / "model.yaml").read_text()
    assert "Each window is read twice, as given and reverse-complemented" in doc
    assert (f"Held-out test chromosome, read on both strands: label auROC {test['auroc']:.3f}, auPRC "
            f"{test['auprc']:.3f}." in doc)
    result = kipoi("test", str(out), "--source", "dir", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All predictions match" in result.stderr + result.stdout
    # kipoi predict gives the library's both-strand reading, which is not the one-pass one
    model = load_model(str(run / "model.pt"))
    X = load_intervals(str(data / "genome.fa"), str(data / "test.bed"), 120, label_columns=True)[0]
    with torch.no_grad():
        both, single = torch.sigmoid(StrandAveraged(model)(X)).numpy(), torch.sigmoid(model(X)).numpy()
    assert not np.allclose(both, single, atol=1e-3)
    args = '{"intervals_file": "%s", "fasta_file": "%s"}' % (data / "test.bed", data / "genome.fa")
    result = kipoi("predict", str(out), "--source", "dir", "--dataloader_args", args, "-o", str(tmp_path / "k.tsv"),
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert np.allclose(pd.read_csv(tmp_path / "k.tsv", sep="\t").filter(like="preds").to_numpy(), both, atol=1e-5)
    # argminn predict on the directory reads it so too (said), as --both-strands reads the run's model
    capsys.readouterr()
    for name, flags in (("dir.tsv", ["--model", str(out)]), ("pt.tsv", ["--model", str(run / "model.pt"),
                                                                         "--both-strands"])):
        assert main(["predict", *flags, "--fasta", str(data / "genome.fa"), "--bed", str(data / "test.bed"),
                     "-o", str(tmp_path / name)]) == 0
    assert f"note: {out} is read on both strands, as its config.json says" in capsys.readouterr().err
    assert (tmp_path / "dir.tsv").read_text() == (tmp_path / "pt.tsv").read_text()
    assert np.allclose(pd.read_csv(tmp_path / "dir.tsv", sep="\t")["label"], both[:, 0], atol=1e-5)
    # kipoi-veff runs the directory's model: the both-strand effect of tangermeme's route at kipoi-veff's offset
    inst = pd.read_csv(data / "instances.tsv", sep="\t")
    inst = inst[inst.split == "test"].head(4)
    import pyfaidx
    fasta = pyfaidx.Fasta(str(data / "genome.fa"))
    lines = ["#CHROM\tPOS\tID\tREF\tALT"]
    for r in inst.itertuples():
        ref = str(fasta[r.chrom][r.start + 2:r.start + 3]).upper()
        lines.append(f"{r.chrom}\t{r.start + 3}\tv{r.Index}\t{ref}\t{'ACGT'[('ACGT'.index(ref) + 1) % 4]}")
    vcf = tmp_path / "v.vcf"
    vcf.write_text("\n".join(lines) + "\n")
    kv = kipoi_veff_scores(str(out), str(data / "genome.fa"), str(vcf)).set_index("id")
    tm = score_variants(StrandAveraged(model), read_variants(str(vcf)), str(data / "genome.fa"),
                        offset=120 // 2 - 1).set_index("id").loc[kv.index]
    # argminn variants --model on the directory (tangermeme's route) reads it so too
    for name, flags in (("vdir.tsv", ["--model", str(out)]), ("vpt.tsv", ["--model", str(run / "model.pt"),
                                                                           "--both-strands"])):
        assert main(["variants", *flags, "--fasta", str(data / "genome.fa"), "--variants", str(vcf),
                     "-o", str(tmp_path / name)]) == 0
    assert (tmp_path / "vdir.tsv").read_text() == (tmp_path / "vpt.tsv").read_text()
    assert f"note: {out} is read on both strands" in capsys.readouterr().err
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    assert np.allclose(kv["label_ref"], sig(tm["label_ref"]), atol=1e-6)
    assert np.allclose(kv["label_diff"], sig(tm["label_alt"]) - sig(tm["label_ref"]), atol=1e-6)
    # a run whose both-strand scores are not readable: the error names that key
    broken = tmp_path / "broken_run"
    broken.mkdir()
    shutil.copy(run / "model.pt", broken / "model.pt")
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["test_both_strands"] = {"label": {"auroc": "high"}}
    (broken / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ArgminnError, match=re.escape("not a readable metrics file (its 'test_both_strands' should "
                                                     "map each task to its auroc and auprc")):
        export_kipoi(str(broken / "model.pt"), str(tmp_path / "x"), str(data), both_strands=True)
    # design reads the model in one pass, and says so (here before refusing motifs that are not there)
    assert main(["design", "--model", str(out), "--motifs", str(tmp_path / "none"), "--instances",
                 str(tmp_path / "none"), "--data", str(data), "--out", str(tmp_path / "design")]) == 2
    assert f"note: {out} is read on both strands by Kipoi, predict and variants" in capsys.readouterr().err
    # exporting the directory again keeps its reading; a config.json whose flag is not true/false is named
    assert main(["export-kipoi", "--model", str(out), "--data", str(data), "--out", str(tmp_path / "again")]) == 0
    assert json.loads((tmp_path / "again" / "config.json").read_text())["both_strands"] is True
    # ... unless told: --no-both-strands exports it in one pass (the same weights), as the run's model.pt is
    assert main(["export-kipoi", "--model", str(out), "--data", str(data), "--out", str(tmp_path / "one"),
                 "--no-both-strands"]) == 0
    assert "both_strands" not in json.loads((tmp_path / "one" / "config.json").read_text())
    assert not reads_both_strands(str(tmp_path / "one"))
    assert (tmp_path / "one" / "weights.pth").read_bytes() == (out / "weights.pth").read_bytes()
    assert (tmp_path / "one" / "config.json").read_text() == (one_pass / "config.json").read_text()
    expect = "downloaded/model_files/test.expect.h5"  # Kipoi's expected predictions: the one-pass reading's
    with h5py.File(tmp_path / "one" / expect) as again, h5py.File(one_pass / expect) as first:
        assert np.allclose(again["preds"][:], first["preds"][:], atol=1e-6)
    spec = json.loads((out / "config.json").read_text())
    spec["both_strands"] = "yes"
    (out / "config.json").write_text(json.dumps(spec))
    with pytest.raises(ArgminnError, match=re.escape(f'{out / "config.json"}: "both_strands" (whether the model is '
                                                     "read on both strands; export-kipoi --both-strands writes "
                                                     "true) must be true or false, got 'yes'")):
        KipoiModel(str(out / "config.json"))


def test_dataloader_matches_library_windows(exported):
    data, _, out = exported
    bed = str(out / "example_files" / "intervals.bed")
    fasta = str(out / "example_files" / "sequences.fa")
    dl = IntervalDataLoader(bed, fasta, 120)
    X = load_intervals(fasta, bed, 120)[0].numpy()
    item = dl[3]
    assert item["inputs"].dtype == np.float32 and item["inputs"].shape == (4, 120)
    assert np.array_equal(np.stack([dl[i]["inputs"] for i in range(len(dl))]), X)
    assert item["metadata"]["ranges"]["end"] - item["metadata"]["ranges"]["start"] == 120
    assert [dl[i]["metadata"]["ranges"]["id"] for i in range(3)] == ["0", "1", "2"]
    # made with paths relative to the model directory (as Kipoi makes a dataloader, and its init_example), read
    # after a change of directory: the same windows, from the same FASTA
    here = os.getcwd()
    try:
        os.chdir(out)
        relative = IntervalDataLoader("example_files/intervals.bed", "example_files/sequences.fa", 120)
        os.chdir(data)
        assert np.array_equal(np.stack([relative[i]["inputs"] for i in range(len(relative))]), X)
    finally:
        os.chdir(here)
    for bad in (0, -5, "200", None, True, 1.5):
        with pytest.raises(ArgminnError, match=re.escape(f'"auto_resize_len" (the window length, the model\'s '
                                                         f'input length) must be a positive integer, got {bad!r}')):
            IntervalDataLoader(bed, fasta, bad)
    # kipoi's --dataloader_args key=value passes false on as the text 'false': read as false, not as a true string
    for text, flag in (("false", False), ("False", False), ("true", True)):
        assert len(IntervalDataLoader(bed, fasta, 120, skip_outside=text)) == len(dl)
        assert IntervalDataLoader(bed, fasta, 120, summits=False, skip_outside=text).bed["line"].tolist() == \
            dl.bed["line"].tolist()
        assert _flag("summits", text) is flag
    # ... summits included: 'false' on a plain BED is no narrowPeak
    assert IntervalDataLoader(bed, fasta, 120, summits="false").bed["line"].tolist() == dl.bed["line"].tolist()
    assert _flag("summits", 0) is False and _flag("summits", np.bool_(True)) is True
    for bad in ("no", 2, None):
        with pytest.raises(ArgminnError, match=re.escape(f'the dataloader argument "summits" must be true or false, '
                                                         f'got {bad!r}')):
            IntervalDataLoader(bed, fasta, 120, summits=bad)


def test_dataloader_errors_and_n(tmp_path):
    fasta = tmp_path / "g.fa"
    fasta.write_text(">c1\n" + "ACGTN" * 20 + "\n")
    bed = tmp_path / "r.bed"
    bed.write_text("c1\t0\t10\n")
    item = IntervalDataLoader(str(bed), str(fasta), 10)[0]["inputs"]
    assert item[:, 4].sum() == 0 and item[:, :4].sum() == 4
    bed.write_text("c2\t0\t10\n")
    with pytest.raises(ArgminnError, match="chromosome 'c2' is not in the FASTA"):
        IntervalDataLoader(str(bed), str(fasta), 10)


def test_kipoi_module_outputs_probabilities(exported):
    _, run, out = exported
    model = KipoiModel(str(out / "config.json"))
    model.load_state_dict(torch.load(out / "weights.pth", weights_only=True))
    X = torch.zeros(2, 4, 120)
    X[:, 0] = 1
    ref = load_model(str(run / "model.pt"))
    assert torch.allclose(model(X), torch.sigmoid(ref(X)))


@pytest.mark.skipif(not os.path.exists(os.path.join(SHIPPED, "model.yaml")), reason="no shipped kipoi_model/")
def test_shipped_model_directory(tmp_path):
    """The committed kipoi_model/ passes kipoi test offline and matches the library on its examples; its example
    FASTAs' indexes are committed with them (kipoi test on a read-only checkout cannot build one)."""
    from argminn_plugin.data import open_fasta
    for k, model_dir in enumerate((SHIPPED, os.path.join(SHIPPED, "baseline_cnn"))):
        fasta = os.path.join(model_dir, "example_files", "sequences.fa")
        shutil.copy(fasta, tmp_path / f"{k}.fa")
        open_fasta(str(tmp_path / f"{k}.fa"))
        assert pathlib.Path(fasta + ".fai").read_text() == (tmp_path / f"{k}.fa.fai").read_text()
    result = kipoi("test", SHIPPED, "--source", "dir", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "All predictions match" in result.stderr + result.stdout
    assert "is not listed in the dependencies" not in result.stderr + result.stdout
    model = KipoiModel(os.path.join(SHIPPED, "config.json"))
    model.load_state_dict(torch.load(os.path.join(SHIPPED, "weights.pth"), weights_only=True))
    ex = os.path.join(SHIPPED, "example_files")
    X = load_intervals(os.path.join(ex, "sequences.fa"), os.path.join(ex, "intervals.bed"),
                       model.config.input_length)[0]
    with h5py.File(os.path.join(SHIPPED, "downloaded/model_files/test.expect.h5")) as handle:
        assert np.array_equal(handle["inputs"][:], X.numpy())
        with torch.no_grad():
            assert np.allclose(handle["preds"][:], model(X).numpy(), atol=1e-6)


def test_compare_two_kipoi_models(exported, tmp_path, monkeypatch, capsys):
    """ARGMINN and the CNN baseline, both exported, scored through kipoi predict on the same test BED."""
    from argminn_plugin.compare import compare_models

    data, _, argminn_dir = exported
    run, cnn_dir = tmp_path / "cnn_run", tmp_path / "baseline_cnn"
    assert main(["train", "--architecture", "cnn", "--data", str(data), "--out", str(run), "--quiet",
                 "--train-set", "max_epochs=1", "--model-set", "n_filters=8"]) == 0
    assert main(["export-kipoi", "--model", str(run / "model.pt"), "--data", str(data), "--out", str(cnn_dir)]) == 0
    assert "Baseline standard CNN" in (cnn_dir / "model.yaml").read_text()
    out = tmp_path / "compare.tsv"
    table = compare_models([str(argminn_dir), str(cnn_dir)], str(data / "genome.fa"), str(data / "test.bed"),
                           output=str(out))
    assert table["model"].tolist() == ["kipoi_model", "baseline_cnn"]
    assert (table["n"] == 60).all() and table["auroc"].between(0, 1).all()
    # the ARGMINN row equals the library's own metrics on the same windows
    from argminn_plugin.train import classification_metrics
    model = load_model(str(exported[1] / "model.pt"))
    X, y, _, _ = load_intervals(str(data / "genome.fa"), str(data / "test.bed"), 120, label_columns=True)
    with torch.no_grad():
        m = classification_metrics(y, torch.sigmoid(model(X)))[0]
    assert table.loc[0, "auroc"] == pytest.approx(m["auroc"], abs=1e-6)
    assert pd.read_csv(out, sep="\t").shape == (2, 6)
    # a bad interval is an error naming the user's BED and line, not kipoi's temporary copy
    bad = tmp_path / "bad.bed"
    bad.write_text((data / "test.bed").read_text().splitlines()[0] + "\nchr3\t0\t10\t1\n")
    with pytest.raises(ArgminnError, match=re.escape(f"{bad}: line 2: the 120-bp window chr3:-54-65")) as err:
        compare_models([str(argminn_dir)], str(data / "genome.fa"), str(bad))
    assert str(err.value).endswith("; remove such lines)")  # compare-kipoi has no --skip-outside to name
    # an existing output, or a directory that is no Kipoi model, is refused before any model runs
    import argminn_plugin.compare as compare

    def no_run(*args, **kwargs):
        raise AssertionError("kipoi predict ran")

    monkeypatch.setattr(compare, "kipoi_predict", no_run)
    with pytest.raises(ArgminnError, match=re.escape(f"{out}: output exists; pass --force")):
        compare_models([str(argminn_dir)], str(data / "genome.fa"), str(data / "test.bed"), output=str(out))
    with pytest.raises(ArgminnError, match=re.escape(f"{tmp_path}: not a Kipoi model directory (no model.yaml)")):
        compare_models([str(argminn_dir), str(tmp_path)], str(data / "genome.fa"), str(data / "test.bed"))
    # the BED's tasks are matched to the model's outputs by name (model.yaml column_labels): one it does not
    # have is refused before any model runs
    two = tmp_path / "two.bed"
    lines = (data / "test.bed").read_text().splitlines()
    two.write_text("\n".join([lines[0] + "\tCTCF"] + [line + "\t0" for line in lines[1:]]) + "\n")
    with pytest.raises(ArgminnError, match=re.escape(f"{two}: task column(s) 'CTCF' are not among {argminn_dir}'s "
                                                     "outputs ('label'; model.yaml column_labels); name the BED's "
                                                     "label columns after them, or remove its header")):
        compare_models([str(argminn_dir)], str(data / "genome.fa"), str(two))
    # two directories of one name are told apart by their paths
    for run_name in ("runA", "runB"):
        shutil.copytree(argminn_dir, tmp_path / run_name / "kipoi_model")
    monkeypatch.setattr(compare, "kipoi_predict", lambda *args, **kwargs: np.full((60, 1), 0.5))
    table = compare_models([str(tmp_path / "runA" / "kipoi_model"), str(tmp_path / "runB" / "kipoi_model")],
                           str(data / "genome.fa"), str(data / "test.bed"))
    assert table["model"].tolist() == [str(tmp_path / "runA" / "kipoi_model"), str(tmp_path / "runB" / "kipoi_model")]
    # a prediction that is no number (a broken weight file): an error naming the model and the first BED line
    nan = np.full((60, 1), 0.5)
    nan[3] = np.nan
    monkeypatch.setattr(compare, "kipoi_predict", lambda *args, **kwargs: nan)
    with pytest.raises(ArgminnError, match=re.escape(f"{argminn_dir}: kipoi predict gave 1 prediction(s) that are "
                                                     f"not finite numbers (NaN or infinite; the first for "
                                                     f"{data / 'test.bed'} line 5)")):
        compare_models([str(argminn_dir)], str(data / "genome.fa"), str(data / "test.bed"))
    monkeypatch.setattr(compare, "kipoi_predict", lambda *args, **kwargs: np.full((60, 1), 0.5))
    # a header that names none of a model's outputs (a model named another way): paired by position, said
    renamed = tmp_path / "renamed.bed"
    renamed.write_text((data / "test.bed").read_text().replace("#chrom\tstart\tend\tlabel", "#chrom\tstart\tend\tCTCF"))
    assert compare_models([str(argminn_dir)], str(data / "genome.fa"), str(renamed))["task"].tolist() == ["CTCF"]
    assert "no task column of" in capsys.readouterr().err
    # a BED whose labels are all one class: NaN scores, said on stderr
    ones = tmp_path / "ones.bed"
    ones.write_text("".join(line.rsplit("\t", 1)[0] + "\t1\n" if not line.startswith("#") else line + "\n"
                            for line in (data / "test.bed").read_text().splitlines()))
    assert compare_models([str(argminn_dir)], str(data / "genome.fa"), str(ones))["auroc"].isna().all()
    assert (f"compare-kipoi: task 'label' of {ones} has only label 1: its auROC and auPRC are undefined (NaN)"
            in capsys.readouterr().err)
    # model.yaml names more outputs than the model gives: its tasks cannot be paired by name (was: by position)
    shutil.copytree(argminn_dir, tmp_path / "lying")
    yaml_text = (tmp_path / "lying" / "model.yaml").read_text()
    assert yaml_text.count('      - "label"\n') == 1
    (tmp_path / "lying" / "model.yaml").write_text(yaml_text.replace('      - "label"\n', '      - "X"\n      - "label"\n'))
    with pytest.raises(ArgminnError, match=re.escape("predictions have shape (60, 1), but model.yaml's column_labels "
                                                     "names 2 outputs")):
        compare_models([str(tmp_path / "lying")], str(data / "genome.fa"), str(data / "test.bed"))


def test_compare_reads_kipoi_columns_in_output_order_and_matches_tasks_by_name(tmp_path, capsys):
    """kipoi's TSV writer sorts preds/10 before preds/2; a BED's task columns in another order than the model's
    outputs are paired by name."""
    from argminn_plugin.compare import _label_order, read_predictions

    preds = np.arange(36, dtype=float).reshape(3, 12)
    columns = sorted(f"preds/{t}" for t in range(12))  # as text: preds/0, preds/1, preds/10, preds/11, preds/2, ...
    pd.DataFrame({c: preds[:, int(c.split("/")[1])] for c in columns}).assign(**{"metadata/ranges/id": [0, 1, 2]}) \
        .to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    assert np.array_equal(read_predictions(str(tmp_path / "p.tsv")), preds)
    model = tmp_path / "m"
    model.mkdir()
    (model / "model.yaml").write_text('schema:\n  targets:\n    column_labels:\n      - "A"\n      - "B"\n      - "C"\n')
    assert _label_order(str(model), ["C", "A"], "x.bed") == [2, 0]
    assert _label_order(str(model), ["A", "B", "C"], "x.bed") is None
    assert _label_order(str(model), ["task0", "task1", "task2"], "x.bed", named=False) is None  # no header
    assert not capsys.readouterr().err  # ... paired by position without a note
    # a model whose outputs are named task0, task1, ... (trained on a BED without a header): a header naming
    # some of them is paired by name, these two as well as any other two
    (model / "model.yaml").write_text("schema:\n  targets:\n    column_labels: [task0, task1, task2]\n")
    assert _label_order(str(model), ["task0", "task1"], "x.bed") == [0, 1]
    assert _label_order(str(model), ["task2", "task0"], "x.bed") == [2, 0]
    assert _label_order(str(model), ["task0", "task1", "task2"], "x.bed") is None
    # ... and a BED without a header (read_bed names its columns task0, task1, ...) by position, whatever its count
    assert _label_order(str(model), ["task0"], "x.bed", named=False) is None
    assert _label_order(str(model), ["task0", "task1", "task2", "task3"], "x.bed", named=False) is None
    from argminn_plugin.data import read_bed
    (tmp_path / "bare.bed").write_text("c\t0\t5\t1\t0\n")
    (tmp_path / "named.bed").write_text("#chrom\tstart\tend\ttask1\ttask0\nc\t0\t5\t1\t0\n")
    assert [read_bed(str(tmp_path / b), label_columns=True)[0].attrs["named_tasks"]
            for b in ("bare.bed", "named.bed")] == [False, True]
    (model / "labels.txt").write_text("A\nB\nC\n")  # Kipoi's other form: a file of labels
    (model / "model.yaml").write_text("schema:\n  targets:\n    column_labels: labels.txt\n")
    assert _label_order(str(model), ["B"], "x.bed") == [1]
    (model / "model.yaml").write_text("schema:\n  targets:\n    - name: a\n      shape: (1, )\n")  # a list of arrays
    assert _label_order(str(model), ["B"], "x.bed") is None


def test_kipoi_veff_agrees_with_tangermeme(exported, tmp_path):
    """kipoi-veff on the Kipoi directory == tangermeme's substitution effect on the same windows.

    kipoi-veff puts the variant at index L // 2 - 1 of an even-length window,
    tangermeme's centre is L // 2: with offset=L // 2 - 1 the two are the same
    computation; at the default offset the window is shifted by 1 bp.
    """
    import pyfaidx

    from argminn_plugin.kipoi_veff_bridge import kipoi_veff_scores
    from argminn_plugin.variants import read_variants, score_variants

    data, run, out = exported
    inst = pd.read_csv(data / "instances.tsv", sep="\t")
    inst = inst[inst.split == "test"].head(8)
    fasta = pyfaidx.Fasta(str(data / "genome.fa"))
    lines = ["#CHROM\tPOS\tID\tREF\tALT"]
    for r in inst.itertuples():
        pos = r.start + 3
        ref = str(fasta[r.chrom][pos - 1:pos]).upper()
        lines.append(f"{r.chrom}\t{pos}\tv{r.Index}\t{ref}\t{'ACGT'[('ACGT'.index(ref) + 1) % 4]}")
    # a multi-allelic record (one SNV per allele) and an indel, left out with skip_other
    chrom, pos = lines[1].split("\t")[:2]
    ref = lines[1].split("\t")[3]
    alts = [b for b in "ACGT" if b != ref]
    lines.insert(2, f"{chrom}\t{pos}\tmulti\t{ref}\t{alts[1]},{alts[2]},{ref}TT")
    vcf = tmp_path / "v.vcf"
    vcf.write_text("\n".join(lines) + "\n")
    kv = kipoi_veff_scores(str(out), str(data / "genome.fa"), str(vcf), skip_other=True).set_index("id")
    assert kv.attrs["skipped"] == 1
    lines[2:3] = [f"{chrom}\t{pos}\tmulti_{a}\t{ref}\t{a}" for a in alts[1:]]  # as split
    model = load_model(str(run / "model.pt"))
    tm = score_variants(model, read_variants(str(vcf), skip_other=True), str(data / "genome.fa"),
                        offset=120 // 2 - 1).set_index("id")
    tm = tm.loc[kv.index]
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    assert np.allclose(kv["label_ref"], sig(tm["label_ref"]), atol=1e-6)
    assert np.allclose(kv["label_diff"], sig(tm["label_alt"]) - sig(tm["label_ref"]), atol=1e-6)
    assert list(kv.index) == [line.split("\t")[2] for line in lines[1:]]  # the input's order
    # records out of genome order come back in the input's order too (kipoi-veff needs a sorted VCF)
    backwards = tmp_path / "backwards.vcf"
    backwards.write_text("\n".join([lines[0], *lines[:0:-1]]) + "\n")
    assert list(kipoi_veff_scores(str(out), str(data / "genome.fa"), str(backwards))["id"]) == [
        line.split("\t")[2] for line in lines[:0:-1]]
    # flags of the tangermeme route are refused on this one, not ignored
    for flags in (["--offset", "3"], ["--motifs", str(tmp_path)], ["--model", str(run / "model.pt")]):
        assert main(["variants", "--kipoi-model", str(out), *flags, "--fasta", str(data / "genome.fa"),
                     "--variants", str(vcf), "-o", str(tmp_path / "o.tsv")]) == 2
    assert not (tmp_path / "o.tsv").exists()
    # the user's file is checked as on the tangermeme route: a wrong REF is an error naming its line
    bad = tmp_path / "wrong_ref.vcf"
    ref = lines[2].split("\t")[3]
    wrong_ref = "ACGT"[("ACGT".index(ref) + 2) % 4]
    fields = lines[2].split("\t")
    bad.write_text("\n".join(lines[:2] + ["\t".join(fields[:3] + [wrong_ref] + [ref])]) + "\n")
    with pytest.raises(ArgminnError, match=re.escape(f"{bad}: line 3: REF {wrong_ref} does not match the genome")):
        kipoi_veff_scores(str(out), str(data / "genome.fa"), str(bad))
    # a window past the chromosome's start: the error names this function's own way to leave it out
    edge = tmp_path / "edge.vcf"
    first = str(fasta["chr3"][9:10]).upper()
    edge.write_text(f"{lines[0]}\nchr3\t10\tedge\t{first}\t{'ACGT'[('ACGT'.index(first) + 1) % 4]}\n")
    with pytest.raises(ArgminnError, match=re.escape(f"{edge}: line 2: the 120-bp window chr3:-49-70 of this line "
                                                     "runs past") + r".*--skip-outside \(in Python, "
                                                     r"skip_outside=True\) leaves such lines out"):
        kipoi_veff_scores(str(out), str(data / "genome.fa"), str(edge))
    # a directory without model.yaml, or with one that is not YAML, is a one-line error naming it
    with pytest.raises(ArgminnError, match=re.escape(f"{tmp_path}: not a Kipoi model directory (no model.yaml)")):
        kipoi_veff_scores(str(tmp_path), str(data / "genome.fa"), str(vcf))
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "model.yaml").write_text("a: [\n")
    with pytest.raises(ArgminnError, match=re.escape(f"{broken / 'model.yaml'}: not readable as YAML (ParserError")):
        kipoi_veff_scores(str(broken), str(data / "genome.fa"), str(vcf))
    (broken / "model.yaml").write_bytes(b"\xff\xfe: 1\n")
    with pytest.raises(ArgminnError, match="not readable as YAML \\(UnicodeDecodeError"):
        kipoi_veff_scores(str(broken), str(data / "genome.fa"), str(vcf))
    # a Kipoi model not written by argminn (its model has no config naming the input length): one line
    foreign = tmp_path / "foreign"
    shutil.copytree(out, foreign)
    (foreign / "model.py").write_text(
        "import torch\n\n\nclass Model(torch.nn.Module):\n    def __init__(self, config_path=None):\n"
        "        super().__init__()\n        self.linear = torch.nn.Linear(4 * 120, 1)\n\n"
        "    def forward(self, x):\n        return torch.sigmoid(self.linear(x.flatten(1)))\n")
    torch.save({"linear.weight": torch.zeros(1, 480), "linear.bias": torch.zeros(1)}, foreign / "weights.pth")
    with pytest.raises(ArgminnError, match=re.escape(f"{foreign}: its model does not name its input length")):
        kipoi_veff_scores(str(foreign), str(data / "genome.fa"), str(vcf), skip_other=True)
    # a damaged or missing weights file: one line naming the directory, not Kipoi's traceback
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    (damaged / "weights.pth").write_bytes((out / "weights.pth").read_bytes()[:1000])
    with pytest.raises(ArgminnError, match=re.escape(f"{damaged}: Kipoi could not load this model directory (")):
        kipoi_veff_scores(str(damaged), str(data / "genome.fa"), str(vcf), skip_other=True)
    (damaged / "weights.pth").unlink()
    with pytest.raises(ArgminnError, match=re.escape(f"{damaged}: Kipoi could not load this model directory (")
                       + ".*weights.pth"):
        kipoi_veff_scores(str(damaged), str(data / "genome.fa"), str(vcf), skip_other=True)


def test_kipoi_veff_leaves_no_file_in_the_temporary_directory(exported, tmp_path, monkeypatch):
    """kipoi-veff writes a file of its own with tempfile.mktemp and never removes it; the bridge has it written
    in a directory of its own, removed with it, through kipoi-veff's module alone (the process's tempfile
    untouched, also when scoring fails)."""
    import tempfile

    import pyfaidx
    from kipoi_veff import snv_predict

    from argminn_plugin.kipoi_veff_bridge import kipoi_veff_scores

    data, _, out = exported
    system_tmp = tmp_path / "tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    inst = pd.read_csv(data / "instances.tsv", sep="\t")
    r = next(inst[inst.split == "test"].itertuples())
    pos = r.start + 3
    ref = str(pyfaidx.Fasta(str(data / "genome.fa"))[r.chrom][pos - 1:pos]).upper()
    vcf = tmp_path / "v.vcf"
    vcf.write_text(f"#CHROM\tPOS\tID\tREF\tALT\n{r.chrom}\t{pos}\tv\t{ref}\t{'ACGT'[('ACGT'.index(ref) + 1) % 4]}\n")
    seen = []
    real_score = snv_predict.score_variants

    def spy(*args, **kwargs):  # what the process and kipoi-veff's module see while the bridge scores
        seen.append((tempfile.gettempdir(), os.path.dirname(snv_predict.tempfile.mktemp())))
        return real_score(*args, **kwargs)

    monkeypatch.setattr("kipoi_veff.score_variants", spy)
    assert len(kipoi_veff_scores(str(out), str(data / "genome.fa"), str(vcf))) == 1
    assert os.listdir(system_tmp) == [] and snv_predict.tempfile is tempfile
    assert seen[0][0] == str(system_tmp) and seen[0][1] != str(system_tmp)

    def fails(*args, **kwargs):
        raise RuntimeError("kipoi-veff failed")

    monkeypatch.setattr("kipoi_veff.score_variants", fails)
    with pytest.raises(RuntimeError, match="kipoi-veff failed"):
        kipoi_veff_scores(str(out), str(data / "genome.fa"), str(vcf))
    assert snv_predict.tempfile is tempfile  # put back on an error too


def test_kipoi_model_names_a_bad_config_file(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(ArgminnError, match=re.escape(f"{bad}: not a readable JSON config")):
        KipoiModel(str(bad))
    with pytest.raises(ArgminnError, match=re.escape(f"{tmp_path}: not a readable JSON config")):
        KipoiModel(str(tmp_path))
    bad.write_text("[1, 2]")
    with pytest.raises(ArgminnError, match=re.escape(f"{bad}: not a readable JSON config (a JSON object is expected")):
        KipoiModel(str(bad))
    bad.write_text('{"architecture": "ARGMINN"}')
    with pytest.raises(ArgminnError, match="expected {\"architecture\": ..., \"config\""):
        KipoiModel(str(bad))


@pytest.mark.skipif(not os.path.exists(os.path.join(SHIPPED, "model.yaml")), reason="no shipped kipoi_model/")
def test_load_model_reads_a_kipoi_directory_and_names_what_it_cannot_read(tmp_path, capsys):
    """A Kipoi model directory (config.json + weights.pth, as export-kipoi writes) is a model for load_model and
    every --model: the same outputs as Kipoi's KipoiModel. Its weights.pth alone, a state_dict or a model
    pickled whole (torch.save(model)) are refused with the way to a readable file."""
    from argminn_plugin.train import save_model

    X = torch.from_numpy(np.eye(4, dtype=np.float32)[np.random.default_rng(0).integers(0, 4, (5, 200))]).transpose(1, 2)
    for directory in (SHIPPED, os.path.join(SHIPPED, "baseline_cnn")):
        model = load_model(directory)
        kipoi_model = KipoiModel(os.path.join(directory, "config.json"))
        kipoi_model.load_state_dict(torch.load(os.path.join(directory, "weights.pth"), weights_only=True))
        with torch.no_grad():
            assert torch.equal(torch.sigmoid(model(X)), kipoi_model(X))
        assert not model.training
    bed = os.path.join(SHIPPED, "example_files", "intervals.bed")
    fasta = os.path.join(SHIPPED, "example_files", "sequences.fa")
    assert main(["predict", "--model", SHIPPED, "--fasta", fasta, "--bed", bed, "-o", str(tmp_path / "p.tsv")]) == 0
    save_model(load_model(SHIPPED), str(tmp_path / "model.pt"))
    assert main(["predict", "--model", str(tmp_path / "model.pt"), "--fasta", fasta, "--bed", bed,
                 "-o", str(tmp_path / "q.tsv")]) == 0
    assert (tmp_path / "p.tsv").read_text() == (tmp_path / "q.tsv").read_text()
    capsys.readouterr()
    with pytest.raises(ArgminnError, match=r"weights.pth: a bare state_dict .*give the Kipoi model directory it "
                                           r"belongs to .*save_model\(model, path\)"):
        load_model(os.path.join(SHIPPED, "weights.pth"))
    model = load_model(SHIPPED)
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ArgminnError, match="sd.pt: a bare state_dict"):
        load_model(str(tmp_path / "sd.pt"))
    torch.save(model, tmp_path / "whole.pt")
    with pytest.raises(ArgminnError, match=r"whole.pt: not a valid ARGMINN model file .*a model saved whole "
                                           r"\(torch.save\(model\)\) is not loaded.*save_model\(model, path\)"):
        load_model(str(tmp_path / "whole.pt"))
    with pytest.raises(ArgminnError, match=r"example_files: is a directory; give the model file in it .* or a Kipoi "
                                           r"model directory \(config.json and weights.pth\)"):
        load_model(os.path.join(SHIPPED, "example_files"))
    broken = tmp_path / "broken"
    shutil.copytree(SHIPPED, broken, ignore=shutil.ignore_patterns("baseline_cnn", "downloaded", "example_files"))
    (broken / "config.json").write_text('{"architecture": "argminn"}')
    with pytest.raises(ArgminnError, match=r"config.json: expected \{\"architecture\": ..., \"config\""):
        load_model(str(broken))
    (broken / "config.json").write_text(json.dumps({"architecture": "argminn", "config": {"n_filters": 4}}))
    with pytest.raises(ArgminnError, match="weights.pth: weights do not fit the model config"):
        load_model(str(broken))
    torch.save({"format": "argminn-model"}, broken / "weights.pth")
    with pytest.raises(ArgminnError, match="weights.pth: not a state_dict"):
        load_model(str(broken))


@pytest.mark.skipif(not os.path.exists(os.path.join(SHIPPED, "model.yaml")), reason="no shipped kipoi_model/")
def test_export_kipoi_from_a_kipoi_directory_reads_no_metrics_beside_it(tmp_path):
    """A Kipoi model directory given as export-kipoi's model has no training run beside it: a metrics.json in
    the directory above (another model's here) is not read as its scores. The export holds the same model."""
    copy = tmp_path / "shipped"
    shutil.copytree(SHIPPED, copy, ignore=shutil.ignore_patterns("baseline_cnn", "downloaded"))
    (tmp_path / "metrics.json").write_text(json.dumps({"model_fingerprint": "0" * 64, "test": {
        "label": {"auroc": 0.5, "auprc": 0.5}}}))
    examples = copy / "example_files"
    export_kipoi(str(copy), str(tmp_path / "again"), None, n_examples=4, fasta=str(examples / "sequences.fa"),
                 bed=str(examples / "intervals.bed"))
    assert "auROC 0.5" not in (tmp_path / "again" / "model.yaml").read_text()
    X = torch.from_numpy(np.eye(4, dtype=np.float32)[np.random.default_rng(1).integers(0, 4, (3, 200))])
    X = X.transpose(1, 2)
    with torch.no_grad():
        assert torch.equal(load_model(str(tmp_path / "again"))(X), load_model(SHIPPED)(X))
