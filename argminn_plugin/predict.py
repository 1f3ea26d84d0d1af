"""Prediction on arrays and on FASTA + BED intervals."""

import numpy as np
import torch

from .data import check_device, check_X, in_eval_mode, load_intervals
from .errors import ArgminnError
from .fileio import atomic_write


@in_eval_mode
def predict(model, X, batch_size=256, device="cpu", verbose=False):
    """(N, 4, L) one-hot -> (N, T) logits, batched by tangermeme.predict (the model in eval mode, then back in
    its own)."""
    from tangermeme.predict import predict as _predict

    device = check_device(device)
    X = check_X(X, model.config.input_length)  # tangermeme's predict gives each batch the model's dtype
    return _predict(model, X, batch_size=batch_size, device=device, verbose=verbose)


def predict_intervals(model, fasta, bed, batch_size=256, device="cpu", summits=False, skip=False):
    """Windows centred on BED intervals (on narrowPeak summits with ``summits``) -> (bed DataFrame, (N, T) logits);
    ``skip``: intervals whose window is not inside a chromosome are left out (see ``data.load_intervals``)."""
    check_device(device)  # before the windows are cut
    X, _, table, _ = load_intervals(fasta, bed, model.config.input_length, summits=summits, skip=skip)
    return table, predict(model, X, batch_size=batch_size, device=device)


def write_predictions(path, bed, logits, names, force=False):
    """TSV: chrom, start, end (the BED's own, also where windows were centred on summits, then the peak's name
    and the summit used; otherwise then the interval's name where the BED has one, ``read_bed``'s ``name``),
    then per task the probability and the logit."""
    logits = logits.detach().cpu().numpy() if torch.is_tensor(logits) else np.asarray(logits)
    probs = torch.sigmoid(torch.from_numpy(np.ascontiguousarray(logits))).numpy()  # no overflow warning
    summits = "peak_start" in bed.columns  # a narrowPeak read with summits: its rows may share coordinates
    named = not summits and "name" in bed.columns
    head = ["chrom", "start", "end"] + (["name", "summit"] if summits else ["name"] if named else [])
    head += [c for n in names for c in (n, n + "_logit")]
    repeated = sorted({c for c in head if head.count(c) > 1})
    if repeated:  # (names given here: a model's config and a BED's header refuse such names, task_name_problems)
        raise ArgminnError(f"{path}: the model's task names {list(names)} would name two columns "
                           f"{', '.join(map(repr, repeated))}; a reader by name would get the wrong one")
    with atomic_write(path, "w", force=force) as handle:
        handle.write("\t".join(head) + "\n")
        cols = ["chrom", "peak_start", "peak_end", "col4", "summit"] if summits else head[:4 if named else 3]
        for i, row in enumerate(zip(*(bed[c] for c in cols))):
            vals = [f"{v:.6g}" for t in range(len(names)) for v in (probs[i, t], logits[i, t])]
            handle.write("\t".join([str(v) for v in row] + vals) + "\n")
