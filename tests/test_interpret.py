"""Interpretation on the shipped model and the default data (known answers), plus unit checks."""

import json
import os
import re

import numpy as np
import pandas as pd
import pytest
import torch

from argminn_plugin import ArgminnError
from argminn_plugin.data import load_splits, one_hot_many, rows_with_label
from argminn_plugin.interpret import _coordinates, coverage_curve, fimo_instances, instance_report, syntax_readout
from argminn_plugin.kipoi_support import KipoiModel
from argminn_plugin.report import motif_report
from argminn_plugin.simulate import planted_instances, simulate
from argminn_plugin.train import classification_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, "kipoi_model")


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default dataset (regenerated: it is deterministic) and the shipped model trained on it."""
    base = tmp_path_factory.mktemp("default")
    simulate(str(base / "data"))
    wrapper = KipoiModel(os.path.join(SHIPPED, "config.json"))
    wrapper.load_state_dict(torch.load(os.path.join(SHIPPED, "weights.pth"), weights_only=True))
    model = wrapper.model.eval()
    splits, _ = load_splits(str(base / "data/genome.fa"), str(base / "data/peaks.bed"), 200, ["chr2"], ["chr3"])
    return base, model, splits


def test_default_model_meets_the_core_targets(default_run):
    """auROC >= 0.95 on held-out sequences; each planted motif found by exactly one filter (q < 0.05)."""
    base, model, splits = default_run
    X, y, _ = splits["test"]
    with torch.no_grad():
        auroc = classification_metrics(y, torch.sigmoid(model(X)))[0]["auroc"]
    assert auroc >= 0.95
    motif_report(model, splits["train"][0], str(base / "motifs"), planted=str(base / "data/simulation.json"))
    report = json.loads((base / "motifs/report.json").read_text())
    assert report["each_planted_motif_found_by_exactly_one_filter"], report["planted"]


def test_attention_instances_beat_fimo_and_recover_the_spacing(default_run, tmp_path):
    base, model, splits = default_run
    if not (base / "motifs/motifs.tsv").exists():
        motif_report(model, splits["train"][0], str(base / "motifs"), planted=str(base / "data/simulation.json"))
    positives, _, bed = rows_with_label(*splits["test"])
    truth = planted_instances(str(base / "data"), bed)
    summary = instance_report(model, positives, bed, str(base / "motifs"), str(base / "instances"), truth=truth)
    att, fimo = (summary["coverage_mean"][k] for k in ("ARGMINN attention", "FIMO (discovered motifs)"))
    assert att > fimo
    assert summary["coverage_at_n_true"]["ARGMINN attention"] > summary["coverage_at_n_true"][
        "FIMO (discovered motifs)"]
    top = summary["top_syntax"]
    assert (top["motif_a"], top["motif_b"], top["spacing"], top["orientation"]) == ("HNF4A", "FOXA2", 22, "same")
    calls = pd.read_csv(base / "instances/instances.tsv", sep="\t")
    assert calls["line"].tolist() == bed["line"].to_numpy()[calls["sequence"]].tolist()  # the BED line of each
    best = calls[calls["rank"] == 1].merge(truth, on=["sequence", "motif"], suffixes=("", "_true"))
    assert (best["start"] == best["start_true"]).mean() > 0.9
    assert (best["strand"] == best["strand_true"]).mean() > 0.9
    for name in ("instances.bed", "coverage.png", "spacing.png", "syntax.tsv"):
        assert (base / "instances" / name).stat().st_size > 0
    bed6 = pd.read_csv(base / "instances/instances.bed", sep="\t", header=None)
    inside = calls[calls["genome_end"] > calls["genome_start"]]
    assert bed6[4].dtype.kind == "i" and bed6[4].between(0, 1000).all() and bed6[4].max() == 1000
    assert (bed6[4] == (1000 * inside["attention"] / calls["attention"].max()).round().astype(int).to_numpy()).all()
    # again into (a copy of) the same directory without ground truth: refused without force; with it, the
    # earlier run's coverage files (which the new tables would not match) are gone
    import shutil
    again = tmp_path / "instances"
    shutil.copytree(base / "instances", again)
    with pytest.raises(ArgminnError, match="output exists"):
        instance_report(model, positives[:50], bed.iloc[:50], str(base / "motifs"), str(again))
    instance_report(model, positives[:50], bed.iloc[:50], str(base / "motifs"), str(again), force=True)
    assert sorted(os.listdir(again)) == ["instances.bed", "instances.tsv", "spacing.png", "syntax.tsv"]


def test_deep_lift_shap_converges(default_run):
    """tangermeme's DeepLIFT/SHAP on the trained model: attributions sum to the output difference."""
    from tangermeme.deep_lift_shap import deep_lift_shap

    _, model, splits = default_run
    X = splits["test"][0][:4].double()
    m = model.double()
    try:
        attr, refs = deep_lift_shap(m, X, n_shuffles=4, random_state=0, return_references=True,
                                    warning_threshold=1e9, device="cpu")
        with torch.no_grad():
            diff = m(X)[:, 0] - m(refs.reshape(-1, 4, 200))[:, 0].reshape(4, 4).mean(1)
    finally:
        model.float()
    assert torch.allclose(attr.sum((1, 2)), diff, atol=1e-8)
    assert diff.abs().max() > 0.1


def test_deep_lift_shap_converges_read_on_both_strands(default_run):
    """tangermeme's DeepLIFT/SHAP on the trained model read on both strands (StrandAveraged): each input still
    meets its own references, so the attributions sum to the averaged output's difference; the model is left in
    its mode."""
    from tangermeme.deep_lift_shap import deep_lift_shap

    from argminn_plugin import StrandAveraged

    _, model, splits = default_run
    X = splits["test"][0][:4].double()
    m = model.double()
    both = StrandAveraged(m)
    try:
        attr, refs = deep_lift_shap(both, X, n_shuffles=4, random_state=0, return_references=True,
                                    warning_threshold=1e9, device="cpu")
        assert not m.training
        with torch.no_grad():
            diff = both(X)[:, 0] - both(refs.reshape(-1, 4, 200))[:, 0].reshape(4, 4).mean(1)
            one_pass = m(X)[:, 0] - m(refs.reshape(-1, 4, 200))[:, 0].reshape(4, 4).mean(1)
    finally:
        model.float()
    assert torch.allclose(attr.sum((1, 2)), diff, atol=1e-8)
    assert diff.abs().max() > 0.1 and (diff - one_pass).abs().max() > 1e-3


def test_coordinates_follow_the_alignment():
    # filter width 10, motif in columns 2..10, the filter is the reverse complement of a 9-bp target, offset 0
    ann = {"lo": 2, "hi": 10, "offset": 0, "flip": True, "width": 9}
    # minus-strand hit: query column 0 is base 57, the 9-bp target read leftwards from there -> [49, 58) on +
    assert _coordinates(50, True, 10, ann) == (49, 58, False)
    assert _coordinates(50, False, 10, ann) == (52, 61, True)
    assert _coordinates(50, False, 10, {"lo": 2, "hi": 10}) == (52, 60, False)
    assert _coordinates(50, True, 10, {"lo": 2, "hi": 10}) == (50, 58, True)


def test_coverage_and_syntax_known_answers():
    truth = pd.DataFrame({"sequence": [0, 0, 1], "start": [10, 40, 5], "end": [20, 50, 15]})
    calls = pd.DataFrame({"sequence": [0, 1, 0], "start": [11, 90, 41], "end": [21, 100, 51]})
    assert coverage_curve(calls, truth).tolist() == pytest.approx([1 / 3, 1 / 3, 2 / 3])
    # B 22 bp downstream of A: on + (starts 10 -> 32) and on - (A ends 69, B ends 47)
    calls = pd.DataFrame({"sequence": [0, 0, 1, 1], "motif": ["A", "B", "A", "B"], "start": [10, 32, 60, 39],
                          "end": [19, 40, 69, 47], "strand": ["+", "+", "-", "-"], "rank": [1, 2, 1, 2]})
    syntax = syntax_readout(calls)
    assert len(syntax) == 1 and syntax.iloc[0].tolist() == ["A", "B", 22, "same", 2]
    # opposite strands, each pair once: facing each other (P then C on the other strand, 22 bp; each is
    # downstream of the other: named from C, the alphabetically first, 21 bp), and facing away (negative)
    calls = pd.DataFrame({"sequence": [0, 0, 1, 1, 2, 2], "motif": ["P", "C", "P", "C", "P", "C"],
                          "start": [10, 32, 60, 39, 40, 10], "end": [19, 40, 69, 47, 49, 18],
                          "strand": ["+", "-", "-", "+", "+", "-"], "rank": [1, 2, 1, 2, 1, 2]})
    syntax = syntax_readout(calls)
    assert syntax.values.tolist() == [["C", "P", 21, "opposite", 2], ["C", "P", -31, "opposite", 1]]


def test_fimo_calls_overlapping_a_better_one_are_dropped():
    """A motif found twice (two names, both strands) takes one place among the calls, as attention calls do."""
    from argminn_plugin.simulate import jaspar_motif

    spi1 = jaspar_motif("MA0080.7")[1]
    site = "".join("ACGT"[i] for i in spi1.argmax(0))
    seqs = ["T" * 30 + site + "T" * 30, "T" * 5 + site + "T" * 10 + site + "T" * (45 - len(site))]
    X = one_hot_many(seqs)
    motifs = {"a": spi1, "b": spi1.copy()}
    every = fimo_instances(motifs, X, overlapping=True)
    kept = fimo_instances(motifs, X)
    assert len(every) > len(kept)
    assert sorted(kept[["sequence", "start"]].itertuples(index=False, name=None)) == \
        [(0, 30), (1, 5), (1, 5 + len(site) + 10)]
    assert kept["p_value"].is_monotonic_increasing
    for n, g in kept.groupby("sequence"):  # no two kept calls of a sequence overlap
        spans = sorted(zip(g["start"], g["end"]))
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))


def test_design_by_learned_syntax(default_run, tmp_path):
    """Designed sequences score like true positives; the wrong-orientation and single-motif controls do not."""
    from argminn_plugin.design import design_report, oriented_motif
    from argminn_plugin.interpret import read_annotation
    from argminn_plugin.motifs import read_meme

    base, model, splits = default_run
    if not (base / "instances/syntax.tsv").exists():  # run on its own: the instances test writes it
        test_attention_instances_beat_fimo_and_recover_the_spacing(default_run, tmp_path)
    X, y, _ = splits["test"]
    with torch.no_grad():
        positives = torch.sigmoid(model(X[y[:, 0] == 1]))[:, 0].mean().item()
    table = design_report(model, X[y[:, 0] == 0], str(base / "motifs"),
                          pd.read_csv(base / "instances/syntax.tsv", sep="\t"), str(base / "design"),
                          n_backgrounds=60, n_greedy=2, positives=X[y[:, 0] == 1][:100]).set_index("design")
    assert table.at["learned syntax", "mean"] >= 0.9 * positives
    assert table.at["wrong orientation", "mean"] < 0.2
    assert table.at["only HNF4A", "mean"] < 0.3 and table.at["only FOXA2", "mean"] < 0.3
    assert table.at["background", "mean"] < 0.2
    assert table.at["greedy (tangermeme, black box)", "mean"] > 0.5
    assert (base / "design/design.png").stat().st_size > 0
    per_start = pd.read_csv(base / "design/design_starts.tsv", sep="\t")
    assert set(per_start["design"]) == set(table.index) - {"greedy (tangermeme, black box)"}
    n_starts = table.at["learned syntax", "n_starts"]
    assert (per_start.groupby("design")["start"].count() == n_starts).all()
    # the designed sequences: every background at every start, then the greedy ones; each named with its
    # predicted probability, which the model gives the sequence as read back
    records = [r.split("\n", 1) for r in (base / "design/designs.fa").read_text().split(">")[1:]]
    names, sequences = [n for n, _ in records], [q.replace("\n", "") for _, q in records]
    assert len(names) == 60 * n_starts + 2 and all(len(q) == 200 for q in sequences)
    assert [n.split("|")[0] for n in names] == ["learned_syntax"] * (60 * n_starts) + ["greedy"] * 2
    # HNF4A's consensus where its matched motif starts, FOXA2's 22 bp on (the learned rule), on one strand
    annotation, _ = read_annotation(str(base / "motifs"))
    ppms = read_meme(str(base / "motifs/motifs.meme"))
    by_name = {ann.get("name"): oriented_motif(ppms[f"filter{f}"], ann) for f, ann in annotation.items()
               if f"filter{f}" in ppms}
    (sa, oa, _), (sb, ob, _) = by_name["HNF4A"], by_name["FOXA2"]
    for name, q in zip(names[:60 * n_starts], sequences):
        start = int(name.split("|start=")[1].split("|")[0])
        assert q[start + oa:start + oa + len(sa)] == sa and q[start + 22 + ob:start + 22 + ob + len(sb)] == sb
    picked = list(range(0, len(names), 97)) + [len(names) - 1]
    with torch.no_grad():
        probs = torch.sigmoid(model(one_hot_many([sequences[i] for i in picked])))[:, 0]
    assert probs.numpy() == pytest.approx([float(names[i].rsplit("p=", 1)[1]) for i in picked], abs=1e-4)
    by_start = per_start.set_index(["design", "start"])["mean"]
    first = [float(n.rsplit("p=", 1)[1]) for n in names[:60]]
    start = int(names[0].split("start=")[1].split("|")[0])
    assert sum(first) / 60 == pytest.approx(by_start["learned syntax", start], abs=1e-3)
    table_effects = pd.read_csv(base / "design/effects.tsv", sep="\t").set_index("experiment")
    marginal = table_effects[table_effects.index.str.startswith("marginalize")]
    assert len(marginal) == 5 and (marginal["n"] == 60 * n_starts).all()  # every background at every start
    assert (marginal["lowest_start_mean"] <= marginal["mean_logit_effect"]).all()
    assert (marginal["mean_logit_effect"] <= marginal["highest_start_mean"]).all()
    effects = table_effects["mean_logit_effect"]
    assert effects["cooperativity HNF4A+FOXA2 (learned syntax)"] > 1.0  # FOXA2 counts more next to HNF4A
    assert effects["marginalize FOXA2 given HNF4A (wrong orientation)"] < effects[
        "marginalize FOXA2 given HNF4A (learned syntax)"] - 3
    assert effects["ablate called HNF4A instance in positives"] < -2
    assert effects["ablate called FOXA2 instance in positives"] < -2
    for name in ("design.tsv", "design_starts.tsv"):  # each output is refused unless forced
        os.remove(base / "design" / name)
    with pytest.raises(ArgminnError, match="designs.fa: output exists; pass --force"):
        design_report(model, X[y[:, 0] == 0], str(base / "motifs"), pd.read_csv(base / "instances/syntax.tsv",
                      sep="\t"), str(base / "design"), n_backgrounds=60, n_greedy=2)
    assert not (base / "design/design.tsv").exists()  # refused before anything was written


def test_design_starts_fit_the_window_and_scores_average_over_them():
    """Every design and control fits at every start, the wrong spacing is one value; the table is the starts' mean."""
    from argminn_plugin import ARGMINN, ModelConfig
    from argminn_plugin.data import one_hot
    from argminn_plugin.design import (COMPLEMENT, design_scores, design_starts, fitting_starts, layouts,
                                       motif_effects, oriented_motif, place)
    from conftest import random_onehot

    # A's matched motif starts 1 bp before its consensus, B's 1 bp before its (matched width 8)
    a, b = ("TGGACTTTG", 1), ("TGTTTAC", 1)
    fits, far = fitting_starts(a, b, 22, "same", 80)
    # A's consensus from base 0 (start -1); B 37 bp on (+1) must end by base 80: start <= 35
    assert (fits, far) == (list(range(-1, 36)), 37)
    assert design_starts(a, b, 22, "same", 80, step=4) == (list(range(-1, 36, 4)), 37)
    assert design_starts(a, b, 22, "same", 80, step=8)[0] == list(range(1, 36, 8))  # 2 bp left at each end
    at = layouts(a, b, 22, "same", 80, start=7, far=far)
    assert at["learned syntax"] == [("TGGACTTTG", 8), ("TGTTTAC", 30)]
    assert at["wrong spacing"] == [("TGGACTTTG", 8), ("TGTTTAC", 45)]
    # the other strand over B's matched 8 bp (7 + 22 .. 7 + 30): the reverse complement at its other end
    assert at["wrong orientation"] == [("TGGACTTTG", 8), ("TGTTTAC".translate(COMPLEMENT)[::-1], 29)]
    assert at["only B"] == [("TGTTTAC", 30)] and at["background"] == []
    # an 'opposite' rule: B reverse-complemented over its matched motif (10 bp, the consensus at 1-8 of it)
    rc = "TGTTTAC".translate(COMPLEMENT)[::-1]
    at = layouts(a, ("TGTTTAC", 1, 10), 22, "opposite", 80, start=7, far=37)
    assert at["learned syntax"] == [("TGGACTTTG", 8), (rc, 7 + 22 + 10 - 1 - 7)]
    assert at["wrong spacing"] == [("TGGACTTTG", 8), (rc, 7 + 37 + 2)]
    assert at["wrong orientation"] == [("TGGACTTTG", 8), ("TGTTTAC", 30)]
    assert at["only B"] == [(rc, 31)]
    ppm = one_hot("TGTTTAC").numpy()
    assert oriented_motif(ppm, {"offset": 1, "flip": False, "width": 10}) == ("TGTTTAC", 1, 10)
    assert oriented_motif(ppm, {"offset": 1, "flip": True, "width": 10}) == (rc, 2, 10)
    assert oriented_motif(ppm, {}) == ("TGTTTAC", 0, 7)
    # 15 bp further fits only where A's consensus starts at base 0-1 (offset 3): it is still the wrong spacing
    assert fitting_starts(("TGGACTTTG", 3), b, 22, "same", 43) == ([-3, -2], 37)
    # 15 bp further fits nowhere: 15 bp closer, at every start
    fits, far = fitting_starts(a, b, 70, "opposite", 80)
    assert far == 55 and fits == list(range(-1, 3))
    # 15 bp closer would write B over A, 15 further does not fit: the nearest spacing that keeps B off A
    fits, far = fitting_starts(("TGGACTTTGCA", 0), b, 14, "same", 30)
    assert (far, fits) == (-8, [7, 8])  # B (1 + 7 bp) ends where A starts
    with pytest.raises(ArgminnError, match="keeps B off A"):
        fitting_starts(("TGGACTTTGCA", 0), b, 20, "same", 30)
    with pytest.raises(ArgminnError, match="do not fit a 25-bp window"):
        design_starts(a, b, 22, "same", 25)
    for bad in (0, 2.5, "5", True):
        with pytest.raises(ArgminnError, match="integer >= 1"):
            design_starts(a, b, 22, "same", 80, step=bad)

    starts, far = design_starts(a, b, 22, "same", 80, step=4)
    torch.manual_seed(0)
    model = ARGMINN(ModelConfig(input_length=80, n_filters=3, filter_width=5, n_layers=1, n_heads=2, head_dim=8,
                                stream_dim=16, token_dim=8, pos_enc_dim=4)).eval()
    backgrounds = random_onehot(6, 80, seed=1)
    table, per_start = design_scores(model, backgrounds, a, b, 22, "same", names=("A", "B"), step=4, by_start=True)
    table = table.set_index("design")
    assert sorted(set(per_start["start"])) == starts and (table["n_starts"] == len(starts)).all()
    for name, group in per_start.groupby("design"):
        assert table.at[name, "mean"] == pytest.approx(group["mean"].mean())
        assert table.at[name, "lowest_start_mean"] == pytest.approx(group["mean"].min())
        assert table.at[name, "highest_start_mean"] == pytest.approx(group["mean"].max())
    # one start by hand: the pair with A's matched motif at base 10, B 22 (and 37) bp on
    one = design_scores(model, backgrounds, a, b, 22, "same", starts=[10]).set_index("design")
    for name, positions in (("learned syntax", [11, 33]), ("wrong spacing", [11, 48])):
        with torch.no_grad():
            expected = torch.sigmoid(model(place(backgrounds, [a[0], b[0]], positions)))[:, 0].mean().item()
        assert one.at[name, "mean"] == pytest.approx(expected)
    with pytest.raises(ArgminnError, match=r"design start 36: .* \(starts that fit: -1..35\)"):
        design_scores(model, backgrounds, a, b, 22, "same", starts=[10, 36])
    for bad, message in ((10, "a list of whole numbers"), ("10", "a list of whole numbers"), ([], "is empty"),
                         ([10.5], "whole numbers, got 10.5"), (["x"], "whole numbers, got 'x'"),
                         ([3, 7, 3], "repeats a start")):
        with pytest.raises(ArgminnError, match=message):
            design_scores(model, backgrounds, a, b, 22, "same", starts=bad)

    # marginalization over starts: each row the mean of tangermeme's marginalize at each start; cooperativity
    # and the sum of single effects combine those rows, start by start
    from tangermeme.marginalize import marginalize

    effects = motif_effects(model, backgrounds, {"A": a, "B": b}, 22, "same", starts=[3, 10]).set_index(
        "experiment")
    row = effects.loc["marginalize B given A (wrong spacing, 37 bp)"]
    direct = []
    for start in (3, 10):
        with_a = place(backgrounds, [a[0]], [start + 1])
        before, after = marginalize(model, with_a, b[0], start=start + 38, device="cpu", verbose=False)
        direct.append((after - before)[:, 0].double().mean().item())
    assert row["n"] == 12 and row["mean_logit_effect"] == pytest.approx(sum(direct) / 2, abs=1e-6)
    assert (row["lowest_start_mean"], row["highest_start_mean"]) == pytest.approx(sorted(direct), abs=1e-6)
    e = effects["mean_logit_effect"]
    assert e["cooperativity A+B (learned syntax)"] == pytest.approx(
        e["marginalize B given A (learned syntax)"] - e["marginalize B alone"], abs=1e-9)
    assert e["sum of single effects A, B"] == pytest.approx(e["marginalize A alone"] + e["marginalize B alone"],
                                                           abs=1e-9)
    # numpy backgrounds and positives (int8, as tangermeme's one_hot_encode gives) are taken as design_scores
    # takes them: the same effects, the ablations of called instances too
    calls = pd.DataFrame({"motif": ["A", "B", "A"], "attention": [0.9, 0.8, 0.7], "sequence": [0, 1, 2],
                          "start": [3, 20, 3], "end": [8, 25, 8]})
    kw = dict(starts=[3, 10], calls=calls, n_shuffles=3)
    plain = motif_effects(model, backgrounds, {"A": a, "B": b}, 22, "same", positives=backgrounds, **kw)
    as_numpy = motif_effects(model, backgrounds.numpy().astype(np.int8), {"A": a, "B": b}, 22, "same",
                             positives=backgrounds.numpy().astype(np.int8), **kw)
    assert "ablate called B instance in positives" in set(plain["experiment"])
    assert as_numpy["mean_logit_effect"].tolist() == pytest.approx(plain["mean_logit_effect"].tolist(), abs=1e-9)
    assert plain.set_index("experiment")["mean_logit_effect"].iloc[:len(e)].tolist() == pytest.approx(e.tolist(),
                                                                                                    abs=1e-9)
    with pytest.raises(ArgminnError, match="backgrounds: shape"):
        motif_effects(model, backgrounds[:, :3], {"A": a, "B": b}, 22, "same", starts=[3, 10])


def test_instances_point_only_at_the_filters_given():
    """A filter left out (one the model does not use) cannot take a position from a motif."""
    from argminn_plugin import ARGMINN, ModelConfig
    from argminn_plugin.interpret import call_instances
    from conftest import random_onehot

    torch.manual_seed(0)
    model = ARGMINN(ModelConfig(input_length=40, n_filters=3, filter_width=5, n_layers=1, n_heads=2, head_dim=8,
                                stream_dim=16, token_dim=8, pos_enc_dim=4)).eval()
    X = random_onehot(8, 40, seed=3)
    every = call_instances(model, X)
    assert set(every["filter"]) == {0, 1, 2}
    some = call_instances(model, X, filters=[2, 0])
    assert set(some["filter"]) <= {0, 2} and len(some) > 0
    assert call_instances(model, X, filters=[]).empty
    assert call_instances(model, X, filters=(f for f in [0, 2])).equals(call_instances(model, X, filters=[0, 2]))
    for bad in ([3], [-1], [0.5]):
        with pytest.raises(ArgminnError, match="'filters' must name at least one of filters 0..2"):
            call_instances(model, X, filters=bad)


def test_attention_scan_puts_the_model_back_where_it_was(monkeypatch):
    """The scan runs the model on ``device`` and moves it back afterwards, also when the pass fails (as
    tangermeme's predict does): a caller's next CPU call still works. Recorded through Module.to (no GPU here)."""
    from argminn_plugin import ARGMINN, ModelConfig
    from argminn_plugin.interpret import attention_scan
    from conftest import random_onehot

    torch.manual_seed(0)
    model = ARGMINN(ModelConfig(input_length=40, n_filters=3, filter_width=5, n_layers=1, n_heads=2, head_dim=8,
                                stream_dim=16, token_dim=8, pos_enc_dim=4)).eval()
    X = random_onehot(8, 40, seed=3)
    moves = []
    real_to = torch.nn.Module.to

    def to(self, *args, **kwargs):
        if self is model:
            moves.append(str(args[0]))
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", to)
    attention_scan(model, X, device="cpu")
    assert moves == ["cpu", "cpu"]
    moves.clear()
    monkeypatch.setattr(model, "interims", lambda X: (_ for _ in ()).throw(RuntimeError("out of memory")))
    with pytest.raises(RuntimeError, match="out of memory"):
        attention_scan(model, X, device="cpu")
    assert moves == ["cpu", "cpu"]


def test_call_instances_on_a_float64_model_and_min_separation():
    """A model in float64 (as for DeepLIFT) calls the same instances; min_separation=0 means no spacing
    between calls (not the default of one filter width); a negative one is an error."""
    from argminn_plugin import ARGMINN, ModelConfig
    from argminn_plugin.interpret import call_instances
    from conftest import random_onehot

    torch.manual_seed(0)
    model = ARGMINN(ModelConfig(input_length=40, n_filters=3, filter_width=5, n_layers=1, n_heads=2, head_dim=8,
                                stream_dim=16, token_dim=8, pos_enc_dim=4)).eval()
    X = random_onehot(8, 40, seed=3)
    calls = call_instances(model, X)
    try:
        doubled = call_instances(model.double(), X)
    finally:
        model.float()
    assert doubled[["sequence", "filter", "start", "strand"]].equals(calls[["sequence", "filter", "start", "strand"]])
    dense = call_instances(model, X, min_separation=0)
    assert len(dense) == len(call_instances(model, X, min_separation=1)) > len(calls)  # one call per position
    with pytest.raises(ArgminnError, match="'min_separation' must be >= 0"):
        call_instances(model, X, min_separation=-1)


def test_instance_report_refuses_empty_truth_before_writing(default_run, tmp_path):
    base, model, splits = default_run
    positives, _, bed = rows_with_label(*splits["test"])
    truth = planted_instances(str(base / "data"), bed)
    if not (base / "motifs/motifs.tsv").exists():
        motif_report(model, splits["train"][0], str(base / "motifs"), planted=str(base / "data/simulation.json"))
    with pytest.raises(ArgminnError, match="no true instances"):
        instance_report(model, positives[:20], bed.iloc[:20], str(base / "motifs"), str(tmp_path / "inst"),
                        truth=truth.iloc[:0])
    assert not (tmp_path / "inst").exists()


def test_design_of_a_chosen_task():
    """A two-task model whose second logit is minus the first: every design function scores the task asked for
    (by name or index; default the first), so task 1's probabilities are 1 - task 0's and its effects negated."""
    from argminn_plugin import ARGMINN, ModelConfig
    from argminn_plugin.design import design_scores, designed_sequences, greedy_design, motif_effects, task_index
    from conftest import random_onehot

    torch.manual_seed(0)
    model = ARGMINN(ModelConfig(input_length=60, n_filters=3, filter_width=5, n_layers=1, n_heads=2, head_dim=8,
                                stream_dim=16, token_dim=8, pos_enc_dim=4, n_tasks=2,
                                task_names=["up", "down"])).eval()
    with torch.no_grad():
        model.head.weight[1] = -model.head.weight[0]
        model.head.bias[1] = -model.head.bias[0]
    assert [task_index(model, t) for t in (None, 0, 1, "up", "down")] == [0, 0, 1, 0, 1]
    for bad in ("sideways", 2, -1, True, "1"):
        with pytest.raises(ArgminnError, match=re.escape(f"task {bad!r}: the model's tasks are 'up', 'down' (a "
                                                         "name, or an index from 0 to 1)")):
            task_index(model, bad)
    X = random_onehot(4, 60, seed=2)
    a, b = ("TGGACTTTG", 0), ("TGTTTAC", 0)
    first = design_scores(model, X, a, b, 12, "same", starts=[5, 20]).set_index("design")
    assert first.equals(design_scores(model, X, a, b, 12, "same", starts=[5, 20], task="up").set_index("design"))
    down = design_scores(model, X, a, b, 12, "same", starts=[5, 20], task="down").set_index("design")
    assert down.equals(design_scores(model, X, a, b, 12, "same", starts=[5, 20], task=1).set_index("design"))
    assert np.allclose(down["mean"], 1 - first["mean"], atol=1e-6) and not np.allclose(down["mean"], first["mean"])
    assert np.allclose(designed_sequences(model, X, a, b, 12, "same", starts=[5], task=1)["probability"],
                       1 - designed_sequences(model, X, a, b, 12, "same", starts=[5])["probability"], atol=1e-6)
    effects = [motif_effects(model, X, {"A": a, "B": b}, 12, "same", starts=[5, 20], task=t).set_index("experiment")
               for t in (0, "down")]
    assert np.allclose(effects[1]["mean_logit_effect"], -effects[0]["mean_logit_effect"], atol=1e-5)
    assert effects[0]["mean_logit_effect"].abs().max() > 1e-4  # not all zero: the sign tells the task
    # greedy design of a task: what it designs for a one-task model of that task's head alone (and the two differ)
    designed = []
    for task, row in ((None, 0), ("down", 1)):
        one = ARGMINN(model.config.replace(n_tasks=1, task_names=[model.config.names[row]])).eval()
        state = model.state_dict()
        one.load_state_dict({**state, "head.weight": state["head.weight"][row:row + 1],
                             "head.bias": state["head.bias"][row:row + 1]})
        designed.append(greedy_design(model, X[:2], [a[0], b[0]], task=task))
        assert torch.equal(designed[-1], greedy_design(one, X[:2], [a[0], b[0]]))
    assert not torch.equal(*designed)
    assert not model.training  # greedy design leaves the model in its own (eval) mode


def test_a_callers_model_keeps_its_modes_and_design_takes_a_float64_model():
    """The functions that run a model in eval mode put every module back in the mode it was in, also on error (a
    model in training mode, as inside a training loop, stays so: batch norm included); the design functions take a
    float64 model (as for DeepLIFT) as the instance and motif read-outs do; greedy design raises a logit however
    high it already is (a target value would pull one above it down)."""
    import copy

    from argminn_plugin import ARGMINN, ModelConfig
    from argminn_plugin.design import design_scores, designed_sequences, greedy_design
    from argminn_plugin.interpret import measure_head_weights
    from argminn_plugin.motifs import extract_motifs, filter_activity, filter_importance, seqlet_ppms
    from argminn_plugin.predict import predict
    from conftest import random_onehot

    torch.manual_seed(0)
    model = ARGMINN(ModelConfig(input_length=60, n_filters=3, filter_width=5, n_layers=1, n_heads=2, head_dim=8,
                                stream_dim=16, token_dim=8, pos_enc_dim=4))
    model.train()
    model.head.eval()  # modes that differ between modules are kept too
    modes = [m.training for m in model.modules()]
    X = random_onehot(6, 60, seed=2)
    a, b = ("TGGACTTTG", 0), ("TGTTTAC", 0)
    calls = [lambda m: predict(m, X), lambda m: measure_head_weights(m, X), lambda m: filter_activity(m, X),
             lambda m: filter_importance(m, X), lambda m: seqlet_ppms(m, X), lambda m: extract_motifs(m, X),
             lambda m: design_scores(m, X, a, b, 12, "same", starts=[5]),
             lambda m: designed_sequences(m, X, a, b, 12, "same", starts=[5])]
    for call in calls:
        call(model)
        assert [m.training for m in model.modules()] == modes
    with pytest.raises(ArgminnError, match="orientation"):
        design_scores(model, X, a, b, 12, "sideways", starts=[5])
    assert [m.training for m in model.modules()] == modes
    model.eval()
    wide = copy.deepcopy(model).double()
    assert np.allclose(design_scores(wide, X, a, b, 12, "same", starts=[5, 20])["mean"],
                       design_scores(model, X, a, b, 12, "same", starts=[5, 20])["mean"], atol=1e-5)
    assert np.allclose(designed_sequences(wide, X.double(), a, b, 12, "same", starts=[5])["probability"],
                       designed_sequences(model, X, a, b, 12, "same", starts=[5])["probability"], atol=1e-5)
    # greedy designs come in the model's dtype, ready for it (design_report scores them with the model itself)
    wide_greedy = greedy_design(wide, X[:2], [a[0], b[0]], max_iter=1)
    assert wide_greedy.dtype == torch.float64 and torch.equal(wide_greedy.float(),
                                                              greedy_design(model, X[:2], [a[0], b[0]], max_iter=1))
    wide(wide_greedy)
    with torch.no_grad():
        model.head.bias += 30.0 - model(X)[:, 0].min()  # every logit above 30
        before = model(X[:3])[:, 0]
        after = model(greedy_design(model, X[:3], [a[0], b[0]], max_iter=1))[:, 0]
    assert before.min() > 30 and (after >= before).all() and (after > before).any()


def test_motif_extraction_and_design_check_their_inputs():
    """extract_motifs takes tangermeme's int8 one-hot and a float64 model, and names an empty or misshapen
    input; the design functions name an orientation or spacing they do not know instead of guessing."""
    from argminn_plugin import ARGMINN, ModelConfig
    from argminn_plugin.design import design_scores, layouts
    from argminn_plugin.motifs import extract_motifs
    from conftest import random_onehot

    torch.manual_seed(0)
    model = ARGMINN(ModelConfig(input_length=40, n_filters=3, filter_width=5, n_layers=1, n_heads=2, head_dim=8,
                                stream_dim=16, token_dim=8, pos_enc_dim=4)).eval()
    X = random_onehot(16, 40, seed=3)
    table, _ = extract_motifs(model, X)
    assert extract_motifs(model, X.to(torch.int8))[0].equals(table)
    assert extract_motifs(model.double(), X)[0][["filter", "active", "consensus"]].equals(
        table[["filter", "active", "consensus"]])
    model.float()
    for bad, message in ((X[:0], "empty input"), (X[:, :, :30], "sequences are 30 bp but the model expects 40"),
                         (X.numpy().astype(str), "is not numeric")):
        with pytest.raises(ArgminnError, match=message):
            extract_motifs(model, bad)
    a, b = ("TGGACTTTG", 0, 9), ("TGTTTAC", 0, 7)
    for orientation in ("+", "Same", "forward"):
        message = "orientation must be 'same' or 'opposite' .*got " + re.escape(repr(orientation))
        with pytest.raises(ArgminnError, match=message):
            design_scores(model, X, a, b, 12, orientation)
    with pytest.raises(ArgminnError, match="spacing must be a whole number of bases, got 12.5"):
        layouts(a, b, 12.5, "same", 40, start=0, far=27)
    with pytest.raises(ArgminnError, match="names: the two motifs are both called 'NR'"):  # a control each
        design_scores(model, X, a, a, 12, "same", names=("NR", "NR"))


def test_head_weights_fixed_once_score_each_sequence_alone(default_run):
    """The heads are weighted over the sequences called together; weights measured once (on many
    sequences) and passed back give a sequence the same calls alone as among the others."""
    from argminn_plugin.interpret import attention_scan, call_instances

    _, model, splits = default_run
    X = rows_with_label(*splits["test"])[0][:60]
    _, weights = attention_scan(model, X)
    together = call_instances(model, X, head_weights=weights)
    for i in (0, 7):
        alone = call_instances(model, X[i:i + 1], head_weights=weights)
        mine = together[together["sequence"] == i].drop(columns="sequence").reset_index(drop=True)
        pd.testing.assert_frame_equal(alone.drop(columns="sequence"), mine, atol=1e-5)
    assert call_instances(model, X).equals(together)  # the weights X itself gives
    with pytest.raises(ArgminnError, match=r"'head_weights' must be a finite \(layers, heads\)"):
        call_instances(model, X[:2], head_weights=weights[:1])


def test_motif_report_saves_head_weights_that_instances_and_variants_use(default_run, tmp_path):
    """'argminn motifs' records the head weights of the sequences it read the motifs from; instances and
    variant hits weighed by them are the same for a sequence alone as among others ('called': over X)."""
    import shutil

    import pyfaidx

    from argminn_plugin.design import design_report
    from argminn_plugin.interpret import (active_filters, attention_scan, call_instances, read_annotation,
                                          saved_head_weights, variant_instances)
    from argminn_plugin.variants import variant_table

    base, model, splits = default_run
    motifs = base / "motifs"
    if not (motifs / "motifs.tsv").exists():
        motif_report(model, splits["train"][0], str(motifs), planted=str(base / "data/simulation.json"))
    saved = saved_head_weights(str(motifs), model)
    active = active_filters(pd.read_csv(motifs / "motifs.tsv", sep="\t"))
    np.testing.assert_allclose(saved, attention_scan(model, splits["train"][0], filters=active)[1], rtol=1e-5)
    assert json.loads((motifs / "report.json").read_text())["head_weights_sequences"] == len(splits["train"][0])

    positives, _, bed = rows_with_label(*splits["test"])
    many = instance_report(model, positives[:40], bed.iloc[:40], str(motifs), str(tmp_path / "many"))
    assert many["head_weights"].startswith(f"from {motifs}/report.json")
    from argminn_plugin.interpret import resolve_head_weights
    assert resolve_head_weights("motifs", f"{motifs}/", model, "t")[1].startswith(f"from {motifs}/report.json")
    instance_report(model, positives[5:6], bed.iloc[5:6], str(motifs), str(tmp_path / "one"))
    read = {k: pd.read_csv(tmp_path / k / "instances.tsv", sep="\t") for k in ("many", "one")}
    mine = read["many"][read["many"]["sequence"] == 5].drop(columns="sequence").reset_index(drop=True)
    assert len(mine) > 0
    pd.testing.assert_frame_equal(read["one"].drop(columns="sequence"), mine, atol=1e-5)
    called = instance_report(model, positives[:40], bed.iloc[:40], str(motifs), str(tmp_path / "called"),
                             head_weights="called")
    assert called["head_weights"] == "over the sequences called"
    # 'called': the heads weighed over these 40 sequences, as call_instances weighs them without weights
    annotation, _ = read_annotation(str(motifs), model=model)
    plain = call_instances(model, positives[:40], annotation, filters=active)
    read["called"] = pd.read_csv(tmp_path / "called" / "instances.tsv", sep="\t")
    assert read["called"][["sequence", "motif", "start"]].values.tolist() == \
        plain[["sequence", "motif", "start"]].values.tolist()
    np.testing.assert_allclose(read["called"]["attention"], plain["attention"], rtol=1e-5)
    assert not np.allclose(read["many"]["attention"], read["called"]["attention"])  # the saved weights differ

    # SNVs in the top calls of three held-out positives: each one's hit alone is its hit among the three
    genome = pyfaidx.Fasta(str(base / "data/genome.fa"))
    rows = []
    for r in read["many"][read["many"]["rank"] == 1].head(3).itertuples():
        pos = r.genome_start + 2  # 1-based, the call's second base
        ref = str(genome[r.chrom][pos - 1]).upper()
        rows.append((r.chrom, pos, ref, "A" if ref != "A" else "C"))
    variants = variant_table(pd.DataFrame(rows, columns=["chrom", "pos", "ref", "alt"]))
    fasta = str(base / "data/genome.fa")
    together = variant_instances(model, variants, fasta, str(motifs))
    assert (together["hit_motif"] != "").all(), together
    for i in range(3):
        alone = variant_instances(model, variants.iloc[i:i + 1].reset_index(drop=True), fasta, str(motifs))
        pd.testing.assert_frame_equal(alone, together.iloc[i:i + 1].reset_index(drop=True), atol=1e-5)

    # a directory without saved weights (written before they were saved): weighed over the sequences called
    older = tmp_path / "older"
    shutil.copytree(motifs, older)
    report = json.loads((older / "report.json").read_text())
    (older / "report.json").write_text(json.dumps({k: v for k, v in report.items() if k != "head_weights"}))
    fallback = instance_report(model, positives[:40], bed.iloc[:40], str(older), str(tmp_path / "fallback"))
    assert fallback["head_weights"] == "over the sequences called"
    assert pd.read_csv(tmp_path / "fallback" / "instances.tsv", sep="\t").equals(read["called"])

    # unreadable weights: refused before any output, by instances, variants and design
    broken = tmp_path / "broken"
    shutil.copytree(motifs, broken)
    (broken / "report.json").write_text(json.dumps({**report, "head_weights": [[1.0]]}))
    syntax = pd.read_csv(tmp_path / "many" / "syntax.tsv", sep="\t")
    for run in (lambda: instance_report(model, positives[:2], bed.iloc[:2], str(broken), str(tmp_path / "x")),
                lambda: variant_instances(model, variants, fasta, str(broken)),
                lambda: design_report(model, positives[:4], str(broken), syntax, str(tmp_path / "x"), n_greedy=0)):
        with pytest.raises(ArgminnError, match=r"broken/report.json: 'head_weights' must be a finite 4 x 4"):
            run()
    assert not (tmp_path / "x").exists()
    with pytest.raises(ArgminnError, match="instances: head_weights must be one of 'motifs', 'called', got 'all'"):
        instance_report(model, positives[:2], bed.iloc[:2], str(motifs), str(tmp_path / "x"), head_weights="all")


def test_effect_sd_of_one_value_is_nan_without_a_warning():
    import math
    import warnings

    from argminn_plugin.design import _sd
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's std of one value warns (degrees of freedom <= 0)
        assert math.isnan(_sd(torch.tensor([0.5], dtype=torch.float64)))
        assert _sd(torch.tensor([1.0, 3.0], dtype=torch.float64)) == pytest.approx(2 ** 0.5)


def test_a_rule_motif_matched_by_two_filters_is_designed_with_the_better_match():
    """Two active filters named after one motif: design takes the one whose match has the lower q, whatever
    their numbers; an inactive filter of that name (no PPM) is not taken, and does not hide an active one."""
    from argminn_plugin.design import rule_filters

    ppm = np.full((4, 4), 0.25)
    annotation = {0: {"name": "HNF4A", "q": 1e-4}, 1: {"name": "FOXA2", "q": 0.049}, 2: {"name": "FOXA2", "q": 6e-4},
                  3: {"name": "FOXA2", "q": 1e-9}, 4: {"name": "filter4"}}
    ppms = {"filter0": ppm, "filter1": ppm, "filter2": ppm, "filter4": ppm}  # filter3 is not active
    assert rule_filters(annotation, ppms, ("HNF4A", "FOXA2"), "m") == [0, 2]
    annotation[1]["q"], annotation[2]["q"] = 6e-4, 0.049  # the numbers the other way round
    assert rule_filters(annotation, ppms, ("FOXA2", "filter4"), "m") == [1, 4]
    with pytest.raises(ArgminnError, match="motif 'CTCF' of the learned rule is not an active filter in m"):
        rule_filters(annotation, ppms, ("HNF4A", "CTCF"), "m")


def test_design_strand_follows_how_a_one_strand_model_reads_a():
    """A model that scans one strand and reads A reverse-complemented is designed for on the minus strand; a
    model that scans both strands, or reads A as matched (or without a match), on the plus strand. B goes unseen
    only by a one-strand model whose filters' flips disagree with the rule's orientation."""
    from argminn_plugin.config import ModelConfig
    from argminn_plugin.design import design_strand, layouts, unseen_b
    from argminn_plugin.model import ARGMINN

    small = dict(input_length=40, n_filters=2, n_layers=1, n_heads=1, head_dim=4)
    one, both = ARGMINN(ModelConfig(scan_reverse_complement=False, **small)), ARGMINN(ModelConfig(**small))
    flipped, matched = {"name": "HNF4A", "flip": True, "offset": 0, "width": 10}, {"name": "HNF4A", "flip": False}
    assert design_strand(one, flipped) == "-"
    assert design_strand(one, matched) == design_strand(one, {"name": "filter0"}) == "+"  # no match: as read
    assert design_strand(both, flipped) == design_strand(both, matched) == "+"
    # B where the rule puts it, given A: on A's strand for 'same', on the other for 'opposite'
    assert not unseen_b(one, flipped, flipped, "same") and not unseen_b(one, matched, {"name": "filter1"}, "same")
    assert not unseen_b(one, flipped, matched, "opposite") and not unseen_b(one, matched, flipped, "opposite")
    assert unseen_b(one, flipped, matched, "same") and unseen_b(one, flipped, flipped, "opposite")
    assert not unseen_b(both, flipped, matched, "same") and not unseen_b(both, flipped, flipped, "opposite")
    with pytest.raises(ArgminnError, match="a_strand must be '\\+' or '-'"):
        layouts(("TGGACTTTG", 1), ("TGTTTAC", 1), 22, "same", 80, start=7, far=37, a_strand="minus")


class _ReadsTheOtherStrand(torch.nn.Module):
    """``model`` on the reverse complement of its input (its config too, for the design functions)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def forward(self, X):
        return self.model(X.flip([1, 2]))


@pytest.mark.parametrize("orientation", ["same", "opposite"])
def test_a_minus_strand_design_is_the_plus_strand_design_read_from_the_other_strand(orientation):
    """a_strand '-': every site reverse-complemented and mirrored, A's matched motif over the same window bases;
    the same starts fit (mirrored), the same wrong spacing; the scores and effects are those of the plus-strand
    layout seen by the model reading the other strand, on the backgrounds reverse-complemented."""
    from argminn_plugin import ARGMINN, ModelConfig
    from argminn_plugin.design import (COMPLEMENT, design_scores, designed_sequences, fitting_starts, layouts,
                                       motif_effects)
    from conftest import random_onehot

    def rc(s):
        return s.translate(COMPLEMENT)[::-1]

    a, b = ("TGGACTTTG", 1), ("TGTTTAC", 2, 12)  # A's matched motif 10 bp wide, B's 12 (its consensus 2 bp in)
    fits, far = fitting_starts(a, b, 22, orientation, 80)
    minus, far_minus = fitting_starts(a, b, 22, orientation, 80, a_strand="-")
    assert far_minus == far and minus == sorted(80 - 10 - s for s in fits)
    at = layouts(a, b, 22, orientation, 80, start=35, far=far, a_strand="-")
    # A's matched motif over bases 35-44, read leftwards from 44: its consensus (1 bp in) at 43 down to 35. B's
    # matched motif starts 22 bp further along the minus strand, at 22, and covers 11-22: 'same', on A's strand,
    # read leftwards, its consensus (2 bp in) at 20 down to 14; 'opposite', on the plus strand, read rightwards
    # from 11, its consensus at 13-19.
    expected_b = (rc("TGTTTAC"), 14) if orientation == "same" else ("TGTTTAC", 13)
    assert at["learned syntax"] == [(rc("TGGACTTTG"), 35), expected_b]
    plus = layouts(a, b, 22, orientation, 80, start=80 - 35 - 10, far=far)
    assert all(at[k] == [(rc(m), 80 - p - len(m)) for m, p in plus[k]] for k in plus)
    assert at["only B"] == [expected_b] and at["background"] == []

    torch.manual_seed(0)
    model = ARGMINN(ModelConfig(input_length=80, scan_reverse_complement=False, n_filters=4, filter_width=7,
                                n_layers=1, n_heads=2, head_dim=8)).eval()
    other = _ReadsTheOtherStrand(model).eval()
    bg = random_onehot(6, 80, seed=3)
    table, per = design_scores(model, bg, a, b, 22, orientation, step=9, by_start=True, a_strand="-")
    mirror, per_mirror = design_scores(other, bg.flip([1, 2]), a, b, 22, orientation, by_start=True,
                                       starts=[70 - s for s in per["start"].unique()])
    per_mirror["start"] = 70 - per_mirror["start"]
    key = ["design", "start"]
    pd.testing.assert_frame_equal(per.sort_values(key).reset_index(drop=True),
                                  per_mirror.sort_values(key).reset_index(drop=True), atol=1e-5)
    assert table["mean"].tolist() == pytest.approx(mirror["mean"].tolist(), abs=1e-5)
    designs = designed_sequences(model, bg, a, b, 22, orientation, step=9, a_strand="-")
    assert sorted(designs["start"].unique()) == sorted(per["start"].unique())
    for start, group in designs.groupby("start"):
        sites = layouts(a, b, 22, orientation, 80, start=start, far=far, a_strand="-")["learned syntax"]
        assert all(q[p:p + len(m)] == m for q in group["sequence"] for m, p in sites)
    motifs = {"A": a, "B": b}
    effects = motif_effects(model, bg, motifs, 22, orientation, step=9, a_strand="-")
    expected = motif_effects(other, bg.flip([1, 2]), motifs, 22, orientation,
                             starts=[70 - s for s in per["start"].unique()])
    assert effects["experiment"].tolist() == expected["experiment"].tolist()
    assert effects["mean_logit_effect"].tolist() == pytest.approx(expected["mean_logit_effect"].tolist(), abs=1e-4)


def _one_strand_model_reading_the_minus_strand():
    """A one-strand ARGMINN whose filter 0 reads HNF4A's consensus and filter 1 FOXA2's, both reverse-
    complemented, and whose attention reads those two filters (weights set by hand)."""
    from argminn_plugin import ARGMINN, ModelConfig
    from argminn_plugin.data import one_hot

    torch.manual_seed(0)
    model = ARGMINN(ModelConfig(input_length=120, scan_reverse_complement=False, n_filters=4, n_layers=2,
                                n_heads=2, head_dim=8))
    with torch.no_grad():
        conv = model.scanner.conv
        conv.weight.zero_()
        conv.bias.fill_(-100.0)
        for f, word in enumerate(("TGGACTTTG", "TGTTTAC")):  # HNF4A's and FOXA2's consensus, reverse-complemented
            conv.weight[f, :, :len(word)] = 2 * one_hot(word) - 1
            conv.bias[f] = -(len(word) - 3)
        model.token_proj.weight.zero_()
        model.token_proj.bias.zero_()
        for f in range(2):
            model.token_proj.weight[f, f] = 1.0
        for layer in model.layers:
            layer.query.weight.zero_()
            layer.query.bias.zero_()
            layer.key.weight.zero_()
            for h in range(layer.n_heads):
                layer.query.bias[h * layer.head_dim] = 10.0
                layer.key.weight[h * layer.head_dim, h % 2] = 1.0
    return model.eval()


def test_design_on_a_one_strand_model_that_reads_a_reverse_complemented(tmp_path, capsys):
    """Such a model's filters fire on every design (mirrored onto the other strand), which design.tsv,
    design_starts.tsv and effects.tsv score, and design says so; a rule that puts B where its filter does not read
    it is said too."""
    from argminn_plugin.design import COMPLEMENT, design_report, motif_effects, oriented_motif, shuffled_backgrounds
    from argminn_plugin.interpret import read_annotation
    from argminn_plugin.motifs import read_meme
    from conftest import random_onehot

    model = _one_strand_model_reading_the_minus_strand()
    X = random_onehot(80, 120, seed=5)
    words = ("TGGACTTTG", "TGTTTAC")
    for i in range(0, 80, 2):  # the pair (A's match, then B's 22 bp on, along the minus strand) in every other row
        X[i, :, 60:69] = one_hot_many([words[0]])[0]
        X[i, :, 40:47] = one_hot_many([words[1]])[0]
    motif_report(model, X, str(tmp_path / "motifs"))
    annotation, _ = read_annotation(str(tmp_path / "motifs"), model=model)
    assert annotation[0]["flip"] and annotation[1]["flip"]  # both read reverse-complemented
    names = annotation[0]["name"], annotation[1]["name"]
    syntax = pd.DataFrame({"motif_a": [names[0]], "motif_b": [names[1]], "spacing": [22], "orientation": ["same"],
                           "count": [40]})
    table = design_report(model, X, str(tmp_path / "motifs"), syntax, str(tmp_path / "design"), n_backgrounds=10,
                          n_greedy=0, step=10)
    err = capsys.readouterr().err
    assert "mirrored onto the other strand (A on the minus strand)" in err and "does not see B" not in err
    assert table["rule"].str.endswith(", A on the minus strand").all()
    records = [r.split("\n", 1) for r in (tmp_path / "design/designs.fa").read_text().split(">")[1:]]
    sequences = [q.replace("\n", "") for _, q in records]
    with torch.no_grad():
        peaks = model.motif_activations(one_hot_many(sequences))[0].amax(2)
    assert (peaks[:, :2] == 3).all()  # both filters fire on every design, each on its whole word
    assert all(word in q for q in sequences for word in words)
    assert not any(words[0].translate(COMPLEMENT)[::-1] in q for q in sequences)  # A not in its match's orientation
    # design.tsv and design_starts.tsv score those designs: each start's mean is that of its designs
    per_start = pd.read_csv(tmp_path / "design/design_starts.tsv", sep="\t")
    learned = per_start[per_start["design"] == "learned syntax"].set_index("start")["mean"]
    probs = pd.Series([float(n.rsplit("p=", 1)[1]) for n, _ in records],
                      index=[int(n.split("start=")[1].split("|")[0]) for n, _ in records])
    assert learned.to_dict() == pytest.approx(probs.groupby(level=0).mean().to_dict(), abs=1e-3)
    # effects.tsv: the marginalizations of the mirrored layout
    ppms = read_meme(str(tmp_path / "motifs/motifs.meme"))
    motifs = {names[f]: oriented_motif(ppms[f"filter{f}"], annotation[f]) for f in (0, 1)}
    expected = motif_effects(model, shuffled_backgrounds(X[:10]), motifs, 22, "same", step=10, a_strand="-")
    effects = pd.read_csv(tmp_path / "design/effects.tsv", sep="\t")
    assert effects["experiment"].tolist() == expected["experiment"].tolist()
    assert effects["mean_logit_effect"].tolist() == pytest.approx(expected["mean_logit_effect"].tolist(), abs=1e-3)
    # an 'opposite' rule would put B on the strand its filter does not read: said
    design_report(model, X, str(tmp_path / "motifs"), syntax.assign(orientation=["opposite"]),
                  str(tmp_path / "opposite"), n_backgrounds=2, n_greedy=0, step=40)
    assert f"its filter1 reads {names[1]} on the other strand" in capsys.readouterr().err


def test_python_functions_refuse_a_device_this_machine_lacks_in_one_line(monkeypatch):
    """predict, predict_intervals, call_instances, score_variants and greedy_design name a device the machine
    lacks (torch's bare AssertionError before) and offer device='cpu', before any file is read; the model stays
    where it was."""
    from argminn_plugin import ARGMINN, ModelConfig
    from argminn_plugin.data import check_device
    from argminn_plugin.design import greedy_design
    from argminn_plugin.interpret import call_instances
    from argminn_plugin.predict import predict, predict_intervals
    from argminn_plugin.variants import score_variants
    from conftest import random_onehot

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    torch.manual_seed(0)
    model = ARGMINN(ModelConfig(input_length=40, n_filters=3, filter_width=5, n_layers=1, n_heads=2, head_dim=8,
                                stream_dim=16, token_dim=8, pos_enc_dim=4)).eval()
    X = random_onehot(4, 40, seed=1)
    variants = pd.DataFrame({"chrom": ["chr1"], "pos": [30], "ref": ["C"], "alt": ["T"]})
    calls = [lambda d: predict(model, X, device=d), lambda d: call_instances(model, X, device=d),
             lambda d: predict_intervals(model, "no.fa", "no.bed", device=d),
             lambda d: score_variants(model, variants, "no.fa", device=d),
             lambda d: greedy_design(model, X[:1], ["TGGACTTTG"], max_iter=1, device=d)]
    for call in calls:
        for device, message in (("cuda", "'cuda': CUDA is not available here (torch "),
                                ("mps", "'mps': MPS is not available here; use device='cpu'"),
                                ("gpu", "not a torch device: 'gpu'"), ("meta", "'meta': only cpu, cuda and mps")):
            with pytest.raises(ArgminnError, match=re.escape(message)):
                call(device)
        assert next(model.parameters()).device.type == "cpu"
    assert check_device(torch.device("cpu", 0)) == check_device("cpu") == "cpu"
    with pytest.raises(ArgminnError, match=re.escape("not a torch device: None")):
        check_device(None)
    with pytest.raises(ArgminnError, match=re.escape("'cuda:0': CUDA is not available here")):
        check_device(0)  # torch's integer device: an accelerator index
    assert predict(model, X, device=torch.device("cpu")).shape == (4, 1)
