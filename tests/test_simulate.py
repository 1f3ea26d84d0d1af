import json
import re

import numpy as np
import pandas as pd
import pytest
import torch

from argminn_plugin import ArgminnError
from argminn_plugin.data import load_splits
from argminn_plugin.motifs import read_meme
from argminn_plugin.simulate import SimulationConfig, jaspar_motif, simulate


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    cfg = SimulationConfig(n_train=300, n_valid=60, n_test=60, seed=7)
    simulate(str(out), cfg)
    return out, cfg


def test_outputs_and_splits(sim):
    out, cfg = sim
    splits, names = load_splits(str(out / "genome.fa"), str(out / "peaks.bed"), cfg.length, ["chr2"], ["chr3"])
    assert names == ["label"]
    assert [len(splits[s][0]) for s in ("train", "valid", "test")] == [300, 60, 60]
    meme = read_meme(str(out / "motifs.meme"))
    assert [k.split()[0] for k in meme] == list(cfg.motif_ids)
    meta = json.loads((out / "simulation.json").read_text())
    assert meta["motifs"] == {"MA0114.5": "HNF4A", "MA0047.4": "FOXA2"}


def test_ground_truth_instances_are_in_the_genome(sim):
    """Every planted instance scores far above random windows under its own JASPAR matrix."""
    import pyfaidx

    out, cfg = sim
    fasta = pyfaidx.Fasta(str(out / "genome.fa"))
    inst = pd.read_csv(out / "instances.tsv", sep="\t")
    ppms = {jaspar_motif(m)[0]: jaspar_motif(m)[1] for m in cfg.motif_ids}
    comp = {"A": "T", "C": "G", "G": "C", "T": "A"}
    rng = np.random.default_rng(0)
    for name, ppm in ppms.items():
        logodds = np.log2((ppm + 1e-3) / 0.25)
        rows = inst[inst.motif == name]
        scores = []
        for r in rows.itertuples():
            seq = str(fasta[r.chrom][r.start:r.end])
            if r.strand == "-":
                seq = "".join(comp[c] for c in reversed(seq))
            scores.append(sum(logodds["ACGT".index(c), k] for k, c in enumerate(seq)))
        random = [sum(logodds[rng.integers(4), k] for k in range(ppm.shape[1])) for _ in range(2000)]
        assert np.median(scores) > np.quantile(random, 0.999)


def test_planted_instances_in_windows_of_another_length(sim):
    """The ground truth in the windows a model reads: a longer (or shorter) window centred on the same
    interval shifts every instance by the extra flank; those not wholly inside a shorter window are left out.
    The window's bases at those coordinates are the planted bases."""
    from argminn_plugin.simulate import planted_instances

    out, cfg = sim
    L = cfg.length
    own = load_splits(str(out / "genome.fa"), str(out / "peaks.bed"), L, ["chr2"], ["chr3"])[0]["test"]
    truth = planted_instances(str(out), own[2])
    assert truth.equals(planted_instances(str(out), own[2], L)) and len(truth) > 0
    for length in (L + 100, L - 60):
        X, _, bed = load_splits(str(out / "genome.fa"), str(out / "peaks.bed"), length, ["chr2"], ["chr3"])[0]["test"]
        moved = planted_instances(str(out), bed, length)
        flank = (length - L) // 2
        kept = truth[(truth.start + flank >= 0) & (truth.end + flank <= length)].reset_index(drop=True)
        assert len(moved) == len(kept) and (length > L) == (len(kept) == len(truth))
        assert (moved.start.to_numpy() == kept.start.to_numpy() + flank).all()
        for r, k in zip(moved.itertuples(), kept.itertuples()):
            assert torch.equal(X[r.sequence, :, r.start:r.end], own[0][k.sequence, :, k.start:k.end])
    none = planted_instances(str(out), pd.DataFrame({"chrom": ["chr9"], "start": [0], "end": [L]}), L + 10)
    assert len(none) == 0 and list(none.columns) == list(truth.columns)


def test_window_column_is_a_samtools_region_and_older_tables_join_alike(sim):
    """instances.tsv's 'window' is the BED interval as samtools and pyfaidx's faidx read a region (1-based,
    both ends in): it fetches the interval's bases. A table written before, with the 0-based start in that
    text, gives the same ground truth: the join is on the chromosome and the start, not the text."""
    import pyfaidx

    from argminn_plugin.simulate import planted_instances

    out, cfg = sim
    inst = pd.read_csv(out / "instances.tsv", sep="\t")
    bed = pd.read_csv(out / "peaks.bed", sep="\t")
    bed.columns = ["chrom", "start", "end", "label"]
    fasta = pyfaidx.Fasta(str(out / "genome.fa"))
    for r in inst.head(20).itertuples():
        chrom, span = r.window.split(":")
        first, last = map(int, span.split("-"))
        window_start = r.start - r.window_start
        assert (first, last) == (window_start + 1, window_start + cfg.length)
        assert str(fasta[chrom][first - 1:last]) == str(fasta[chrom][window_start:window_start + cfg.length])
        assert str(fasta.get_seq(chrom, first, last)) == str(fasta[chrom][window_start:window_start + cfg.length])
    truth = planted_instances(str(out), bed)
    assert len(truth) == len(inst)
    old = out.parent / (out.name + "_older")
    old.mkdir()
    older = inst.assign(window=inst.chrom + ":" + (inst.start - inst.window_start).astype(str) + "-"
                        + (inst.start - inst.window_start + cfg.length).astype(str))
    older.to_csv(old / "instances.tsv", sep="\t", index=False)
    assert planted_instances(str(old), bed).equals(truth)
    # chromosome names as written: 01 is not 1
    numbered = out.parent / (out.name + "_numbered")
    numbered.mkdir()
    (numbered / "instances.tsv").write_text("chrom\tstart\tend\tmotif\tstrand\twindow_start\twindow_end\n"
                                            "01\t310\t320\tA\t+\t10\t20\n")
    two = pd.DataFrame({"chrom": ["1", "01"], "start": [300, 300], "end": [400, 400]})
    assert planted_instances(str(numbered), two)["sequence"].tolist() == [1]
    # the BED's chromosome and start pick the window: a BED of the test windows alone, in another order
    test = bed[bed.chrom == "chr3"].iloc[::-1].reset_index(drop=True)
    part = planted_instances(str(out), test)
    assert len(part) == (inst.split == "test").sum()
    for r in part.itertuples():
        assert test.start[r.sequence] + r.start in set(inst.start[(inst.chrom == "chr3") & (inst.motif == r.motif)])


def test_labels_follow_the_rule(sim):
    _check_labels(*sim)


def test_opposite_orientation_rule(tmp_path):
    """orientation='opposite': B on the other strand is the rule; B on A's strand a wrong-orientation negative.
    The syntax read-out of the planted instances of the positives gives that rule back."""
    from argminn_plugin.interpret import syntax_readout

    cfg = SimulationConfig(n_train=300, n_valid=60, n_test=60, seed=3, orientation="opposite",
                           wrong_orientation_fraction=0.5)
    summary = simulate(str(tmp_path), cfg)
    assert summary["rule"].endswith("starting 22 bp later, on the other strand")
    kinds = _check_labels(tmp_path, cfg)
    assert kinds["pair, rule's orientation, wrong spacing"] > 0 and kinds["pair, other orientation"] > 0
    inst = pd.read_csv(tmp_path / "instances.tsv", sep="\t")
    pos = inst[inst.label == 1].rename(columns={"window": "sequence"})
    calls = pos.assign(start=pos.window_start, end=pos.window_end, rank=pos.groupby("sequence").cumcount() + 1)
    syntax = syntax_readout(calls[["sequence", "motif", "start", "end", "strand", "rank"]])
    # HNF4A (9 bp) then FOXA2 (8 bp) 22 bp on, facing each other: named from FOXA2 (alphabetically first),
    # which HNF4A follows 22 + 8 - 9 = 21 bp on along FOXA2's strand; every positive, counted once
    assert syntax.values.tolist() == [["FOXA2", "HNF4A", 21, "opposite", pos["sequence"].nunique()]]
    with pytest.raises(ArgminnError, match="'orientation' must be 'same' or 'opposite'"):
        SimulationConfig(orientation="reverse")


def _check_labels(out, cfg):
    """Every window's label is the rule applied to its planted instances; returns counts of the two-motif
    negatives by kind."""
    kinds = {"pair, rule's orientation, wrong spacing": 0, "pair, other orientation": 0}
    inst = pd.read_csv(out / "instances.tsv", sep="\t")
    bed = pd.read_csv(out / "peaks.bed", sep="\t")
    bed.columns = ["chrom", "start", "end", "label"]
    bed["window"] = bed.chrom + ":" + (bed.start + 1).astype(str) + "-" + bed.end.astype(str)
    by_window = {w: g for w, g in inst.groupby("window")}
    for w, label in zip(bed.window, bed.label):
        g = by_window.get(w)
        follows = False
        if g is not None and set(g.motif) == {"HNF4A", "FOXA2"}:
            a = g[g.motif == "HNF4A"].iloc[0]
            b = g[g.motif == "FOXA2"].iloc[0]
            if (a.strand == b.strand) == (cfg.orientation == "same"):
                offset = (b.window_start - a.window_start) if a.strand == "+" else (a.window_end - b.window_end)
                follows = offset == cfg.spacing
                kinds["pair, rule's orientation, wrong spacing"] += not follows
            else:
                kinds["pair, other orientation"] += 1
        assert follows == bool(label), w
    counts = inst.groupby("window").size()
    assert set(counts.unique()) <= {1, 2}
    assert 0.35 < bed.label.mean() < 0.65
    return kinds


def test_simulate_refuses_to_overwrite(sim):
    out, cfg = sim
    with pytest.raises(ArgminnError, match="output exists; pass --force"):
        simulate(str(out), cfg)


def test_bad_simulation_config(tmp_path):
    with pytest.raises(ArgminnError, match="unknown key"):
        SimulationConfig.from_dict({"motifs": ["x"]})
    with pytest.raises(ArgminnError, match="exactly two"):
        SimulationConfig(motif_ids=("MA0114.5",))
    with pytest.raises(ArgminnError, match="'motif_ids' names MA0047.4 twice; the rule pairs two different motifs"):
        SimulationConfig(motif_ids=("MA0047.4", "MA0047.4"))
    for ids in (("MA0047", "MA0047.4"), ("ma0047.4", "MA0047.4")):  # pyjaspar's latest version, any case
        with pytest.raises(ArgminnError, match=re.escape(f"'motif_ids' {ids[0]} and {ids[1]} are one motif (FOXA2) "
                                                         "in JASPAR2024")):
            simulate(str(tmp_path / "same"), SimulationConfig(motif_ids=ids))
    assert not (tmp_path / "same").exists()
    # an ID the offline database lacks: one error, no warning from pyjaspar on the way
    import warnings

    from argminn_plugin.simulate import jaspar_motif
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ArgminnError, match="JASPAR ID 'MA9999.1' is not in JASPAR2024"):
            jaspar_motif("MA9999.1")
    with pytest.raises(ArgminnError, match="'spacer' .* must be >= 0, got -10"):
        SimulationConfig(spacer=-10)
    with pytest.raises(ArgminnError, match="'wrong_spacing_margin' must be >= 1"):
        SimulationConfig(wrong_spacing_margin=0)
    with pytest.raises(ArgminnError, match="'pseudocount' must be >= 0, got -0.1"):
        SimulationConfig(pseudocount=-0.1)
    with pytest.raises(ArgminnError, match="'sharpness' .* must be > 0, got 0"):
        SimulationConfig(sharpness=0)
    with pytest.raises(ArgminnError, match=r"'seed' must be in \[0, 2\*\*63\), got -5"):
        SimulationConfig(seed=-5)
    with pytest.raises(ArgminnError, match="JASPAR release 'JASPAR1999' is not one pyjaspar ships .*JASPAR2024"):
        jaspar_motif("MA0114.5", "JASPAR1999")


@pytest.mark.parametrize("changes, message", [
    ({"length": 20}, r"it spans 30 bp at 'spacing' 22 \(motif A MA0114.5: 9 bp, B MA0047.4: 8 bp\), more than "
                     r"'length' \(20\)"),
    ({"spacing": 500}, r"spans 508 bp at 'spacing' 500"),
    ({"spacing": -195}, r"spans 204 bp at 'spacing' -195"),
    ({"spacing": 5}, r"'spacing' must be >= 9, the width of motif A \(MA0114.5\), or <= -8 .*got 5"),
    ({"spacing": -5}, r"'spacing' must be >= 9, .*got -5"),
    # half the wrong-syntax negatives at a wrong spacing, but none is 1000 bp away from 22 in 200 bp
    ({"wrong_spacing_margin": 1000, "wrong_orientation_fraction": 0.5}, "no wrong spacing fits in a 200-bp window"),
], ids=["length-too-short", "spacing-too-long", "negative-spacing-too-long", "spacing-overlaps-A",
        "negative-spacing-overlaps", "no-wrong-spacing"])
def test_impossible_layout_is_refused_before_writing(tmp_path, changes, message):
    out = tmp_path / "sim"
    cfg = SimulationConfig(n_train=30, n_valid=10, n_test=10).replace(**changes)
    with pytest.raises(ArgminnError, match=message):
        simulate(str(out), cfg)
    assert not out.exists()


def test_tightest_layout_is_accepted(tmp_path):
    """B right after A in a window just long enough for the pair (9 + 8 bp), wrong spacings included."""
    cfg = SimulationConfig(n_train=30, n_valid=10, n_test=10, length=17, spacing=9, wrong_orientation_fraction=0.5)
    simulate(str(tmp_path), cfg)
    inst = pd.read_csv(tmp_path / "instances.tsv", sep="\t")
    assert inst.window_start.min() >= 0 and inst.window_end.max() <= 17
    assert set(inst[inst.label == 1].groupby("window").size()) == {2}


def test_negative_spacing_puts_b_first(tmp_path):
    """A negative spacing that does not overlap (B ends before A starts) is a valid rule, as before."""
    simulate(str(tmp_path), SimulationConfig(n_train=30, n_valid=10, n_test=10, spacing=-30))
    inst = pd.read_csv(tmp_path / "instances.tsv", sep="\t")
    pos = inst[inst.label == 1]
    for _, w in pos.groupby("window"):
        a, b = w[w.motif == "HNF4A"].iloc[0], w[w.motif == "FOXA2"].iloc[0]
        assert (b.window_start - a.window_start if a.strand == "+" else a.window_end - b.window_end) == -30


def test_cli_simulate_refuses_an_impossible_spacing(tmp_path, capsys):
    from argminn_plugin.cli import main

    out = tmp_path / "sim"
    assert main(["simulate", "--out", str(out), "--set", "spacing=500"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("argminn: error: SimulationConfig: the pair does not fit")
    assert not out.exists()


def test_jaspar_reads_work_from_any_thread():
    """The JASPAR database is opened where it is read (SQLite connections belong to their thread)."""
    import threading

    from argminn_plugin.motifs import jaspar_database

    name, ppm = jaspar_motif("MA0114.5")
    out = {}
    worker = threading.Thread(target=lambda: out.update(motif=jaspar_motif("MA0114.5"),
                                                        database=len(jaspar_database("JASPAR2022"))))
    worker.start()
    worker.join()
    assert out["motif"][0] == name and np.array_equal(out["motif"][1], ppm) and out["database"] > 100
