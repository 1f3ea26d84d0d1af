import re

import numpy as np
import pytest
import torch

from argminn_plugin import ARGMINN, ArgminnError, ModelConfig
from argminn_plugin.motifs import (benjamini_hochberg, column_for_id, extract_motifs, information_content,
                                   read_meme, save_logos, tomtom_qvalues, trim, weights_to_ppm, write_meme)
from argminn_plugin.simulate import jaspar_motif
from conftest import random_onehot


def test_weights_to_ppm_known_answer():
    w = np.zeros((4, 2))
    w[2, 0] = 1.0  # G in column 0; column 1 flat
    ppm = weights_to_ppm(w, beta=np.log(9))
    # column 0 centred: G +0.75, others -0.25, span 1 -> scaled by ln 9: G gets 9x each other base
    assert ppm[:, 0] == pytest.approx([1 / 12, 1 / 12, 9 / 12, 1 / 12])
    assert ppm[:, 1] == pytest.approx([0.25] * 4)


def test_trim_drops_flat_flanks():
    ppm = np.full((4, 6), 0.25)
    ppm[:, 2:4] = np.eye(4)[:, [0, 3]]
    out, lo, hi = trim(ppm, min_ic=0.5, min_width=2)
    assert (lo, hi) == (2, 4) and out.shape == (4, 2)
    assert information_content(out) == pytest.approx([2, 2])


def test_benjamini_hochberg_known_answer():
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.5]).tolist() == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])


def test_filter_set_to_a_jaspar_motif_is_read_back(tmp_path):
    """A filter holding HNF4A's log-odds is read out and matched to MA0114.5 by TOMTOM (q < 0.05)."""
    name, ppm = jaspar_motif("MA0114.5")
    model = ARGMINN(ModelConfig(input_length=50, n_filters=3, filter_width=9))
    with torch.no_grad():
        model.scanner.conv.weight.zero_()
        model.scanner.conv.weight[0] = torch.tensor(np.log((ppm + 0.01) / 0.25), dtype=torch.float32)
        model.scanner.conv.bias.fill_(-1.0)
    table, ppms = extract_motifs(model, X=None)
    assert table["active"].tolist() == [True, False, False]
    p, q = tomtom_qvalues(ppms)
    col = column_for_id(q, "MA0114.5")
    assert q.at["filter0", col] < 0.05
    assert p.loc["filter0"].idxmin().startswith("MA0114")


def test_meme_roundtrip_and_logos(tmp_path):
    motifs = {"m1": np.eye(4), "m2": np.full((4, 3), 0.25)}
    path = tmp_path / "x.meme"
    write_meme(str(path), motifs)
    back = read_meme(str(path))
    assert list(back) == ["m1", "m2"] and np.allclose(back["m1"], np.eye(4))
    # nsites: the sites a motif was read from, else MEME-suite's default for a matrix (not memelite's 1)
    assert [line.split("nsites= ")[1].split()[0] for line in path.read_text().splitlines()
            if line.startswith("letter-probability")] == ["20", "20"]
    write_meme(str(path), motifs, force=True, nsites={"m1": 5000, "m2": 0})
    assert [line.split("nsites= ")[1].split()[0] for line in path.read_text().splitlines()
            if line.startswith("letter-probability")] == ["5000", "20"]
    assert np.allclose(read_meme(str(path))["m1"], np.eye(4))
    # memelite's own file is a hidden scratch file beside the output (what a kill leaves is hidden): seen while
    # it exists, gone after
    import memelite.io
    real, seen = memelite.io.write_meme, []

    def spy(target, *args):
        real(target, *args)
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
    memelite.io.write_meme = spy
    try:
        write_meme(str(path), {"m3": np.eye(4)}, force=True)
    finally:
        memelite.io.write_meme = real
    scratch = [name for name in seen[0] if name != "x.meme"]
    assert len(scratch) == 1 and scratch[0].startswith(".x.meme."), seen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.meme"] and list(read_meme(str(path))) == ["m3"]
    png = tmp_path / "logos.png"
    save_logos(motifs, str(png))
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_inactive_filters_dropped_with_data():
    model = ARGMINN(ModelConfig(input_length=30, n_filters=2, filter_width=4))
    with torch.no_grad():
        model.scanner.conv.weight.fill_(0.1)
        model.scanner.conv.bias.zero_()
        model.scanner.conv.weight[1] = -1.0
    table, ppms = extract_motifs(model, random_onehot(10, 30))
    assert table["active"].tolist() == [True, False]
    assert list(ppms) == ["filter0"]


def word_detector(word):
    """A one-filter ARGMINN (40 bp input) whose filter fires only on a perfect match of ``word``."""
    from argminn_plugin.data import one_hot

    model = ARGMINN(ModelConfig(input_length=40, n_filters=1, filter_width=len(word)))
    with torch.no_grad():
        model.scanner.conv.weight[0] = 2 * one_hot(word) - 1
        model.scanner.conv.bias.fill_(1.0 - len(word))  # score len(word) only on a perfect match
    return model


def planted_both_strands(word, n, seed, forward_at, minus_at):
    """n random 40-bp sequences, the first half with ``word`` at forward_at, the rest its reverse complement."""
    from argminn_plugin.data import one_hot, reverse_complement

    X = random_onehot(n, 40, seed=seed)
    X[:n // 2, :, forward_at:forward_at + len(word)] = one_hot(word)
    X[n // 2:, :, minus_at:minus_at + len(word)] = reverse_complement(one_hot(word)[None])[0]
    return X


def test_seqlet_ppm_reads_planted_word_on_both_strands():
    """A filter matching GATTACA reads back GATTACA from hits on either strand."""
    from argminn_plugin.motifs import consensus, seqlet_ppms

    word = "GATTACA"
    model = word_detector(word)
    X = planted_both_strands(word, 30, 2, 5, 20)
    ppms, counts = seqlet_ppms(model, X)
    assert counts[0] >= 30
    assert consensus(ppms[0]) == word
    table, _ = extract_motifs(model, X)
    assert table.loc[0, "consensus"] == word and table.loc[0, "n_seqlets"] == counts[0]


def test_seqlet_flanks_read_the_whole_motif_a_filter_covers_in_part():
    """A 5-wide filter on the middle of a planted 9-mer: the flanked seqlets read all nine bases (either
    strand), with the span given in the filter's frame; without flanks only the filter's five."""
    word, core = "GCATTACGT", "TTACG"  # the filter sees bases 3..7 of the word
    model = word_detector(core)
    X = planted_both_strands(word, 60, 5, 8, 22)
    table, ppms = extract_motifs(model, X, min_importance=0, flank=4)
    row = table.loc[0]
    assert row["consensus"] == word and (row["start"], row["end"]) == (-3, 6)
    assert table["importance"].isna().all()  # min_importance 0: not measured, so blank (was 1.0 each)
    table, _ = extract_motifs(model, X, min_importance=0, flank=0)
    assert table.loc[0, "consensus"] == core and (table.loc[0, "start"], table.loc[0, "end"]) == (0, 5)


def test_seqlet_flanks_of_few_seqlets_keep_no_chance_columns():
    """Eight hits: a random flank column often reaches the plain 0.3-bit cut by chance; the flank threshold
    for so few seqlets keeps the motif at the planted word (checked on several random backgrounds)."""
    for seed in range(4):
        X = planted_both_strands("GATTACA", 8, seed, 5, 20)
        table, _ = extract_motifs(word_detector("GATTACA"), X, min_importance=0)
        assert table.loc[0, "n_seqlets"] == 8
        assert (table.loc[0, "consensus"], table.loc[0, "start"], table.loc[0, "end"]) == ("GATTACA", 0, 7)
    with pytest.raises(ArgminnError, match="flank"):
        extract_motifs(word_detector("GATTACA"), X, flank=-1)


def test_explainn_unit_with_negative_batchnorm_scale_reads_its_motif():
    """A unit whose filter is -GATTACA and whose BatchNorm scale is negative responds to GATTACA:
    both read-outs (seqlets and weights) give GATTACA, not its complement pattern."""
    from argminn_plugin.baselines import ExplaiNN, ExplaiNNConfig
    from argminn_plugin.data import one_hot

    word = "GATTACA"
    model = ExplaiNN(ExplaiNNConfig(input_length=40, n_units=2, filter_width=7, pool=4, hidden=4)).eval()
    with torch.no_grad():
        model.conv.weight[0] = -(2 * one_hot(word) - 1)
        model.conv.bias[0] = 0.0
        model.bn1.weight[0] = -1.0
        model.bn1.bias[0] = -6.0  # bn1 output = -score - 6 > 0 only on a perfect match (score -7)
    X = random_onehot(30, 40, seed=3)
    X[:, :, 10:17] = one_hot(word)
    acts, _ = model.motif_activations(X)
    assert (acts[:, 0].argmax(1) == 10).all()
    table, _ = extract_motifs(model, X, method="seqlets", min_importance=0)
    assert table.loc[0, "consensus"] == word
    table, _ = extract_motifs(model, X, method="weights", min_importance=0)
    assert table.loc[0, "consensus"].upper() == word


def test_explainn_importance_is_mean_ablation_of_unit_outputs():
    """A unit whose output does not depend on the sequence has importance 0; knocking a unit
    out moves the logits by |head weight| x |its output - its mean| on average."""
    from argminn_plugin.baselines import ExplaiNN, ExplaiNNConfig
    from argminn_plugin.motifs import filter_importance

    torch.manual_seed(0)
    model = ExplaiNN(ExplaiNNConfig(input_length=40, n_units=3, filter_width=7, pool=4, hidden=4)).eval()
    with torch.no_grad():
        model.conv.weight[1] = 0.0  # unit 1: the same output for every sequence
        for bn in (model.bn1, model.bn2, model.bn3):  # non-trivial running statistics
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    X = random_onehot(50, 40, seed=4)
    importance = filter_importance(model, X)
    with torch.no_grad():
        units = model.unit_outputs(X)
    expected = model.head.weight[0].detach().abs() * (units - units.mean(0)).abs().mean(0)
    assert importance[1] == 0
    assert np.allclose(importance, expected.numpy(), rtol=1e-4, atol=1e-7)
    assert importance[0] > 0 or importance[2] > 0


def test_best_matches_keeps_a_named_match_below_the_top_ranks():
    import pandas as pd

    from argminn_plugin.motifs import best_matches
    p = pd.DataFrame([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]], index=["f0", "f1"], columns=list("abcd"))
    q = p * 2
    top = best_matches(p, q, n_best=2)
    assert top["target"].tolist() == ["a", "b", "d", "c"] and top["rank"].tolist() == [1, 2, 1, 2]
    named = best_matches(p, q, n_best=2, also={"f0": ["d"], "f1": ["c"]})  # f1's c is already in its top 2
    assert named["target"].tolist() == ["a", "b", "d", "d", "c"]
    assert named["rank"].tolist() == [1, 2, 4, 1, 2]
    assert named.loc[2, "q_value"] == pytest.approx(0.8)


def test_a_filter_that_fires_on_anything_is_given_no_match(tmp_path):
    """A used filter with a near-uniform motif (no column of 0.3 bits) is kept whole by trim; TOMTOM would match
    those 20 flat columns to a long JASPAR matrix (CTCF's) at a tiny q, so the report compares it with nothing."""
    import json

    import pandas as pd

    from argminn_plugin.data import one_hot
    from argminn_plugin.report import motif_report

    word = "ACGTTGCAAC"
    torch.manual_seed(0)  # (the rest of the model: filter0's importance is 0.15 of filter1's with these weights)
    model = ARGMINN(ModelConfig(input_length=200, n_filters=2, filter_width=10)).eval()
    with torch.no_grad():
        model.scanner.conv.weight.zero_()
        model.scanner.conv.weight[0] = 10 * (4 * one_hot(word) - 3)
        model.scanner.conv.bias[0] = -90.0  # filter0: the word alone
        model.scanner.conv.bias[1] = 1.0  # filter1: every position, whatever is there
    X = random_onehot(400, 200, seed=1)
    X[::2, :, 50:60] = one_hot(word)
    table = motif_report(model, X, str(tmp_path), targets=None)
    rows = table.set_index("name")
    assert rows["active"].tolist() == [True, True]
    assert rows.at["filter0", "informative"] and not rows.at["filter1", "informative"]
    assert rows.at["filter1", "width"] == 20 and rows.at["filter1", "best_match"] == ""  # read whole, matched to none
    assert json.loads((tmp_path / "report.json").read_text())["uninformative"] == ["filter1"]
    assert set(pd.read_csv(tmp_path / "tomtom.tsv", sep="\t")["query"]) == {"filter0"}
    saved = pd.read_csv(tmp_path / "motifs.tsv", sep="\t").set_index("name")
    assert saved["informative"].tolist() == [True, False]
    # matched to none: its alignment is blank, not a 0-wide match at 0 on the plus strand; a match's is whole
    assert saved.loc["filter1", ["best_match", "match_offset", "match_strand", "match_width"]].isna().all()
    if isinstance(saved.at["filter0", "best_match"], str):
        assert saved.at["filter0", "match_strand"] in "+-" and saved.at["filter0", "match_width"] % 1 == 0


def test_motif_report_checks_a_planted_motif_the_default_targets_lack(tmp_path):
    """A simulation may plant any JASPAR motif (here a plant's, AGL3, outside the CORE vertebrates TOMTOM compares
    with by default): the report adds it to the targets from the simulation's release (was: 'not among the 879
    target motifs', after the work); an ID the release lacks fails before any work."""
    import json

    import pandas as pd

    from argminn_plugin.data import one_hot
    from argminn_plugin.motifs import jaspar_database
    from argminn_plugin.report import motif_report, with_planted

    assert not any(name.startswith("MA0001.3 ") for name in jaspar_database())
    ppm = jaspar_motif("MA0001.3")[1]
    word = "".join("ACGT"[i] for i in ppm.argmax(0))
    torch.manual_seed(0)
    model = ARGMINN(ModelConfig(input_length=200, n_filters=2, filter_width=len(word))).eval()
    with torch.no_grad():
        model.scanner.conv.weight.zero_()
        model.scanner.conv.weight[0] = 10 * (4 * one_hot(word) - 3)
        model.scanner.conv.bias[0] = -10.0 * len(word) + 10  # filter0: the word alone
    X = random_onehot(400, 200, seed=1)
    X[::2, :, 50:50 + len(word)] = one_hot(word)
    simulation = tmp_path / "simulation.json"
    simulation.write_text(json.dumps({"config": {"motif_ids": ["MA0001.3"], "jaspar_release": "JASPAR2024"}}))
    motif_report(model, X, str(tmp_path / "out"), planted=str(simulation))
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert list(report["planted_q"]) == ["MA0001.3"] and report["active"] == ["filter0"]
    ranked = pd.read_csv(tmp_path / "out" / "tomtom.tsv", sep="\t")
    assert "MA0001.3 AGL3" in ranked.loc[ranked["rank"] <= 2, "target"].tolist()  # (SRF's CArG box is first)
    # the targets given are not changed; a motif they hold already is not read again
    targets = {"MA0047.4 FOXA2": jaspar_motif("MA0047.4")[1]}
    assert list(with_planted(targets, ["MA0001.3", "MA0047.4"], "JASPAR2024")) == ["MA0047.4 FOXA2",
                                                                                  "MA0001.3 AGL3"]
    assert list(targets) == ["MA0047.4 FOXA2"] and with_planted(targets, ["MA0047.4"], "JASPAR2024") is targets
    simulation.write_text(json.dumps({"config": {"motif_ids": ["MA9999.1"], "jaspar_release": "JASPAR2024"}}))
    with pytest.raises(ArgminnError, match=re.escape("JASPAR ID 'MA9999.1' is not in JASPAR2024")):
        motif_report(model, X, str(tmp_path / "none"), planted=str(simulation))
    assert not (tmp_path / "none").exists()
    simulation.write_text(json.dumps({"config": {"motif_ids": ["MA0001.3"], "jaspar_release": 2024}}))
    with pytest.raises(ArgminnError, match=re.escape("config.jaspar_release is 2024, not the name of a JASPAR")):
        motif_report(model, X, str(tmp_path / "none"), planted=str(simulation))
