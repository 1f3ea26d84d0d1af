"""ARGMINN's regularizers: filter overlap (non-redundancy), L1, attention entropy."""

import torch


def overlap_tables(mags):
    """Overlap mass tables from per-column |weight| sums via cumulative sums.

    mags: (K, W). For an offset d in [-(W-1), W-1] (filter b's window starts d
    bases after filter a's), returns ``ov_a[k, d + W - 1]`` = sum of filter k's
    column magnitudes over the columns that overlap when k plays ``a``, and
    ``ov_b`` likewise when k plays ``b``.
    """
    k, w = mags.shape
    prefix = torch.cat([mags.new_zeros(k, 1), mags.cumsum(1)], dim=1)  # (K, W+1)
    total = prefix[:, -1:]
    ds = torch.arange(-(w - 1), w, device=mags.device)
    pos, neg = ds.clamp(min=0), (-ds).clamp(min=0)
    ov_a = torch.where(ds >= 0, total - prefix[:, pos], prefix[:, w - neg])
    ov_b = torch.where(ds >= 0, prefix[:, w - pos], total - prefix[:, neg])
    return ov_a, ov_b


def filter_overlap_loss(acts, mags, n_groups=None):
    """Non-redundancy penalty on filters that fire on the same bases.

    acts: (N, K, P) post-ReLU scanner activations; mags: (K, W) per-column sums
    of |weight| (``ARGMINN.filter_column_magnitudes``). Channels k and k' belong
    to the same filter when ``k % n_groups == k' % n_groups`` (a filter and its
    own reverse complement are never penalised against each other).

    At each position i where some filter fires, let a be the top channel. Every
    other filter's channel b firing at j = i + d, |d| < W, adds
    ov_a(d) * ov_b(d) * acts[b, j], the |weight| mass of the two filters over the
    bases their windows share times b's activation. The sum over positions is
    averaged over sequences and divided by the conv layer's total |weight|.
    """
    n, k, p = acts.shape
    w = mags.shape[1]
    n_groups = n_groups or k
    ov_a, ov_b = overlap_tables(mags)  # (K, D), D = 2W - 1 offsets
    # What channel a would pay as the top channel at position i, for every a:
    # y[n, a, i] = sum over other filters' channels c and offsets d of
    # ov_a[a, d] ov_b[c, d] acts[n, c, i + d], one convolution of the
    # activations with a (K, K, D) kernel (zero between a filter's own
    # channels). Its cost and memory are those of a small Conv1d, linear in P;
    # no (N, K, P, D) window tensor is built. The top channel's entry is then
    # picked with a one-hot product (dense, no gather/scatter in the backward pass).
    group = torch.arange(k, device=acts.device) % n_groups
    other_filter = (group[:, None] != group[None, :]).to(acts.dtype)  # (K, K)
    kernel = ov_a[:, None, :] * ov_b[None, :, :] * other_filter[:, :, None]  # (K, K, D)
    paid = torch.nn.functional.conv1d(acts, kernel, padding=w - 1)  # (N, K, P)
    top_val, top = acts.detach().max(dim=1)  # (N, P)
    picked = torch.nn.functional.one_hot(top, k).to(acts.dtype).transpose(1, 2)  # (N, K, P)
    per_position = (paid * picked).sum(1) * (top_val > 0).to(acts.dtype)
    total_weight = mags[:n_groups].sum().clamp_min(1e-12)
    return per_position.sum(1).mean() / total_weight


def normalizing_scale(acts, eps=1e-5):
    """(1, K, 1) per-channel standard deviation over batch and positions, as batch norm computes it.

    Not detached: the overlap term in these units does not change when every
    activation of a channel is scaled by the same factor, so its gradient has
    no component along that direction.
    """
    return (acts.var(dim=(0, 2), unbiased=False, keepdim=True) + eps).sqrt()


def filter_overlap_loss_loop(acts, mags, n_groups=None):
    """Slow, literal version of :func:`filter_overlap_loss` (test oracle)."""
    n, k, p = acts.shape
    w = mags.shape[1]
    n_groups = n_groups or k
    total = acts.new_zeros(())
    for s in range(n):
        for i in range(p):
            a = int(acts[s, :, i].argmax())
            if acts[s, a, i] <= 0:
                continue
            for b in range(k):
                if b % n_groups == a % n_groups:
                    continue
                for j in range(max(0, i - w + 1), min(p, i + w)):
                    d = j - i
                    a_cols = range(max(0, d), min(w, w + d))
                    b_cols = range(max(0, -d), min(w, w - d))
                    total = total + mags[a, list(a_cols)].sum() * mags[b, list(b_cols)].sum() * acts[s, b, j]
    return total / n / mags[:n_groups].sum()


def l1_loss(model, acts=None, target="weights"):
    """L1 on the conv weights (sum of |w|) or on the activations (mean per position)."""
    if target == "weights":
        return model.scanner.conv.weight.abs().sum()
    if target == "activations":
        return acts.abs().sum(1).mean()
    raise ValueError(f"unknown L1 target {target!r}")


def attention_entropy(attention, rows=None, sink=False):
    """Mean entropy of every head's attention distribution over positions.

    ``rows``: an (N,) 0/1 mask; the mean is then over those rows only (zero
    if there are none). ``sink``: the attention holds the positions of a model
    with an attention sink (ModelConfig.attention_sink), the sink's share
    being what a row leaves of 1; it counts as one more position."""
    if not attention:
        return torch.zeros(())
    stacked = torch.stack(attention)  # (layers, N, H, P)
    entropy = -(stacked * torch.log(stacked.clamp_min(1e-12))).sum(-1)  # (layers, N, H)
    if sink:
        rest = (1 - stacked.sum(-1)).clamp_min(0)
        entropy = entropy - rest * torch.log(rest.clamp_min(1e-12))
    if rows is None:
        return entropy.mean()
    return (entropy.mean((0, 2)) * rows).sum() / rows.sum().clamp_min(1)
