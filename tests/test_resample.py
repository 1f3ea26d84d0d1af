"""Filter resampling during training: a motif learned twice, unused and dead filters drawn again."""

import pytest
import torch

from argminn_plugin import ARGMINN, ArgminnError, ModelConfig, TrainConfig
from argminn_plugin.data import one_hot, reverse_complement
from argminn_plugin.train import filters_to_resample, resample_filter, train
from conftest import random_onehot

WORD, OTHER = "GACTTA", "CCGTAA"
CFG = ModelConfig(input_length=40, n_filters=5, filter_width=6, n_layers=1, n_heads=2, head_dim=8, stream_dim=16,
                  token_dim=8, pos_enc_dim=4)


def planted(n=64, seed=0):
    """Random 40-bp sequences with WORD at 5 (its reverse complement in every other row) and OTHER at 25."""
    X = random_onehot(n, 40, seed=seed)
    X[0::2, :, 5:11] = one_hot(WORD)
    X[1::2, :, 5:11] = reverse_complement(one_hot(WORD)[None])[0]
    X[:, :, 25:31] = one_hot(OTHER)
    return X


def detectors():
    """Filter 0 reads WORD, filter 1 its reverse complement (the same motif, learned once per orientation),
    filter 2 OTHER, filter 3 fires everywhere (dense), filter 4 never fires (dead)."""
    model = ARGMINN(CFG)
    with torch.no_grad():
        conv = model.scanner.conv
        conv.weight[0] = 2 * one_hot(WORD) - 1
        conv.weight[1] = 2 * reverse_complement(one_hot(WORD)[None])[0] - 1
        conv.weight[2] = 2 * one_hot(OTHER) - 1
        conv.weight[3] = 0.0
        conv.weight[4] = 2 * one_hot(OTHER) - 1
        conv.bias[:3] = 1.0 - len(WORD)  # 1 on a perfect match only
        conv.bias[3] = 1.0
        conv.bias[4] = -100.0
    return model


def test_a_motif_learned_twice_is_one_duplicate_pair_and_dense_filters_are_not():
    pairs, dead = filters_to_resample(detectors(), planted(), min_share=0.5)
    assert [(a, b) for a, b, _, _ in pairs] == [(0, 1)]
    assert pairs[0][2] == pytest.approx(1.0) and pairs[0][3] == pytest.approx(1.0)
    assert dead == [4]
    # at a low share the dense filter would pair with every motif filter, but it is the overlap term's to
    # sparsify, not a duplicate: only selective filters pair up
    loose = filters_to_resample(detectors(), planted(), min_share=0.2, max_density=1.0)[0]
    assert {(a, b) for a, b, _, _ in loose} == {(0, 1), (0, 3), (1, 3), (2, 3)}
    assert [(a, b) for a, b, _, _ in filters_to_resample(detectors(), planted(), min_share=0.2)[0]] == [(0, 1)]
    # in batches (peaks first, then exact co-firing counts), the same answer whatever the batch size
    for batch_size in (1, 7, 1000):
        assert filters_to_resample(detectors(), planted(), min_share=0.2, max_density=1.0,
                                   batch_size=batch_size) == filters_to_resample(detectors(), planted(),
                                                                                 min_share=0.2, max_density=1.0)
    with pytest.raises(ArgminnError, match="X holds no sequences"):
        filters_to_resample(detectors(), planted()[:0], min_share=0.5)
    torch.manual_seed(1)  # random filters: every row has its own peaks, so the peak must be over all rows
    model, X = ARGMINN(CFG), random_onehot(50, 40, seed=4)
    whole = filters_to_resample(model, X, min_share=0.0, max_density=1.0)
    assert len(whole[0]) == 10 and whole == filters_to_resample(model, X, min_share=0.0, max_density=1.0,
                                                                  batch_size=3)


@pytest.mark.parametrize("rc, bn", [(True, True), (False, True), (True, False)])
def test_a_resampled_filter_has_no_say_until_trained_and_its_adam_state_is_cleared(rc, bn):
    torch.manual_seed(0)
    model = ARGMINN(CFG.replace(scan_reverse_complement=rc, batch_norm=bn))
    X = planted()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        optimizer.zero_grad()
        model(X).square().mean().backward()
        optimizer.step()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    conv, proj = model.scanner.conv, model.token_proj
    adam_before = {(id(p), key): optimizer.state[p][key].clone() for p in (conv.weight, conv.bias, proj.weight)
                   for key in ("exp_avg", "exp_avg_sq")}
    assert all(v.abs().sum() > 0 for v in adam_before.values())
    resample_filter(model, optimizer, 1, torch.Generator().manual_seed(0))
    others = [0, 2, 3, 4]
    assert not torch.equal(conv.weight[1], before["scanner.conv.weight"][1])
    with torch.no_grad():
        assert float(conv.weight[1].norm()) == pytest.approx(float(conv.weight[others].norm(dim=(1, 2)).median()))
    assert float(conv.bias.detach()[1]) == 0.0
    assert torch.equal(conv.weight[others], before["scanner.conv.weight"][others])
    channels = [1, 1 + CFG.n_filters] if rc else [1]  # every strand of filter 1
    assert torch.all(proj.weight[:, channels] == 0)
    kept = [c for c in range(proj.weight.shape[1]) if c not in channels]
    assert torch.equal(proj.weight[:, kept], before["token_proj.weight"][:, kept])
    for param in (conv.weight, conv.bias, proj.weight):
        for key in ("exp_avg", "exp_avg_sq"):
            state, old = optimizer.state[param][key], adam_before[(id(param), key)]
            if param is proj.weight:
                assert torch.all(state[:, channels] == 0) and torch.equal(state[:, kept], old[:, kept])
            else:
                assert torch.all(state[1] == 0) and torch.equal(state[others], old[others])
    # the fresh filter does not reach the output: any weights of it give the same predictions
    model.eval()
    with torch.no_grad():
        first = model(X)
        conv.weight[1] = torch.randn_like(conv.weight[1])
        conv.bias[1] = 5.0
        assert torch.allclose(model(X), first, atol=1e-6)


@pytest.mark.parametrize("importance, loser", [([0.1, 0.9, 0.5], 0), ([0.9, 0.1, 0.5], 1)])
def test_the_less_used_filter_of_a_pair_is_drawn_again(tmp_path, monkeypatch, importance, loser):
    import numpy as np

    import argminn_plugin.motifs as motifs_module
    import argminn_plugin.train as train_module

    monkeypatch.setattr(train_module, "filters_to_resample", lambda model, X, share: ([(0, 1, 0.9, 0.8)], []))
    monkeypatch.setattr(motifs_module, "filter_importance", lambda model, X: np.array(importance))
    tc = TrainConfig(max_epochs=2, batch_size=16, overlap_warmup=1, resample_share=0.5, resample_until=2)
    _, history = train(CFG.replace(n_filters=3, filter_width=5), tc, data(0), data(1), str(tmp_path), verbose=False)
    assert [h.get("resampled") for h in history] == [None, [loser]]


def test_the_only_filter_can_be_resampled():
    model = ARGMINN(CFG.replace(n_filters=1))
    optimizer = torch.optim.Adam(model.parameters())
    old = model.scanner.conv.weight.detach().clone()
    resample_filter(model, optimizer, 0, torch.Generator().manual_seed(1))
    assert not torch.equal(model.scanner.conv.weight.detach(), old)
    assert torch.isfinite(model.scanner.conv.weight).all()


def data(seed):
    X = random_onehot(64, 40, seed=seed)
    return X, (X[:, 0, :20].sum(1) > 5).float()[:, None]


def test_training_resamples_in_its_window_and_resumes_identically(tmp_path, monkeypatch):
    import argminn_plugin.train as train_module

    # every epoch, filters 0 and 1 look like a duplicate pair and filter 2 like a dead one
    seen = []

    def fake(model, X, min_share):
        seen.append((len(X), min_share))
        return [(0, 1, 0.9, 0.8)], [2]

    monkeypatch.setattr(train_module, "filters_to_resample", fake)
    tc = TrainConfig(max_epochs=4, batch_size=16, seed=2, overlap_warmup=1, overlap_ramp=2, resample_share=0.5,
                     resample_until=3)
    assert tc.settled_epoch == 4  # early stopping waits for the resampling window
    cfg = CFG.replace(n_filters=3, filter_width=5)
    whole, history = train(cfg, tc, data(0), data(1), str(tmp_path / "whole"), verbose=False)
    # epochs 2 and 3: the overlap term is on (not in epoch 1) and resample_until is 3; the dead filter is drawn
    # again only where the next epoch's weight is still ramping up (after epoch 2, not after epoch 3)
    drawn = [(h["epoch"], h["resampled"]) for h in history if "resampled" in h]
    assert [epoch for epoch, _ in drawn] == [2, 3]
    (_, second), (_, third) = drawn
    assert second[0] == 2 and second[1] in (0, 1) and len(second) == 2
    assert third in ([0], [1])
    assert seen == [(64, 0.5)] * 2
    # killed during epoch 3 (after epoch 2's checkpoint, just after resampling), then resumed: the same run
    resumed, _ = killed_and_resumed(cfg, tc, tmp_path / "cut", in_epoch=3)
    a, b = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def killed_and_resumed(cfg, tc, out, in_epoch):
    """Train, kill the run during epoch ``in_epoch`` (after its resampling, before its checkpoint), resume."""
    import argminn_plugin.train as train_module

    real, calls = train_module._evaluate_sharded, []

    def crash(*args, **kwargs):
        calls.append(1)
        if len(calls) == in_epoch:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    train_module._evaluate_sharded = crash
    try:
        with pytest.raises(KeyboardInterrupt):
            train(cfg, tc, data(0), data(1), str(out), verbose=False)
    finally:
        train_module._evaluate_sharded = real
    return train(cfg, tc, data(0), data(1), str(out), resume=True, verbose=False)


@pytest.mark.parametrize("unused", [0.05, 0.0])
def test_unused_filters_are_drawn_again_while_the_term_ramps_after_a_grace_period(tmp_path, monkeypatch, unused):
    import numpy as np

    import argminn_plugin.motifs as motifs_module
    import argminn_plugin.train as train_module

    # no duplicate pair and no dead filter; filter 1 moves the logits by 1% of filter 0's knock-out (0.1, above
    # resample_unused itself), filter 2 by 50%
    monkeypatch.setattr(train_module, "filters_to_resample", lambda model, X, share: ([], []))
    monkeypatch.setattr(motifs_module, "filter_importance", lambda model, X: np.array([10.0, 0.1, 5.0]))
    tc = TrainConfig(max_epochs=6, batch_size=16, seed=3, overlap_warmup=1, overlap_ramp=4, resample_share=0.5,
                     resample_until=6, resample_unused=unused, resample_grace=2)
    cfg = CFG.replace(n_filters=3, filter_width=5)
    whole, history = train(cfg, tc, data(0), data(1), str(tmp_path / "whole"), verbose=False)
    drawn = [(h["epoch"], h["resampled"]) for h in history if "resampled" in h]
    if not unused:  # off by default
        assert drawn == []
        return
    # the term is on from epoch 2 and at full weight from epoch 6: epochs 2-4 end while it ramps up (the next
    # epoch's weight below full). Drawn after epoch 2, left alone after epoch 3 (grace: 2 epochs), drawn
    # again after epoch 4; filter 2 (50%) never
    assert drawn == [(2, [1]), (4, [1])]
    # killed during epoch 3 and resumed from epoch 2's checkpoint: the grace period is read from the saved
    # history (epoch 2's draw), so epoch 3 draws nothing again and the run is the same
    resumed, resumed_history = killed_and_resumed(cfg, tc, tmp_path / "cut", in_epoch=3)
    assert [h.get("resampled") for h in resumed_history] == [h.get("resampled") for h in history]
    a, b = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resampling_settings_are_checked():
    from argminn_plugin import ArgminnError

    with pytest.raises(ArgminnError, match="resample_share"):
        TrainConfig(resample_share=1.5)
    with pytest.raises(ArgminnError, match="resample_until"):
        TrainConfig(resample_until=-1)
    # settings under which resampling could never run
    with pytest.raises(ArgminnError, match="'resample_until' \\(10\\) above 'overlap_warmup' \\(10\\)"):
        TrainConfig(resample_share=0.5, resample_until=10, overlap_warmup=10)
    with pytest.raises(ArgminnError, match="'overlap_weight' must be > 0"):
        TrainConfig(resample_share=0.5, resample_until=10, overlap_weight=0.0)
    TrainConfig(resample_share=0.5, resample_until=11, overlap_warmup=10)  # fine
    with pytest.raises(ArgminnError, match="'resample_unused' must be in \\[0, 1\\)"):
        TrainConfig(resample_share=0.5, resample_until=11, overlap_warmup=10, resample_unused=1.0)
    with pytest.raises(ArgminnError, match="'resample_grace' must be >= 1"):
        TrainConfig(resample_share=0.5, resample_until=11, overlap_warmup=10, resample_unused=0.05,
                    resample_grace=0)
    with pytest.raises(ArgminnError, match="it needs 'resample_share' > 0"):
        TrainConfig(resample_unused=0.05)
    # drawn only after an epoch with the term on and the next one below full weight: never with a ramp under 2
    for ramp in (0, 1):
        with pytest.raises(ArgminnError, match=f"it needs 'overlap_ramp' >= 2, got {ramp}"):
            TrainConfig(resample_share=0.5, resample_until=13, overlap_warmup=10, overlap_ramp=ramp,
                        resample_unused=0.05)
    TrainConfig(resample_share=0.5, resample_until=13, overlap_warmup=10, overlap_ramp=2, resample_unused=0.05)
    with pytest.raises(ArgminnError, match="'resample_similar' must be in \\[0, 1\\)"):
        TrainConfig(resample_share=0.5, resample_until=13, overlap_warmup=10, overlap_ramp=2, resample_similar=1.0)
    with pytest.raises(ArgminnError, match="'resample_similar' > 0 .* it needs 'resample_share' > 0"):
        TrainConfig(resample_similar=1e-4)
    with pytest.raises(ArgminnError, match="'resample_similar' > 0 draws .* it needs 'overlap_ramp' >= 2, got 1"):
        TrainConfig(resample_share=0.5, resample_until=11, overlap_warmup=10, overlap_ramp=1, resample_similar=1e-4)
    TrainConfig(resample_share=0.5, resample_until=13, overlap_warmup=10, overlap_ramp=2, resample_similar=1e-4)


VARIANT = "CACTTA"  # WORD with another first base


def test_two_filters_that_split_a_motifs_sites_never_fire_together_but_match_by_tomtom():
    from argminn_plugin.motifs import similar_filters

    # filter 0 reads WORD, filter 1 the reverse complement of VARIANT (the same motif, other flank base, other
    # strand); half the rows carry WORD and half VARIANT, so each fires on its own half only
    model = detectors()
    with torch.no_grad():
        model.scanner.conv.weight[1] = 2 * reverse_complement(one_hot(VARIANT)[None])[0] - 1
    X = random_onehot(64, 40, seed=0)
    X[0::2, :, 5:11] = one_hot(WORD)
    X[1::2, :, 5:11] = one_hot(VARIANT)
    X[:, :, 25:31] = one_hot(OTHER)
    cofiring = {(a, b): (ab, ba) for a, b, ab, ba in filters_to_resample(model, X, 0.0, max_density=1.0)[0]}
    assert cofiring[(0, 1)] == (0.0, 0.0)  # the co-firing rule cannot see them
    assert similar_filters(model, [0, 1, 2, 3], 1e-3) == [(0, 1)]  # one column of six differs
    assert similar_filters(model, [0, 1, 2, 3], 1e-6) == []  # ... which a stricter bound does not pass
    # filter 4 has OTHER's weights (never fires, but similar_filters reads weights only)
    assert similar_filters(model, [4, 2, 0], 1e-3) == [(2, 4)]
    assert similar_filters(model, [0], 1.0) == []
    with pytest.raises(ArgminnError, match="not all among the scanner's 5"):
        similar_filters(model, [0, 5], 1e-3)


def test_of_two_used_filters_with_one_motif_the_less_used_is_drawn_again(tmp_path, monkeypatch):
    import numpy as np

    import argminn_plugin.motifs as motifs_module
    import argminn_plugin.train as train_module

    asked = []

    def similar(model, filters, max_p):
        asked.append((list(filters), max_p))
        return [(0, 2)] if {0, 2} <= set(filters) else []

    # a co-firing pair (1, 3) and a dead filter 4 (its importance on the probe aside); filter 1 is below
    # SIMILAR_USED of the top filter and filter 4 is dead, so neither motif is compared; (0, 2) match
    monkeypatch.setattr(train_module, "filters_to_resample", lambda model, X, share: ([(1, 3, 0.9, 0.9)], [4]))
    monkeypatch.setattr(motifs_module, "filter_importance", lambda model, X: np.array([10.0, 0.4, 3.0, 5.0, 2.0]))
    monkeypatch.setattr(motifs_module, "similar_filters", similar)
    cfg = CFG.replace(filter_width=5)
    # the term is on from epoch 2 and at full weight from epoch 5: motifs are compared after epochs 2 and 3
    # (the next epoch's weight below full), not after epoch 4 (a newcomer would meet the full term), where
    # the co-firing pair is still drawn
    tc = TrainConfig(max_epochs=4, batch_size=16, overlap_warmup=1, overlap_ramp=3, resample_share=0.5,
                     resample_until=4, resample_similar=1e-4)
    _, history = train(cfg, tc, data(0), data(1), str(tmp_path / "on"), verbose=False)
    assert [h.get("resampled") for h in history] == [None, [4, 1, 2], [4, 1, 2], [1]]
    assert asked == [([0, 2, 3], 1e-4)] * 2
    asked.clear()
    _, history = train(cfg, tc.replace(resample_similar=0.0), data(0), data(1), str(tmp_path / "off"),
                       verbose=False)
    assert [h.get("resampled") for h in history] == [None, [4, 1], [4, 1], [1]] and asked == []


def test_similar_filters_counts_either_direction_and_both_strands_only_with_reverse_complement_scanning(
        monkeypatch):
    import numpy as np

    from argminn_plugin.motifs import similar_filters

    # WORD and its reverse complement: one motif for a scanner that reads both strands, two for one that does not
    model = detectors()
    assert similar_filters(model, [0, 1, 2], 1e-3) == [(0, 1)]
    single = ARGMINN(CFG.replace(scan_reverse_complement=False))
    single.scanner.conv.load_state_dict(model.scanner.conv.state_dict())
    assert similar_filters(single, [0, 1, 2], 1e-3) == []
    # either direction of TOMTOM's (query, target) p-values counts
    import memelite

    def one_way(queries, targets, reverse_complement=True):
        p = np.ones((len(queries), len(targets)))
        p[1, 0] = 1e-9  # query 1 (filter 1) against target 0 (filter 0) only
        return (p,)

    monkeypatch.setattr(memelite, "tomtom", one_way)
    assert similar_filters(model, [0, 1, 2], 1e-3) == [(0, 1)]
    assert similar_filters(model, [0, 1, 2], 1e-9) == []  # below, not at, the bound


LONG = "GACTTAGCAT"  # a 10-bp motif: filter 0 holds its first six bases, filter 1 its last six


def test_filters_on_two_parts_of_one_motif_differ_by_weights_and_match_by_seqlets():
    from argminn_plugin.motifs import similar_filters

    model = detectors()
    with torch.no_grad():
        model.scanner.conv.weight[0] = 2 * one_hot(LONG[:6]) - 1
        model.scanner.conv.weight[1] = 2 * one_hot(LONG[4:]) - 1
    X = random_onehot(64, 40, seed=3)
    X[:, :, 8:18] = one_hot(LONG)
    X[:, :, 25:31] = one_hot(OTHER)
    # the weights share two columns ("TA"); the windows where each fires (half a width past the filter on
    # either side) both hold the whole motif
    assert similar_filters(model, [0, 1, 2], 1e-3) == []
    assert similar_filters(model, [0, 1, 2], 1e-3, X=X) == [(0, 1)]
    # a filter that does not fire on X (4) is read from its weights: OTHER's, like filter 2's seqlets
    assert similar_filters(model, [0, 2, 4], 1e-3, X=X) == [(2, 4)]


def test_pruning_reads_seqlets_on_the_positive_training_rows(monkeypatch):
    import numpy as np

    import argminn_plugin.motifs as motifs_module
    import argminn_plugin.train as train_module
    from argminn_plugin.train import _prune_decision

    model, X = detectors(), planted(n=40)
    seen = []
    monkeypatch.setattr(motifs_module, "filter_importance", lambda model, X: np.array([10.0, 3.0, 5.0, 4.0, 0.0]))
    monkeypatch.setattr(motifs_module, "similar_filters", lambda model, used, p, X=None: seen.append(X) or [])
    y = torch.zeros(len(X), 2)
    y[3, 0] = y[5, 1] = y[6] = y[30, 1] = 1  # rows positive in either task
    tc = TrainConfig(prune_similar=1e-3, prune_read="seqlets")
    _prune_decision(model, tc, 7, X, y)
    assert torch.equal(seen[-1], X[[3, 5, 6, 30]])
    monkeypatch.setattr(train_module, "PRUNE_READ_ROWS", 3)  # at most this many, drawn from the seed
    _prune_decision(model, tc, 7, X, y)
    _prune_decision(model, tc, 7, X, y)
    assert len(seen[-1]) == 3 and torch.equal(seen[-1], seen[-2])
    assert all(any(torch.equal(row, X[i]) for i in (3, 5, 6, 30)) for row in seen[-1])
    _prune_decision(model, tc, 7, X, torch.zeros(len(X), 2))  # no positive row: every row (up to the cap)
    assert len(seen[-1]) == 3
    _prune_decision(model, tc.replace(prune_read="weights"), 7, X, y)
    assert seen[-1] is None
    with pytest.raises(ArgminnError, match="'prune_read' must be 'weights' or 'seqlets', got 'seqlet'"):
        TrainConfig(prune_read="seqlet")


def test_at_the_end_the_less_used_of_two_filters_with_one_motif_is_pruned(monkeypatch):
    import numpy as np

    import argminn_plugin.motifs as motifs_module
    from argminn_plugin.train import _prune_decision, zero_filters

    # filters 0 and 1 split WORD's sites (filter 1 reads VARIANT's reverse complement); 4 never fires
    model = detectors()
    with torch.no_grad():
        model.scanner.conv.weight[1] = 2 * reverse_complement(one_hot(VARIANT)[None])[0] - 1
    X, tc = planted(), TrainConfig(prune_similar=1e-3)
    y = torch.ones(len(X), 1)
    importance = np.array([10.0, 3.0, 5.0, 4.0, 0.0])
    monkeypatch.setattr(motifs_module, "filter_importance", lambda model, X: importance)
    # the less used filter first; the other if the model does not do as well without it
    assert _prune_decision(model, tc, 7, X, y) == ([[0, 1]], [[1], [0]])
    importance[:2] = [3.0, 10.0]
    assert _prune_decision(model, tc, 7, X, y) == ([[0, 1]], [[0], [1]])
    assert _prune_decision(model, tc.replace(prune_similar=1e-6), 7, X, y) == ([], [])
    # three filters with one motif: one is kept (first the most used, then the least used); a pair whose
    # filter is pruned is resolved
    monkeypatch.setattr(motifs_module, "similar_filters", lambda model, used, p, X=None: [(0, 1), (0, 2), (1, 2)])
    importance[:3] = [10.0, 5.0, 3.0]
    assert _prune_decision(model, tc, 7, X, y)[1] == [[1, 2], [0, 1]]
    # a pruned filter never fires and its channels say nothing downstream
    zero_filters(model, [1])
    assert model.scanner(X)[:, [1, 1 + CFG.n_filters]].abs().max() == 0 < model.scanner(X)[:, 0].max()
    assert model.token_proj.weight[:, [1, 1 + CFG.n_filters]].abs().max() == 0
    assert model.scanner.conv.weight[0].abs().sum() > 0


def test_prune_minor_adds_the_filters_used_little_to_each_attempt_then_tries_without_them(monkeypatch):
    import numpy as np

    import argminn_plugin.motifs as motifs_module
    import argminn_plugin.train as train_module
    from argminn_plugin.train import _prune_decision

    model, X = detectors(), planted(n=40)
    y = torch.ones(len(X), 1)
    # filter 4 is below SIMILAR_USED (not used, never a candidate); 3 is used, at 0.2 of the top
    importance = np.array([10.0, 3.0, 5.0, 2.0, 0.4])
    monkeypatch.setattr(motifs_module, "filter_importance", lambda model, X: importance)
    pairs, compared = [], []
    monkeypatch.setattr(motifs_module, "similar_filters",
                        lambda model, used, p, X=None: compared.append(X) or pairs)
    tc = TrainConfig(prune_similar=1e-3, prune_minor=0.25, prune_read="seqlets")
    assert _prune_decision(model, tc, 7, X, y) == ([], [[3]])  # no pair: the minor filters alone
    assert len(compared) == 1 and compared[0] is not None  # seqlets read for the comparison
    # without prune_similar, no filters are compared and no seqlets read
    monkeypatch.setattr(train_module, "_positive_rows", lambda y: pytest.fail("seqlet rows drawn"))
    assert _prune_decision(model, tc.replace(prune_similar=0.0), 7, X, y) == ([], [[3]])
    assert len(compared) == 1
    monkeypatch.undo()
    monkeypatch.setattr(motifs_module, "filter_importance", lambda model, X: importance)
    monkeypatch.setattr(motifs_module, "similar_filters", lambda model, used, p, X=None: pairs)
    assert _prune_decision(model, tc.replace(prune_minor=0.0), 7, X, y) == ([], [])
    assert _prune_decision(model, tc.replace(prune_minor=0.35), 7, X, y) == ([], [[1, 3]])
    # with a pair: with the minor filters first, then without them
    pairs.append((0, 1))
    assert _prune_decision(model, tc, 7, X, y) == ([[0, 1]], [[1, 3], [0, 3], [1], [0]])
    # a filter of a pair is left to the pair's attempts, however little it is used
    importance[1] = 1.0
    assert _prune_decision(model, tc, 7, X, y) == ([[0, 1]], [[1, 3], [0, 3], [1], [0]])
    pairs[0] = (2, 3)
    assert _prune_decision(model, tc, 7, X, y) == ([[2, 3]], [[1, 3], [1, 2], [3], [2]])
    with pytest.raises(ArgminnError, match=r"'prune_minor' must be in \[0, 1\) \(0: off\), got 1.0"):
        TrainConfig(prune_minor=1.0)


PRUNE_CFG = ModelConfig(input_length=40, n_filters=3, filter_width=5, n_layers=1, n_heads=2, head_dim=8,
                        stream_dim=16, token_dim=8, pos_enc_dim=4)


def prune_data(seed):
    X = random_onehot(64, 40, seed=seed)
    return X, (X[:, 0, :20].sum(1) > 5).float()[:, None]


def test_pruning_phase_trains_on_keeps_the_pruned_model_within_tolerance_and_resumes_identically(
        tmp_path, monkeypatch):
    import json
    import os

    import argminn_plugin.train as train_module
    from argminn_plugin.fileio import safe_load_torch
    from argminn_plugin.train import load_model, zero_filters

    decisions, current = [], []

    def decide(model, tc, epoch, X, y):
        decisions.append(epoch)
        # decided on the best model (model.pt), not on the last epoch's
        best = load_model(str(tmp_path / current[-1] / "model.pt")).state_dict()
        assert all(torch.equal(value, best[key]) for key, value in model.state_dict().items())
        return [[0, 1]], [list(a) for a in attempts]

    monkeypatch.setattr(train_module, "_prune_decision", decide)
    tc = TrainConfig(max_epochs=3, batch_size=16, seed=2, prune_similar=1e-3, prune_epochs=3, prune_patience=3,
                     prune_tolerance=float("inf"))

    def run(out, config=tc, **kwargs):
        current.append(out)
        return train(PRUNE_CFG, config, prune_data(0), prune_data(1), str(tmp_path / out), verbose=False, **kwargs)

    # kept (any loss is within an infinite tolerance): filter 1 is zero in the model returned and in model.pt
    attempts = [[1], [0]]  # the second attempt only follows a dropped first
    model, history = run("kept")
    assert decisions == [3]  # decided once, at the end of the 3 epochs, before 0-based epoch 3
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert [h.get("pruned") for h in history] == [None] * 3 + [[1]] * 3
    best = [h["epoch"] for h in history if h.get("best")]
    assert best[-1] > 3 and max(b for b in best if b <= 3) < 3  # the best unpruned epoch is not the last one
    saved = load_model(str(tmp_path / "kept" / "model.pt"))
    for m in (model, saved):
        assert m.scanner.conv.weight[1].abs().max() == 0 and m.scanner.conv.bias[1] == 0
        assert m.token_proj.weight[:, [1, 1 + PRUNE_CFG.n_filters]].abs().max() == 0  # kept at zero while training
        assert m.scanner.conv.weight[0].abs().max() > 0
    stop = safe_load_torch(str(tmp_path / "kept" / "last.pt"))["stop"]
    assert stop["prune"]["filters"] == [1] and stop["prune"]["from_epoch"] == max(b for b in best if b <= 3)
    # a finished run resumed: nothing decided or trained again
    decisions.clear()
    _, again = run("kept", resume=True)
    assert decisions == [] and again == history
    # killed while deciding (nothing saved yet): resumed, decided again, the same run
    real_decide = decide

    def killed(*args):
        monkeypatch.setattr(train_module, "_prune_decision", real_decide)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_prune_decision", killed)
    with pytest.raises(KeyboardInterrupt):
        run("cut_deciding")
    assert "prune" not in safe_load_torch(str(tmp_path / "cut_deciding" / "last.pt"))["stop"]
    decisions.clear()
    resumed, resumed_history = run("cut_deciding", resume=True)
    assert decisions == [3] and [h["val_loss"] for h in resumed_history] == [h["val_loss"] for h in history]
    assert all(torch.equal(value, resumed.state_dict()[key]) for key, value in model.state_dict().items())
    # killed after the decision was saved, and killed inside the phase: resumed, the same run (not decided again)
    real = train_module._evaluate_sharded

    def killed_and_resumed_at(out, crash_at, config=tc):
        """Run, killed at the ``crash_at``-th validation pass (before that epoch's checkpoint); resume."""
        calls = []

        def evaluate(*args, **kwargs):
            calls.append(1)
            if len(calls) == crash_at:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(train_module, "_evaluate_sharded", evaluate)
        with pytest.raises(KeyboardInterrupt):
            run(out, config)
        monkeypatch.setattr(train_module, "_evaluate_sharded", real)
        decisions.clear()
        return run(out, config, resume=True)

    for crash_at in (4, 5):
        resumed, resumed_history = killed_and_resumed_at(f"cut{crash_at}", crash_at)
        assert decisions == []
        assert [h["val_loss"] for h in resumed_history] == [h["val_loss"] for h in history]
        a, b = model.state_dict(), resumed.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    # dropped: every filter pruned, the model predicts a constant and no phase epoch comes within a zero
    # tolerance of the unpruned model's loss; model.pt stays the unpruned best
    attempts = [[0, 1, 2]]
    unpruned, plain_history = run("plain", tc.replace(prune_similar=0.0))
    model, history = run("dropped", tc.replace(prune_tolerance=0.0))
    assert [h.get("pruned") for h in history[3:]] == [[0, 1, 2]] * 3
    assert not any(h.get("best") for h in history[3:])
    assert [h["val_loss"] for h in history[:3]] == [h["val_loss"] for h in plain_history]
    a, b = unpruned.state_dict(), model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the tolerance is relative: kept within (1 + tolerance) times the unpruned loss, dropped above it
    state = safe_load_torch(str(tmp_path / "dropped" / "last.pt"))["stop"]["prune"]
    excess = state["best_loss"] / state["unpruned_val_loss"] - 1
    assert excess > 0
    _, history = run("below", tc.replace(prune_tolerance=excess / 2))
    assert not any(h.get("best") for h in history[3:])
    _, history = run("above", tc.replace(prune_tolerance=excess * 1.01))
    phase = [h["val_loss"] for h in history[3:]]
    assert [h["epoch"] for h in history if h.get("best")][-1] == 4 + phase.index(min(phase))
    # a dropped attempt gives way to the next, from the unpruned best with a fresh optimizer: here pruning
    # filter 1 alone, which stays within the tolerance that dropped pruning all three
    attempts = [[0, 1, 2], [1]]
    below = tc.replace(prune_tolerance=excess / 2)
    real_zero, starts = train_module.zero_filters, []

    def zero(model, filters):
        real_zero(model, filters)
        if filters == [1] and not starts:
            starts.append({k: v.clone() for k, v in model.state_dict().items()})

    monkeypatch.setattr(train_module, "zero_filters", zero)
    model, history = run("second", below)
    monkeypatch.setattr(train_module, "zero_filters", real_zero)
    assert [h.get("pruned") for h in history[3:]] == [[0, 1, 2]] * 3 + [[1]] * 3
    assert not any(h.get("best") for h in history[3:6]) and any(h.get("best") for h in history[6:])
    state = safe_load_torch(str(tmp_path / "second" / "last.pt"))["stop"]["prune"]
    assert state["tried"] == [{"filters": [0, 1, 2], "best_loss": min(h["val_loss"] for h in history[3:6])}]
    assert state["filters"] == [1] and state["start_epoch"] == 6 and len(state["tried"]) == 1
    # the second attempt starts from the unpruned best (filter 1 set to zero), not from the first's last epoch
    start = load_model(str(tmp_path / "plain" / "model.pt"))
    zero_filters(start, [1])
    assert all(torch.equal(value, starts[0][key]) for key, value in start.state_dict().items())
    assert model.scanner.conv.weight[1].abs().max() == 0 < model.scanner.conv.weight[0].abs().max()
    saved = load_model(str(tmp_path / "second" / "model.pt"))
    assert all(torch.equal(value, saved.state_dict()[key]) for key, value in model.state_dict().items())
    # killed at the end of the first attempt, or in the second: resumed, the same run
    for crash_at in (6, 7):
        resumed, resumed_history = killed_and_resumed_at(f"second_cut{crash_at}", crash_at, below)
        assert [h["val_loss"] for h in resumed_history] == [h["val_loss"] for h in history]
        assert all(torch.equal(value, resumed.state_dict()[key]) for key, value in model.state_dict().items())
    attempts = [[0, 1, 2]]
    # the phase stops early after prune_patience epochs without a better validation loss
    _, history = run("patience", tc.replace(prune_tolerance=0.0, prune_epochs=8, prune_patience=1))
    phase, best = [h["val_loss"] for h in history[3:]], float("inf")
    for n, loss in enumerate(phase, 1):
        if not loss < best - tc.min_delta:
            break
        best = loss
    assert len(phase) == n < 8
    # a pruned model that diverges ends the phase, not the run: model.pt keeps the unpruned best
    calls = []

    def diverging(*args, **kwargs):
        calls.append(1)
        loss, probs = real(*args, **kwargs)
        return (float("nan") if len(calls) == 5 else loss), probs

    monkeypatch.setattr(train_module, "_evaluate_sharded", diverging)
    model, history = run("diverged", tc.replace(prune_tolerance=0.0))
    monkeypatch.setattr(train_module, "_evaluate_sharded", real)
    assert len(history) == 4 and not history[3].get("best")
    assert all(torch.equal(a[k], model.state_dict()[k]) for k in a)
    _, again = run("diverged", tc.replace(prune_tolerance=0.0), resume=True)
    assert again == history
    # training that ends before every term is at full weight is not pruned (the phase would train under
    # another objective than the unpruned model's)
    decisions.clear()
    _, history = run("unsettled", tc.replace(l1_warmup=5))
    assert decisions == [] and len(history) == 3
    # nothing to prune: no phase; the decision is kept in last.pt, so a resume does not decide again
    attempts = []
    monkeypatch.setattr(train_module, "_prune_decision", lambda *args: (decisions.append(1), ([], []))[1])
    decisions.clear()
    _, history = run("none")
    assert len(history) == 3 and decisions == [1]
    _, history = run("none", resume=True)
    assert len(history) == 3 and decisions == [1]
    # the phase's settings only matter with pruning on; the warm-up candidates do not prune
    with open(tmp_path / "plain" / "history.json") as handle:
        assert len(json.load(handle)) == 3
    run("plain", tc.replace(prune_similar=0.0, prune_epochs=9), resume=True)
    with pytest.raises(ArgminnError, match="different model or training config"):
        run("plain", resume=True)
    decisions.clear()
    monkeypatch.setattr(train_module, "_prune_decision", decide)
    attempts = [[1]]
    _, history = run("candidates", tc.replace(warmup_candidates=2, l1_warmup=1, overlap_warmup=1, entropy_warmup=1))
    assert decisions == [3] and [h.get("pruned") for h in history] == [None] * 3 + [[1]] * 3
    for seed in ("seed2", "seed1002"):
        assert os.listdir(tmp_path / "candidates" / "warmup_candidates" / seed)
        with open(tmp_path / "candidates" / "warmup_candidates" / seed / "history.json") as handle:
            assert len(json.load(handle)) == 1
    # prune_minor alone turns the phase on too; the phase's settings then matter, prune_read does not
    decisions.clear()
    minor = tc.replace(prune_similar=0.0, prune_minor=0.25)
    _, history = run("minor", minor)
    assert decisions == [3] and [h.get("pruned") for h in history] == [None] * 3 + [[1]] * 3
    run("minor", minor.replace(prune_read="seqlets"), resume=True)
    with pytest.raises(ArgminnError, match="different model or training config"):
        run("minor", minor.replace(prune_epochs=9), resume=True)


def test_the_pruning_phase_optimizer_keeps_the_weight_decay(tmp_path, monkeypatch):
    """The pruning phase's fresh optimizer is AdamW with the run's decay, the scanner's filters aside."""
    import argminn_plugin.train as train_module
    from argminn_plugin.fileio import safe_load_torch

    monkeypatch.setattr(train_module, "_prune_decision", lambda *args: ([[0, 1]], [[1]]))
    tc = TrainConfig(max_epochs=2, batch_size=16, seed=2, prune_similar=1e-3, prune_epochs=2, prune_patience=2,
                     prune_tolerance=float("inf"), weight_decay=0.3)
    _, history = train(PRUNE_CFG, tc, prune_data(0), prune_data(1), str(tmp_path), verbose=False)
    assert [h.get("pruned") for h in history] == [None] * 2 + [[1]] * 2
    groups = safe_load_torch(str(tmp_path / "last.pt"))["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.0, 0.3]


def test_pruning_settings_are_checked():
    for bad, match in (({"prune_similar": 1.0}, r"'prune_similar' must be in \[0, 1\) \(0: off\), got 1.0"),
                       ({"prune_similar": float("nan")}, "'prune_similar' must be a finite number, got nan"),
                       ({"prune_epochs": 0}, "'prune_epochs' must be >= 1, got 0"),
                       ({"prune_patience": 0}, "'prune_patience' must be >= 1"),
                       ({"prune_tolerance": -0.1}, "'prune_tolerance' must be >= 0, got -0.1")):
        with pytest.raises(ArgminnError, match=match):
            TrainConfig(**bad)
    assert TrainConfig().prune_similar == 0.0
