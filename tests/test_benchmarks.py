"""Smoke run of the speed benchmark (tiny sizes): it runs and reports sane figures."""

import importlib
import json
import os
import platform
import re

import numpy as np
import pytest
import torch

from argminn_plugin.config import ModelConfig
from argminn_plugin.errors import ArgminnError
from argminn_plugin.train import load_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_speed_benchmark_smoke(tmp_path, monkeypatch):
    # imported by name so the fresh (spawned) processes can import it too
    monkeypatch.syspath_prepend(ROOT)
    speed = importlib.import_module("benchmarks.speed")
    timed, measured = speed.in_fresh_process, []  # each fresh process's figures, kept for the --force run below
    monkeypatch.setattr(speed, "in_fresh_process", lambda *a: measured.append(timed(*a)) or measured[-1])
    result = speed.main(str(tmp_path), smoke=True, threads=1)
    saved = json.loads((tmp_path / "speed.json").read_text())
    assert saved["mode"] == "smoke"  # smoke figures are not taken for a full run's
    for key in ("equal_length", "equal_length_steady_malloc"):
        assert {r["model"] for r in saved[key]} == {"ARGMINN", "ARGMINN (canonical strand)", "standard CNN",
                                                    "ExplaiNN", "BPNet (bpnet-lite)"}
        assert all(r["train_seqs_per_s"] > 0 and r["infer_seqs_per_s"] > 0 for r in result[key])
        assert all(r["infer_page_faults_per_batch"] >= 0 for r in result[key])
    assert not any(r["steady_allocator"] for r in saved["equal_length"])
    if platform.libc_ver()[0] == "glibc" and os.environ.get("ARGMINN_MALLOC_TUNING", "1") != "0":
        assert all(r["steady_allocator"] for r in saved["equal_length_steady_malloc"] + saved["scaling"])
    assert set(saved["argminn_over_cnn_inference"]) == set(saved["canonical_strand_over_cnn_inference"]) == \
        {"default", "steady"}
    for mode, key in (("default", "equal_length"), ("steady", "equal_length_steady_malloc")):
        seconds = {r["model"]: r["infer_seconds_per_batch"] for r in saved[key]}
        assert saved["argminn_over_cnn_inference"][mode] == seconds["ARGMINN"] / seconds["standard CNN"]
        assert saved["canonical_strand_over_cnn_inference"][mode] == \
            seconds["ARGMINN (canonical strand)"] / seconds["standard CNN"]
    canonical = speed.build(speed.CANONICAL, 200)
    assert canonical.config.canonical_strand and not speed.build("ARGMINN", 200).config.canonical_strand
    # both ARGMINN models train on the regularized loss
    from argminn_plugin import TrainConfig
    from argminn_plugin.train import regularized_loss

    X, y = speed.onehot(4, 200), torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    torch.manual_seed(0)
    timed_loss = speed.loss_of(speed.CANONICAL, canonical, X, y)
    torch.manual_seed(0)
    assert torch.equal(timed_loss, regularized_loss(canonical, X, y, TrainConfig(), epoch=0)[0])
    assert [(r["model"], r["length"]) for r in saved["scaling"]] == [
        ("ARGMINN", 200), ("ARGMINN", 500), ("standard CNN", 200), ("standard CNN", 500)]
    by_length = {int(L): v for L, v in saved["argminn_over_cnn_inference_by_length"].items()}
    times = {(r["model"], r["length"]): r["infer_seconds_per_batch"] for r in saved["scaling"]}
    assert by_length == {L: times[("ARGMINN", L)] / times[("standard CNN", L)] for L in (200, 500)}
    assert all(r["peak_rss_mb"] > 0 for r in saved["scaling"])
    assert saved["regularizers"]["forward pass"]["relative_to_forward"] == 1.0
    assert [(r["model"], r["batch"]) for r in saved["inference_by_batch"]] == [
        (m, b) for b in (8, 16) for m in ("ARGMINN", "ARGMINN (canonical strand)", "standard CNN",
                                          "ARGMINN (both strands)", "standard CNN (both strands)")]
    assert all(r["infer_seconds_per_batch"] > 0 for r in saved["inference_by_batch"])
    ratios = {int(b): v for b, v in saved["argminn_over_cnn_inference_by_batch"].items()}
    rows = {(r["model"], r["batch"]): r["infer_seconds_per_batch"] for r in saved["inference_by_batch"]}
    assert ratios == {b: rows[("ARGMINN", b)] / rows[("standard CNN", b)] for b in (8, 16)}
    ratios = {int(b): v for b, v in saved["canonical_strand_over_cnn_inference_by_batch"].items()}
    assert ratios == {b: rows[("ARGMINN (canonical strand)", b)] / rows[("standard CNN", b)] for b in (8, 16)}
    ratios = {int(b): v for b, v in saved["both_strands_argminn_over_cnn_inference_by_batch"].items()}
    assert ratios == {b: rows[("ARGMINN (both strands)", b)] / rows[("standard CNN (both strands)", b)]
                      for b in (8, 16)}
    for name, inner in (("standard CNN", "StandardCNN"), ("ARGMINN", "ARGMINN")):  # the models timed: read on both
        both = speed.build(name + " (both strands)", 200)
        assert type(both).__name__ == "StrandAveraged" and type(both.model).__name__ == inner
    assert all(saved[k] is None or saved[k] >= 0 for k in ("load_average_before", "load_average_after"))
    assert saved["cpu_busy_before"] is None or 0 <= saved["cpu_busy_before"] <= 1
    assert speed.load_warning(None) is None and speed.load_warning(0.25) is None
    assert "other processes kept 60% of the CPUs busy" in speed.load_warning(0.6)
    assert (tmp_path / "scaling.png").stat().st_size > 0
    # a second run refuses to replace these figures before it times anything (timings are not recomputable)
    monkeypatch.setattr(speed, "in_fresh_process", lambda *a: pytest.fail("timed before refusing"))
    before = (tmp_path / "speed.json").read_bytes()
    with pytest.raises(ArgminnError, match=r"speed\.json: output exists; pass --force"):
        speed.main(str(tmp_path), smoke=True, threads=1)
    assert (tmp_path / "speed.json").read_bytes() == before
    (tmp_path / "speed.json").unlink()
    with pytest.raises(ArgminnError, match=r"scaling\.png: output exists; pass --force"):
        speed.main(str(tmp_path), smoke=True, threads=1)
    # --force replaces both (here with the first run's process figures, each train rate doubled, not timed again)
    replayed = iter(measured)

    def again(task, *args):
        rows = next(replayed)
        return [{**r, "train_seqs_per_s": 2 * r["train_seqs_per_s"]} for r in rows] if task == "interleaved" else rows
    monkeypatch.setattr(speed, "in_fresh_process", again)
    (tmp_path / "speed.json").write_bytes(before)
    png = (tmp_path / "scaling.png").stat().st_mtime_ns
    os.utime(tmp_path / "scaling.png", ns=(png - 10 ** 9, png - 10 ** 9))
    speed.main(str(tmp_path), smoke=True, threads=1, force=True)
    assert next(replayed, None) is None  # every process's figures were used, in the same order
    forced = json.loads((tmp_path / "speed.json").read_text())
    assert [r["train_seqs_per_s"] for r in forced["equal_length"]] == [
        2 * r["train_seqs_per_s"] for r in saved["equal_length"]]
    assert (tmp_path / "scaling.png").stat().st_mtime_ns > png - 10 ** 9
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staged file left


def _bench(monkeypatch, name):
    monkeypatch.syspath_prepend(ROOT)
    return importlib.import_module(f"benchmarks.{name}")


def test_benchmark_grammars_follow_their_rules(tmp_path, monkeypatch):
    """Every dataset's labels follow its stated rule on the saved ground truth."""
    import pandas as pd

    datasets = _bench(monkeypatch, "datasets")
    dirs = datasets.write_all(str(tmp_path), n_train=200, n_valid=20, n_test=20)
    for name, d in dirs.items():
        grammar = datasets.GRAMMARS[name]
        bed = pd.read_csv(os.path.join(d, "peaks.bed"), sep="\t")
        inst = pd.read_csv(os.path.join(d, "instances.tsv"), sep="\t")
        assert 0.35 < bed["label"].mean() < 0.65, name
        assert set(inst["motif"]) <= set(grammar.relevant + grammar.distractors), name
        for window, g in inst.groupby("window"):
            spans = sorted(zip(g["window_start"], g["window_end"]))
            assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), f"{name}: overlapping instances"
            label = int(g["label"].iloc[0])
            present = set(g["motif"])
            if name == "single_motif":
                assert label == ("SPI1" in present)
            elif name == "and_pair":
                assert label == ({"GATA1", "CEBPB"} <= present)
            elif name == "fixed_spacing":
                pair = {"HNF4A", "FOXA2"} <= present
                if pair:
                    a, b = (g[g["motif"] == m].iloc[0] for m in ("HNF4A", "FOXA2"))
                    same = a["strand"] == b["strand"]
                    gap = b["window_start"] - a["window_start"] if a["strand"] == "+" else a["window_end"] - b["window_end"]
                    assert label == (same and gap == datasets.SPACING), (window, gap)
                else:
                    assert label == 0
            elif name == "fixed_orientation":
                strands = {m: set(g.loc[g["motif"] == m, "strand"]) for m in ("SPI1", "GATA1")}
                assert label == (bool(strands["SPI1"] and strands["GATA1"]) and strands["SPI1"] == strands["GATA1"])
            elif name == "or_pairs":
                assert label == ({"GATA1", "CEBPB"} <= present or {"HNF4A", "FOXA2"} <= present)
            elif name == "distractors":
                assert label == ({"SPI1", "FOXA2"} <= present)
                assert len(present & set(grammar.distractors)) == 2
        # every labelled window with no instance is a negative (positives always carry motifs)
        windows = bed["#chrom"] + ":" + (bed["start"] + 1).astype(str) + "-" + bed["end"].astype(str)
        empty = ~windows.isin(set(inst["window"]))
        assert (bed.loc[empty, "label"] == 0).all(), name


def test_motif_metrics_count_recovery_redundancy_and_extraneous(monkeypatch):
    import numpy as np

    from argminn_plugin.motifs import jaspar_database
    from argminn_plugin.simulate import jaspar_motif

    discovery = _bench(monkeypatch, "discovery")
    db = jaspar_database()
    spi1, gata1 = jaspar_motif("MA0080.7")[1], jaspar_motif("MA0035.5")[1]
    junk = np.full((4, 8), 0.25)
    junk[[0, 1, 0, 1, 0, 1, 0, 1], range(8)] = 0.7
    junk /= junk.sum(0, keepdims=True)
    m = discovery.motif_metrics({"a": spi1, "b": spi1[:, ::-1][::-1], "c": junk},
                                {"SPI1": "MA0080.7", "GATA1": "MA0035.5"}, {}, db)
    assert m["recovered"] == {"SPI1": True, "GATA1": False}
    assert m["redundancy"] == {"SPI1": 2, "GATA1": 0}  # a motif and its reverse complement both match
    assert m["extraneous"] == 1 and m["extraneous_motifs"] == ["c"]
    assert not m["all_recovered"]
    m = discovery.motif_metrics({"a": spi1, "g": gata1}, {"SPI1": "MA0080.7", "GATA1": "MA0035.5"}, {}, db)
    assert m["all_recovered"] and m["all_redundancy_one"] and m["extraneous"] == 0
    assert m["uninformative_motifs"] == [] and m["composite_motifs"] == []
    # every motif is cut to its informative columns first: SPI1 inside uniform flanks is still SPI1, a uniform
    # matrix matches nothing, and a motif holding two relevant ones is listed as composite
    flat = np.full((4, 12), 0.25)
    m = discovery.motif_metrics({"padded": np.concatenate([flat, spi1, flat], 1), "flat": flat,
                                 "pair": np.concatenate([spi1, gata1], 1)},
                                {"SPI1": "MA0080.7", "GATA1": "MA0035.5"}, {}, db)
    assert m["recovered"] == {"SPI1": True, "GATA1": True}
    assert m["matches"]["SPI1"] == ["padded", "pair"] and m["matches"]["GATA1"] == ["pair"]
    assert m["extraneous_motifs"] == ["flat"] and m["uninformative_motifs"] == ["flat"]
    assert m["composite_motifs"] == ["pair"]
    assert set(m["as_read"]) == {"recovered", "redundancy", "extraneous", "extraneous_motifs"}
    untrimmed = discovery.motif_metrics({"flat": flat}, {"SPI1": "MA0080.7"}, {}, db, min_ic=None)
    assert untrimmed["uninformative_motifs"] == [] and "as_read" not in untrimmed
    # why: uninformative columns lend TOMTOM significance; a uniform matrix "matches" the extended CTCF matrix as
    # read (q ~1e-10), and matches nothing once cut
    m = discovery.motif_metrics({"flat": flat[:, :10]}, {"CTCF": "MA1929.2"}, {}, db)
    assert m["as_read"]["recovered"] == {"CTCF": True} and m["as_read"]["extraneous"] == 0
    assert m["recovered"] == {"CTCF": False} and m["extraneous_motifs"] == ["flat"]


def test_modisco_motifs_keep_both_metaclusters_cut_by_their_contributions(monkeypatch):
    """Positive and negative patterns are both discovered motifs, each cut where its CWM is >= 30% of its peak."""
    import types

    import modiscolite.tfmodisco
    import numpy as np
    import tangermeme.deep_lift_shap

    discovery = _bench(monkeypatch, "discovery")
    seen = {}

    def fake_shap(model, X, **kwargs):
        seen["shap"] = (tuple(X.shape), kwargs["hypothetical"], kwargs["random_state"])
        return torch.zeros_like(X)

    def pattern(weights, base):
        contrib = np.zeros((len(weights), 4), dtype=np.float32)
        contrib[:, 0] = weights
        sequence = np.full((len(weights), 4), 0.1, dtype=np.float32)
        sequence[np.arange(len(weights)), base] = 0.7
        return types.SimpleNamespace(contrib_scores=contrib, sequence=sequence)

    def fake_modisco(one_hot, hypothetical_contribs, **kwargs):
        seen["modisco"] = (one_hot.shape, hypothetical_contribs.shape)
        return ([pattern([0.1, 1.0, 0.5, 0.2], [0, 1, 2, 3])],
                [pattern([-0.05, -0.1, -1.0, -0.9, -0.3], [3, 3, 0, 1, 2])])

    monkeypatch.setattr(tangermeme.deep_lift_shap, "deep_lift_shap", fake_shap)
    monkeypatch.setattr(modiscolite.tfmodisco, "TFMoDISco", fake_modisco)
    X = torch.zeros(3, 4, 20)
    motifs = discovery.modisco_motifs(torch.nn.Identity(), X, seed=7)
    assert seen == {"shap": ((3, 4, 20), True, 7), "modisco": ((3, 20, 4), (3, 20, 4))}  # N x L x 4 for modisco
    assert list(motifs) == ["pos_pattern0", "neg_pattern0"]
    assert motifs["pos_pattern0"].shape == (4, 2) and motifs["pos_pattern0"].argmax(0).tolist() == [1, 2]
    assert motifs["neg_pattern0"].shape == (4, 3) and motifs["neg_pattern0"].argmax(0).tolist() == [0, 1, 2]
    assert np.allclose(motifs["neg_pattern0"].sum(0), 1)


def test_targets_are_checked_as_stated(monkeypatch):
    discovery = _bench(monkeypatch, "discovery")

    def res(auroc, extraneous, exact=True):
        return {"auroc": auroc, "extraneous": extraneous, "all_recovered": exact, "all_redundancy_one": exact}

    results = {f"d{k}": {"ARGMINN": res(0.95, 0), "CNN": res(0.955, 3), "ExplaiNN": res(0.94, 1),
                         "CNN+DeepLIFT+MoDISco": res(0.955, 1)} for k in range(6)}
    results["d5"]["ARGMINN"]["all_redundancy_one"] = False  # 5 of 6 exact: still met
    t = {name: met for name, (met, *_) in discovery.targets(results).items()}
    assert t == {"every relevant motif once (all datasets but one: 5 of 6)": True,
                 "fewer extraneous motifs than every baseline": True,
                 "auROC within 0.01 of the best baseline": True}
    # read on both strands: judged on that reading alone, where every result has it
    both = "auROC within 0.01 of the best baseline, every method read on both strands"
    for by_method in results.values():
        for r in by_method.values():
            r["auroc_both_strands"] = r["auroc"] + 0.02
    results["d2"]["ARGMINN"]["auroc_both_strands"] = 0.95  # 0.025 below the best baseline read so
    t = discovery.targets(results)
    assert t["auROC within 0.01 of the best baseline"][0] and not t[both][0]
    assert t[both][1:] == (["d0", "d1", "d3", "d4", "d5"], "within 0.01 on 5 of 6: d0, d1, d3, d4, d5")
    del results["d3"]["ExplaiNN"]["auroc_both_strands"]  # a result saved before the reading: not judged
    assert both not in discovery.targets(results)
    results["d4"]["ARGMINN"]["all_recovered"] = False  # 4 of 6
    results["d0"]["ARGMINN"]["auroc"] = 0.944  # 0.011 below the best baseline
    results["d1"]["ARGMINN"]["extraneous"] = 2  # more than ExplaiNN and MoDISco on d1
    t = discovery.targets(results)
    assert not any(met for met, *_ in t.values())
    assert t["auROC within 0.01 of the best baseline"][1] == ["d1", "d2", "d3", "d4", "d5"]
    assert t["fewer extraneous motifs than every baseline"][1] == ["d0", "d2", "d3", "d4", "d5"]
    assert t["fewer extraneous motifs than every baseline"][2] == (
        "never more than a baseline on 5 of 6: d0, d2, d3, d4, d5; "
        "totals ARGMINN 2, CNN 18, ExplaiNN 6, CNN+DeepLIFT+MoDISco 6")
    assert t["every relevant motif once (all datasets but one: 5 of 6)"][2] == "exactly once on 4 of 6: d0, d1, d2, d3"
    # a tie at zero on every dataset is not "fewer"
    for d in results.values():
        d["ARGMINN"]["extraneous"] = d["CNN+DeepLIFT+MoDISco"]["extraneous"] = 0
    assert not discovery.targets(results)["fewer extraneous motifs than every baseline"][0]


def test_discovery_benchmark_smoke(tmp_path, monkeypatch):
    """Two datasets, all four methods, 2 epochs: tables, JSON, PNG, and resuming reuses finished results."""
    discovery = _bench(monkeypatch, "discovery")
    report = discovery.main(str(tmp_path), smoke=True, datasets=["single_motif", "fixed_spacing"], threads=1)
    saved = json.loads((tmp_path / "discovery.json").read_text())
    assert set(saved["results"]) == {"single_motif", "fixed_spacing"}
    for res in saved["results"].values():
        assert set(res) == set(discovery.METHODS)
        for r in res.values():
            assert 0 <= r["auroc"] <= 1 and 0 <= r["coverage_at_n"] <= 1
            assert 0 <= r["auroc_both_strands"] <= 1 and 0 <= r["auprc_both_strands"] <= 1
            assert r["extraneous"] <= r["n_motifs"]
        assert res["CNN+DeepLIFT+MoDISco"]["auroc_both_strands"] == res["CNN"]["auroc_both_strands"]
    assert set(saved["targets"]) == set(report["targets"])
    assert "auROC within 0.01 of the best baseline, every method read on both strands" in saved["targets"]
    # the both-strand reading is the saved model's read on both strands (StrandAveraged), for every method
    from argminn_plugin import StrandAveraged
    from argminn_plugin.data import load_splits
    from argminn_plugin.train import classification_metrics, evaluate, load_model

    data = tmp_path / "fixed_spacing" / "data"
    Xs, ys, _ = load_splits(str(data / "genome.fa"), str(data / "peaks.bed"), 200, ["chr2"], ["chr3"])[0]["test"]
    for method in ("ARGMINN", "CNN", "ExplaiNN"):
        model = load_model(str(tmp_path / "fixed_spacing" / method / "model.pt"))
        both = classification_metrics(ys, evaluate(StrandAveraged(model), Xs, ys)[1])[0]
        r = saved["results"]["fixed_spacing"][method]
        assert (r["auroc_both_strands"], r["auprc_both_strands"]) == (both["auroc"], both["auprc"]), method
        assert r["auroc"] == classification_metrics(ys, evaluate(model, Xs, ys)[1])[0]["auroc"] != both["auroc"]
    shown = {d: {m: {**r, "auroc_both_strands": 0.123} for m, r in by.items()} for d, by in saved["results"].items()}
    table = discovery.table_text(shown).split("\n\n")
    assert [part for part in table if part.startswith("auROC, every method read on both strands")][0].count(
        "0.123") == 2 * len(discovery.METHODS)
    assert (tmp_path / "discovery.png").stat().st_size > 0
    # a run of some datasets and methods (as the registered checks run them): each method's column, '-' where a
    # dataset has no result of it (was: no column at all unless every dataset had the method)
    partial = {"fixed_spacing": {"CNN": saved["results"]["fixed_spacing"]["CNN"]},
               "single_motif": {"ExplaiNN": saved["results"]["single_motif"]["ExplaiNN"]}}
    part = discovery.table_text(partial).strip().split("\n\n")[0].splitlines()  # auROC, then its header
    assert part[1].split() == ["dataset", "CNN", "ExplaiNN"]
    assert part[2].split() == ["fixed_spacing", f"{partial['fixed_spacing']['CNN']['auroc']:.3f}", "-"]
    assert part[3].split() == ["single_motif", "-", f"{partial['single_motif']['ExplaiNN']['auroc']:.3f}"]
    import warnings
    figures = []
    real_save = discovery.save_png
    monkeypatch.setattr(discovery, "save_png", lambda fig, *a, **k: figures.append(fig) or real_save(fig, *a, **k))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels found to put in legend"
        discovery.plot(partial, str(tmp_path / "partial.png"))
        discovery.plot({"fixed_spacing": {}}, str(tmp_path / "none.png"))
    heights = [bar.get_height() for bar in figures[0].axes[0].patches]  # auROC: CNN's bars, then ExplaiNN's
    assert np.isnan(heights).tolist() == [False, True, True, False]  # no bar where a method has no result
    assert (tmp_path / "single_motif" / "CNN_DeepLIFT_MoDISco" / "result.json").exists()
    # where each trained model errs, by kind of negative
    errors = _bench(monkeypatch, "errors")
    err = errors.main(str(tmp_path), "fixed_spacing")
    assert set(err) == {"ARGMINN", "CNN", "ExplaiNN"}
    for r in err.values():
        counts = list(r["by_kind"].values())
        assert all(0 <= above <= n for n, above in counts)
        assert r["positives_above"] >= 0.95 * r["positives"]
        assert any(kind.endswith(" alone") for kind in r["by_kind"])
        assert any(" spacing " in kind for kind in r["by_kind"])
    assert json.loads((tmp_path / "fixed_spacing" / "errors.json").read_text())["methods"] == err
    # ... and on the training sequences, in a file of its own (the held-out table is kept)
    on_train = errors.main(str(tmp_path), "fixed_spacing", split="train")
    saved_train = json.loads((tmp_path / "fixed_spacing" / "errors_train.json").read_text())
    assert saved_train["split"] == "train" and saved_train["methods"] == on_train
    n_train = sum(n for n, _ in on_train["ARGMINN"]["by_kind"].values()) + on_train["ARGMINN"]["positives"]
    n_test = sum(n for n, _ in err["ARGMINN"]["by_kind"].values()) + err["ARGMINN"]["positives"]
    assert n_train > n_test  # smoke sizes: 400 training sequences, 150 held out
    assert json.loads((tmp_path / "fixed_spacing" / "errors.json").read_text())["methods"] == err
    # the whole suite's --out (discovery in DIR/discovery) is taken as well
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "discovery").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "fixed_spacing" / "errors.json").unlink()
    assert errors.main(str(suite), "fixed_spacing") == err
    assert (tmp_path / "fixed_spacing" / "errors.json").exists() and not (suite / "fixed_spacing").exists()
    with pytest.raises(ArgminnError, match="unknown split 'holdout'"):
        errors.dataset_errors(str(tmp_path), "fixed_spacing", split="holdout")
    with pytest.raises(ArgminnError, match="no benchmark data"):
        errors.dataset_errors(str(tmp_path), "or_pairs")
    # a second run reuses every finished (dataset, method) result
    stamp = (tmp_path / "single_motif" / "ARGMINN" / "result.json").stat().st_mtime_ns
    discovery.main(str(tmp_path), smoke=True, datasets=["single_motif"], threads=1)
    assert (tmp_path / "single_motif" / "ARGMINN" / "result.json").stat().st_mtime_ns == stamp
    # ... and adds to the report: the dataset it left out is kept, with the targets over both
    again = json.loads((tmp_path / "discovery.json").read_text())
    assert list(again["results"]) == ["single_motif", "fixed_spacing"] and set(again["targets"]) == set(saved["targets"])
    assert again["results"]["fixed_spacing"] == saved["results"]["fixed_spacing"]
    # --rescore scores the saved models again, training nothing: the same results
    folder = tmp_path / "single_motif"
    before = {m: json.loads((folder / m.replace("+", "_") / "result.json").read_text()) for m in discovery.METHODS}
    checkpoint = (folder / "ARGMINN" / "last.pt").stat().st_mtime_ns
    discovery.main(str(tmp_path), smoke=True, datasets=["single_motif"], threads=1, rescore=True)
    assert (folder / "ARGMINN" / "result.json").stat().st_mtime_ns != stamp
    assert (folder / "ARGMINN" / "last.pt").stat().st_mtime_ns == checkpoint
    for m, earlier in before.items():
        again = json.loads((folder / m.replace("+", "_") / "result.json").read_text())
        kept = folder / m.replace("+", "_") / discovery.KEPT_MEME  # the set first scored, beside the new one
        assert kept.exists() == (folder / m.replace("+", "_") / "motifs.meme").exists() == (earlier["n_motifs"] > 0)
        if kept.exists():
            assert kept.read_text() == (folder / m.replace("+", "_") / "motifs.meme").read_text()
        assert {k: v for k, v in again.items() if k != "interpret_seconds"} == \
            {k: v for k, v in earlier.items() if k != "interpret_seconds"}, m
    # a run saved before a model-config key existed is the same model (the key's default): reused
    from argminn_plugin.fileio import model_fingerprint, safe_load_torch

    last = folder / "ARGMINN" / "last.pt"
    state = safe_load_torch(str(last))
    del state["model_config"]["attention_sink"]
    torch.save(state, last)
    stamp = (folder / "ARGMINN" / "result.json").stat().st_mtime_ns
    discovery.main(str(tmp_path), smoke=True, datasets=["single_motif"], threads=1)
    assert (folder / "ARGMINN" / "result.json").stat().st_mtime_ns == stamp
    # ... but one whose config no longer reads (a key since removed) is refused, without fields to name
    saved = last.read_bytes()
    torch.save({**state, "model_config": {**state["model_config"], "removed_key": 1}}, last)
    with pytest.raises(ArgminnError, match=re.escape(f"{folder / 'ARGMINN'}: trained with another model config; "
                                                     "use another --out")):
        discovery.main(str(tmp_path), smoke=True, datasets=["single_motif"], threads=1)
    last.write_bytes(saved)
    # MoDISco's result is of the CNN beside it: one of a CNN trained again since is refused (one written before
    # the CNN's fingerprint was kept is taken as it is)
    modisco = folder / "CNN_DeepLIFT_MoDISco" / "result.json"
    result = json.loads(modisco.read_text())
    assert result["cnn_fingerprint"] == model_fingerprint(load_model(str(folder / "CNN" / "model.pt")))
    modisco.write_text(json.dumps({**result, "cnn_fingerprint": "0" * 64}))
    with pytest.raises(ArgminnError, match=re.escape(f"{modisco.parent}: explains another CNN than the one in "
                                                     f"{folder / 'CNN'}")):
        discovery.main(str(tmp_path), smoke=True, datasets=["single_motif"], threads=1)
    # (--rescore runs MoDISco again on the CNN there, so it is not refused)
    discovery.main(str(tmp_path), smoke=True, datasets=["single_motif"], methods=["CNN+DeepLIFT+MoDISco"],
                   threads=1, rescore=True)
    assert json.loads(modisco.read_text())["cnn_fingerprint"] == result["cnn_fingerprint"]
    modisco.write_text(json.dumps({k: v for k, v in result.items() if k != "cnn_fingerprint"}))
    discovery.main(str(tmp_path), smoke=True, datasets=["single_motif"], threads=1)
    modisco.write_text(json.dumps(result))
    # ... but not one trained with other settings
    trained_with = discovery.train_config("ARGMINN", "smoke", 0, 1).overlap_weight
    trained_settings = dict(discovery.ARGMINN_TRAIN)
    monkeypatch.setattr(discovery, "ARGMINN_TRAIN", {**discovery.ARGMINN_TRAIN, "overlap_weight": 0.5})
    with pytest.raises(ArgminnError, match=re.escape(f"overlap_weight={trained_with!r} instead of overlap_weight=0.5")):
        discovery.main(str(tmp_path), smoke=True, datasets=["single_motif"], threads=1)
    monkeypatch.setattr(discovery, "ARGMINN_TRAIN", trained_settings)
    # another setting in this --out (a variant run, another training or data seed, the full sizes) is refused
    # before any data is drawn, as its report would replace this one's and its datasets mix with these
    report = (tmp_path / "discovery.json").read_bytes()
    for kwargs, differ in (({"argminn_set": {"overlap_weight": 0.5}}, "argminn_set None there, {'overlap_weight': "
                                                                       "0.5} here"),
                           ({"train_seed": 5}, "train_seed 0 there, 5 here"),
                           ({"seed": 1, "datasets": ["and_pair"]}, "seed 0 there, 1 here; train_seed 0 there, 1 "
                                                                   "here"),
                           ({"smoke": False, "datasets": ["and_pair"]}, "mode 'smoke' there, 'full' here")):
        with pytest.raises(ArgminnError, match=re.escape(f"{tmp_path}: holds the results of another setting "
                                                         f"({differ}); use another --out")):
            discovery.main(str(tmp_path), **{"smoke": True, "datasets": ["single_motif"], "threads": 1, **kwargs})
    assert not (tmp_path / "and_pair").exists() and (tmp_path / "discovery.json").read_bytes() == report
    # a report written before --train-seed existed trained with its data seed: the same setting
    old = {k: v for k, v in json.loads(report).items() if k != "train_seed"}
    (tmp_path / "discovery.json").write_text(json.dumps(old))
    discovery.check_setting(str(tmp_path), {"mode": "smoke", "seed": 0, "train_seed": 0, "argminn_set": None})
    assert discovery._with_earlier_results(str(tmp_path), {**old, "train_seed": 0, "results": {}}) == old["results"]
    (tmp_path / "discovery.json").write_bytes(report)
    # ... and, without the report, each run folder is still checked: a variant run does not reuse one trained
    # with the benchmark's own setting, nor a run another training seed, nor data another seed
    (tmp_path / "discovery.json").rename(tmp_path / "report.json")
    with pytest.raises(ArgminnError, match=re.escape(f"overlap_weight={trained_with!r} instead of overlap_weight=0.5")):
        discovery.main(str(tmp_path), smoke=True, datasets=["single_motif"], threads=1,
                       argminn_set={"overlap_weight": 0.5})
    with pytest.raises(ArgminnError, match=re.escape("seed=0 instead of seed=5")):
        discovery.main(str(tmp_path), smoke=True, datasets=["single_motif"], threads=1, train_seed=5)
    with pytest.raises(ArgminnError, match="holds dataset 'single_motif', seed 0.*wants 'single_motif', seed 1"):
        discovery.main(str(tmp_path), smoke=True, datasets=["single_motif"], seed=1, threads=1)
    (tmp_path / "report.json").rename(tmp_path / "discovery.json")
    # a damaged result.json or simulation.json: one line naming it
    result = tmp_path / "fixed_spacing" / "CNN" / "result.json"
    kept = result.read_bytes()
    for content, message in ((kept[:100], "not a readable benchmark result (line "),
                             (b"[]", "not a readable benchmark result ("),
                             (b'{"x": 1}', "not a readable benchmark result (no 'auroc', 'auprc'")):
        result.write_bytes(content)
        with pytest.raises(ArgminnError, match=re.escape(f"{result}: {message}")):
            discovery.main(str(tmp_path), smoke=True, datasets=["fixed_spacing"], methods=["CNN"], threads=1)
    result.write_bytes(kept)
    summary = tmp_path / "fixed_spacing" / "data" / "simulation.json"
    kept = summary.read_bytes()
    for content in (b"{", b'{"benchmark": "fixed_spacing"}'):
        summary.write_bytes(content)
        with pytest.raises(ArgminnError, match=re.escape(f"{summary}: not a readable benchmark dataset")):
            discovery.main(str(tmp_path), smoke=True, datasets=["fixed_spacing"], methods=["CNN"], threads=1)
        with pytest.raises(ArgminnError, match=re.escape(f"{summary}: not a readable benchmark dataset")):
            errors.main(str(tmp_path), "fixed_spacing")
    summary.write_bytes(kept)
    # the report is merged and written under a lock on the --out, so runs of other datasets at once both land
    import fcntl
    merge = discovery._with_earlier_results

    def held(out, report):
        with open(os.path.join(out, ".discovery.lock")) as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another process's (open file's) lock would wait
        return merge(out, report)
    monkeypatch.setattr(discovery, "_with_earlier_results", held)
    discovery.main(str(tmp_path), smoke=True, datasets=["fixed_spacing"], methods=["CNN"], threads=1)
    monkeypatch.setattr(discovery, "_with_earlier_results", merge)
    # a run train refuses to continue: its way out is the benchmark's, not argminn's --force
    run = tmp_path / "single_motif" / "ARGMINN"
    for name in ("result.json", "last.pt"):
        (run / name).unlink()
    with pytest.raises(ArgminnError, match="cannot be continued") as refused:
        discovery.main(str(tmp_path), smoke=True, datasets=["single_motif"], threads=1)
    assert str(refused.value).endswith(f"[benchmarks.discovery has no --force (the suite's replaces only the speed "
                                       f"figures): remove {run} to train this run again, or give another --out]")
    # ... told by its type (errors.StartAgain), not by '--force' in its text
    from argminn_plugin.errors import StartAgain

    def refuses(*args, **kwargs):
        raise StartAgain("somewhere: a refusal naming no way out")

    monkeypatch.setattr(discovery, "train", refuses)
    with pytest.raises(ArgminnError) as refused:
        discovery.main(str(tmp_path), smoke=True, datasets=["single_motif"], threads=1)
    assert str(refused.value) == (f"somewhere: a refusal naming no way out [benchmarks.discovery has no --force (the "
                                  f"suite's replaces only the speed figures): remove {run} to train this run again, "
                                  "or give another --out]")


def test_negative_kinds_label_pairs_in_the_first_motifs_frame(monkeypatch):
    """A pair's spacing is start to start on the first motif's strand; distractors are ignored."""
    import pandas as pd

    errors = _bench(monkeypatch, "errors")
    truth = pd.DataFrame([(0, "HNF4A", 10, 19, "+"), (0, "FOXA2", 32, 40, "+"),    # forward block, 22 bp
                          (1, "FOXA2", 51, 59, "-"), (1, "HNF4A", 72, 81, "-"),    # the same block reversed
                          (2, "FOXA2", 5, 13, "+"), (2, "CTCF", 40, 59, "+"),      # one relevant motif
                          (3, "HNF4A", 5, 14, "+"), (3, "FOXA2", 60, 68, "-")],    # opposite strands
                         columns=["sequence", "motif", "start", "end", "strand"])
    kinds = errors.negative_kinds(truth, 5, ("HNF4A", "FOXA2"))
    assert list(kinds) == ["HNF4A+FOXA2 spacing 22, same strand", "HNF4A+FOXA2 spacing 22, same strand",
                           "FOXA2 alone", "HNF4A+FOXA2 spacing 55, opposite strands", "none"]
    assert errors.spacing_bin("HNF4A+FOXA2 spacing 23, same strand") == "HNF4A+FOXA2 spacing 20-24, same strand"
    assert errors.spacing_bin("FOXA2 alone") == "FOXA2 alone"
    # the second motif first: a negative spacing, binned and sorted as a number
    truth.loc[len(truth)] = (4, "FOXA2", 3, 11, "+")
    truth.loc[len(truth)] = (4, "HNF4A", 40, 49, "+")
    kinds = errors.negative_kinds(truth, 5, ("HNF4A", "FOXA2"))
    assert kinds[4] == "HNF4A+FOXA2 spacing -37, same strand"
    binned = [errors.spacing_bin(k) for k in kinds]
    assert binned[4] == "HNF4A+FOXA2 spacing -40--36, same strand"
    report = {"M": {"by_kind": {k: [1, 0] for k in binned}}}
    rows = errors.table_text(report, 0.95).splitlines()[2:-1]
    assert [r.split("  ")[0] for r in rows] == [
        "FOXA2 alone", "HNF4A+FOXA2 spacing 55-59, opposite strands", "HNF4A+FOXA2 spacing -40--36, same strand",
        "HNF4A+FOXA2 spacing 20-24, same strand"]
    # where the label depends only on which motifs are present (or_pairs), a pair is named by its motifs
    assert list(errors.negative_kinds(truth, 5, ("HNF4A", "FOXA2"), "motifs")) == [
        "HNF4A+FOXA2", "HNF4A+FOXA2", "FOXA2 alone", "HNF4A+FOXA2", "HNF4A+FOXA2"]
    assert list(errors.negative_kinds(truth, 5, ("HNF4A", "FOXA2"), "strand"))[3] == "HNF4A+FOXA2, opposite strands"
    with pytest.raises(ArgminnError, match="'detail' must be one of"):
        errors.negative_kinds(truth, 5, ("HNF4A", "FOXA2"), "spacings")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="VmHWM is Linux's")
def test_a_fresh_process_measures_its_own_peak_memory_not_its_parents(monkeypatch):
    """A parent grown larger than the model (the suite, after discovery) does not lend its peak to the spawned
    process that measures the model (getrusage's ru_maxrss carries over fork and exec: every figure was the
    parent's)."""
    speed = _bench(monkeypatch, "speed")
    ballast = bytearray(1500 * 2 ** 20)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # resident: every page touched
    assert speed.own_peak_rss_mb() > 1500
    peak = speed.in_fresh_process("peak_memory", ("standard CNN", 200, 8), 1, False)["peak_rss_mb"]
    del ballast  # (one block of its own: given back to the system at once)
    assert 50 < peak < 1200, peak
    assert speed.own_peak_rss_mb() > 1500  # the peak, not the memory held now


def test_fresh_process_failures_raise_instead_of_hanging(monkeypatch):
    """A task that fails, or a worker that dies without a result (as when killed out of memory), raises."""
    import functools
    import signal
    import threading

    speed = _bench(monkeypatch, "speed")

    def error_of(*args):  # in a thread, so that waiting forever fails the test instead of blocking it
        box = {}

        def run():
            try:
                box["result"] = speed.in_fresh_process(*args)
            except Exception as exc:
                box["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(timeout=60)
        assert not thread.is_alive(), f"in_fresh_process{args} still waiting after 60 s"
        return box.get("error")

    error = error_of("peak_memory", ("bad", 200, 8), 1, True)
    assert isinstance(error, RuntimeError)
    assert "peak_memory('bad', 200, 8) in a fresh process failed" in str(error)
    assert str(error).rstrip().endswith("ValueError: bad")  # the worker's traceback
    error = error_of("timed", (functools.partial(signal.raise_signal, signal.SIGKILL), 1), 1, False)
    assert isinstance(error, RuntimeError)
    assert str(error).endswith("was killed by SIGKILL (out of memory?) without a result")


def test_chance_copies_of_a_missing_motif_are_named_in_a_rows_kind(monkeypatch):
    """A negative holding, by chance, the exact consensus of a relevant motif not planted in it (either strand)
    is counted apart: 'CEBPB alone + chance GATA1'; a planted motif, an N base or a near copy is no chance copy."""
    import pandas as pd

    errors = _bench(monkeypatch, "errors")
    codes = {"A": 0, "C": 1, "G": 2, "T": 3}

    def one_hot(seq):
        X = np.zeros((4, len(seq)), dtype=np.float32)
        for i, base in enumerate(seq):
            if base in codes:
                X[codes[base], i] = 1
        return X

    background = "T" * 30
    seqs = [background[:5] + "AACG" + background[9:],    # GATA1's consensus, forward
            background[:20] + "CGTT" + background[24:],  # ... its reverse complement
            background[:5] + "AACG" + background[9:],    # ... but GATA1 is planted in this row
            background[:5] + "AANG" + background[9:],    # an N: no copy
            background[:5] + "AACC" + background[9:],    # one base off: no copy
            "GGCC" + background[4:8] + "AACG" + background[12:]]  # both, in consensus order
    X = torch.from_numpy(np.stack([one_hot(s) for s in seqs]))
    assert X[3].sum(0)[7] == 0  # the N base is all zeros
    consensus = {"GATA1": "AACG", "CEBPB": "GGCC"}
    assert errors.consensus_bases(np.array([[0.7, 0.1], [0.1, 0.1], [0.1, 0.1], [0.1, 0.7]])) == "AT"
    assert errors.consensus_bases(np.array([[0.4, 0.1], [0.3, 0.1], [0.2, 0.1], [0.1, 0.7]])) == "AT"  # < 0.5 too
    truth = pd.DataFrame([(0, "CEBPB", 12, 22, "+"), (1, "CEBPB", 2, 12, "-"), (2, "GATA1", 5, 9, "+")],
                         columns=["sequence", "motif", "start", "end", "strand"])
    assert errors.chance_copies(X, truth, consensus) == [["GATA1"], ["GATA1"], [], [], [], ["GATA1", "CEBPB"]]
    kinds = errors.row_kinds(X, truth, ("GATA1", "CEBPB"), consensus, "motifs")
    assert list(kinds) == ["CEBPB alone + chance GATA1", "CEBPB alone + chance GATA1", "GATA1 alone", "none",
                           "none", "none + chance GATA1 + chance CEBPB"]
    report = {"M": {"by_kind": {k: [1, 0] for k in kinds}}}  # sorted after the kind without the copy
    rows = [r.split("  ")[0] for r in errors.table_text(report, 0.95).splitlines()[2:-1]]
    assert rows == ["CEBPB alone + chance GATA1", "GATA1 alone", "none", "none + chance GATA1 + chance CEBPB"]


def test_errors_cli_reports_a_user_mistake_in_one_line(tmp_path, monkeypatch, capsys):
    # the file system's refusals and interruptions end a benchmark as they end argminn: one line, 2 / 130
    discovery = _bench(monkeypatch, "discovery")
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(SystemExit) as stop:
        discovery.cli(["--out", str(afile), "--smoke", "--datasets", "single_motif", "--methods", "CNN"])
    assert stop.value.code == 2
    assert capsys.readouterr().err == f"benchmarks.discovery: error: {afile}: exists and is a file; an output " \
                                      "directory is needed there\n"
    with pytest.raises(SystemExit) as stop, _bench(monkeypatch, "errors").one_line_errors("benchmarks.speed"):
        raise KeyboardInterrupt
    assert stop.value.code == 130 and capsys.readouterr().err == "benchmarks.speed: interrupted\n"
    errors = _bench(monkeypatch, "errors")
    with pytest.raises(SystemExit) as stop:
        errors.cli(["--out", str(tmp_path), "--dataset", "fixed_spacing"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("benchmarks.errors: error: ")
    assert "no benchmark data; run python -m benchmarks.discovery" in err
    assert err.count("\n") == 1
    with pytest.raises(SystemExit) as stop:
        errors.cli(["--out", str(tmp_path), "--dataset", "fixed_spacing", "--split", "holdout"])
    assert stop.value.code == 2
    assert "argument --split: invalid choice: 'holdout'" in capsys.readouterr().err


def test_discovery_runs_methods_in_dependency_order(tmp_path, monkeypatch, capsys):
    """MoDISco named before the CNN it explains still runs after it; user mistakes print one line, status 2."""
    discovery = _bench(monkeypatch, "discovery")
    out = tmp_path / "discovery"
    discovery.cli(["--out", str(out), "--smoke", "--datasets", "single_motif", "--threads", "1",
                   "--methods", "CNN+DeepLIFT+MoDISco", "CNN"])
    saved = json.loads((out / "discovery.json").read_text())
    assert list(saved["results"]["single_motif"]) == ["CNN", "CNN+DeepLIFT+MoDISco"]
    assert (out / "single_motif" / "CNN_DeepLIFT_MoDISco" / "result.json").exists()
    with pytest.raises(ArgminnError, match="unknown method.*'RF'"):
        discovery.main(str(tmp_path / "other"), smoke=True, methods=["CNN", "RF"])
    assert not (tmp_path / "other").exists()
    capsys.readouterr()
    # another seed in the same --out: one line, from benchmarks.discovery and from the suite (python -m benchmarks)
    suite = _bench(monkeypatch, "__main__")
    for prog, run in (("benchmarks.discovery", lambda: discovery.cli(
            ["--out", str(out), "--smoke", "--datasets", "single_motif", "--seed", "1", "--threads", "1"])),
                      ("benchmarks", lambda: suite.main(["--out", str(tmp_path), "--smoke", "--seed", "1",
                                                         "--threads", "1"]))):
        with pytest.raises(SystemExit) as stop:
            run()
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"{prog}: error: ") and f"{out}: holds the results of another setting (seed 0 " \
            "there, 1 here" in err, err
        assert err.count("\n") == 1
    # a negative seed or no threads: argparse's one line, before anything runs
    for argv, message in ((["--seed", "-1"], "argument --seed: must be >= 0, got -1"),
                          (["--train-seed", "-2"], "argument --train-seed: must be >= 0, got -2"),
                          (["--threads", "0"], "argument --threads: must be >= 1, got 0"),
                          (["--seed", "one"], "argument --seed: 'one' is not an integer")):
        with pytest.raises(SystemExit) as stop:
            discovery.cli(["--out", str(tmp_path / "bad"), "--smoke", *argv])
        assert stop.value.code == 2 and capsys.readouterr().err.splitlines()[-1].endswith(message)
    for argv, message in ((["--argminn-set", "warmup_candidates"], "--argminn-set: 'warmup_candidates' is not KEY=VALUE"),
                          (["--argminn-set", "l1_weight=0", "--argminn-set", "l1_weight=1"],
                           "--argminn-set: key 'l1_weight' given twice"),
                          (["--argminn-set", "filters=3"], "--argminn-set: unknown key(s) 'filters'; valid keys are"),
                          (["--argminn-set", "seed=3"], "'seed': the benchmark's, the same for every method (the "
                                                        "training seed: --train-seed)"),
                          (["--argminn-set", "patience=3"], "'patience': the benchmark's, the same for every method"),
                          (["--methods", "CNN", "--argminn-set", "l1_weight=0"], "include ARGMINN in --methods"),
                          (["--argminn-set", "warmup_candidates=many"], "warmup_candidates")):
        with pytest.raises(SystemExit) as stop:
            discovery.cli(["--out", str(tmp_path / "bad"), "--smoke", *argv])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and message in err.splitlines()[-1], err
    with pytest.raises(SystemExit) as stop:
        suite.main(["--out", str(tmp_path / "bad"), "--smoke", "--threads", "-1"])
    assert stop.value.code == 2 and "argument --threads: must be >= 1, got -1" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    # an earlier run's speed figures: the suite refuses at the start, not after discovery has run
    (tmp_path / "old" / "speed").mkdir(parents=True)
    (tmp_path / "old" / "speed" / "speed.json").write_text("{}")
    with pytest.raises(SystemExit) as stop:
        suite.main(["--out", str(tmp_path / "old"), "--smoke", "--threads", "1"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("benchmarks: error: ") and "speed.json: output exists" in err
    assert not (tmp_path / "old" / "discovery").exists()
    assert (tmp_path / "old" / "speed" / "speed.json").read_text() == "{}"


def test_discovery_variant_run_trains_argminn_with_the_setting_changed(tmp_path, monkeypatch):
    """--argminn-set changes ARGMINN's TrainConfig alone, is recorded, and its run is reused under it only."""
    discovery = _bench(monkeypatch, "discovery")
    # checked with the epochs the benchmark trains: warm-ups past TrainConfig's default 40 epochs are valid
    late = {"overlap_warmup": 45, "l1_warmup": 45, "entropy_warmup": 45, "resample_until": 60}
    assert discovery.train_config("ARGMINN", "full", 0, 1, late).overlap_warmup == 45
    with pytest.raises(ArgminnError, match=r"^--argminn-set: TrainConfig: .*\(the benchmark trains up to 100 epochs\)$"):
        discovery.train_config("ARGMINN", "full", 0, 1, {"overlap_warmup": 200})
    k = discovery.ARGMINN_TRAIN["warmup_candidates"] + 1  # one more warm-up than the benchmark's
    variant = {"warmup_candidates": k, "overlap_units": "raw"}
    changed = discovery.train_config("ARGMINN", "smoke", 0, 1, variant)
    assert changed == discovery.train_config("ARGMINN", "smoke", 0, 1).replace(**variant)
    assert discovery.train_config("CNN", "smoke", 0, 1, variant) == discovery.train_config("CNN", "smoke", 0, 1)
    out = tmp_path / "variant"
    discovery.cli(["--out", str(out), "--smoke", "--datasets", "single_motif", "--threads", "1",
                   "--methods", "ARGMINN", "--argminn-set", f"warmup_candidates={k}"])
    saved = json.loads((out / "discovery.json").read_text())
    assert saved["argminn_set"] == {"warmup_candidates": k}
    record = json.loads((out / "single_motif" / "ARGMINN" / "warmup_candidates.json").read_text())
    assert [c["seed"] for c in record["candidates"]] == [1000 * i for i in range(k)]
    stamp = (out / "single_motif" / "ARGMINN" / "result.json").stat().st_mtime_ns
    discovery.main(str(out), smoke=True, datasets=["single_motif"], methods=["ARGMINN"], threads=1,
                   argminn_set={"warmup_candidates": k})
    assert (out / "single_motif" / "ARGMINN" / "result.json").stat().st_mtime_ns == stamp  # reused
    with pytest.raises(ArgminnError, match=re.escape(f"{out}: holds the results of another setting (argminn_set "
                                                     f"{{'warmup_candidates': {k}}} there, None here)")):
        discovery.main(str(out), smoke=True, datasets=["single_motif"], methods=["ARGMINN"], threads=1)
    (out / "discovery.json").unlink()  # without the report, the run folder's own record refuses it
    with pytest.raises(ArgminnError, match=re.escape(f"warmup_candidates={k} instead of warmup_candidates={k - 1}")):
        discovery.main(str(out), smoke=True, datasets=["single_motif"], methods=["ARGMINN"], threads=1)


def test_discovery_model_variant_run_builds_argminn_with_the_field_changed(tmp_path, monkeypatch, capsys):
    """--argminn-model-set changes ARGMINN's ModelConfig alone (the data's fields refused), is recorded, and its
    run is reused under it only."""
    discovery = _bench(monkeypatch, "discovery")
    assert discovery.argminn_model_config(200, {"canonical_strand": True}) == \
        ModelConfig(input_length=200, canonical_strand=True)
    assert discovery.model_configs(200, {"canonical_strand": True})["CNN"] == discovery.model_configs(200)["CNN"]
    for argv, message in ((["--argminn-model-set", "input_length=300"],
                           "--argminn-model-set: 'input_length': the data's (one task, windows of the dataset's "
                           "length)"),
                          (["--argminn-model-set", "n_tasks=2"], "'n_tasks': the data's"),
                          (["--argminn-model-set", "strand=1"], "--argminn-model-set: unknown key(s) 'strand'"),
                          (["--argminn-model-set", "canonical_strand=true", "--argminn-model-set",
                            "scan_reverse_complement=false"], "--argminn-model-set: ModelConfig: 'canonical_strand'"),
                          (["--argminn-model-set", "canonical_strand=yes"], "canonical_strand"),
                          (["--argminn-model-set", "n_heads=1", "--argminn-model-set", "n_heads=2"],
                           "--argminn-model-set: key 'n_heads' given twice"),
                          (["--methods", "CNN", "--argminn-model-set", "n_heads=1"], "include ARGMINN in --methods")):
        with pytest.raises(SystemExit) as stop:
            discovery.cli(["--out", str(tmp_path / "bad"), "--smoke", *argv])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and message in err.splitlines()[-1], err
    assert not (tmp_path / "bad").exists()
    out = tmp_path / "variant"
    discovery.cli(["--out", str(out), "--smoke", "--datasets", "single_motif", "--threads", "1",
                   "--methods", "ARGMINN", "--argminn-model-set", "canonical_strand=true"])
    saved = json.loads((out / "discovery.json").read_text())
    assert saved["argminn_model_set"] == {"canonical_strand": True} and "argminn_set" not in saved
    run = out / "single_motif" / "ARGMINN"
    assert load_model(str(run / "model.pt")).config.canonical_strand
    stamp = (run / "result.json").stat().st_mtime_ns
    discovery.main(str(out), smoke=True, datasets=["single_motif"], methods=["ARGMINN"], threads=1,
                   argminn_model_set={"canonical_strand": True})
    assert (run / "result.json").stat().st_mtime_ns == stamp  # reused
    with pytest.raises(ArgminnError, match=re.escape(f"{out}: holds the results of another setting "
                                                     "(argminn_model_set {'canonical_strand': True} there, None here)")):
        discovery.main(str(out), smoke=True, datasets=["single_motif"], methods=["ARGMINN"], threads=1)
    (out / "discovery.json").unlink()  # without the report, the run folder's own record refuses it
    with pytest.raises(ArgminnError, match=re.escape(f"{run}: trained with another model config (canonical_strand=True "
                                                     "instead of canonical_strand=False); use another --out")):
        discovery.main(str(out), smoke=True, datasets=["single_motif"], methods=["ARGMINN"], threads=1)
    assert (run / "result.json").stat().st_mtime_ns == stamp


def test_a_refused_flag_names_the_command_as_typed(monkeypatch, capsys, tmp_path):
    """argparse's error line names 'python -m benchmarks...', not the module's file (__main__.py, discovery.py)."""
    monkeypatch.syspath_prepend(ROOT)
    suite = importlib.import_module("benchmarks.__main__")
    for module, run, flags, message in (
            ("benchmarks", suite.main, ["--threads", "0"], "argument --threads: must be >= 1, got 0"),
            ("benchmarks.discovery", _bench(monkeypatch, "discovery").cli, ["--seed", "-1"],
             "argument --seed: must be >= 0"),
            ("benchmarks.errors", _bench(monkeypatch, "errors").cli, ["--dataset", "and_pair", "--bin-width", "0"],
             "--bin-width must be >= 1"),
            ("benchmarks.speed", _bench(monkeypatch, "speed").cli, ["--threads", "0"], "argument --threads")):
        with pytest.raises(SystemExit) as exit_:
            run(["--out", str(tmp_path), *flags])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"usage: python -m {module} ") and f"python -m {module}: error: {message}" in err, err
