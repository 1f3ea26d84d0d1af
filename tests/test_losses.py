import math

import pytest
import torch

from argminn_plugin.losses import (attention_entropy, filter_overlap_loss, filter_overlap_loss_loop, l1_loss,
                                   normalizing_scale, overlap_tables)


@pytest.mark.parametrize("groups", [None, 3])
def test_overlap_matches_loop_oracle(groups):
    g = torch.Generator().manual_seed(3)
    acts = torch.relu(torch.randn(3, 6, 17, generator=g))
    mags = torch.rand(6, 5, generator=g)
    fast = filter_overlap_loss(acts, mags, groups)
    slow = filter_overlap_loss_loop(acts, mags, groups)
    assert fast.item() > 0
    assert fast.item() == pytest.approx(slow.item(), rel=1e-5)


def test_overlap_gradients_match_oracle():
    g = torch.Generator().manual_seed(5)
    acts1 = torch.relu(torch.randn(2, 4, 11, generator=g)).requires_grad_()
    mags1 = torch.rand(4, 3, generator=g).requires_grad_()
    acts2, mags2 = acts1.detach().clone().requires_grad_(), mags1.detach().clone().requires_grad_()
    filter_overlap_loss(acts1, mags1, 2).backward()
    filter_overlap_loss_loop(acts2, mags2, 2).backward()
    assert torch.allclose(acts1.grad, acts2.grad, atol=1e-6)
    assert torch.allclose(mags1.grad, mags2.grad, atol=1e-6)


def test_overlap_zero_when_filters_fire_apart():
    acts = torch.zeros(1, 2, 40)
    acts[0, 0, 5] = 2.0
    acts[0, 1, 5 + 4] = 3.0  # width 4: windows [5, 9) and [9, 13) share no base
    mags = torch.ones(2, 4)
    assert filter_overlap_loss(acts, mags).item() == 0.0


def test_overlap_known_answer_for_one_overlap():
    acts = torch.zeros(1, 2, 10)
    acts[0, 0, 2] = 2.0  # filter a (top at position 2)
    acts[0, 1, 3] = 1.0  # filter b one base later: 3 shared columns of width 4
    mags = torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0]])
    # position 2: a top, b at d=+1 -> ov_a = 3, ov_b = 3 * 2 = 6, times act_b = 1 -> 18
    # position 3: b top, a at d=-1 -> ov_a(b) = 3 * 2 = 6, ov_b(a) = 3, times act_a = 2 -> 36
    expected = (18 + 36) / 1 / mags[:2].sum()
    assert filter_overlap_loss(acts, mags).item() == pytest.approx(expected.item())


def test_same_filter_both_strands_not_penalised():
    acts = torch.zeros(1, 4, 12)
    acts[0, 0, 3] = 1.0  # filter 0, forward
    acts[0, 2, 4] = 1.0  # filter 0, reverse complement (channel 0 + 2)
    mags = torch.ones(4, 4)
    assert filter_overlap_loss(acts, mags, n_groups=2).item() == 0.0
    assert filter_overlap_loss(acts, mags, n_groups=4).item() > 0.0


def test_overlap_tables_known_answer():
    mags = torch.tensor([[1.0, 2.0, 3.0]])
    ov_a, ov_b = overlap_tables(mags)
    # offsets -2..2: a overlaps [0,1) [0,2) [0,3) [1,3) [2,3); b the mirrored columns
    assert ov_a.tolist() == [[1.0, 3.0, 6.0, 5.0, 3.0]]
    assert ov_b.tolist() == [[3.0, 5.0, 6.0, 3.0, 1.0]]


def test_entropy_and_l1_known_answers(small_config):
    from argminn_plugin import ARGMINN

    uniform = [torch.full((2, 3, 8), 1 / 8)]
    assert attention_entropy(uniform).item() == pytest.approx(math.log(8))
    onehot = torch.zeros(2, 3, 8)
    onehot[..., 0] = 1
    assert attention_entropy([onehot]).item() == pytest.approx(0.0, abs=1e-6)
    model = ARGMINN(small_config)
    with torch.no_grad():
        model.scanner.conv.weight.fill_(-0.5)
    assert l1_loss(model).item() == pytest.approx(0.5 * 4 * 4 * 6)
    acts = torch.ones(2, 3, 5)
    assert l1_loss(model, acts, "activations").item() == pytest.approx(3.0)


def test_normalized_overlap_units_ignore_the_scale_batch_norm_undoes(small_config):
    """overlap_units='normalized': shrinking every activation of a channel (what a scanner followed by
    batch norm can do for free) leaves the term unchanged and gives it no gradient along that
    direction; in raw units the same shrinking lowers the penalty."""
    from argminn_plugin import ARGMINN, TrainConfig
    from argminn_plugin.train import regularized_loss

    torch.manual_seed(0)
    k, w = 6, 5
    acts = torch.relu(torch.randn(4, k, 40))
    mags = torch.rand(k, w) + 0.1
    scale = torch.ones(1, k, 1, requires_grad=True)

    def units(a, mode):
        return a / normalizing_scale(a) if mode == "normalized" else a

    for mode in ("raw", "normalized"):
        full = filter_overlap_loss(units(acts * scale, mode), mags, 3)
        (grad,) = torch.autograd.grad(full, scale)
        shrunk = filter_overlap_loss(units(acts * 0.1, mode), mags, 3)
        if mode == "raw":
            assert grad.abs().max() > 1e-2 and shrunk < 0.2 * full
        else:
            assert grad.abs().max() < 1e-4 * full and torch.isclose(shrunk, full, rtol=5e-3)  # up to batch norm's eps

    # regularized_loss takes the option: the overlap term it reports is the normalized one
    model = ARGMINN(small_config).train()
    X = torch.nn.functional.one_hot(torch.randint(0, 4, (8, small_config.input_length)), 4).transpose(1, 2).float()
    y = torch.randint(0, 2, (8, 1)).float()
    torch.manual_seed(1)
    _, raw_terms = regularized_loss(model, X, y, TrainConfig(), epoch=0)
    torch.manual_seed(1)
    _, norm_terms = regularized_loss(model, X, y, TrainConfig(overlap_units="normalized"), epoch=0)
    _, acts_, _ = model._run(X, keep=True)
    expected = filter_overlap_loss(acts_ / normalizing_scale(acts_), model.filter_column_magnitudes(),
                                   small_config.n_filters)
    assert torch.isclose(norm_terms["overlap"], expected) and not torch.isclose(norm_terms["overlap"],
                                                                                raw_terms["overlap"])
    with pytest.raises(Exception, match="overlap_units"):
        TrainConfig(overlap_units="bn")


def test_the_entropy_term_can_average_over_the_positive_rows_only(small_config):
    from argminn_plugin import ARGMINN, TrainConfig
    from argminn_plugin.train import regularized_loss

    # row 0 uniform over 8 positions, row 1 on one position: the mean over both, or over row 1 only
    attention = torch.zeros(2, 3, 8)
    attention[0] = 1 / 8
    attention[1, :, 2] = 1
    assert attention_entropy([attention]).item() == pytest.approx(math.log(8) / 2)
    assert attention_entropy([attention], torch.tensor([0.0, 1.0])).item() == pytest.approx(0.0, abs=1e-6)
    assert attention_entropy([attention], torch.tensor([1.0, 0.0])).item() == pytest.approx(math.log(8))
    assert attention_entropy([attention], torch.tensor([0.0, 0.0])).item() == 0.0  # no such row: no term
    # with an attention sink, what a row leaves of 1 is the sink's share, one more position
    sunk = attention / 2  # half on the sink
    assert attention_entropy([sunk], sink=True).item() == pytest.approx(
        ((math.log(16) / 2 + math.log(2) / 2) + math.log(2)) / 2)
    assert attention_entropy([torch.zeros(2, 3, 8)], sink=True).item() == pytest.approx(0.0, abs=1e-6)
    assert attention_entropy([attention], sink=True).item() == pytest.approx(math.log(8) / 2, abs=1e-6)

    torch.manual_seed(0)
    model = ARGMINN(small_config.replace(n_tasks=2)).eval()
    with torch.no_grad():  # weights away from their init, so rows differ in attention entropy
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    X = torch.nn.functional.one_hot(torch.randint(0, 4, (6, small_config.input_length)), 4).transpose(1, 2).float()
    y = torch.tensor([[0, 0], [1, 0], [0, 0], [0, 1], [1, 1], [0, 0]]).float()  # rows 1, 3, 4 positive
    tc = TrainConfig(entropy_weight=1.0)
    _, every = regularized_loss(model, X, y, tc, epoch=0)
    _, positive = regularized_loss(model, X, y, tc.replace(entropy_rows="positive"), epoch=0)
    attention = model._run(X, keep=True)[2]
    assert torch.isclose(every["entropy"], attention_entropy(attention))
    assert torch.isclose(positive["entropy"], attention_entropy([a[[1, 3, 4]] for a in attention]))
    assert not torch.isclose(positive["entropy"], every["entropy"])
    with pytest.raises(Exception, match="'entropy_rows' must be 'all' or 'positive', got 'positives'"):
        TrainConfig(entropy_rows="positives")

    # a model with an attention sink: the training term counts the sink's share as one more position
    sink_model = ARGMINN(small_config.replace(n_tasks=2, attention_sink=True)).eval()
    _, with_sink = regularized_loss(sink_model, X, y, tc, epoch=0)
    attention = sink_model._run(X, keep=True)[2]
    assert float(attention[0].sum(-1).max()) < 0.9  # the sink holds a share
    assert torch.isclose(with_sink["entropy"], attention_entropy(attention, sink=True))
    assert with_sink["entropy"] > attention_entropy(attention) + 0.1
