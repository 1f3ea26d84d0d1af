"""Motif read-out: filters -> PPMs, MEME export, logos, TOMTOM matches.

Each scanner filter becomes a probability matrix, either straight from its
weights (a column-wise softmax, scaled so the strongest column spans ``beta``
nats) or from the windows where it fires on given sequences (its seqlets);
low-information flanks are trimmed. Filters that never fire are dropped. Matches against JASPAR
(pyjaspar, offline) use memelite's TOMTOM; q-values are Benjamini-Hochberg over
each query's p-values against the whole target database.
"""

import functools
import os

import numpy as np
import pandas as pd
import torch

from .data import in_eval_mode, model_input
from .errors import ArgminnError
from .fileio import atomic_write, check_writable, scratch_beside


def information_content(ppm):
    """Bits per column of a (4, w) probability matrix."""
    p = np.clip(ppm, 1e-9, 1)
    return 2 + (p * np.log2(p)).sum(0)


def weights_to_ppm(weight, beta=4.0):
    """(4, W) conv weights -> (4, W) probabilities by a scaled column softmax.

    The weights are centred per column and scaled so that the filter's largest
    column range is ``beta`` nats: the strongest base of the strongest column
    then gets probability ~ e^beta times the weakest.
    """
    w = np.asarray(weight, dtype=np.float64)
    w = w - w.mean(0, keepdims=True)
    span = (w.max(0) - w.min(0)).max()
    if span <= 0:
        return np.full(w.shape, 0.25)
    z = w * (beta / span)
    e = np.exp(z - z.max(0, keepdims=True))
    return e / e.sum(0, keepdims=True)


def informative_columns(ppm, min_ic=0.3, edge=0, edge_min_ic=0.0):
    """Indices of the columns of at least ``min_ic`` bits; the ``edge`` outermost columns on either side (a
    seqlet read-out's flanks) need ``max(min_ic, edge_min_ic)``. None such: the motif is uninformative."""
    ic = information_content(ppm)
    need = np.full(ic.shape, float(min_ic))
    if edge:
        need[:edge] = need[-edge:] = max(min_ic, edge_min_ic)
    return np.flatnonzero(ic >= need)


def trim(ppm, min_ic=0.3, min_width=4, edge=0, edge_min_ic=0.0):
    """Cut flanking columns under ``min_ic`` bits; returns (ppm, first, last+1).

    The ``edge`` outermost columns on either side (a seqlet read-out's flanks)
    need ``max(min_ic, edge_min_ic)`` bits to count as informative. A motif
    with no informative column (:func:`informative_columns`) is returned whole.
    """
    return _trimmed(ppm, min_ic, min_width, edge, edge_min_ic)[:3]


def _trimmed(ppm, min_ic=0.3, min_width=4, edge=0, edge_min_ic=0.0):
    """:func:`trim`'s (ppm, first, last+1), and whether any column was informative (else the ppm is whole)."""
    ic = information_content(ppm)
    keep = informative_columns(ppm, min_ic, edge, edge_min_ic)
    if keep.size == 0:
        return ppm, 0, ppm.shape[1], False
    lo, hi = int(keep[0]), int(keep[-1]) + 1
    while hi - lo < min(min_width, ppm.shape[1]):
        if lo > 0 and (hi >= ppm.shape[1] or ic[lo - 1] >= ic[hi]):
            lo -= 1
        else:
            hi += 1
    return ppm[:, lo:hi], lo, hi, True


def scans_both_strands(model):
    """Whether ``model``'s motif scanner reads both strands (ARGMINN's ``scan_reverse_complement``; a model
    without that setting, a baseline, is taken to)."""
    return bool(getattr(model.config, "scan_reverse_complement", True))


def consensus(ppm):
    return "".join("ACGT"[i] if p >= 0.5 else "acgt"[i] for i, p in zip(ppm.argmax(0), ppm.max(0)))


@torch.no_grad()
@in_eval_mode
def filter_activity(model, X, batch_size=256):
    """Per filter: the largest activation on X and the fraction of sequences where it fires."""
    best = torch.zeros(model.motif_conv.out_channels)
    fired = torch.zeros(model.motif_conv.out_channels)
    for i in range(0, len(X), batch_size):
        acts = model.motif_activations(X[i:i + batch_size])[0]  # (n, F, P)
        peak = acts.amax(2)
        best = torch.maximum(best, peak.amax(0))
        fired += (peak > 0).float().sum(0)
    return best.numpy(), (fired / len(X)).numpy()


@torch.no_grad()
@in_eval_mode
def filter_importance(model, X, batch_size=256, max_sequences=2000):
    """Per filter: mean |change of the logits| on X when the filter is knocked out.

    ``model.motif_knockout(f)`` names a module and the output channels that
    carry filter f (both strands for ARGMINN, the post-ReLU track for the CNN,
    the unit's output for ExplaiNN); a forward hook sets them to zero -- the
    motif absent everywhere -- or, where the model asks for "mean", to their
    mean over X. Uses the first ``max_sequences`` rows of X.
    """
    X = X[:max_sequences]
    n_filters = model.motif_conv.out_channels
    specs = [tuple(model.motif_knockout(f)) for f in range(n_filters)]
    specs = [spec if len(spec) == 3 else (*spec, "zero") for spec in specs]
    for *_, how in specs:
        if how not in ("zero", "mean"):
            raise ArgminnError(f"motif_knockout: unknown replacement {how!r} (use 'zero' or 'mean')")

    def logits():
        return torch.cat([model(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])

    # Means over X of the outputs of the modules that are mean-ablated.
    sums, hooks = {}, []
    for module in {id(m): m for m, _, how in specs if how == "mean"}.values():
        def accumulate(mod, __, output):
            sums[id(mod)] = sums.get(id(mod), 0) + output.detach().sum(0)

        hooks.append(module.register_forward_hook(accumulate))
    try:
        base = logits()
    finally:
        for handle in hooks:
            handle.remove()
    means = {key: total / len(X) for key, total in sums.items()}

    out = np.zeros(n_filters)
    for f, (module, channels, how) in enumerate(specs):
        def knock(mod, __, output, channels=channels, how=how):
            output = output.clone()
            output[:, channels] = 0 if how == "zero" else means[id(mod)][channels]
            return output

        handle = module.register_forward_hook(knock)
        try:
            out[f] = float((logits() - base).abs().mean())
        finally:
            handle.remove()
    return out


# chi2(3 df) 99th percentile / (2 ln 2): bits a uniform column of n bases exceeds with probability 1%, times n
FLANK_CHANCE_IC = 11.345 / (2 * np.log(2))


def resolve_method(method, X):
    """'auto' -> 'seqlets' with sequences, else 'weights'; checks the name."""
    if method not in ("auto", "weights", "seqlets"):
        raise ArgminnError(f"motif read-out method must be 'auto', 'weights' or 'seqlets', not {method!r}")
    if method == "seqlets" and X is None:
        raise ArgminnError("the 'seqlets' motif read-out needs sequences (give --data or --fasta/--bed)")
    return ("seqlets" if X is not None else "weights") if method == "auto" else method


def _signed_weights(model):
    """The scanner's (F, 4, W) weights and (F,) biases as numpy, each filter in the sign the model reads it."""
    weight = model.motif_conv.weight.detach().cpu().numpy()
    bias = model.motif_conv.bias.detach().cpu().numpy()
    if hasattr(model, "motif_signs"):  # a filter the model reads negated (ExplaiNN: negative BatchNorm scale)
        signs = model.motif_signs()
        weight, bias = weight * signs[:, None, None], bias * signs
    return weight, bias


def filter_ppms(model, X=None, beta=4.0, min_ic=0.3, flank=None, batch_size=256, best=None):
    """Every filter's motif, trimmed: a list of (ppm, start, end, n_seqlets, informative), start/end in the
    filter's frame; ``informative``: whether any column was informative enough to keep (else the ppm is whole).

    With X, a filter that fires on X is read from its seqlets
    (:func:`seqlet_ppms`; windows reaching ``flank`` bases past the filter on
    each side, default half its width, and flank columns kept only where
    they beat chance for that many seqlets); without X, or for a filter that
    never fires on X, from its weights (:func:`weights_to_ppm`). ``best``: each
    filter's peak activation on X, if already known.
    """
    if flank is None:
        flank = model.motif_conv.kernel_size[0] // 2
    if flank < 0:
        raise ArgminnError(f"motif read-out: 'flank' must be >= 0 bases, got {flank}")
    if X is not None:
        seqlets, n_seqlets = seqlet_ppms(model, X, batch_size=batch_size, best=best, flank=flank)
    else:
        seqlets, n_seqlets = {}, {}
    weight, _ = _signed_weights(model)
    out = []
    for f in range(weight.shape[0]):
        if f in seqlets:
            # A flank column of n background bases reaches FLANK_CHANCE_IC / n bits by chance 1% of the time
            # (G-test, 3 degrees of freedom): with few seqlets, flanks must beat that to be kept.
            ppm, lo, hi, informative = _trimmed(seqlets[f], min_ic, edge=flank,
                                                edge_min_ic=FLANK_CHANCE_IC / n_seqlets[f])
            out.append((ppm, lo - flank, hi - flank, n_seqlets[f], informative))
        else:
            ppm, lo, hi, informative = _trimmed(weights_to_ppm(weight[f], beta), min_ic)
            out.append((ppm, lo, hi, n_seqlets.get(f, 0), informative))
    return out


def extract_motifs(model, X=None, method="auto", beta=4.0, min_ic=0.3, min_activity=0.1, min_importance=0.05,
                   batch_size=256, flank=None):
    """Read every filter as a motif.

    ``method``: "weights" reads the PPM straight from the filter's weights
    (:func:`weights_to_ppm`); "seqlets" averages the windows where the filter
    fires at >= half its peak on X (:func:`seqlet_ppms`), the filter read
    through the data, which calibrates how sharp the matrix is; "auto" uses
    seqlets when X is given, else weights. Seqlet windows reach ``flank``
    bases past the filter on each side (default: half the filter width), so a
    filter that sits on part of a motif reads the whole motif; the PPM is then
    trimmed to its informative columns, and ``start``/``end`` give that span in
    the filter's frame (start < 0 or end > W where it reaches past the filter).

    Returns a DataFrame (one row per filter: filter, name, active,
    max_activation, importance (relative to the most important filter; NaN where not measured: without X, or
    with ``min_importance`` 0),
    fire_fraction, n_seqlets, start, end, width, consensus, ic, informative:
    whether any column is informative enough to keep (``min_ic`` bits; a
    seqlet read-out's outer flank columns need more where there are few
    seqlets); if none is, the PPM is the whole read-out, near-uniform, a
    pattern of no motif)
    and a dict name -> trimmed PPM of the active filters. With X, a filter is
    active when its largest activation on X is at least ``min_activity`` times
    that of the most active filter and knocking it out moves the predictions
    on X by at least ``min_importance`` times as much as knocking out the most
    important filter (:func:`filter_importance`; 0 disables this check): a
    filter that fires but that the model does not use is not one of its
    motifs. Without X, a filter is active when it can fire at all (best-case
    score above zero).
    """
    method = resolve_method(method, X)
    if X is not None:
        # the model's window length where the whole model runs (importance); the scanner alone takes any
        X = model_input(model, X, any_length=min_importance <= 0)  # a float64 model gets float64 input
        best, fired = filter_activity(model, X, batch_size)
        importance = filter_importance(model, X, batch_size) if min_importance > 0 else None
    else:
        weight, bias = _signed_weights(model)
        best = np.maximum(weight.max(1).sum(1) + bias, 0)
        fired = np.full(len(best), np.nan)
        importance = None
    if importance is None:  # not measured (no sequences, or min_importance 0): blank, and no filter left out by it
        relative, used = np.full(len(best), np.nan), np.ones(len(best), dtype=bool)
    else:
        relative = importance / importance.max() if importance.max() > 0 else np.zeros(len(best))
        used = relative >= min_importance
    read = filter_ppms(model, X if method == "seqlets" else None, beta, min_ic, flank, batch_size, best)
    top = best.max() if best.size else 0.0
    rows, ppms = [], {}
    for f, (ppm, lo, hi, n_seqlets, informative) in enumerate(read):
        active = bool(top > 0 and best[f] >= min_activity * top and used[f])
        name = f"filter{f}"
        rows.append({"filter": f, "name": name, "active": active, "max_activation": float(best[f]),
                     "importance": float(relative[f]),
                     "fire_fraction": float(fired[f]), "n_seqlets": n_seqlets, "start": lo, "end": hi,
                     "width": hi - lo, "consensus": consensus(ppm), "ic": float(information_content(ppm).sum()),
                     "informative": bool(informative)})
        if active:
            ppms[name] = ppm
    return pd.DataFrame(rows), ppms


# ------------------------------------------------------------------------ MEME

# nsites of a motif not counted from sites (read from weights, or given as a matrix): MEME-suite's usual
# default for a converted matrix (iupac2meme, matrix2meme); MEME tools weigh their pseudocount against it
DEFAULT_NSITES = 20


def write_meme(path, motifs, force=False, nsites=None):
    """Write motifs (dict name -> (4, w) PPM, or list of (name, PPM)) with memelite, atomically.

    ``nsites``: {name: the number of sites (seqlets) a motif was read from}; a motif with none (or 0)
    gets ``DEFAULT_NSITES``, not memelite's 1, which MEME-suite tools would flatten with their pseudocount.
    """
    from memelite.io import write_meme as _write

    items = list(motifs.items()) if isinstance(motifs, dict) else list(motifs)
    check_writable(path, force)
    # memelite writes to a path: a hidden scratch file beside the output (as atomic_write's; beside the file a
    # link names), then the edited text goes through atomic_write (synced, renamed over the output)
    fd, tmp, _ = scratch_beside(path, ".memelite.tmp")
    try:  # held (fd open) while memelite writes the file by its name
        _write(tmp, {name: np.asarray(ppm, dtype=float) for name, ppm in items})
        with open(tmp) as handle:
            lines = handle.read().split("\n")
    finally:
        os.close(fd)  # first: Windows removes no open file
        os.unlink(tmp)
    name = None
    for i, line in enumerate(lines):  # MOTIF <name>, then its matrix line: memelite writes nsites= 1
        if line.startswith("MOTIF "):
            name = line[len("MOTIF "):]
        elif line.startswith("letter-probability matrix:") and " nsites= 1 " in line:
            count = int((nsites or {}).get(name) or DEFAULT_NSITES)
            lines[i] = line.replace(" nsites= 1 ", f" nsites= {count} ", 1)
    with atomic_write(path, force=force) as handle:
        handle.write("\n".join(lines))


def read_meme(path):
    from memelite.io import read_meme as _read

    if not os.path.isfile(path):
        raise ArgminnError(f"{path}: MEME file not found")
    motifs = _read(path)
    if not motifs:
        raise ArgminnError(f"{path}: no motifs found (expected MEME format with 'MOTIF' and "
                           "'letter-probability matrix' lines)")
    return motifs


def open_jaspar(release="JASPAR2024"):
    """pyjaspar's database of ``release`` (offline); a release pyjaspar does not ship is a one-line error."""
    from pyjaspar import jaspardb

    shipped = jaspardb().get_releases()
    if release not in shipped:
        raise ArgminnError(f"JASPAR release {release!r} is not one pyjaspar ships (offline): one of "
                           f"{', '.join(shipped)}")
    return jaspardb(release=release)


@functools.lru_cache(maxsize=4)
def jaspar_database(release="JASPAR2024", tax_group="vertebrates"):
    """Every CORE motif of ``tax_group`` in ``release``: dict 'ID NAME' -> PPM (offline, pyjaspar)."""
    motifs = open_jaspar(release).fetch_motifs(collection="CORE", tax_group=[tax_group])
    out = {}
    for m in motifs:
        counts = np.array([m.counts[b] for b in "ACGT"], dtype=np.float64)
        out[f"{m.matrix_id} {m.name}"] = counts / counts.sum(0, keepdims=True)
    return out


def benjamini_hochberg(p):
    p = np.asarray(p, dtype=float)
    order = np.argsort(p)
    ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(q)
    out[order] = np.minimum(q, 1.0)
    return out


def tomtom_qvalues(queries, targets=None, alignments=False):
    """TOMTOM (memelite) of every query PPM against every target PPM.

    ``targets`` defaults to the JASPAR2024 CORE vertebrate motifs. Returns
    (p, q): DataFrames indexed by query name with one column per target; q is
    Benjamini-Hochberg over each query's p-values against all targets. With
    ``alignments=True`` also (offsets, strands): query column 0 sits on target
    column ``offset`` of the target (strand 0) or of its reverse complement
    (strand 1).
    """
    from memelite import tomtom

    targets = targets if targets is not None else jaspar_database()
    q_names, t_names = list(queries), list(targets)
    if not q_names:
        empty = pd.DataFrame(columns=t_names, dtype=float)
        return (empty, empty.copy(), empty.copy(), empty.copy()) if alignments else (empty, empty.copy())
    p, _, offsets, _, strands = tomtom([np.asarray(queries[k], dtype=np.float64) for k in q_names],
                                       [np.asarray(targets[k], dtype=np.float64) for k in t_names])
    q = np.stack([benjamini_hochberg(row) for row in p])
    frames = [pd.DataFrame(v, index=q_names, columns=t_names) for v in (p, q)]
    if alignments:
        frames += [pd.DataFrame(v.astype(int), index=q_names, columns=t_names) for v in (offsets, strands)]
    return tuple(frames)


def similar_filters(model, filters, max_p, beta=4.0, min_ic=0.3, background=None, X=None):
    """Pairs (a, b), a < b, of ``filters`` whose motifs match each other by TOMTOM at p < ``max_p``.

    Each scanner filter is read as a PPM (:func:`filter_ppms`): from its
    weights, or with sequences ``X`` from its seqlets on them (a filter that
    fires on only part of a motif then reads the whole motif, and two
    filters on one motif read alike however differently their weights
    spread); the queries are ``filters``, the targets every filter of the
    scanner plus ``background`` (default: the JASPAR2024 CORE vertebrate
    motifs). TOMTOM's null is drawn from the targets' columns: with only a
    scanner's few filters the p-values would rest on a handful of columns, and
    the same scanner gives the same p-values whichever filters are asked
    about. A pair counts when either direction is below ``max_p``. TOMTOM
    aligns both strands when the scanner scans both
    (``scan_reverse_complement``); without that, a filter and its reverse
    complement read the motif on opposite strands, both needed, so only the
    forward alignment counts.
    """
    from memelite import tomtom

    filters = sorted({int(f) for f in filters})
    n_filters = model.motif_conv.out_channels
    if any(not 0 <= f < n_filters for f in filters):
        raise ArgminnError(f"similar_filters: filters {filters} are not all among the scanner's {n_filters}")
    if len(filters) < 2:
        return []
    ppms = [ppm.astype(np.float64) for ppm, *_ in filter_ppms(model, X, beta, min_ic)]
    background = jaspar_database() if background is None else background
    both = scans_both_strands(model)
    p = tomtom([ppms[f] for f in filters], ppms + [np.asarray(m, dtype=np.float64) for m in background.values()],
               reverse_complement=both)[0]
    row = {f: i for i, f in enumerate(filters)}
    return [(a, b) for i, a in enumerate(filters) for b in filters[i + 1:]
            if min(p[row[a], b], p[row[b], a]) < max_p]


def best_matches(p, q, n_best=5, also=None):
    """Long table of each query's ``n_best`` targets by p-value; ``also`` (query -> targets) adds those pairs too,
    with their rank among all the targets, where they are not among the ``n_best``."""
    rows = []
    also = also or {}
    for name in p.index:
        ranked = p.loc[name].sort_values().index
        rank_of = {target: rank for rank, target in enumerate(ranked, 1)}
        chosen = list(ranked[:n_best]) + [t for t in also.get(name, ()) if rank_of[t] > n_best]
        for target in sorted(dict.fromkeys(chosen), key=rank_of.get):
            rows.append({"query": name, "rank": rank_of[target], "target": target,
                         "p_value": float(p.at[name, target]), "q_value": float(q.at[name, target])})
    return pd.DataFrame(rows, columns=["query", "rank", "target", "p_value", "q_value"])


def column_for_id(table, motif_id):
    """The column of a TOMTOM table whose target name starts with JASPAR ``motif_id``."""
    hits = [c for c in table.columns if c.split()[0] == motif_id]
    if not hits:
        raise ArgminnError(f"motif {motif_id!r} is not among the {table.shape[1]} target motifs")
    return hits[0]


# ----------------------------------------------------------------------- logos

def save_logos(motifs, path, force=False, title=None):
    """One PNG with an information-content logo per motif (logomaker)."""
    import logomaker

    from .fileio import pyplot, save_png

    check_writable(path, force)
    names = list(motifs)
    n = max(len(names), 1)
    fig, axes = pyplot().subplots(n, 1, figsize=(5, 1.6 * n), squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        ppm = np.asarray(motifs[name])
        heights = ppm * information_content(ppm)[None, :]
        logomaker.Logo(pd.DataFrame(heights.T, columns=list("ACGT")), ax=ax)
        ax.set_ylim(0, 2)
        ax.set_ylabel("bits")
        ax.set_title(name, fontsize=9)
    if not names:
        axes[0, 0].text(0.5, 0.5, "no active filters", ha="center")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path, force=True)


@torch.no_grad()
@in_eval_mode
def seqlet_ppms(model, X, min_fraction=0.5, max_seqlets=5000, batch_size=256, best=None, flank=0):
    """Per filter, the PPM of the windows where it fires at >= ``min_fraction`` of its peak.

    Each window is the filter's W bases plus ``flank`` bases on either side
    (outside the sequence: N, an all-zero column), so a motif the filter
    covers only in part is read whole from the sequences it fires on.
    Windows where the minus strand won are reverse-complemented first, so every
    PPM is in the filter's own orientation. ``best``: each filter's peak
    activation on X, if already known (:func:`filter_activity`). Returns (dict
    filter index -> (4, W + 2 flank) PPM, dict filter index -> number of seqlets).
    """
    f_count, w = model.motif_conv.out_channels, model.motif_conv.kernel_size[0]
    if best is None:
        best, _ = filter_activity(model, X, batch_size)
    sums = np.zeros((f_count, 4, w + 2 * flank))
    counts = np.zeros(f_count, dtype=int)
    for i in range(0, len(X), batch_size):
        xb = X[i:i + batch_size]
        acts, strand = model.motif_activations(xb)
        windows = torch.nn.functional.pad(xb, (flank, flank)).unfold(2, w + 2 * flank, 1)  # (n, 4, P, W + 2 flank)
        for f in range(f_count):
            if best[f] <= 0 or counts[f] >= max_seqlets:
                continue
            seq_idx, pos = torch.nonzero(acts[:, f] >= min_fraction * best[f], as_tuple=True)
            seq_idx, pos = seq_idx[: max_seqlets - counts[f]], pos[: max_seqlets - counts[f]]
            win = windows[seq_idx, :, pos]  # (k, 4, W)
            minus = strand[seq_idx, f, pos].bool()
            win = torch.where(minus[:, None, None], win.flip([1, 2]), win)
            sums[f] += win.sum(0).numpy()
            counts[f] += len(seq_idx)
    ppms = {f: (sums[f] + 0.01) / (sums[f] + 0.01).sum(0, keepdims=True) for f in range(f_count) if counts[f]}
    return ppms, {f: int(counts[f]) for f in range(f_count)}
