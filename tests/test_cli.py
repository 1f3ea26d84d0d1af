import io
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from argminn_plugin import ArgminnError
from argminn_plugin.cli import main
from argminn_plugin.train import load_model, safe_load_torch

SMALL_MODEL = ["--model-set", "n_filters=4", "--model-set", "n_layers=2", "--model-set", "stream_dim=32",
               "--model-set", "head_dim=8", "--model-set", "n_heads=2"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "data"
    assert main(["simulate", "--out", str(out), "--set", "n_train=400", "--set", "n_valid=100",
                 "--set", "n_test=100", "--set", "length=100", "--set", "spacing=15"]) == 0
    return out


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--data", str(dataset), "--out", str(run), "--quiet", "--train-set", "max_epochs=2",
                 *SMALL_MODEL]) == 0
    return run


def test_train_writes_run(trained, dataset):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert 0 <= metrics["test"]["label"]["auroc"] <= 1
    # each split's scores read on both strands too (predict --both-strands)
    from argminn_plugin import StrandAveraged
    from argminn_plugin.cli import _labelled_splits, build_parser
    from argminn_plugin.train import classification_metrics, evaluate

    splits, _ = _labelled_splits(build_parser().parse_args(["train", "--data", str(dataset), "--out", "x"]), 100)
    model = load_model(str(trained / "model.pt"))
    for split in ("valid", "test"):
        X, y, _ = splits[split]
        both = classification_metrics(y, evaluate(StrandAveraged(model), X, y)[1])[0]
        assert metrics[f"{split}_both_strands"]["label"] == pytest.approx(both)
        assert metrics[f"{split}_both_strands"]["label"]["auroc"] != metrics[split]["label"]["auroc"]
    history = json.loads((trained / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    state = safe_load_torch(str(trained / "last.pt"))
    assert state["epoch"] == 1 and "optimizer" in state
    model = load_model(str(trained / "model.pt"))
    assert model.config.task_names == ("label",) and model.config.input_length == 100


def test_metrics_name_the_epoch_model_pt_holds(dataset, tmp_path, monkeypatch):
    """With warm-ups, an early epoch with the lowest validation loss is not the model kept: metrics.json
    names the epoch that is (the first at full weight here, validation getting worse throughout)."""
    import argminn_plugin.train as train_module

    real, losses = train_module._evaluate_sharded, iter([0.1, 0.2, 0.3, 0.4])

    def worsening(*args, **kwargs):
        return next(losses), real(*args, **kwargs)[1]

    monkeypatch.setattr(train_module, "_evaluate_sharded", worsening)
    run = tmp_path / "run"
    assert main(["train", "--data", str(dataset), "--out", str(run), "--quiet", "--train-set", "max_epochs=4",
                 "--train-set", "overlap_warmup=2", "--train-set", "overlap_ramp=1", *SMALL_MODEL]) == 0
    assert json.loads((run / "metrics.json").read_text())["best_epoch"] == 4
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history if h.get("best")] == [1, 2, 3, 4]


def test_predict_matches_library(dataset, trained, tmp_path):
    from argminn_plugin.predict import predict_intervals

    out = tmp_path / "pred.tsv"
    assert main(["predict", "--model", str(trained / "model.pt"), "--fasta", str(dataset / "genome.fa"),
                 "--bed", str(dataset / "peaks.bed"), "-o", str(out)]) == 0
    table = pd.read_csv(out, sep="\t")
    assert list(table.columns) == ["chrom", "start", "end", "label", "label_logit"]
    assert len(table) == 600
    model = load_model(str(trained / "model.pt"))
    _, logits = predict_intervals(model, str(dataset / "genome.fa"), str(dataset / "peaks.bed"))
    assert torch.allclose(torch.tensor(table["label_logit"].values, dtype=torch.float32), logits[:, 0], atol=1e-4)
    assert torch.allclose(torch.tensor(table["label"].values), torch.sigmoid(logits[:, 0]).double(), atol=1e-5)
    # no silent overwrite
    assert main(["predict", "--model", str(trained / "model.pt"), "--fasta", str(dataset / "genome.fa"),
                 "--bed", str(dataset / "peaks.bed"), "-o", str(out)]) == 2
    # a very negative logit is written as probability 0, with no overflow warning
    import warnings

    from argminn_plugin.predict import write_predictions
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_predictions(str(tmp_path / "low.tsv"), pd.DataFrame({"chrom": ["c"], "start": [0], "end": [5]}),
                          torch.tensor([[-100.0, 100.0]]), ["a", "b"])
    assert (tmp_path / "low.tsv").read_text().splitlines()[1] == "c\t0\t5\t0\t-100\t1\t100"
    write_predictions(str(tmp_path / "view.tsv"), pd.DataFrame({"chrom": ["c"], "start": [0], "end": [5]}),
                      np.array([[100.0, -100.0]], dtype=np.float32)[:, ::-1], ["a", "b"])  # a view (negative stride)
    assert (tmp_path / "view.tsv").read_text() == (tmp_path / "low.tsv").read_text()
    # task names (a model named in Python) that would give two columns one name are refused, nothing written
    for names, repeated in ((["a", "a_logit"], "'a_logit'"), (["start", "b"], "'start'")):
        with pytest.raises(ArgminnError, match=re.escape(f"would name two columns {repeated}")):
            write_predictions(str(tmp_path / "two.tsv"), pd.DataFrame({"chrom": ["c"], "start": [0], "end": [5]}),
                              torch.tensor([[1.0, 2.0]]), names)
        assert not (tmp_path / "two.tsv").exists()


def test_predict_and_variants_read_on_both_strands(dataset, trained, tmp_path):
    """--both-strands: each window's logits are the mean of the model's for it and for its reverse complement
    (model.StrandAveraged), for predict and for variant effects (ref and alt windows alike)."""
    import pyfaidx

    from argminn_plugin import StrandAveraged
    from argminn_plugin.predict import predict_intervals
    from argminn_plugin.variants import read_variants, score_variants

    fasta, bed = str(dataset / "genome.fa"), str(dataset / "peaks.bed")
    run = ["predict", "--model", str(trained / "model.pt"), "--fasta", fasta, "--bed", bed]
    assert main(run + ["-o", str(tmp_path / "one.tsv")]) == 0
    assert main(run + ["-o", str(tmp_path / "both.tsv"), "--both-strands"]) == 0
    one, both = (pd.read_csv(tmp_path / f"{name}.tsv", sep="\t") for name in ("one", "both"))
    model = load_model(str(trained / "model.pt"))
    _, logits = predict_intervals(StrandAveraged(model), fasta, bed)
    assert torch.allclose(torch.tensor(both["label_logit"].values, dtype=torch.float32), logits[:, 0], atol=1e-4)
    assert (both["label_logit"] - one["label_logit"]).abs().max() > 1e-3  # (a model trained briefly)
    assert both[["chrom", "start", "end"]].equals(one[["chrom", "start", "end"]])

    ref = str(pyfaidx.Fasta(fasta)["chr3"][999:1000]).upper()
    vcf = tmp_path / "v.vcf"
    vcf.write_text(f"#CHROM\tPOS\tID\tREF\tALT\nchr3\t1000\trsX\t{ref}\t{'A' if ref != 'A' else 'C'}\n")
    assert main(["variants", "--model", str(trained / "model.pt"), "--fasta", fasta, "--variants", str(vcf),
                 "--both-strands", "-o", str(tmp_path / "v.tsv")]) == 0
    table = pd.read_csv(tmp_path / "v.tsv", sep="\t")
    expected = score_variants(StrandAveraged(model), read_variants(str(vcf)), fasta)
    for column in ("label_ref", "label_alt"):  # written to 6 significant digits
        assert table.loc[0, column] == pytest.approx(float(expected.loc[0, column]), abs=2e-6)
    one_strand = score_variants(model, read_variants(str(vcf)), fasta)
    assert abs(float(one_strand.loc[0, "label_ref"]) - table.loc[0, "label_ref"]) > 2e-5  # (a model trained briefly)


def test_predict_keeps_the_beds_interval_names(dataset, trained, tmp_path):
    """A BED's fourth column is the intervals' name (BED's rule): predict writes it after end, unless a header
    names that column otherwise (argminn's labelled BED: a label)."""
    lines = [line.split("\t") for line in (dataset / "peaks.bed").read_text().splitlines() if not line.startswith("#")]
    rows = [f"{c}\t{s}\t{e}\tpeak{i}" for i, (c, s, e, *_) in enumerate(lines[:5])]
    for header, named in (("", True), ("#chrom\tstart\tend\tName\n", True), ("#chrom\tstart\tend\n", True),
                          ("#chrom\tstart\tend\tscore\n", False)):
        bed, out = tmp_path / "named.bed", tmp_path / "named.tsv"
        bed.write_text(header + "\n".join(rows) + "\n")
        assert main(["predict", "--model", str(trained / "model.pt"), "--fasta", str(dataset / "genome.fa"),
                     "--bed", str(bed), "-o", str(out), "--force"]) == 0
        table = pd.read_csv(out, sep="\t", dtype={"name": str})
        assert list(table.columns) == ["chrom", "start", "end"] + (["name"] if named else []) + ["label", "label_logit"]
        if named:
            assert table["name"].tolist() == [f"peak{i}" for i in range(5)]
        assert table[["chrom", "start", "end"]].astype(str).values.tolist() == [r[:3] for r in lines[:5]]


def test_motifs_command(dataset, trained, tmp_path, capsys):
    out = tmp_path / "motifs"
    assert main(["motifs", "--model", str(trained / "model.pt"), "--data", str(dataset), "--out", str(out),
                 "--planted", str(dataset / "simulation.json")]) == 0
    for name in ("motifs.meme", "motifs.tsv", "tomtom.tsv", "logos.png", "report.json"):
        assert (out / name).stat().st_size > 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["planted"]) == {"MA0114.5", "MA0047.4"}
    # a file that is not a simulation.json with planted IDs: a one-line error before any output is written
    for text, message in (("{}", "no planted motif IDs (config.motif_ids)"), ("{oops", "not a readable simulation.json")):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        assert main(["motifs", "--model", str(trained / "model.pt"), "--data", str(dataset),
                     "--out", str(tmp_path / "bad_out"), "--planted", str(bad)]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "bad_out").exists()
    table = pd.read_csv(out / "motifs.tsv", sep="\t")
    assert len(table) == 4 and report["n_active"] == int(table["active"].sum())
    # instances on a split with nothing planted, or with no positive: one line naming the split, nothing written
    import shutil
    bare = tmp_path / "bare"
    shutil.copytree(dataset, bare)
    planted = pd.read_csv(bare / "instances.tsv", sep="\t")
    planted[planted["split"] != "valid"].to_csv(bare / "instances.tsv", sep="\t", index=False)
    peaks = (bare / "peaks.bed").read_text().splitlines()
    (bare / "peaks.bed").write_text("\n".join(line if not line.startswith("chr3\t") else line[:-1] + "0"
                                             for line in peaks) + "\n")
    for split, extra, message in (("valid", [], "no planted motif instance inside the model's 100-bp windows of the 100 sequence(s) of the "
                                   "valid split"),
                                  ("test", ["--positives"], "the test split has no positive of task 'label'")):
        assert main(["instances", "--model", str(trained / "model.pt"), "--motifs", str(out), "--data", str(bare),
                     "--split", split, *extra, "--out", str(tmp_path / "calls")]) == 2
        assert f"{bare}: {message}" in capsys.readouterr().err and not (tmp_path / "calls").exists()


def test_interrupted_commands_leave_no_part_of_their_outputs_and_motifs_name_their_model(
        dataset, trained, tmp_path, capsys, monkeypatch):
    """An interrupt while a command writes its several outputs leaves none of them (a re-run is not refused
    for a partial set), or the earlier complete set with --force; motifs read from another model are refused."""
    from argminn_plugin import report

    model = str(trained / "model.pt")
    out = tmp_path / "motifs"
    command = ["motifs", "--model", model, "--data", str(dataset), "--out", str(out)]
    real_save_logos = report.save_logos

    def interrupted(*args, **kwargs):  # after motifs.meme is written, as a Ctrl-C during the logos
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "save_logos", interrupted)
    assert main(command) == 130
    assert "argminn: interrupted" in capsys.readouterr().err
    assert os.listdir(out) == []  # not motifs.meme alone, and no staged file left
    monkeypatch.setattr(report, "save_logos", real_save_logos)
    assert main(command) == 0
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    assert sorted(before) == ["logos.png", "motifs.meme", "motifs.tsv", "report.json", "tomtom.tsv"]
    assert (out / "motifs.meme").stat().st_mode & 0o777 == (out / "motifs.tsv").stat().st_mode & 0o777
    monkeypatch.setattr(report, "save_logos", interrupted)
    assert main([*command, "--force"]) == 130
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
    monkeypatch.setattr(report, "save_logos", real_save_logos)
    capsys.readouterr()

    # motifs of another model: refused by the commands that read them, before any work
    other = tmp_path / "other"
    assert main(["train", "--data", str(dataset), "--out", str(other), "--quiet", "--train-set", "max_epochs=1",
                 "--train-set", "seed=7", *SMALL_MODEL]) == 0
    capsys.readouterr()
    assert main(["instances", "--model", model, "--motifs", str(out), "--data", str(dataset),
                 "--out", str(tmp_path / "inst")]) == 0
    assert json.loads(capsys.readouterr().out)["head_weights"].startswith(f"from {out}/report.json")
    assert main(["instances", "--model", model, "--motifs", str(out), "--data", str(dataset),
                 "--out", str(tmp_path / "inst_called"), "--head-weights", "called"]) == 0
    assert json.loads(capsys.readouterr().out)["head_weights"] == "over the sequences called"
    for argv in (["instances", "--model", str(other / "model.pt"), "--motifs", str(out), "--data", str(dataset),
                  "--out", str(tmp_path / "inst2")],
                 ["design", "--model", str(other / "model.pt"), "--motifs", str(out), "--instances",
                  str(tmp_path / "inst"), "--data", str(dataset), "--out", str(tmp_path / "design")]):
        assert main(argv) == 2
        assert "these motifs were read from another model than the one given" in capsys.readouterr().err
    assert not (tmp_path / "inst2").exists() and not (tmp_path / "design").exists()
    from argminn_plugin import variants

    def scored(*args, **kwargs):
        raise AssertionError("variants scored before the motifs were checked")

    monkeypatch.setattr(variants, "score_variants", scored)
    vcf = tmp_path / "v.vcf"
    vcf.write_text("#CHROM\tPOS\tID\tREF\tALT\nchr3\t50\t.\tA\tC\n")
    assert main(["variants", "--model", str(other / "model.pt"), "--motifs", str(out), "--fasta",
                 str(dataset / "genome.fa"), "--variants", str(vcf), "-o", str(tmp_path / "v.tsv")]) == 2
    assert "these motifs were read from another model than the one given" in capsys.readouterr().err


def test_an_interrupt_inside_compiled_code_is_reported_as_an_interrupt(tmp_path, capsys, monkeypatch):
    """Ctrl-C inside numba-compiled code (memelite's TOMTOM) reaches Python as a SystemError raised from the
    KeyboardInterrupt: reported as an interrupt, not a traceback; any other SystemError still propagates."""
    from argminn_plugin import cli

    def interrupted_in_numba(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise SystemError("CPUDispatcher(<function _tomtom>) returned a result with an exception set") from exc

    monkeypatch.setattr(cli, "cmd_simulate", interrupted_in_numba)
    assert main(["simulate", "--out", str(tmp_path / "s")]) == 130
    assert capsys.readouterr().err == "argminn: interrupted\n"

    def broken(args):
        raise SystemError("something else")

    monkeypatch.setattr(cli, "cmd_simulate", broken)
    with pytest.raises(SystemError, match="something else"):
        main(["simulate", "--out", str(tmp_path / "s")])


def test_train_and_predict_from_bpnet_lite_peaks_and_negatives(dataset, tmp_path, capsys):
    """bpnet-lite's inputs: a narrowPeak of peaks (windows on the summits) and a gzipped BED of negatives
    give the same labelled windows as the dataset's labelled BED; train and predict read them."""
    import gzip

    from argminn_plugin.data import load_peaks, load_splits

    labelled = pd.read_csv(dataset / "peaks.bed", sep="\t")
    labelled.columns = ["chrom", "start", "end", "label"]
    pos, neg = labelled[labelled["label"] == 1], labelled[labelled["label"] == 0]
    peaks = tmp_path / "pos.narrowPeak"  # summits 10 bp right of a centre moved 10 bp left: the same windows
    with open(peaks, "w") as handle:
        for chrom, start, end in zip(pos["chrom"], pos["start"], pos["end"]):
            handle.write(f"{chrom}\t{start - 10}\t{end - 10}\tpeak\t0\t.\t5\t-1\t-1\t{(end - start) // 2 + 10}\n")
    negatives = tmp_path / "neg.bed.gz"
    negatives.write_bytes(gzip.compress(neg[["chrom", "start", "end"]].to_csv(sep="\t", header=False,
                                                                              index=False).encode()))
    genome = str(dataset / "genome.fa")
    ours, names = load_peaks(genome, str(peaks), str(negatives), 100, ["chr2"], ["chr3"], summits=True)
    theirs, _ = load_splits(genome, str(dataset / "peaks.bed"), 100, ["chr2"], ["chr3"])
    assert names == ["pos"]
    assert load_peaks(genome, str(peaks), str(negatives), 100, ["chr2"], ["chr3"], summits=True,
                      task_name="CTCF")[1] == ["CTCF"]
    for split in ("train", "valid", "test"):
        (X, y, bed), (X2, y2, bed2) = ours[split], theirs[split]
        order, order2 = (torch.tensor(b.sort_values(["chrom", "start"]).index) for b in (bed, bed2))
        assert len(X) == len(X2) > 0 and torch.equal(X[order], X2[order2]) and torch.equal(y[order], y2[order2])
    run = tmp_path / "run"
    assert main(["train", "--fasta", genome, "--peaks", str(peaks), "--negatives", str(negatives), "--summits",
                 "--out", str(run), "--quiet", "--train-set", "max_epochs=1", "--model-set", "input_length=100",
                 *SMALL_MODEL]) == 0
    assert list(json.loads((run / "metrics.json").read_text())["valid"]) == ["pos"]
    out = tmp_path / "pred.tsv"
    assert main(["predict", "--model", str(run / "model.pt"), "--fasta", genome, "--bed", str(peaks), "--summits",
                 "-o", str(out)]) == 0
    table = pd.read_csv(out, sep="\t")
    with open(peaks, "a") as handle:  # a peak on a contig the genome lacks: refused, or left out
        handle.write("chrUn_x\t0\t50\tpeak\t0\t.\t5\t-1\t-1\t25\n")
    predict = ["predict", "--model", str(run / "model.pt"), "--fasta", genome, "--bed", str(peaks), "--summits"]
    capsys.readouterr()
    assert main([*predict, "-o", str(tmp_path / "p2.tsv")]) == 2
    assert f"line {len(pos) + 1}: chromosome 'chrUn_x' is not in the FASTA" in capsys.readouterr().err
    assert main([*predict, "-o", str(tmp_path / "p2.tsv"), "--skip-outside"]) == 0
    assert "left out 1 of" in capsys.readouterr().err
    assert pd.read_csv(tmp_path / "p2.tsv", sep="\t").equals(table)
    assert list(table.columns) == ["chrom", "start", "end", "name", "summit", "pos", "pos_logit"]
    assert table["start"].tolist() == (pos["start"] - 10).tolist()  # the file's own coordinates and summits
    assert set(table["summit"]) == {60}
    model = load_model(str(run / "model.pt"))
    with torch.no_grad():
        logits = model(torch.cat([ours[s][0][ours[s][1][:, 0] == 1] for s in ("train", "valid", "test")]))
    assert torch.allclose(torch.tensor(sorted(table["pos_logit"])), logits[:, 0].sort().values, atol=1e-4)


def test_device_option_reaches_the_model_and_a_device_this_machine_lacks_is_refused(dataset, trained, tmp_path,
                                                                                   capsys, monkeypatch):
    """--device cpu gives the default output; a device that is not there, or not a device, is one argparse error
    before any work; the device chosen is the one predict, variants and instances run the model on."""
    import argminn_plugin.interpret as interpret
    import argminn_plugin.predict as predict_module
    import argminn_plugin.variants as variants_module

    fasta, bed = str(dataset / "genome.fa"), str(dataset / "peaks.bed")
    predict = ["predict", "--model", str(trained / "model.pt"), "--fasta", fasta, "--bed", bed]
    assert main(predict + ["-o", str(tmp_path / "a.tsv")]) == 0
    assert main(predict + ["-o", str(tmp_path / "b.tsv"), "--device", "cpu:0"]) == 0  # cpu:N is the CPU
    assert (tmp_path / "a.tsv").read_text() == (tmp_path / "b.tsv").read_text()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    for device, message in (("cuda", "'cuda': CUDA is not available here"),
                            ("mps", "'mps': MPS is not available here; use --device cpu"),
                            ("gpu", "not a torch device: 'gpu'"), ("meta", "only cpu, cuda and mps")):
        with pytest.raises(SystemExit) as stop:
            main(predict + ["-o", str(tmp_path / "c.tsv"), "--device", device])
        assert stop.value.code == 2 and message in capsys.readouterr().err.splitlines()[-1]
    assert not (tmp_path / "c.tsv").exists()
    # a machine with one GPU (simulated: the device is recorded where the model would run, not used)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(SystemExit) as stop:
        main(predict + ["-o", str(tmp_path / "c.tsv"), "--device", "cuda:1"])
    assert stop.value.code == 2 and "this machine has 1 CUDA device(s)" in capsys.readouterr().err
    seen = []

    def recorder(real):
        def call(*args, device="cpu", **kwargs):
            seen.append(device)
            return real(*args, device="cpu", **kwargs)
        return call

    monkeypatch.setattr(predict_module, "predict_intervals", recorder(predict_module.predict_intervals))
    monkeypatch.setattr(variants_module, "score_variants", recorder(variants_module.score_variants))
    monkeypatch.setattr(interpret, "instance_report", recorder(interpret.instance_report))
    monkeypatch.setattr(interpret, "variant_instances", recorder(interpret.variant_instances))
    assert main(predict + ["-o", str(tmp_path / "c.tsv"), "--device", "cuda"]) == 0
    assert (tmp_path / "c.tsv").read_text() == (tmp_path / "a.tsv").read_text()
    import pyfaidx

    ref = str(pyfaidx.Fasta(fasta)["chr3"][999:1000]).upper()
    vcf = tmp_path / "v.vcf"
    vcf.write_text(f"#CHROM\tPOS\tID\tREF\tALT\nchr3\t1000\trsX\t{ref}\t{'A' if ref != 'A' else 'C'}\n")
    variants = ["variants", "--fasta", fasta, "--variants", str(vcf), "--device", "cuda:0"]
    assert main(["motifs", "--model", str(trained / "model.pt"), "--data", str(dataset), "--out",
                 str(tmp_path / "motifs")]) == 0
    assert main(variants + ["--model", str(trained / "model.pt"), "--motifs", str(tmp_path / "motifs"),
                            "-o", str(tmp_path / "v.tsv")]) == 0
    assert main(["instances", "--model", str(trained / "model.pt"), "--motifs", str(tmp_path / "motifs"),
                 "--data", str(dataset), "--positives", "--out", str(tmp_path / "inst"), "--device", "cuda"]) == 0
    assert seen == ["cuda", "cuda:0", "cuda:0", "cuda"]  # predict, variants (effects, instances), instances
    capsys.readouterr()
    assert main(variants + ["--kipoi-model", str(tmp_path), "-o", str(tmp_path / "k.tsv")]) == 2
    assert "--device cuda:0: not used with --kipoi-model" in capsys.readouterr().err
    from argminn_plugin.cli import _device

    assert _device("cpu:3") == "cpu" and _device("cuda:0") == "cuda:0"  # the Kipoi route takes any CPU


@pytest.mark.parametrize("argv, message", [
    (["train", "--out", "x"], "give --data DIR, or --fasta with --bed, or --fasta with --peaks and --negatives"),
    (["train", "--out", "x", "--fasta", "g.fa", "--peaks", "p.bed"], "--peaks needs --negatives"),
    (["train", "--out", "x", "--fasta", "g.fa", "--bed", "l.bed", "--peaks", "p.bed"], "give --bed (labelled"),
    (["train", "--out", "x", "--fasta", "g.fa", "--bed", "l.bed", "--summits"], "--summits reads the summits of"),
    (["train", "--out", "x", "--data", "d", "--fasta", "g.fa"], "drop --fasta or drop --data"),
    (["train", "--out", "x", "--data", "d", "--summits"], "drop --summits or drop --data"),
    (["train", "--out", "x", "--fasta", "g.fa", "--bed", "l.bed", "--task-name", "t"], "--task-name names the task"),
    (["instances", "--model", "m.pt", "--motifs", "mo", "--out", "x", "--fasta", "g.fa", "--bed", "b.bed",
      "--positives"], "--split and --positives choose among --data's sequences"),
    (["motifs", "--model", "m.pt", "--out", "x", "--peaks", "p.bed"], "give --data DIR, or --fasta with --bed"),
    (["predict", "--model", "nope.pt", "--fasta", "a.fa", "--bed", "b.bed", "-o", "o.tsv"], "model file not found"),
    (["simulate", "--out", "s", "--set", "n_trian=5"], "unknown key(s) 'n_trian'"),
    (["simulate", "--out", "s", "--set", "n_train"], "--set: 'n_train' is not KEY=VALUE"),
    (["variants", "--model", "m.pt", "--fasta", "g.fa", "--variants", "v.vcf", "-o", "o.tsv", "--head-weights",
      "called"], "--head-weights weighs the heads that call the motif instance each variant falls in: give it "
                 "with --motifs"),
    (["variants", "--kipoi-model", "k", "--fasta", "g.fa", "--variants", "v.vcf", "-o", "o.tsv", "--head-weights",
      "motifs"], "--head-weights: not used with --kipoi-model"),
    (["variants", "--kipoi-model", "k", "--fasta", "g.fa", "--variants", "v.vcf", "-o", "o.tsv", "--both-strands"],
     "--both-strands: not used with --kipoi-model"),
    (["simulate", "--out", "s", "--set", "=5"], "--set: '=5' is not KEY=VALUE"),
    (["train", "--data", ".", "--out", "x"], "not a dataset directory"),
])
def test_cli_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("argminn: error:") and message in err and "\n" not in err


def test_train_refuses_existing_run(dataset, trained, capsys):
    assert main(["train", "--data", str(dataset), "--out", str(trained), "--quiet", *SMALL_MODEL]) == 2
    assert "pass --resume" in capsys.readouterr().err


def test_resume_keeps_the_runs_own_max_epochs(dataset, tmp_path, capsys):
    """--resume without max_epochs continues the run as it was started, with its own max_epochs rather than the
    default (40): a run that ended at its max_epochs is not trained on; one given again (a flag or a config file)
    trains it on to that epoch."""
    run = tmp_path / "run"
    base = ["train", "--data", str(dataset), "--out", str(run), "--quiet", "--train-set", "num_threads=1",
            *SMALL_MODEL]
    assert main([*base, "--train-set", "max_epochs=2"]) == 0
    before = (run / "model.pt").read_bytes()
    assert main([*base, "--resume"]) == 0
    state = safe_load_torch(str(run / "last.pt"))
    assert (state["epoch"], state["train_config"]["max_epochs"]) == (1, 2)
    assert (run / "model.pt").read_bytes() == before and len(json.loads((run / "history.json").read_text())) == 2
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"max_epochs": 3}))
    assert main([*base, "--resume", "--train-config", str(config)]) == 0
    state = safe_load_torch(str(run / "last.pt"))
    assert (state["epoch"], state["train_config"]["max_epochs"]) == (2, 3)
    # the settings are not checked against the default max_epochs before the run's own is read: warm-ups of 45
    # epochs fit a run started with max_epochs 60 (here a stand-in last.pt, refused afterwards as another run)
    # and, with no run there to resume, are refused for the default 40 a new run would take
    long_warmup = [*base, "--resume", "--train-set", "warmup_candidates=2",
                   *[f for k in ("overlap", "l1", "entropy") for f in ("--train-set", f"{k}_warmup=45")]]
    other = tmp_path / "other"
    other.mkdir()
    torch.save({"train_config": {"max_epochs": 60}}, other / "last.pt")
    assert main([*long_warmup, "--out", str(other)]) == 2
    err = capsys.readouterr().err
    assert "max_epochs" not in err and "different model or training config" in err
    assert main([*long_warmup, "--out", str(tmp_path / "none")]) == 2
    assert "now 45 epoch(s), max_epochs 40" in capsys.readouterr().err
    # --force starts again: the default, not the old run's max_epochs
    assert main([*base, "--force"]) == 0
    assert safe_load_torch(str(run / "last.pt"))["train_config"]["max_epochs"] == 40


def test_resume_after_a_kill_during_the_warmups_keeps_the_runs_max_epochs(dataset, tmp_path, monkeypatch, capsys):
    """A run killed during its warm-up candidates (no last.pt of its own yet) is resumed with the max_epochs it was
    started with, recorded as the candidates started, not the default (40). A resume refused by the candidates
    leaves that record; one the first candidate takes, with another max_epochs, updates it; a damaged record is
    named; a run with a last.pt goes by its last.pt."""
    import argminn_plugin.train as train_module
    from argminn_plugin.cli import _run_max_epochs

    run = tmp_path / "run"
    base = ["train", "--data", str(dataset), "--quiet", "--train-set", "num_threads=1", *SMALL_MODEL,
            "--train-set", "warmup_candidates=2",
            *[f for k in ("overlap", "l1", "entropy") for f in ("--train-set", f"{k}_warmup=1")]]
    real = train_module.atomic_save_torch

    def save(obj, path, force=False):  # killed as the second candidate saves its first checkpoint
        if f"{os.sep}seed1000{os.sep}" in str(path):
            raise KeyboardInterrupt
        return real(obj, path, force=force)

    def record(where):
        return json.loads((where / "warmup_candidates" / "main_run.json").read_text())

    monkeypatch.setattr(train_module, "atomic_save_torch", save)
    assert main([*base, "--out", str(run), "--train-set", "max_epochs=4"]) == 130 and not (run / "last.pt").exists()
    assert record(run) == {"max_epochs": 4}
    for name in ("refused", "renewed", "damaged"):
        shutil.copytree(run, tmp_path / name)
    # resumed with another max_epochs, killed again in the second candidate: the first took it, so it is recorded
    assert main([*base, "--out", str(tmp_path / "renewed"), "--resume", "--train-set", "max_epochs=5"]) == 130
    assert record(tmp_path / "renewed") == {"max_epochs": 5}
    monkeypatch.setattr(train_module, "atomic_save_torch", real)
    capsys.readouterr()
    # a resume with another training setting is refused by the first candidate: the record stays
    assert main([*base, "--out", str(tmp_path / "refused"), "--resume", "--train-set", "max_epochs=9",
                 "--train-set", "batch_size=32"]) == 2
    assert "different model or training config" in capsys.readouterr().err
    assert record(tmp_path / "refused") == {"max_epochs": 4}
    (tmp_path / "damaged" / "warmup_candidates" / "main_run.json").write_text('{"max_epochs": 4')
    assert main([*base, "--out", str(tmp_path / "damaged"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "main_run.json: not a readable warm-up record (line 1" in err and "--train-set max_epochs=N" in err
    (tmp_path / "damaged" / "warmup_candidates" / "main_run.json").write_text('{"max_epochs": 0}')
    assert main([*base, "--out", str(tmp_path / "damaged"), "--resume"]) == 2
    assert "its 'max_epochs' should be a whole number >= 1" in capsys.readouterr().err
    assert main([*base, "--out", str(run), "--resume"]) == 0
    state = safe_load_torch(str(run / "last.pt"))
    assert state["train_config"]["max_epochs"] == 4 and state["epoch"] == 3  # epochs 1-4 (0-based 3)
    # with a last.pt of its own, the run goes by it, not by the warm-ups' record
    (run / "warmup_candidates" / "main_run.json").write_text('{"max_epochs": 7}')
    assert _run_max_epochs(str(run)) == 4
    # a new run over those candidates (not --force, not --resume) is refused and leaves their record as it was
    killed = tmp_path / "killed"
    shutil.copytree(tmp_path / "refused" / "warmup_candidates", killed / "warmup_candidates")
    assert main([*base, "--out", str(killed), "--train-set", "max_epochs=7"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert record(killed) == {"max_epochs": 4}


def _train_cmd(dataset, out, *extra):
    return [sys.executable, "-m", "argminn_plugin.cli", "train", "--data", str(dataset), "--out", str(out),
            "--quiet", "--train-set", "max_epochs=4", "--train-set", "patience=10", "--train-set", "num_threads=1",
            *SMALL_MODEL, *extra]


def test_sigkill_then_resume_gives_the_same_model(dataset, tmp_path):
    """Kill training mid-run with SIGKILL, resume, and get the uninterrupted run's weights."""
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_train_cmd(dataset, full), check=True, capture_output=True)
    proc = subprocess.Popen(_train_cmd(dataset, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (killed / "history.json").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = json.loads((killed / "history.json").read_text())
    assert 1 <= len(done) < 4, "the kill should land before the last epoch"
    subprocess.run(_train_cmd(dataset, killed, "--resume"), check=True, capture_output=True)
    a = safe_load_torch(str(full / "last.pt"))
    b = safe_load_torch(str(killed / "last.pt"))
    assert a["epoch"] == b["epoch"] == 3
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert [h["val_loss"] for h in a["history"]] == [h["val_loss"] for h in b["history"]]


def test_sigterm_cleans_up_like_ctrl_c(tmp_path):
    """kill / timeout / a batch scheduler send SIGTERM: the command stops with 143 and leaves no staged file."""
    out = tmp_path / "sim"
    proc = subprocess.Popen([sys.executable, "-m", "argminn_plugin.cli", "simulate", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, staged = time.time() + 120, []
    while not staged and time.time() < deadline and proc.poll() is None:
        staged = [name for name in (os.listdir(out) if out.exists() else []) if name.endswith(".partial")]
        time.sleep(0.005)
    assert staged, "the signal should land while outputs are staged"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and err.strip().splitlines()[-1] == "argminn: terminated"
    assert not [name for name in os.listdir(out) if name.endswith(".partial")]


def test_an_interrupt_a_finalizer_drops_still_stops_the_command(dataset, tmp_path, monkeypatch, capsys):
    """A SIGTERM or Ctrl-C that lands in a finalizer (a __del__ the garbage collector runs, such as pyfaidx's),
    where Python prints "Exception ignored" and drops it, is raised again outside it: the command stops with 143 or
    130 and its one line, instead of training on to the end and exiting 0."""
    import argminn_plugin.cli as cli

    real, hook = cli.cmd_train, sys.unraisablehook
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in an interactive shell
    try:
        for signum, status, line in ((signal.SIGTERM, 143, "argminn: terminated"),
                                     (signal.SIGINT, 130, "argminn: interrupted")):
            class Dropper:
                def __del__(self, signum=signum):
                    os.kill(os.getpid(), signum)  # the handler runs here, and its exception is dropped

            def cmd_train(args, Dropper=Dropper):
                Dropper()  # collected at once
                return real(args)

            monkeypatch.setattr(cli, "cmd_train", cmd_train)
            out = tmp_path / f"run{signum}"
            assert main(["train", "--data", str(dataset), "--out", str(out), "--quiet", "--train-set",
                         "max_epochs=50", *SMALL_MODEL]) == status
            err = capsys.readouterr().err
            assert err.strip().splitlines() == [line] and not (out / "model.pt").exists()
            assert not cli._RESEND and sys.unraisablehook is hook
    finally:
        signal.signal(signal.SIGINT, previous_int)
    # sent again as the same signal: one that comes back while an output set is moved in waits for the moves
    from argminn_plugin import fileio

    out = tmp_path / "set"
    out.mkdir()
    for name in ("model.pt", "last.pt"):
        (out / name).write_text("old")
    real_replace = os.replace

    def slow_replace(source, target):
        real_replace(source, target)
        time.sleep(0.03)  # (a network file system): the signal comes back between the moves

    class Dropper:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(fileio.os, "replace", slow_replace)
    with pytest.raises(SystemExit) as stop:
        with cli.sigterm_raises(), cli.one_line_errors("argminn"):
            with fileio.output_set(str(out), ["model.pt", "last.pt"], force=True) as stage:
                for name in stage:
                    pathlib.Path(stage[name]).write_text("new")
                Dropper()  # collected as the block ends
    monkeypatch.undo()
    assert stop.value.code == 143 and [(out / name).read_text() for name in ("model.pt", "last.pt")] == ["new"] * 2


def test_an_interrupt_that_ends_a_first_import_is_an_interrupt(capsys):
    """A Ctrl-C or SIGTERM during a module's first import can end that import as an ImportError whose context is
    the interrupt: one line and 130 / 143, like the interrupt itself; an ImportError of its own stays one."""
    from argminn_plugin.cli import Terminated, one_line_errors

    for interrupt, status, line in ((KeyboardInterrupt, 130, "x: interrupted"), (Terminated, 143, "x: terminated")):
        with pytest.raises(SystemExit) as stop:
            with one_line_errors("x"):
                try:
                    raise interrupt()
                except BaseException:
                    raise ImportError("initialization failed")
        assert stop.value.code == status and capsys.readouterr().err.strip() == line
    with pytest.raises(ImportError, match="no module"):
        with one_line_errors("x"):
            raise ImportError("no module")


def test_variants_command(dataset, trained, tmp_path, capsys):
    import pyfaidx

    seq = pyfaidx.Fasta(str(dataset / "genome.fa"))["chr3"]
    ref = str(seq[999:1000]).upper()
    alt = "A" if ref != "A" else "C"
    vcf = tmp_path / "v.vcf"
    vcf.write_text(f"#CHROM\tPOS\tID\tREF\tALT\nchr3\t1000\trsX\t{ref}\t{alt}\n")
    out = tmp_path / "effects.tsv"
    assert main(["variants", "--model", str(trained / "model.pt"), "--fasta", str(dataset / "genome.fa"),
                 "--variants", str(vcf), "-o", str(out)]) == 0
    table = pd.read_csv(out, sep="\t")
    assert table.loc[0, "id"] == "rsX"
    assert table.loc[0, "label_diff"] == pytest.approx(table.loc[0, "label_alt"] - table.loc[0, "label_ref"],
                                                       abs=1e-4)
    wrong = "G" if ref != "G" else "T"
    vcf.write_text(f"#CHROM\tPOS\tID\tREF\tALT\nchr3\t1000\trsX\t{wrong}\t{alt}\n")
    assert main(["variants", "--model", str(trained / "model.pt"), "--fasta", str(dataset / "genome.fa"),
                 "--variants", str(vcf), "-o", str(tmp_path / "e2.tsv")]) == 2
    err = capsys.readouterr().err
    assert f"line 2: REF {wrong} does not match the genome at chr3:1000 ({ref})" in err
    # a real VCF: a multi-allelic SNV gives one row per allele; an indel is refused, or left out with --skip-other
    others = [b for b in "ACGT" if b != ref]
    vcf.write_text(f"#CHROM\tPOS\tID\tREF\tALT\nchr3\t1000\trsX\t{ref}\t{others[0]},{others[1]}\n"
                   f"chr3\t1010\t.\t{ref}A\t{ref}\nchr3\t1000\t.\t{ref}\t{others[2]},<DEL>\n")
    run = ["variants", "--model", str(trained / "model.pt"), "--fasta", str(dataset / "genome.fa"),
           "--variants", str(vcf)]
    assert main([*run, "-o", str(tmp_path / "e3.tsv")]) == 2
    assert f"line 3: {ref}A>{ref} is not a single-nucleotide variant" in capsys.readouterr().err
    assert main([*run, "-o", str(tmp_path / "e3.tsv"), "--skip-other"]) == 0
    out = capsys.readouterr().out
    assert "scored 3 variants" in out and "left out 2 allele(s) that are not SNVs" in out
    table = pd.read_csv(tmp_path / "e3.tsv", sep="\t")
    assert table["id"].tolist() == [f"rsX_{others[0]}", f"rsX_{others[1]}", f"chr3:1000{ref}>{others[2]}"]
    # a variant whose window runs past the chromosome's start: refused, or left out with --skip-outside
    near = str(seq[9:10]).upper()
    with open(vcf, "a") as handle:
        handle.write(f"chr3\t10\tedge\t{near}\t{'A' if near != 'A' else 'C'}\n")
    assert main([*run, "-o", str(tmp_path / "e4.tsv"), "--skip-other"]) == 2
    assert "line 5: the 100-bp window chr3:-40-59 of this line runs past the chromosome" in capsys.readouterr().err
    assert main([*run, "-o", str(tmp_path / "e4.tsv"), "--skip-other", "--skip-outside"]) == 0
    assert "left out 1 of 4 variant(s) whose 100-bp window" in capsys.readouterr().err
    assert pd.read_csv(tmp_path / "e4.tsv", sep="\t").equals(table)
    edge = tmp_path / "edge.vcf"
    edge.write_text(vcf.read_text().splitlines()[0] + "\n" + vcf.read_text().splitlines()[-1] + "\n")
    assert main([*run[:-1], str(edge), "-o", str(tmp_path / "e5.tsv"), "--skip-outside"]) == 2
    assert f"{edge}: no variant's 100-bp window lies inside a chromosome" in capsys.readouterr().err
    assert table.loc[0, "label_ref"] == table.loc[2, "label_ref"] != table.loc[0, "label_alt"]


def test_sizes_beyond_the_machine_are_one_line(dataset, tmp_path, capsys):
    """A model too large to allocate, or an input length past any coordinate: one line each, not a traceback."""
    run = ["train", "--data", str(dataset), "--quiet", "--model-set"]
    assert main([*run, "n_filters=1000000000000", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("argminn: error: out of memory (") and "can't allocate memory" in err \
        and "make the model, the batch or the input smaller" in err and len(err.splitlines()) == 1, err
    for architecture, config in (("argminn", "ModelConfig"), ("cnn", "CNNConfig"), ("explainn", "ExplaiNNConfig")):
        assert main([*run, f"input_length={2 ** 70}", "--architecture", architecture,
                     "--out", str(tmp_path / "b")]) == 2
        assert capsys.readouterr().err == (f"argminn: error: {config}: 'input_length' must be at most 2147483647 "
                                           f"bp, got {2 ** 70}\n")
    # only an allocator's refusal is read as out of memory: another error that mentions it stays a traceback
    from argminn_plugin.cli import one_line_errors
    with pytest.raises(RuntimeError, match="killed by SIGKILL"):
        with one_line_errors("x"):
            raise RuntimeError("a worker was killed by SIGKILL (out of memory?) without a result")


def test_config_file_errors(dataset, tmp_path, capsys):
    bad_json = tmp_path / "model.json"
    bad_json.write_text('{\n  "n_filters": 8,\n  "filter_width": 10,,\n}\n')
    assert main(["train", "--data", str(dataset), "--out", str(tmp_path / "r"), "--model-config", str(bad_json)]) == 2
    assert "model.json: not a readable JSON config (line 3: not valid JSON: " in capsys.readouterr().err
    mistyped = tmp_path / "train.json"
    mistyped.write_text('{"max_epoch": 3}')
    assert main(["train", "--data", str(dataset), "--out", str(tmp_path / "r"), "--train-config", str(mistyped)]) == 2
    assert "train.json: unknown key(s) 'max_epoch'" in capsys.readouterr().err
    assert main(["train", "--data", str(dataset), "--out", str(tmp_path / "r"), "--train-set", "batch_size=ten"]) == 2
    assert "'batch_size' must be an integer, got 'ten'" in capsys.readouterr().err
    # the file's keys and the flags' are checked once, merged: the flags win, errors name both sources
    from argminn_plugin import ModelConfig, TrainConfig
    from argminn_plugin.cli import _load_config

    resample = tmp_path / "resample.json"
    resample.write_text('{"resample_share": 0.5, "overlap_weight": 0.01, "overlap_warmup": 1, "overlap_ramp": 2}')
    with pytest.raises(ArgminnError, match=r"'resample_until' \(0\) above 'overlap_warmup' \(1\)"):
        _load_config(TrainConfig, str(resample), None, "--train-set")  # alone it is incomplete
    assert _load_config(TrainConfig, str(resample), ["resample_until=3"], "--train-set").resample_until == 3
    wide = tmp_path / "wide.json"
    wide.write_text('{"filter_width": 250}')
    assert _load_config(ModelConfig, str(wide), ["input_length=300"], "--model-set").filter_width == 250
    assert _load_config(ModelConfig, str(wide), None, "--model-set", input_length=300).input_length == 300
    assert main(["train", "--data", str(dataset), "--out", str(tmp_path / "r"), "--train-config", str(mistyped),
                 "--train-set", "max_epochs=abc"]) == 2
    assert "train.json with --train-set: " in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_two_thread_runs_in_parallel_give_the_same_model(dataset, tmp_path):
    """Same seed, two threads each, run side by side (so thread timing differs): identical weights."""
    cmds = [[*_train_cmd(dataset, tmp_path / name), "--train-set", "num_threads=2", "--train-set", "max_epochs=2"]
            for name in ("a", "b")]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for cmd in cmds]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    a = safe_load_torch(str(tmp_path / "a" / "last.pt"))["state_dict"]
    b = safe_load_torch(str(tmp_path / "b" / "last.pt"))["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_reads_a_benchmark_dataset_and_names_what_a_bad_simulation_json_lacks(dataset, tmp_path, capsys):
    import shutil

    # the benchmark's datasets (benchmarks/datasets.py) keep the window length at the top level of
    # simulation.json, 'argminn simulate' in its config: both train
    bench = tmp_path / "bench"
    shutil.copytree(dataset, bench)
    meta = json.loads((bench / "simulation.json").read_text())
    meta["length"] = meta["config"].pop("length")
    (bench / "simulation.json").write_text(json.dumps(meta))
    run = tmp_path / "run"
    assert main(["train", "--data", str(bench), "--out", str(run), "--quiet", "--train-set", "max_epochs=1",
                 *SMALL_MODEL]) == 0
    assert load_model(str(run / "model.pt")).config.input_length == 100
    capsys.readouterr()
    for text, message in ((json.dumps({**meta, "length": None}), "missing or invalid length (top level or in config)"),
                          (json.dumps({k: v for k, v in meta.items() if k != "splits"}),
                           "missing or invalid splits.valid, splits.test"),
                          ("{not json", "not a readable simulation.json"),
                          ("[1, 2]", "not a readable simulation.json (a JSON object is expected, got list)")):
        (bench / "simulation.json").write_text(text)
        assert main(["train", "--data", str(bench), "--out", str(tmp_path / "bad"), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("argminn: error:") and message in err and "simulation.json" in err, err
    assert not (tmp_path / "bad").exists()


def test_cli_refusals_are_one_line_errors(dataset, trained, tmp_path, capsys):
    """Baseline models in commands that read ARGMINN's attention, bad batch sizes, binary or gzipped inputs,
    an output that is a directory, an --out that is a file: each a one-line error, nothing written."""
    cnn = tmp_path / "cnn"
    assert main(["train", "--architecture", "cnn", "--data", str(dataset), "--out", str(cnn), "--quiet",
                 "--train-set", "max_epochs=1", "--model-set", "n_filters=4"]) == 0
    capsys.readouterr()
    motifs = tmp_path / "motifs"  # never read: the model is refused first
    assert main(["instances", "--model", str(cnn / "model.pt"), "--motifs", str(motifs), "--data", str(dataset),
                 "--out", str(tmp_path / "inst")]) == 2
    assert "holds a 'cnn' model; 'argminn instances' traces ARGMINN's attention" in capsys.readouterr().err
    assert main(["design", "--model", str(cnn / "model.pt"), "--motifs", str(motifs), "--instances",
                 str(tmp_path / "inst"), "--data", str(dataset), "--out", str(tmp_path / "design")]) == 2
    assert "'argminn design' traces ARGMINN's attention" in capsys.readouterr().err
    vcf = tmp_path / "v.vcf"
    vcf.write_text("#CHROM\tPOS\tID\tREF\tALT\nchr3\t50\t.\tA\tC\n")
    assert main(["variants", "--model", str(cnn / "model.pt"), "--motifs", str(motifs), "--fasta",
                 str(dataset / "genome.fa"), "--variants", str(vcf), "-o", str(tmp_path / "v.tsv")]) == 2
    assert "'argminn variants --motifs' traces" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in ("inst", "design", "v.tsv"))
    # --batch-size 0: argparse's usage error
    predict = ["predict", "--model", str(trained / "model.pt"), "--fasta", str(dataset / "genome.fa"),
               "--bed", str(dataset / "peaks.bed")]
    with pytest.raises(SystemExit) as exc:
        main([*predict, "-o", str(tmp_path / "p.tsv"), "--batch-size", "0"])
    assert exc.value.code == 2 and "must be >= 1, got 0" in capsys.readouterr().err
    # an output that is a directory: refused before the work, even with --force
    assert main([*predict, "-o", str(tmp_path), "--force"]) == 2
    assert f"{tmp_path}: is a directory; give a file name" in capsys.readouterr().err
    # a binary BED, a cut-off gzipped VCF, a binary VCF, a binary config file
    import gzip
    binary_bed = tmp_path / "peaks.bed"
    binary_bed.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    assert main([*predict[:-2], "--bed", str(binary_bed), "-o", str(tmp_path / "p.tsv")]) == 2
    assert "peaks.bed: not a text BED file" in capsys.readouterr().err
    binary_bed.write_bytes(gzip.compress(b"chr1\t0\t10\n")[:-6])  # a cut-off download
    assert main([*predict[:-2], "--bed", str(binary_bed), "-o", str(tmp_path / "p.tsv")]) == 2
    assert "peaks.bed: cannot read (" in capsys.readouterr().err
    gz_vcf = tmp_path / "gz.vcf"
    gz_vcf.write_bytes(gzip.compress(vcf.read_bytes())[:-6])  # a cut-off download
    assert main(["variants", "--model", str(trained / "model.pt"), "--fasta", str(dataset / "genome.fa"),
                 "--variants", str(gz_vcf), "-o", str(tmp_path / "v.tsv")]) == 2
    assert "gz.vcf: cannot read (" in capsys.readouterr().err
    gz_vcf.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    assert main(["variants", "--model", str(trained / "model.pt"), "--fasta", str(dataset / "genome.fa"),
                 "--variants", str(gz_vcf), "-o", str(tmp_path / "v.tsv")]) == 2
    assert "gz.vcf: not a text VCF or table" in capsys.readouterr().err
    binary = tmp_path / "config.json"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    assert main(["train", "--data", str(dataset), "--out", str(tmp_path / "run"), "--train-config", str(binary)]) == 2
    assert "config.json: not a readable JSON config (not a text file)" in capsys.readouterr().err
    # an --out that is an existing file: the file system's refusal, in one line
    taken = tmp_path / "taken"
    taken.write_text("x")
    assert main(["train", "--data", str(dataset), "--out", str(taken), "--quiet", "--train-set", "max_epochs=1",
                 *SMALL_MODEL]) == 2
    err = capsys.readouterr().err
    assert err.startswith("argminn: error: ") and len(err.strip().splitlines()) == 1
    assert f"{taken}: exists and is a file; an output directory is needed there" in err
    assert not any((tmp_path / name).exists() for name in ("p.tsv", "v.tsv", "run"))
    # ... for the demo too (it named a path inside the file); an empty output path, before any work
    assert main(["demo", "--out", str(taken)]) == 2
    assert f"{taken}: exists and is a file; an output directory is needed there" in capsys.readouterr().err
    for argv in ([*predict, "-o", ""], ["motifs", "--model", str(trained / "model.pt"), "--out", ""]):
        assert main(argv) == 2
        assert capsys.readouterr().err.startswith(f"argminn: error: --{'output' if '-o' in argv else 'out'}: empty")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # a JSON config saved with a byte-order mark (as by some editors) is read
    marked = tmp_path / "marked.json"
    marked.write_bytes('{"max_epochs": 1}'.encode("utf-8-sig"))
    from argminn_plugin import TrainConfig
    from argminn_plugin.cli import _load_config
    assert _load_config(TrainConfig, str(marked), None, "--train-set").max_epochs == 1
    # motifs failing early leave no --out directory behind; a FASTA that is a directory is named as one
    assert main(["motifs", "--model", str(trained / "model.pt"), "--method", "seqlets", "--out",
                 str(tmp_path / "m")]) == 2
    assert "needs sequences" in capsys.readouterr().err and not (tmp_path / "m").exists()
    assert main([*predict[:3], "--fasta", str(tmp_path), *predict[5:], "-o", str(tmp_path / "p.tsv")]) == 2
    assert f"{tmp_path}: is a directory; give the FASTA file in it" in capsys.readouterr().err


def test_demo_runs_and_resumes(tmp_path, capsys):
    """The main job end to end on tiny settings; --resume reuses complete data, rewrites incomplete data,
    and refuses data simulated with other settings."""
    out = tmp_path / "demo"
    tiny = ["--quiet", "--sim-set", "n_train=300", "--sim-set", "n_valid=60", "--sim-set", "n_test=60",
            "--sim-set", "length=120", "--sim-set", "spacing=15", "--train-set", "max_epochs=2",
            "--model-set", "n_layers=2", "--model-set", "stream_dim=32",
            # the demo's three warm-up candidates, one epoch each
            "--train-set", "overlap_warmup=1", "--train-set", "l1_warmup=1", "--train-set", "entropy_warmup=1"]
    assert main(["demo", "--out", str(out), *tiny]) == 0
    for name in ("data/simulation.json", "run/model.pt", "motifs/motifs.tsv", "instances/syntax.tsv",
                 "run/warmup_candidates.json", "run/warmup_candidates/seed2000/last.pt"):
        assert (out / name).exists(), name
    assert any((out / "design").iterdir())
    capsys.readouterr()
    assert main(["demo", "--out", str(out), *tiny]) == 2  # no silent overwrite
    assert "holds an earlier demo (output exists); pass --resume to continue it" in capsys.readouterr().err
    for command in (["demo", "--out", str(out), *tiny], ["train", "--data", str(out / "data"), "--out",
                                                           str(out / "run")]):
        with pytest.raises(SystemExit) as stop:  # one continues the run, the other starts it again
            main([*command, "--resume", "--force"])
        assert stop.value.code == 2 and "--force: not allowed with argument --resume" in capsys.readouterr().err
    genome = (out / "data" / "genome.fa").stat().st_mtime_ns
    assert main(["demo", "--out", str(out), "--resume", *tiny]) == 0  # complete data: reused
    assert (out / "data" / "genome.fa").stat().st_mtime_ns == genome
    meta = json.loads((out / "data" / "simulation.json").read_text())
    del meta["config"]["orientation"]  # data simulated before that key existed: its default made the same data
    (out / "data" / "simulation.json").write_text(json.dumps(meta))
    assert main(["demo", "--out", str(out), "--resume", *tiny]) == 0
    assert (out / "data" / "genome.fa").stat().st_mtime_ns == genome
    capsys.readouterr()
    assert main(["demo", "--out", str(out), "--resume", *tiny, "--sim-set", "seed=5"]) == 2
    assert "simulated with other --sim-set values" in capsys.readouterr().err
    (out / "data" / "simulation.json").unlink()  # as a run killed while simulating leaves it
    assert main(["demo", "--out", str(out), "--resume", *tiny]) == 0
    assert (out / "data" / "simulation.json").exists()
    # fewer epochs than the demo's warm-up: refused before simulating, with what to change
    capsys.readouterr()
    assert main(["demo", "--out", str(tmp_path / "short"), "--quiet", "--train-set", "max_epochs=5"]) == 2
    err = capsys.readouterr().err
    assert "now 10 epoch(s), max_epochs 5" in err and "'warmup_candidates=1'" in err
    assert not (tmp_path / "short").exists()
    # a simulation key that does not exist: named by its flag, nothing written
    assert main(["demo", "--out", str(tmp_path / "bad"), "--quiet", "--sim-set", "n_trian=5"]) == 2
    assert "--sim-set: unknown key(s) 'n_trian'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    # the data names the tasks: a model setting that names others is refused
    for setting in ("n_tasks=3", 'task_names=["a"]'):
        assert main(["train", "--data", str(out / "data"), "--out", str(tmp_path / "t"), "--quiet",
                     "--model-set", setting]) == 2
        assert "the data has 1 task(s), label, which name the model's; drop" in capsys.readouterr().err
    assert main(["train", "--data", str(out / "data"), "--out", str(tmp_path / "t"), "--quiet", "--model-set",
                 'task_names=["label"]', "--train-set", "max_epochs=1", *SMALL_MODEL]) == 0  # the same: fine
    from argminn_plugin import ModelConfig

    dumped = tmp_path / "model.json"  # a whole config (the defaults' n_tasks=1, task_names=[]) says nothing
    dumped.write_text(json.dumps(ModelConfig(input_length=120, n_filters=4, n_layers=2, stream_dim=32).to_dict()))
    assert main(["train", "--data", str(out / "data"), "--out", str(tmp_path / "t2"), "--quiet", "--model-config",
                 str(dumped), "--train-set", "max_epochs=1"]) == 0
    # a model setting is checked before simulating too
    assert main(["demo", "--out", str(tmp_path / "bad"), "--quiet", "--model-set", "n_filters=0"]) == 2
    assert "'n_filters' must be" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_variants_say_when_the_motifs_hold_no_head_weights(dataset, trained, tmp_path, capsys):
    """Motifs read without sequences save no head weights: variants --motifs says the heads are then weighed
    over the variants scored (unless --head-weights called asks for that)."""
    import pyfaidx

    model, fasta = str(trained / "model.pt"), str(dataset / "genome.fa")
    motifs = tmp_path / "motifs"
    assert main(["motifs", "--model", model, "--out", str(motifs)]) == 0  # from the weights: no sequences
    assert "head_weights" not in json.loads((motifs / "report.json").read_text())
    read = pd.read_csv(motifs / "motifs.tsv", sep="\t")  # measured on no sequences: blank, not 1.0 each
    assert read["importance"].isna().all() and read["fire_fraction"].isna().all()
    ref = str(pyfaidx.Fasta(fasta)["chr3"][999:1000]).upper()
    vcf = tmp_path / "v.vcf"
    vcf.write_text(f"#CHROM\tPOS\tID\tREF\tALT\nchr3\t1000\trsX\t{ref}\t{'A' if ref != 'A' else 'C'}\n")
    run = ["variants", "--model", model, "--motifs", str(motifs), "--fasta", fasta, "--variants", str(vcf)]
    capsys.readouterr()
    assert main([*run, "-o", str(tmp_path / "a.tsv")]) == 0
    assert "report.json holds no head weights" in capsys.readouterr().err
    assert main([*run, "-o", str(tmp_path / "b.tsv"), "--head-weights", "called"]) == 0
    assert "head weights" not in capsys.readouterr().err
    assert (tmp_path / "a.tsv").read_text() == (tmp_path / "b.tsv").read_text()
    # motifs of which none is active: variants --motifs and instances refuse them in one line (not a note on
    # head weights, then empty hits), before any scoring
    table = pd.read_csv(motifs / "motifs.tsv", sep="\t")
    table.assign(active=False).to_csv(motifs / "motifs.tsv", sep="\t", index=False)
    for command in ([*run, "-o", str(tmp_path / "c.tsv")],
                    ["instances", "--model", model, "--motifs", str(motifs), "--data", str(dataset),
                     "--out", str(tmp_path / "inst")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err == f"argminn: error: {motifs}/motifs.tsv: no active filter (the model uses none of its " \
                      "filters as a motif), so there are no instances to call\n", err
    assert not (tmp_path / "c.tsv").exists() and not (tmp_path / "inst").exists()


def test_damaged_tables_are_one_line_errors_naming_them(dataset, trained, tmp_path, capsys):
    """motifs.tsv, syntax.tsv and a dataset's instances.tsv that are empty, not text or lack a column the
    command reads: a one-line error naming the file and what writes it again, nothing written."""
    from argminn_plugin.simulate import planted_instances

    model = str(trained / "model.pt")
    motifs, inst = tmp_path / "motifs", tmp_path / "inst"
    assert main(["motifs", "--model", model, "--out", str(motifs)]) == 0
    good = (motifs / "motifs.tsv").read_bytes()
    damaged = ((b"", "EmptyDataError"), (b"\xff\xfe\x00bad\n", "UnicodeDecodeError"),
               (b"filter\tstart\n0\t1\n", "no column 'end'"))
    for content, message in damaged:
        (motifs / "motifs.tsv").write_bytes(content)
        assert main(["instances", "--model", model, "--motifs", str(motifs), "--data", str(dataset),
                     "--out", str(inst)]) == 2
        err = capsys.readouterr().err
        assert f"{motifs / 'motifs.tsv'}: not a readable motif table (" in err and message in err, err
        assert "run 'argminn motifs' again" in err and len(err.strip().splitlines()) == 1
    assert not inst.exists()
    # hand edits: 'active' as 1/0 or in any case is read as meant (a 0 makes pandas read the column as text,
    # where every word was true); a cell that is no such value is an error naming its row and column
    from argminn_plugin.interpret import read_annotation
    table = pd.read_csv(io.BytesIO(good), sep="\t")
    active = [int(f) for f in table.loc[table["active"], "filter"]]
    assert len(active) >= 2
    for yes, no in (("1", "0"), ("TRUE", "false"), ("True", "0")):
        edited = table.assign(active=[yes if f in active[1:] else no for f in table["filter"]])
        edited.to_csv(motifs / "motifs.tsv", sep="\t", index=False)
        assert read_annotation(str(motifs))[1] == active[1:]
    for column, value, kind in (("active", "maybe", "True or False (or 1 or 0)"), ("start", "x", "a whole number"),
                                ("match_offset", "2.5", "a whole number or blank"),
                                ("best_q", "low", "a number or blank")):
        edited = table.astype({column: object})
        edited.loc[1, column] = value
        shown = value if column == "match_offset" else repr(value)  # a column of numbers: read as one
        edited.to_csv(motifs / "motifs.tsv", sep="\t", index=False)
        with pytest.raises(ArgminnError, match=re.escape(f"{motifs / 'motifs.tsv'}: row 2 (after the header): "
                                                         f"{column!r} is {shown}, not {kind}")):
            read_annotation(str(motifs))
    # a blank alignment on a row with a significant match (a blank is only for rows without one)
    edited = table.astype({"best_match": object, "best_q": float, "match_offset": float})
    edited.loc[1, ["best_match", "best_q", "match_offset"]] = ["MA0139.2 CTCF", 0.01, np.nan]
    edited.to_csv(motifs / "motifs.tsv", sep="\t", index=False)
    with pytest.raises(ArgminnError, match=re.escape(f"{motifs / 'motifs.tsv'}: row 2 (after the header): "
                                                     "'match_offset' is nan, not a whole number (the row's "
                                                     "best_match has q < 0.05")):
        read_annotation(str(motifs))
    edited.loc[1, "best_q"] = 0.5  # not significant: no alignment needed
    edited.to_csv(motifs / "motifs.tsv", sep="\t", index=False)
    read_annotation(str(motifs))
    (motifs / "motifs.tsv").write_bytes(good)
    inst.mkdir()
    design = ["design", "--model", model, "--motifs", str(motifs), "--instances", str(inst), "--data",
              str(dataset), "--out", str(tmp_path / "design")]
    for content, message in ((b"", "EmptyDataError"), (b"motif_a\tmotif_b\nA\tB\n", "no column 'spacing'")):
        (inst / "syntax.tsv").write_bytes(content)
        assert main(design) == 2
        err = capsys.readouterr().err
        assert f"{inst / 'syntax.tsv'}: not a readable syntax table (" in err and message in err, err
    for spacing, orientation in (("30.5", "same"), ("abc", "same"), ("", "same"), ("30", "sideways")):
        (inst / "syntax.tsv").write_text(f"motif_a\tmotif_b\tspacing\torientation\nA\tB\t{spacing}\t"
                                         f"{orientation}\n")
        assert main(design) == 2
        err = capsys.readouterr().err
        assert "the syntax read-out's top rule has spacing" in err and "a whole number of bp and 'same' or " \
            "'opposite' are needed" in err and len(err.strip().splitlines()) == 1, err
        assert "np." not in err and (spacing != "30.5" or "has spacing 30.5 and" in err), err  # as written
    (inst / "syntax.tsv").write_text("motif_a\tmotif_b\tspacing\torientation\nA\tA\t30\tsame\n")  # homotypic
    assert main(design) == 2
    err = capsys.readouterr().err
    assert "the syntax read-out's top rule pairs 'A' with itself: design places two different motifs" in err, err
    assert not (tmp_path / "design").exists()
    copy = tmp_path / "data"
    copy.mkdir()
    (copy / "instances.tsv").write_text("")
    with pytest.raises(ArgminnError, match=re.escape(f"{copy / 'instances.tsv'}: not a readable planted-instance "
                                                     "table (EmptyDataError")):
        planted_instances(str(copy), pd.DataFrame({"chrom": ["chr1"], "start": [0], "end": [10]}))


def test_design_refuses_what_it_cannot_shuffle_or_write_before_any_work(dataset, trained, tmp_path, capsys):
    """Backgrounds that all hold an N, an --out that is a file, a split without negatives: one line each (and
    a BED that covers only the split design reads is enough)."""
    from argminn_plugin.design import design_report

    model = load_model(str(trained / "model.pt"))
    syntax = pd.DataFrame({"motif_a": ["A"], "motif_b": ["B"], "spacing": [22], "orientation": ["same"]})
    X = torch.zeros(3, 4, model.config.input_length)
    X[:, 0, 1:] = 1  # position 0 is an N
    with pytest.raises(ArgminnError, match="every one of the 3 background window.s. holds an N"):
        design_report(model, X, str(tmp_path), syntax, str(tmp_path / "d"))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ArgminnError, match="afile: exists and is not a directory"):
        design_report(model, X, str(tmp_path), syntax, str(tmp_path / "afile"))
    # a BED of the test chromosome alone (design reads only its --split), every interval a positive
    bed = (dataset / "peaks.bed").read_text().splitlines()
    labelled = "\n".join(line.rsplit("\t", 1)[0] + "\t1" for line in bed if line.startswith("chr3\t")) + "\n"
    (tmp_path / "pos.bed").write_text(labelled)
    (tmp_path / "syntax.tsv").write_text("motif_a\tmotif_b\tspacing\torientation\nA\tB\t22\tsame\n")
    assert main(["design", "--model", str(trained / "model.pt"), "--motifs", str(tmp_path), "--instances",
                 str(tmp_path), "--fasta", str(dataset / "genome.fa"), "--bed", str(tmp_path / "pos.bed"),
                 "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("pos.bed: no negatives (label 0) in the test split, the backgrounds of the design; "
                            "choose another --split"), err
    assert not (tmp_path / "d").exists()


def test_only_train_runs_under_torchrun(tmp_path, capsys, monkeypatch):
    """Under torchrun every process would run the command and write the same files: refused, one line."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["simulate", "--out", str(tmp_path / "d")]) == 2
    assert "'argminn simulate' runs in one process; under torchrun (WORLD_SIZE=2) only 'argminn train' runs" in \
        capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_flags_that_would_be_ignored_or_misread_are_refused(dataset, trained, tmp_path, capsys):
    """--valid-chroms / --test-chroms with --data (which names its own splits), --skip-outside on motifs
    without sequences, a negative --n-greedy, an offset outside the window: errors, not silently ignored."""
    from argminn_plugin.design import design_report

    model = str(trained / "model.pt")
    for flags in (["--valid-chroms", "chrZZ"], ["--test-chroms", "chr1"]):
        assert main(["train", "--data", str(dataset), "--out", str(tmp_path / "run"), "--quiet", *flags]) == 2
        assert f"drop {flags[0]} or drop --data" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    # --skip-outside with --data: a model wider than the data's first windows trains on the rest
    wide = ["train", "--data", str(dataset), "--out", str(tmp_path / "wide"), "--quiet", "--train-set", "max_epochs=1",
            *SMALL_MODEL, "--model-set", "input_length=300"]
    assert main(wide) == 2
    assert "of this line runs past the chromosome" in capsys.readouterr().err and not (tmp_path / "wide").exists()
    assert main([*wide, "--skip-outside"]) == 0
    assert re.search(r"peaks\.bed: left out \d+ of \d+ interval\(s\) whose 300-bp window", capsys.readouterr().err)
    assert main(["motifs", "--model", model, "--out", str(tmp_path / "m"), "--skip-outside"]) == 2
    assert "give --data DIR, or --fasta with --bed" in capsys.readouterr().err and not (tmp_path / "m").exists()
    with pytest.raises(SystemExit) as stop:
        main(["design", "--model", model, "--motifs", str(tmp_path), "--instances", str(tmp_path), "--data",
              str(dataset), "--out", str(tmp_path / "d"), "--n-greedy", "-1"])
    assert stop.value.code == 2 and "--n-greedy: must be >= 0, got -1" in capsys.readouterr().err
    for name, value in (("n_greedy", -1), ("n_backgrounds", 0), ("n_greedy", 1.5)):
        with pytest.raises(ArgminnError, match=re.escape(f"design: '{name}' must be an integer >=")):
            design_report(load_model(model), None, str(tmp_path), pd.DataFrame(), str(tmp_path / "d"),
                          **{name: value})
    vcf = tmp_path / "v.vcf"
    vcf.write_text("#CHROM\tPOS\tID\tREF\tALT\nchr3\t50\t.\tA\tC\n")
    assert main(["variants", "--model", model, "--fasta", str(dataset / "genome.fa"), "--variants", str(vcf),
                 "--offset", "500", "-o", str(tmp_path / "v.tsv")]) == 2
    assert "offset (--offset, offset=) 500 is outside the 100-bp window: give 0 to 99" in capsys.readouterr().err
    assert not (tmp_path / "d").exists() and not (tmp_path / "v.tsv").exists()


def test_design_and_instances_of_a_chosen_task(dataset, trained, tmp_path, capsys):
    """--task: design scores the model's task named (or indexed) and shuffles that task's negatives; instances
    --positives calls that task's positives; a task the model lacks, a data without it, or --task without
    --positives is one line."""
    from argminn_plugin import ARGMINN
    from argminn_plugin.interpret import read_annotation
    from argminn_plugin.train import save_model

    torch.manual_seed(0)
    two = ARGMINN(load_model(str(trained / "model.pt")).config.replace(n_tasks=2, task_names=["label", "always"]))
    model = str(tmp_path / "two.pt")
    save_model(two, model)
    bed = pd.read_csv(dataset / "peaks.bed", sep="\t")
    bed.columns = ["#chrom", *bed.columns[1:]]
    bed.assign(always=1).to_csv(tmp_path / "two.bed", sep="\t", index=False)
    motifs, inst = tmp_path / "motifs", tmp_path / "inst"
    assert main(["motifs", "--model", model, "--out", str(motifs)]) == 0
    annotation, active = read_annotation(str(motifs))
    inst.mkdir()
    (inst / "syntax.tsv").write_text("motif_a\tmotif_b\tspacing\torientation\n"
                                     f"{annotation[active[0]]['name']}\t{annotation[active[1]]['name']}\t15\tsame\n")
    splits = json.loads((dataset / "simulation.json").read_text())["splits"]
    design = ["design", "--model", model, "--motifs", str(motifs), "--instances", str(inst), "--fasta",
              str(dataset / "genome.fa"), "--bed", str(tmp_path / "two.bed"), "--valid-chroms", splits["valid"],
              "--test-chroms", splits["test"], "--n-backgrounds", "3", "--n-greedy", "0", "--start-step", "20"]
    capsys.readouterr()
    for task in ("always", "1"):
        assert main([*design, "--out", str(tmp_path / "d"), "--task", task]) == 2
        assert capsys.readouterr().err == (f"argminn: error: {tmp_path / 'two.bed'}: no negatives (label 0 of task "
                                           "'always') in the test split, the backgrounds of the design; choose "
                                           "another --split or --task\n")
    for bad in ("nope", "2", "\u00b2"):  # \u00b2 (superscript two) is a digit to str.isdigit, not a number
        assert main([*design, "--out", str(tmp_path / "d"), "--task", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("argminn: error: task ") and "the model's tasks are 'label', 'always' (a name, or " \
            "an index from 0" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "d").exists()
    assert main([*design, "--out", str(tmp_path / "d")]) == 0  # the first task, 'label', named in both tables
    for name in ("design.tsv", "effects.tsv"):
        assert set(pd.read_csv(tmp_path / "d" / name, sep="\t")["task"]) == {"label"}
    # instances --positives of a task: the dataset names 'label' only
    run = ["instances", "--model", model, "--motifs", str(motifs), "--data", str(dataset)]
    assert main([*run, "--out", str(tmp_path / "i"), "--task", "label"]) == 2
    assert "--task chooses whose positives --positives calls: give it with --positives" in capsys.readouterr().err
    assert main([*run, "--out", str(tmp_path / "i"), "--positives", "--task", "always"]) == 2
    assert f"{dataset}: its task(s) 'label' hold no 'always', the model's task 1" in capsys.readouterr().err
    assert main([*run, "--out", str(tmp_path / "i"), "--positives", "--task", "label"]) == 0
    labels = pd.read_csv(dataset / "peaks.bed", sep="\t")
    n_pos = int(((labels.iloc[:, 0] == splits["test"]) & (labels["label"] == 1)).sum())
    assert set(pd.read_csv(tmp_path / "i" / "instances.tsv", sep="\t")["sequence"]) <= set(range(n_pos))
    # the data's label column of a model task: by name; by position (or the only one) where the data names
    # none of the model's tasks; else refused (a column named after another of the model's tasks is not taken)
    from argminn_plugin.cli import _label_column
    assert [_label_column(two, t, ["always", "label"], "d") for t in (0, 1)] == [1, 0]
    assert [_label_column(two, t, ["task0", "task1"], "d") for t in (0, 1)] == [0, 1]
    assert [_label_column(two, t, ["label_peaks"], "d") for t in (0, 1)] == [0, 0]  # --peaks, named after its file
    for names, t in ((["always", "other"], 0), (["other", "always"], 0), (["a", "b", "c"], 1), (["label"], 1)):
        with pytest.raises(ArgminnError, match=re.escape(f"d: its task(s) {', '.join(map(repr, names))} hold no "
                                                         f"{two.config.names[t]!r}, the model's task {t} (--task")):
            _label_column(two, t, names, "d")
    # design from --peaks and --negatives (one task, named after the file) on the two-task model, for either task
    peaks = bed[bed["label"] == 1].iloc[:, :3]
    peaks.to_csv(tmp_path / "peaks.bed", sep="\t", index=False, header=False)
    bed[bed["label"] == 0].iloc[:, :3].to_csv(tmp_path / "neg.bed", sep="\t", index=False, header=False)
    from_peaks = [*design[:design.index("--bed")], "--peaks", str(tmp_path / "peaks.bed"), "--negatives",
                  str(tmp_path / "neg.bed"), *design[design.index("--bed") + 2:]]
    assert main([*from_peaks, "--out", str(tmp_path / "dp"), "--task", "always"]) == 0
    assert set(pd.read_csv(tmp_path / "dp" / "design.tsv", sep="\t")["task"]) == {"always"}
