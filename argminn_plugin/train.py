"""Training: Adam (AdamW with ``weight_decay``), early stopping on validation loss, reverse-complement
augmentation, deterministic given a seed, resumable, atomic checkpoints.

A run directory holds
- ``last.pt``: the full training state after the latest finished epoch (model,
  optimizer, epoch, early-stopping state, history, RNG state), written
  atomically at every epoch, so ``resume=True`` continues a killed run;
- ``model.pt``: the best model so far (config + CPU state_dict), the file that
  ``argminn predict``/``motifs`` and the Kipoi model read;
- ``history.json`` and, at the end, ``metrics.json``.

Batch order and augmentation of epoch e come from a generator seeded with
(seed, e) (the random bases ``shift_augment`` moves in: (seed, e, rank), so
under torchrun they depend on how many processes there are), so a resumed run
sees exactly the batches an uninterrupted run would and ends with the same
weights.

Under ``torchrun`` (WORLD_SIZE > 1) the same function trains data-parallel with
DistributedDataParallel: every rank draws the same permutation and flips, takes
a disjoint share of each global batch of ``batch_size`` rows (see
:func:`shard_batches`), gradients are averaged over ranks, and rank 0 alone
writes the run directory. See :func:`train` for the details.
"""

import collections
import contextlib
import math
import os
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .baselines import CNNConfig, ExplaiNN, ExplaiNNConfig, StandardCNN
from .config import ModelConfig, TrainConfig
from .data import check_labels, check_X, in_eval_mode, model_input, reverse_complement, shift_sequences
from .errors import ArgminnError, StartAgain
from .fileio import (atomic_save_torch, atomic_write, data_fingerprint, dump_json, hold_directory, output_set,
                     read_json_object, release_directory, safe_load_torch)
from .losses import attention_entropy, filter_overlap_loss, l1_loss, normalizing_scale
from .model import ARGMINN

MODEL_FORMAT = "argminn-model"
STATE_FORMAT = "argminn-train-state"
FORMAT_VERSION = 1


# ------------------------------------------------------------------ model files

ARCHITECTURES = {"argminn": (ModelConfig, ARGMINN), "cnn": (CNNConfig, StandardCNN),
                 "explainn": (ExplaiNNConfig, ExplaiNN)}


def build_model(architecture, config):
    """A fresh model of ``architecture`` ('argminn' or 'cnn') from a config object or dict."""
    if architecture not in ARCHITECTURES:
        raise ArgminnError(f"unknown architecture {architecture!r}; expected one of {', '.join(ARCHITECTURES)}")
    config_cls, model_cls = ARCHITECTURES[architecture]
    if not isinstance(config, config_cls):
        config = config_cls.from_dict(config, where=f"{architecture} config")
    return model_cls(config)


def architecture_of(config):
    for name, (config_cls, _) in ARCHITECTURES.items():
        if isinstance(config, config_cls):
            return name
    raise ArgminnError(f"not a model config: {type(config).__name__}")


def model_payload(model):
    return {"format": MODEL_FORMAT, "version": FORMAT_VERSION, "architecture": model.architecture,
            "model_config": model.config.to_dict(),
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}


def save_model(model, path, force=False):
    """Write config + CPU state_dict (no pickled classes) atomically; an existing file is replaced only with
    ``force`` (as every other output)."""
    atomic_save_torch(model_payload(model), path, force=force)


def _is_state_dict(payload):
    """Whether a loaded torch file holds a bare state_dict: a non-empty dict of tensors."""
    return isinstance(payload, dict) and bool(payload) and all(torch.is_tensor(v) for v in payload.values())


def model_from_payload(payload, path="model file"):
    if _is_state_dict(payload):
        raise ArgminnError(f"{path}: a bare state_dict (weights without the model's config, as "
                           "torch.save(model.state_dict()) or a Kipoi directory's weights.pth holds): give the Kipoi "
                           f"model directory it belongs to (with its config.json), or load it into the model and "
                           "write the model with argminn_plugin.train.save_model(model, path), which load_model "
                           "reads")
    if not isinstance(payload, dict) or payload.get("format") not in (MODEL_FORMAT, STATE_FORMAT):
        raise ArgminnError(f"{path}: not an ARGMINN model file (no 'format': '{MODEL_FORMAT}' entry)")
    architecture = payload.get("architecture", "argminn")
    if architecture not in ARCHITECTURES:
        raise ArgminnError(f"{path}: unknown architecture {architecture!r}")
    model = build_model(architecture, ARCHITECTURES[architecture][0].from_dict(
        payload.get("model_config"), where=f"{path}: model_config"))
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ArgminnError(f"{path}: weights do not fit the model config ({first})") from None
    model.eval()
    return model


KIPOI_FILES = ("config.json", "weights.pth")  # what export-kipoi writes the model as (kipoi_support.KipoiModel)


def load_model(path):
    """Load a model file (``model.pt`` or a ``last.pt`` training state) safely, or the model of a Kipoi model
    directory written by ``argminn export-kipoi`` (its config.json and weights.pth)."""
    if os.path.isdir(path):
        if all(os.path.isfile(os.path.join(path, name)) for name in KIPOI_FILES):
            return _kipoi_directory_model(path)
        raise ArgminnError(f"{path}: is a directory; give the model file in it (a training run's model.pt) or "
                           f"a Kipoi model directory ({' and '.join(KIPOI_FILES)})")
    return model_from_payload(safe_load_torch(path), path)


def read_model_spec(config_path):
    """(architecture, config dict, both_strands) of a Kipoi model directory's config.json, as argminn
    export-kipoi writes it ({"architecture": ..., "config": {...}}, and ``"both_strands": true`` for a model read
    on both strands, which directories written before it lack: one pass); read by kipoi_support.KipoiModel,
    :func:`load_model` and :func:`reads_both_strands`."""
    from .fileio import read_json_object

    spec = read_json_object(config_path, "JSON config")
    if not isinstance(spec.get("config"), dict) or not isinstance(spec.get("architecture"), str):
        raise ArgminnError(f"{config_path}: expected {{\"architecture\": ..., \"config\": {{...}}}}, as "
                           "argminn export-kipoi writes")
    both = spec.get("both_strands", False)
    if not isinstance(both, bool):
        raise ArgminnError(f'{config_path}: "both_strands" (whether the model is read on both strands; '
                           f"export-kipoi --both-strands writes true) must be true or false, got {both!r}")
    return spec["architecture"], spec["config"], both


def reads_both_strands(path):
    """Whether ``path`` (what a command's ``--model`` takes) is a Kipoi model directory whose model is read on
    both strands (exported with ``--both-strands``): ``predict`` and ``variants`` then read it so, as Kipoi does."""
    config_path = os.path.join(path, KIPOI_FILES[0])
    return os.path.isdir(path) and os.path.isfile(config_path) and read_model_spec(config_path)[2]


def _kipoi_directory_model(path):
    """The model of a Kipoi model directory: its config.json (:func:`read_model_spec`) and weights.pth (the
    state_dict of kipoi_support.KipoiModel, the model's under 'model.')."""
    config_path, weights_path = (os.path.join(path, name) for name in KIPOI_FILES)
    architecture, config, _ = read_model_spec(config_path)  # the raw model, however it is read
    weights = safe_load_torch(weights_path)
    if not _is_state_dict(weights):
        raise ArgminnError(f"{weights_path}: not a state_dict (a dict of tensors), as argminn export-kipoi writes")
    prefix = "model."
    state = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in weights.items()}
    return model_from_payload({"format": MODEL_FORMAT, "architecture": architecture, "model_config": config,
                               "state_dict": state}, weights_path)


# ----------------------------------------------------------------------- losses

class LossForward(nn.Module):
    """Runs one training forward pass and returns everything :func:`regularized_loss` needs.

    ``forward(X)`` gives ``(logits, scanner activations, attention list, filter
    column magnitudes)`` for ARGMINN and ``(logits,)`` for other architectures.
    DistributedDataParallel hooks only ``forward()``, so in a multi-process run
    this wrapper (not the model) is what DDP wraps: the whole loss graph then
    goes through the DDP forward and every gradient is all-reduced.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, X):
        if isinstance(self.model, ARGMINN):
            logits, acts, attention = self.model._run(X, keep=True)
            return logits, acts, attention, self.model.filter_column_magnitudes()
        return (self.model(X),)


def _positive_rows(y):
    """(N,) bool: the rows of (N, T) 0/1 labels that are positive in any task (what ``entropy_rows`` and
    ``prune_read`` "positive" mean)."""
    return y.amax(1) > 0.5


def regularized_loss(model, X, y, train_cfg, epoch, forward=None):
    """Task BCE (+ the strand-consistency term) + (for ARGMINN) scheduled overlap, L1 and attention-entropy terms.

    With ``strand_consistency`` > 0 the batch is run on both strands: every
    term is taken over the sequences and their reverse complements, and the
    "strand" term is the mean squared difference between a sequence's logits
    and its reverse complement's.

    ``model`` is the bare model (type and config checks, L1 on its weights);
    ``forward`` the module that runs the forward pass: ``LossForward(model)``
    by default, or that wrapped in DistributedDataParallel.
    """
    pairs = train_cfg.strand_consistency > 0
    if pairs:
        # each sequence and its reverse complement in one pass (one forward per step, as DDP needs)
        X, y = torch.cat([X, reverse_complement(X)]), torch.cat([y, y])
    outputs = (forward if forward is not None else LossForward(model))(X)
    task = F.binary_cross_entropy_with_logits(outputs[0], y)
    terms = {"task": task}
    total = task
    if pairs:
        half = len(X) // 2
        terms["strand"] = (outputs[0][:half] - outputs[0][half:]).pow(2).mean()
        total = total + train_cfg.strand_consistency * terms["strand"]
    if not isinstance(model, ARGMINN):
        return total, terms
    _, acts, attention, mags = outputs
    w = {name: train_cfg.weight_at(name, epoch) for name in ("overlap", "l1", "entropy")}
    if w["overlap"] > 0:
        scanned = acts
        if train_cfg.overlap_units == "normalized":
            scanned = acts / normalizing_scale(acts)
        terms["overlap"] = filter_overlap_loss(scanned, mags, model.config.n_filters)
        total = total + w["overlap"] * terms["overlap"]
    if w["l1"] > 0:
        terms["l1"] = l1_loss(model, acts, train_cfg.l1_target)
        total = total + w["l1"] * terms["l1"]
    if w["entropy"] > 0:
        rows = _positive_rows(y).to(y.dtype) if train_cfg.entropy_rows == "positive" else None
        terms["entropy"] = attention_entropy(attention, rows, sink=model.config.attention_sink)
        total = total + w["entropy"] * terms["entropy"]
    return total, terms


@torch.no_grad()
def filters_to_resample(model, X, min_share, max_density=0.05, batch_size=256):
    """(duplicates, dead) among the scanner's filters on X.

    A filter's strong sites are the positions where it fires at >= half its
    peak on X (either strand). Two filters are a duplicate pair when both are
    selective (strong sites on at most ``max_density`` of the positions: dense
    filters are the overlap term's to sparsify) and each has at least
    ``min_share`` of its strong sites less than a filter width from one of
    the other's (either strand; without reverse-complement scanning a motif
    learned once per orientation fires on different sites and is not seen):
    one motif learned twice. Returns ([(a, b, share_ab, share_ba)], [dead
    filters]) where a dead filter never fires on X. Runs in batches of
    ``batch_size`` rows (two passes: peaks, then co-firing counts), so memory
    does not grow with len(X); the counts are exact, so the batch size does
    not change the result.
    """
    if len(X) == 0:
        raise ArgminnError("filters_to_resample: X holds no sequences to look at the filters on")
    was_training = model.training
    model.eval()
    try:
        batches = range(0, len(X), batch_size)
        peak = None
        for i in batches:
            top = model.motif_activations(X[i:i + batch_size])[0].amax(dim=(0, 2))
            peak = top if peak is None else torch.maximum(peak, top)
        w = model.config.filter_width
        n = peak.shape[0]
        together = torch.zeros(n, n, dtype=torch.float64, device=peak.device)
        counts = torch.zeros(n, dtype=torch.float64, device=peak.device)
        positions = 0
        for i in batches:
            acts = model.motif_activations(X[i:i + batch_size])[0]
            strong = ((acts >= 0.5 * peak[:, None]) & (peak[:, None] > 0)).to(acts.dtype)  # (n, F, P)
            near = F.max_pool1d(strong, 2 * w - 1, stride=1, padding=w - 1)
            together += torch.einsum("nap,nbp->ab", strong, near).double()
            counts += strong.sum(dim=(0, 2)).double()
            positions += strong.shape[0] * strong.shape[2]
    finally:
        model.train(was_training)
    share = together / counts.clamp_min(1)[:, None]
    selective = (counts > 0) & (counts / max(positions, 1) <= max_density)
    pairs = [(a, b, float(share[a, b]), float(share[b, a])) for a in range(n) for b in range(a + 1, n)
             if selective[a] and selective[b] and share[a, b] >= min_share and share[b, a] >= min_share]
    dead = [f for f in range(n) if float(peak[f]) <= 0]
    return pairs, dead


@torch.no_grad()
def resample_filter(model, optimizer, f, generator):
    """Draw filter ``f`` of an ARGMINN model again, with no say in the output until training gives it one.

    Weights: uniform like a fresh Conv1d, rescaled to the median norm of the
    other filters (if any; dead ones and others drawn in the same epoch
    included); bias 0; the token projection's columns that read its
    channels set to zero; its Adam state cleared. Adam's step count is kept
    (it is per tensor), so with cleared moments the new filter's first
    updates are a few times the learning rate rather than about it.
    """
    conv = model.scanner.conv
    bound = 1.0 / np.sqrt(conv.weight[0].numel())
    fresh = (torch.rand(conv.weight[f].shape, generator=generator) * 2 - 1) * bound  # drawn on the CPU, seeded
    fresh = fresh.to(conv.weight.device, conv.weight.dtype)
    others = [g for g in range(conv.out_channels) if g != f]
    if others:  # at the scale the other filters have reached
        fresh *= conv.weight[others].norm(dim=(1, 2)).median().clamp_min(1e-6) / fresh.norm()
    conv.weight[f] = fresh
    conv.bias[f] = 0.0
    channels = list(model.motif_knockout(f)[1])
    model.token_proj.weight[:, channels] = 0.0
    for param in (conv.weight, conv.bias, model.token_proj.weight):
        state = optimizer.state.get(param, {})
        for key in ("exp_avg", "exp_avg_sq"):
            if key in state:
                if param is model.token_proj.weight:
                    state[key][:, channels] = 0.0
                else:
                    state[key][f] = 0.0


@torch.no_grad()
@in_eval_mode
def evaluate(model, X, y, batch_size=256):
    """(mean BCE, probabilities (N, T)) of ``model`` on (X, y), in eval mode (the model is back in its own mode
    after). X as the model takes it (tangermeme's int8 one-hot, numpy: :func:`~argminn_plugin.data.model_input`),
    y 0/1 labels as :func:`train` takes them: (N,) or (N, T), numpy or torch, int, bool or float."""
    X = model_input(getattr(model, "module", model), X)  # a DistributedDataParallel's model holds the config
    y = check_labels(y, len(X))
    device = next(model.parameters()).device
    logits = torch.cat([model(X[i:i + batch_size].to(device)) for i in range(0, len(X), batch_size)])
    if y.shape[1] != logits.shape[1]:
        raise ArgminnError(f"labels: {y.shape[1]} column(s), but the model has {logits.shape[1]} task(s)")
    return float(F.binary_cross_entropy_with_logits(logits, y.to(logits))), torch.sigmoid(logits)


def classification_metrics(y, probs):
    """auROC and auPRC per task (sklearn): y 0/1 labels (N,) or (N, T) as :func:`evaluate` takes them, probs
    (or any scores) of the same shape, numpy or torch."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = check_labels(y).numpy()
    probs = probs.detach().cpu().double().numpy() if torch.is_tensor(probs) else np.asarray(probs, dtype=np.float64)
    probs = probs[:, None] if probs.ndim == 1 else probs
    if probs.shape != y.shape:
        raise ArgminnError(f"classification_metrics: scores of shape {probs.shape} for labels of shape {y.shape}")
    out = []
    for t in range(y.shape[1]):
        if len(np.unique(y[:, t])) < 2:
            out.append({"auroc": float("nan"), "auprc": float("nan")})
        else:
            out.append({"auroc": float(roc_auc_score(y[:, t], probs[:, t])),
                        "auprc": float(average_precision_score(y[:, t], probs[:, t]))})
    return out


# ------------------------------------------------------------------ distributed

DistInfo = collections.namedtuple("DistInfo", "rank world device")


@contextlib.contextmanager
def distributed_context():
    """Join the torchrun process group for the duration of the block; yields DistInfo(rank, world, device).

    Under torchrun (env WORLD_SIZE > 1, with RANK, LOCAL_RANK, MASTER_ADDR/PORT)
    the group is initialised here -- backend nccl with one GPU per process
    (cuda:LOCAL_RANK) when CUDA is available, else gloo on the CPU -- and
    destroyed on leaving the block. A group initialised by the caller is used
    as it is and left alone. Without torchrun: DistInfo(0, 1, cpu).
    """
    import torch.distributed as dist

    created = False
    orphan_watch = _stop_when_orphaned()  # from the start: torchrun may go while the group is being joined
    try:
        if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group(backend)
            created = True
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            device = torch.device("cpu")
            if dist.get_backend() == "nccl":
                device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
            yield DistInfo(dist.get_rank(), dist.get_world_size(), device)
        else:
            yield DistInfo(0, 1, torch.device("cpu"))
    finally:
        if orphan_watch is not None:
            orphan_watch.set()
        if created:
            dist.destroy_process_group()


ORPHAN_POLL_SECONDS = 1.0
_ORPHAN_WATCHES = []  # the process's watch (its event, set when it ends)


def _stop_when_orphaned():
    """Under torchrun (a worker it started: TORCHELASTIC_RUN_ID set): a daemon thread that sends this process a
    SIGTERM once its parent, torchrun, is gone, so it stops as on torchrun's own SIGTERM (staged files removed,
    exit 143) instead of training on alone when torchrun is SIGKILLed (out of memory, a scheduler's hard kill).
    torchrun starts each worker in a session of its own, so nothing else stops it. Returns the event that ends
    the watch, or None outside torchrun (a process started by hand is not stopped when its shell goes)."""
    import signal
    import sys
    import threading

    if not os.environ.get("TORCHELASTIC_RUN_ID") or os.name != "posix" or any(
            not watch.is_set() for watch in _ORPHAN_WATCHES):  # one watch a process (contexts nest)
        return None
    parent = os.getppid()
    done = threading.Event()
    _ORPHAN_WATCHES[:] = [done]

    def watch():
        while not done.wait(ORPHAN_POLL_SECONDS):
            if os.getppid() != parent:
                print(f"rank {os.environ.get('RANK', '?')}: torchrun (process {parent}) is gone; stopping",
                      file=sys.stderr, flush=True)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="argminn-torchrun-watch", daemon=True).start()
    return done


def shard_batches(order, batch_size, rank=0, world=1):
    """This rank's rows of each global batch of an epoch: a list of (row indices, global batch size).

    Global batch b is ``order[b * batch_size:(b + 1) * batch_size]``, as in a
    single process; rank r takes its rows r, r + world, r + 2 world, ..., so
    the ranks' shares are disjoint, cover the batch and differ by at most one
    row, and every rank makes the same number of optimizer steps. A last batch
    that would give some rank fewer than 2 rows (batch norm needs 2 in
    training) is dropped on every rank: at most 2 world - 1 rows of an epoch
    (with one process, only a last batch of a single row).
    """
    min_rows = 2 * world
    out = []
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        if len(idx) < min_rows:
            break
        out.append((idx[rank::world], len(idx)))
    return out


def _from_rank0(fn, info):
    """fn() run on rank 0 only; its result -- or its error -- on every rank."""
    if info.world == 1:
        return fn()
    import torch.distributed as dist

    box, error = [None], None
    if info.rank == 0:
        try:
            box[0] = ("ok", fn())
        except Exception as exc:  # every rank raises, none is left waiting
            error = exc
            # bad input and the file system's refusals (an --out that is a file, no permission, disk full): the
            # one-line error on every rank, as in one process; anything else: a RuntimeError naming it
            plain = isinstance(exc, (ArgminnError, OSError))
            kind = StartAgain if isinstance(exc, StartAgain) else ArgminnError if plain else RuntimeError
            box[0] = ("error", f"{exc}" if plain else f"rank 0: {exc!r}", kind)
    dist.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    if box[0][0] == "error":  # the same class as rank 0's (a caller may catch StartAgain by type)
        raise box[0][2](box[0][1])
    return box[0][1]


def _unused_parameters(model, X, y, train_cfg, epoch):
    """Names of parameters the training loss gives no gradient (one small eval-mode pass, no side effects)."""
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    was_training = model.training
    model.eval()  # no batch-norm statistics updated, no dropout draws
    try:
        loss, _ = regularized_loss(model, X, y, train_cfg, epoch)
        grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    finally:
        model.train(was_training)
    return [name for (name, _), g in zip(named, grads) if g is None]


@torch.no_grad()
def _evaluate_sharded(model, X, y, info, batch_size=256):
    """evaluate() with the rows split in contiguous chunks over the ranks and the logits all-gathered.

    Every rank ends with the same logits, hence the same loss and the same
    early-stopping decision, without computing the whole set on each rank.
    """
    if info.world == 1:
        return evaluate(model, X, y, batch_size)
    import torch.distributed as dist

    model.eval()
    bounds = [len(X) * r // info.world for r in range(info.world + 1)]
    sizes = [bounds[r + 1] - bounds[r] for r in range(info.world)]
    lo, hi = bounds[info.rank], bounds[info.rank + 1]
    local = torch.zeros(max(sizes), y.shape[1], device=info.device)
    for i in range(lo, hi, batch_size):
        j = min(i + batch_size, hi)
        local[i - lo:j - lo] = model(X[i:j].to(info.device))
    gathered = [torch.empty_like(local) for _ in range(info.world)]
    dist.all_gather(gathered, local)
    logits = torch.cat([g[:size] for g, size in zip(gathered, sizes)]).cpu()
    return float(F.binary_cross_entropy_with_logits(logits, y)), torch.sigmoid(logits)


def _all_reduce_sums(sums, count, info):
    """Sum the per-rank loss sums and row counts over the ranks."""
    import torch.distributed as dist

    keys = sorted(sums)
    buf = torch.tensor([sums[k] for k in keys] + [count], dtype=torch.float64, device=info.device)
    dist.all_reduce(buf)
    return dict(zip(keys, buf[:-1].tolist())), int(round(buf[-1].item()))


SIMILAR_USED = 0.05  # resample_similar and prune_similar compare the motifs of filters at least this used;
# prune_minor looks among them


def _probe(model, Xt, seed, epoch, stream):
    """1024 training rows drawn from (seed, epoch, stream), on the model's device: what a decision at the end of
    an epoch (resampling, pruning) looks at."""
    rows = np.random.default_rng([seed, epoch, stream]).permutation(len(Xt))[:1024]
    return Xt[torch.from_numpy(rows)].to(next(model.parameters()).device)


def _used_filters(importance, exclude=()):
    """Filters whose knock-out importance is at least SIMILAR_USED of the top filter's (none if no filter
    matters), ``exclude`` aside: the ones whose motifs are compared."""
    return [f for f in range(len(importance))
            if f not in exclude and importance[f] >= SIMILAR_USED * importance.max() > 0]


def _resample(model, optimizer, tc, epoch, Xt, info, history=()):
    """At the end of (0-based) ``epoch``, draw filters again while the overlap term is on; returns them.

    Up to epoch ``resample_until``, of two selective filters that fire on the
    same sites (:func:`filters_to_resample`, on a probe of 1024 training rows
    drawn per epoch from the seed) the one whose knock-out moves the logits
    less is drawn again: the overlap term keeps a second filter from growing
    into a motif another filter holds, but once two filters share one it only
    shrinks both. While the term is still ramping up (the next epoch's weight
    below full), every filter that never fires on the probe is drawn again
    too: it gets no gradient any more, and a fresh filter needs the epochs
    before the term is at full weight to learn a motif (at full weight a
    dense newcomer is silenced within an epoch, and late newcomers disturbed
    a trained model). With ``resample_unused``, a filter the model does not
    use (knock-out importance below that fraction of the top filter's) is
    drawn again too while the term ramps up, unless ``history`` shows it was
    drawn in the last ``resample_grace`` epochs: one motif learned before the
    term came on can leave the other filters with no say in the output and
    no gradient towards a second motif (a pair task then plateaus at one
    motif). With ``resample_similar``, while the term ramps up, two filters
    the model uses (knock-out importance at least ``SIMILAR_USED`` of the top
    filter's) whose motifs match each other by TOMTOM at p below it are taken
    as a pair too, and the less used one is drawn again: two filters can
    divide one motif's sites between them (each tuned to a flank variant)
    and never fire near each other, which neither the overlap term nor the
    co-firing rule sees. (On half-trained filters a bound of 1e-4 also
    paired unrelated motifs; see the README.) Rank 0
    decides and sends the decision to every rank; each rank then draws the
    same fresh weights from the same seeded generator.
    """
    if not (isinstance(model, ARGMINN) and tc.resample_share > 0 and tc.weight_at("overlap", epoch) > 0
            and epoch + 1 <= tc.resample_until):
        return []

    def decide():
        from .motifs import filter_importance, similar_filters

        probe = _probe(model, Xt, tc.seed, epoch, 7)
        pairs, dead = filters_to_resample(model, probe, tc.resample_share)
        # a fresh filter must learn a motif before the term is at full weight, which silences a dense newcomer
        # within an epoch: dead filters are drawn again only while the term ramps up
        ramping = tc.weight_at("overlap", epoch + 1) < tc.overlap_weight
        chosen = list(dead) if ramping else []
        redraw_unused = ramping and tc.resample_unused > 0
        compare_motifs = ramping and tc.resample_similar > 0
        importance = filter_importance(model, probe) if pairs or redraw_unused or compare_motifs else None
        if compare_motifs:
            # filters that split one motif's sites between them never fire near each other: compare their motifs
            # (while the term ramps up, like unused filters: at full weight a newcomer disturbs a trained model)
            used = _used_filters(importance, exclude=dead)
            # a pair found by both rules is drawn once: its loser is already chosen the second time
            pairs = pairs + [(a, b, None, None) for a, b in similar_filters(model, used, tc.resample_similar)]
        if redraw_unused:
            # drawn at the end of (0-based) epoch e: left alone until the end of epoch e + resample_grace
            recent = {f for record in history if epoch - (record["epoch"] - 1) < tc.resample_grace
                      for f in record.get("resampled", ())}
            chosen += [f for f in range(len(importance)) if importance[f] < tc.resample_unused * importance.max()
                       and f not in chosen and f not in recent]
        if pairs:
            for a, b, _, _ in pairs:
                loser = a if importance[a] < importance[b] else b
                if loser not in chosen:
                    chosen.append(loser)
        return chosen

    chosen = _from_rank0(decide, info)
    model.train()
    generator = torch.Generator().manual_seed(int(np.random.default_rng([tc.seed, epoch, 8]).integers(2 ** 62)))
    for f in chosen:
        resample_filter(model, optimizer, f, generator)
    return chosen


PRUNE_READ_ROWS = 8192  # prune_read "seqlets": motifs read on at most this many positive training rows


def _prune_decision(model, tc, epoch, Xt, yt):
    """Rank 0, on the best model at the end of training: (pairs, attempts) under ``prune_similar`` and
    ``prune_minor``.

    The filters the model uses (knock-out importance at least ``SIMILAR_USED``
    of the top filter's, on a probe of 1024 training rows drawn from the seed)
    are compared by TOMTOM (:func:`~argminn_plugin.motifs.similar_filters`),
    their motifs read as ``prune_read`` says: from the weights, or from the
    seqlets on the training rows with a positive label in any task (at most
    ``PRUNE_READ_ROWS`` of them, drawn from the seed; every training row if
    none is positive), where the model's motifs are read out. Returns (pairs,
    attempts): the filters to prune, in the order to try them. First, of each
    pair at p below the bound the less used filter (a pair one of whose
    filters is pruned already is resolved); if the model does not do as well
    without those, the more used ones (the less used can be the one holding
    the whole motif, the other a fragment that also reads another site).
    Under ``prune_minor``, the used filters below that share of the top
    filter's importance (in no pair) join each of those attempts, which are
    then tried again without them; without a pair, they are the one attempt.
    Nothing to prune: no attempt.
    """
    from .motifs import filter_importance, similar_filters

    importance = filter_importance(model, _probe(model, Xt, tc.seed, epoch, 9))
    X = None
    if tc.prune_similar > 0 and tc.prune_read == "seqlets":
        rows = torch.nonzero(_positive_rows(yt)).flatten().numpy()
        rows = rows if len(rows) else np.arange(len(Xt))
        rows = np.sort(np.random.default_rng([tc.seed, epoch, 10]).permutation(rows)[:PRUNE_READ_ROWS])
        X = Xt[torch.from_numpy(rows)].to(next(model.parameters()).device)
    used = _used_filters(importance)
    pairs = similar_filters(model, used, tc.prune_similar, X=X) if tc.prune_similar > 0 else []
    attempts = []
    for less_used in (True, False):
        pruned = []
        for a, b in pairs:
            if a not in pruned and b not in pruned:
                pruned.append(a if (importance[a] < importance[b]) == less_used else b)
        if pruned and sorted(pruned) not in attempts:
            attempts.append(sorted(pruned))
    in_pairs = {f for pair in pairs for f in pair}
    minor = [f for f in used if f not in in_pairs and importance[f] < tc.prune_minor * importance.max()]
    if minor:
        attempts = [sorted(attempt + minor) for attempt in attempts] + attempts if attempts else [minor]
    return [list(pair) for pair in pairs], attempts


@torch.no_grad()
def zero_filters(model, filters):
    """Set ARGMINN filters to zero: weights, bias and the token projection's columns that read them (both
    strands). A zero filter never fires (ReLU of 0, no gradient through it), so it drops out of the motifs."""
    if not filters:
        return
    conv = model.scanner.conv
    conv.weight[list(filters)] = 0.0
    conv.bias[list(filters)] = 0.0
    model.token_proj.weight[:, [c for f in filters for c in model.motif_knockout(f)[1]]] = 0.0


def _load_best(model, best_path, info):
    """Load model.pt (rank 0 reads it and sends it to every rank) into ``model``."""
    payload = _from_rank0(lambda: safe_load_torch(best_path), info)
    model.load_state_dict(model_from_payload(payload, best_path).state_dict())


def _start_pruning(model, tc, epoch, stop, history, best_path, Xt, yt, info, verbose):
    """At the end of training (before 0-based ``epoch``): load the best model into ``model`` and decide
    which filters to prune; returns the pruning state (kept in ``stop["prune"]``)."""
    _load_best(model, best_path, info)
    pairs, attempts = _from_rank0(lambda: _prune_decision(model, tc, epoch, Xt, yt), info)
    pruned = attempts[0] if attempts else []
    best_epoch = stop["best_epoch"]  # model.pt's (1-based)
    unpruned = history[best_epoch - 1]["val_loss"]
    if verbose:
        minor = sorted(set(pruned) - {f for pair in pairs for f in pair})
        found = []
        if tc.prune_similar > 0:
            found.append(f"used filters whose motifs (read from their {tc.prune_read}) match at TOMTOM p < "
                         f"{tc.prune_similar:g}: {', '.join(f'{a} and {b}' for a, b in pairs) or 'none'}")
        if tc.prune_minor > 0:
            found.append(f"used filters below {tc.prune_minor:g} of the top filter's importance: "
                         f"{', '.join(map(str, minor)) or 'none'}")
        print("pruning: " + "; ".join(found)
              + (f"; pruning {pruned}, training on for up to {tc.prune_epochs} epochs (kept if the validation "
                 f"loss stays within {1 + tc.prune_tolerance:g} x {unpruned:.4f})" if pruned else ""))
    return {"pairs": pairs, "attempts": attempts, "tried": [], "filters": pruned,
            "start_epoch": epoch, "from_epoch": best_epoch, "unpruned_val_loss": unpruned,
            "best_loss": float("inf"), "bad_epochs": 0, "done": not pruned}


def _next_pruning(model, prune, epoch, best_path, info, verbose):
    """The pruning attempt that just ended was dropped: start the next one (before 0-based ``epoch``) from
    the best unpruned model, if there is one; returns whether there is."""
    # a checkpoint from before attempts were kept: its one attempt is its filters
    attempts, attempt = prune.get("attempts", [prune["filters"]]), len(prune.get("tried", ())) + 1
    if attempt >= len(attempts):
        return False
    if verbose:
        print(f"pruning: dropped the model with filter(s) {prune['filters']} pruned (best validation loss "
              f"{prune['best_loss']:.4f}, unpruned {prune['unpruned_val_loss']:.4f}); pruning {attempts[attempt]} "
              f"instead")
    _load_best(model, best_path, info)
    prune["tried"].append({"filters": prune["filters"], "best_loss": prune["best_loss"]})
    prune.update(filters=attempts[attempt], start_epoch=epoch, best_loss=float("inf"), bad_epochs=0, done=False)
    return True


def _broadcast_buffers(model):
    """Give every rank rank 0's buffers (batch-norm running statistics)."""
    import torch.distributed as dist

    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


# --------------------------------------------------------------------- training

def make_optimizer(model, tc):
    """Adam at ``tc.learning_rate``; with ``tc.weight_decay`` > 0, AdamW, its decoupled decay on every
    parameter but the motif scanner's (``model.motif_conv``: the filters read as motifs keep their own terms
    alone, L1 and overlap)."""
    if not tc.weight_decay:
        return torch.optim.Adam(model.parameters(), lr=tc.learning_rate)
    scanner = {id(p) for p in model.motif_conv.parameters()}
    groups = [{"params": [p for p in model.parameters() if id(p) in scanner], "weight_decay": 0.0},
              {"params": [p for p in model.parameters() if id(p) not in scanner]}]
    return torch.optim.AdamW(groups, lr=tc.learning_rate, weight_decay=tc.weight_decay)


def _training_differences(saved, current):
    """What differs between two TrainConfig dicts as training goes ([] for the same training): num_threads,
    how many CPU threads run it, max_epochs, where it stops (nothing else reads it; see
    ``_check_new_max_epochs``), lr_patience without a learning-rate decay, resample_grace without
    resample_unused and the pruning phase's settings without pruning are left aside.

    The saved one is read through TrainConfig first, so a checkpoint written
    before a key existed compares as that key's default.
    """
    try:
        saved = TrainConfig.from_dict(saved).to_dict()
    except ArgminnError:
        return ["a training config this version cannot read"]

    def what_trains(config):  # lr_patience does nothing without a decay, resample_grace without resample_unused,
        # the pruning phase's settings without pruning
        skip = ({"num_threads", "max_epochs"} | ({"lr_patience"} if config.get("lr_decay") == 1 else set())
                | ({"resample_grace"} if config.get("resample_unused") == 0 else set())
                | ({"prune_read"} if config.get("prune_similar") == 0 else set())
                | ({"prune_epochs", "prune_patience", "prune_tolerance"}
                   if config.get("prune_similar") == 0 and config.get("prune_minor") == 0 else set()))
        return {k: v for k, v in config.items() if k not in skip}

    return _differences(what_trains(saved), what_trains(current))


def _differences(saved, current):
    """'key saved -> current' for every key whose value differs between two dicts."""
    return [f"{k} {saved.get(k)!r} -> {current.get(k)!r}" for k in sorted(set(saved) | set(current))
            if saved.get(k) != current.get(k)]


_OTHER_RUN = ("was written with a different model or training config; resume with the same settings or start a "
              "new run directory")


def _check_same_run(state, mc, tc, path, data=None):
    """Refuse a checkpoint (read from ``path``) that is not a training state of model ``mc`` with settings ``tc``
    (on data of fingerprint ``data``; a checkpoint written before fingerprints were kept is not checked)."""
    if state.get("format") != STATE_FORMAT:
        raise ArgminnError(f"{path}: not an ARGMINN training state")
    try:  # read through the config class, as the training config is: a key added since takes its default
        saved = type(mc).from_dict(state["model_config"]).to_dict()
        differs = _differences(saved, mc.to_dict())
    except ArgminnError:
        differs = ["a model config of another architecture or version"]
    differs += _training_differences(state["train_config"], tc.to_dict())
    if differs:
        raise StartAgain(f"{path}: {_OTHER_RUN} ({'; '.join(differs)})")
    if data is not None and state.get("data") not in (None, data):
        raise StartAgain(f"{path}: was trained on other data (the training or validation sequences or labels "
                         "differ); resume with the same data, or start a new run (--force, or another --out)")


def _check_new_max_epochs(state, tc):
    """A resumed run may be given another ``max_epochs``, the epoch it stops at: the same run as one started
    with it, as long as the run has not trained past it; a run whose training ended otherwise (early stopping,
    or at max_epochs with a pruning phase after it) is refused another number."""
    saved = state["train_config"].get("max_epochs", tc.max_epochs)
    if saved == tc.max_epochs:
        return
    stop = state["stop"]
    main_epochs = stop["prune"]["start_epoch"] if stop.get("prune") else state["epoch"] + 1
    if stop.get("done") or stop.get("prune"):
        how = "by early stopping" if stop.get("done") else "and its pruning phase began"
        raise StartAgain(f"max_epochs {tc.max_epochs}: the run's training ended after epoch {main_epochs} {how}, so "
                         f"another max_epochs does not train it further; resume with its own ({saved}) or start "
                         "again with --force")
    elif tc.max_epochs < main_epochs:
        raise StartAgain(f"max_epochs {tc.max_epochs}: the run has trained {main_epochs} epochs already (its "
                         f"max_epochs was {saved}); give at least {main_epochs}, or start again with --force")


def _state(model, optimizer, epoch, stop, history, train_cfg, data):
    return {"format": STATE_FORMAT, "version": FORMAT_VERSION, "architecture": model.architecture, "data": data,
            "model_config": model.config.to_dict(),
            "train_config": train_cfg.to_dict(), "epoch": epoch, "stop": stop, "history": history,
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}


RUN_FILES = ("last.pt", "model.pt", "history.json", "metrics.json", "warmup_candidates.json")


def _clear_run(out_dir, warmups=True):
    """Rank 0, on a forced new run: remove the old run's files (and, with ``warmups``, its warm-up
    candidates) before anything trains, so that a new run killed early is never resumed as the old one."""
    import shutil

    for name in RUN_FILES if warmups else ("warmup_candidates.json",):
        path = os.path.join(out_dir, name)
        if os.path.exists(path):
            os.remove(path)
    if warmups and os.path.isdir(os.path.join(out_dir, "warmup_candidates")):
        shutil.rmtree(os.path.join(out_dir, "warmup_candidates"))


def _check_no_orphan(out_dir, force):
    """Refuse (unless ``force``) a run's model.pt with its history.json or metrics.json but without its last.pt:
    a trained model whose checkpoint was removed (to save space, say), which cannot be continued and would be
    replaced. (A model.pt with no record of a run beside it starts again.)"""
    def there(name):
        return os.path.exists(os.path.join(out_dir, name))

    records = [name for name in ("history.json", "metrics.json") if there(name)]
    if not force and not there("last.pt") and there("model.pt") and records:
        raise StartAgain(f"{out_dir}: holds a trained model (model.pt, {', '.join(records)}) without its "
                         "checkpoint (last.pt), so it cannot be continued; pass --force (force=True) to train a "
                         "new run over it, or give another --out")


def _run_exists(out_dir):
    """The refusal to train over a run already in ``out_dir`` without resume or force."""
    return StartAgain(f"{out_dir}: holds a training run already; pass --resume (resume=True) to continue it or "
                      "--force (force=True) to start again")


def train(model_config, train_config, train_data, valid_data, out_dir, resume=False, force=False, verbose=True):
    """Train a model (ARGMINN, or a baseline given its config); returns (best model, history).

    model_config: a ModelConfig (ARGMINN), a CNNConfig (baseline) or a dict of
    ModelConfig keys. train_data / valid_data: (X (N, 4, L), y (N, T)), 0/1 labels.

    Multi-process (launched by ``torchrun``, or inside a process group the
    caller initialised): every rank passes the same data and settings. The
    model is wrapped in DistributedDataParallel; each global batch of
    ``batch_size`` rows is split over the ranks (:func:`shard_batches`), each
    rank's loss is weighted by its share so the averaged gradient is the
    gradient of the global batch's mean loss, and every rank makes the same
    number of optimizer steps (the single-process one, unless the last batch
    is too small to give every rank 2 rows and is dropped). Batch norm stays per rank
    (statistics of the rank's share; running statistics are rank 0's, which
    DDP broadcasts before every forward pass). Validation is split over the
    ranks and the logits gathered, so all ranks take the same early-stopping
    decision. Rank 0 alone writes ``last.pt``, ``model.pt`` and
    ``history.json`` and prints; a resumed run's checkpoint is read by rank 0
    and sent to the others. Every rank returns the best model.
    """
    if resume and force:
        raise ArgminnError(f"{out_dir}: resume=True (--resume) continues the run there and force=True (--force) "
                           "starts it again; pass one of them")
    mc = model_config if isinstance(model_config, tuple(c for c, _ in ARCHITECTURES.values())) \
        else ModelConfig.from_dict(model_config)
    tc = train_config if isinstance(train_config, TrainConfig) else TrainConfig.from_dict(train_config)
    Xt = check_X(train_data[0], mc.input_length, "training sequences")
    yt = check_labels(train_data[1], len(Xt), "training labels")
    Xv = check_X(valid_data[0], mc.input_length, "validation sequences")
    yv = check_labels(valid_data[1], len(Xv), "validation labels")
    if tc.shift_augment >= mc.input_length:
        raise ArgminnError(f"TrainConfig: 'shift_augment' ({tc.shift_augment}) must be below the input length "
                           f"({mc.input_length})")
    for name, y in (("training", yt), ("validation", yv)):
        if y.shape[1] != mc.n_tasks:
            raise ArgminnError(f"{name} labels have {y.shape[1]} task column(s) but the model has n_tasks={mc.n_tasks}")
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)
    with distributed_context() as info:
        if info.world > 1 and tc.batch_size < 2 * info.world:
            raise ArgminnError(f"batch_size ({tc.batch_size}) is below 2 rows per process ({info.world} "
                               "processes); the global batch is split over the processes")
        if len(Xt) < 2 * info.world:
            raise ArgminnError(f"training data has {len(Xt)} row(s); batch norm needs at least 2 per process "
                               f"({info.world} process(es))")
        one_class = [(task, int(yt[0, t])) for t, task in enumerate(mc.names)
                     if bool((yt[:, t] == yt[0, t]).all())]
        if one_class:  # nothing to tell apart: the model would learn a constant
            raise ArgminnError("training labels: " + "; ".join(f"task {task!r} is {value} on every sequence"
                                                               for task, value in one_class)
                               + "; a classifier needs sequences of both labels in every task")
        data = data_fingerprint(Xt, yt, Xv, yv) if info.rank == 0 else None  # rank 0 checks and writes it
        with run_held(out_dir, info):
            if tc.warmup_candidates > 1:
                tc, resume = _warmup_candidates(mc, tc, Xt, yt, Xv, yv, out_dir, resume, force,
                                                verbose and info.rank == 0, info, data)
            return _train(mc, tc, Xt, yt, Xv, yv, out_dir, resume, force, verbose and info.rank == 0, info, data)


@contextlib.contextmanager
def run_held(out_dir, info):
    """Rank 0 holds the run directory (made if needed) for the whole run, so a second training into it at the same
    time (another 'argminn train', a benchmark) is refused on every rank instead of mixing the two runs' files
    (re-entrant: ``argminn train`` holds it over the training and its scores); a directory this hold made is
    removed again if the run fails before writing into it."""
    made = not os.path.exists(out_dir)
    held = []
    try:
        _from_rank0(lambda: held.append(hold_directory(
            out_dir, "another training is writing this run directory now; wait for it to end, or give another "
                     "--out")), info)
        yield
    except BaseException:
        if made and held and held[0] is not None and os.path.isdir(out_dir) and not os.listdir(out_dir):
            with contextlib.suppress(OSError):
                os.rmdir(out_dir)
        raise
    finally:
        for fd in held:
            release_directory(fd)


CANDIDATE_SEED_STEP = 1000  # warm-up candidate i trains from seed + CANDIDATE_SEED_STEP * i
# The main run's max_epochs, written as its warm-up candidates start (before the run has a last.pt to hold it): what
# ``argminn train --resume`` continues a run killed during its warm-ups with, when max_epochs is not given again
MAIN_RUN_RECORD = os.path.join("warmup_candidates", "main_run.json")


def run_train_config(out_dir):
    """The TrainConfig a training run in ``out_dir`` was started with, read from its ``last.pt``.

    After the best of several warm-ups, ``last.pt`` holds the chosen
    candidate's config (its seed, ``warmup_candidates=1``: what the run
    continued as); the config asked for is rebuilt from
    ``warmup_candidates.json`` (the first candidate's seed, their number).
    """
    state = safe_load_torch(os.path.join(out_dir, "last.pt"))
    config = TrainConfig.from_dict(state["train_config"])
    record_path = os.path.join(out_dir, "warmup_candidates.json")
    if os.path.exists(record_path):
        try:
            record = read_json_object(record_path, "warm-up record")
            candidates = record.get("candidates")
            if not (isinstance(candidates, list) and candidates and all(
                    isinstance(c, dict) and isinstance(c.get("seed"), int) for c in candidates)):
                raise ArgminnError(f"{record_path}: not a readable warm-up record (its 'candidates' must be a list "
                                   "of objects with a 'seed')")
        except ArgminnError as exc:  # damaged: the run cannot be told apart from another
            raise StartAgain(f"{exc}; start the run again with --force") from None
        if record.get("chosen_seed") != config.seed:
            raise ArgminnError(f"{record_path}: does not describe the run in {out_dir} (chosen seed "
                               f"{record.get('chosen_seed')}, last.pt's seed {config.seed})")
        config = config.replace(seed=record["candidates"][0]["seed"], warmup_candidates=len(record["candidates"]))
    return config


def _warmup_candidates(mc, tc, Xt, yt, Xv, yv, out_dir, resume, force, verbose, info, data=None):
    """Train ``tc.warmup_candidates`` warm-ups and set the main run up to continue the best; returns
    (the main run's config, resume).

    Candidate i trains for ``tc.warmup_epochs`` epochs in
    ``out_dir/warmup_candidates/seed<S>`` with seed S = ``tc.seed +
    CANDIDATE_SEED_STEP * i``; the one with the lowest validation loss at the
    end (the first on a tie) is copied into ``out_dir`` with its seed as the
    main run's, which then resumes from it: the same run as training from that
    seed alone, as every draw of a run is keyed on its seed and a resumed run
    continues exactly. ``out_dir/warmup_candidates.json`` records the
    candidates. With ``resume``, finished candidates are reused and a main run
    already under way is continued (its checkpoint must be the chosen one's).
    """
    last_path = os.path.join(out_dir, "last.pt")
    epochs, k = tc.warmup_epochs, tc.warmup_candidates
    seeds = [tc.seed + CANDIDATE_SEED_STEP * i for i in range(k)]

    def check_out_dir():  # rank 0: the seed of a main run already under way, or None
        _check_no_orphan(out_dir, force)
        if not resume:
            if os.path.exists(last_path) and not force:
                raise _run_exists(out_dir)
            if force:
                _clear_run(out_dir)  # the old run's main files and candidates: none is resumed as this run's
            return None
        if not os.path.exists(last_path):
            return None
        # checked before any candidate trains: a run under way must be one of these candidates' continuation,
        # started as this one asks (as many candidates, from the same seed: warmup_candidates.json)
        state = safe_load_torch(last_path)
        saved = state.get("train_config")
        seed = saved.get("seed") if isinstance(saved, dict) else None
        if seed not in seeds:
            raise StartAgain(f"{last_path}: {_OTHER_RUN}")
        started = run_train_config(out_dir)
        if (started.warmup_candidates, started.seed) != (k, tc.seed):
            raise StartAgain(f"{last_path}: the run there was started with warmup_candidates="
                             f"{started.warmup_candidates} from seed {started.seed}, not {k} from seed {tc.seed}; "
                             "resume with the same settings or start a new run directory")
        _check_same_run(state, mc, tc.replace(seed=seed, warmup_candidates=1), last_path, data)
        return seed

    def record_main_run(checked):  # rank 0: the run's max_epochs as asked now
        candidates_dir = os.path.join(out_dir, "warmup_candidates")
        if not checked:  # before any candidate has checked its checkpoint against this run's settings
            if resume and os.path.exists(os.path.join(out_dir, MAIN_RUN_RECORD)):
                return  # written once the first candidate has taken the settings: a refused resume changes nothing
            if not resume and any(os.path.exists(os.path.join(candidates_dir, f"seed{seed}", "last.pt"))
                                  for seed in seeds):
                return  # a new run over a killed run's candidates (not forced): the first of them refuses it
        os.makedirs(candidates_dir, exist_ok=True)
        with atomic_write(os.path.join(out_dir, MAIN_RUN_RECORD), force=True) as handle:
            dump_json({"max_epochs": tc.max_epochs}, handle)

    under_way = _from_rank0(check_out_dir, info)
    if under_way is None:
        _from_rank0(lambda: record_main_run(False), info)
    if under_way is not None:
        if verbose:
            print(f"{out_dir}: continuing the run from the warm-up of seed {under_way}, chosen before")
        return tc.replace(seed=under_way, warmup_candidates=1), True
    candidates = []
    for i, seed in enumerate(seeds):
        run_dir = os.path.join(out_dir, "warmup_candidates", f"seed{seed}")
        if verbose:
            print(f"warm-up candidate {i + 1}/{k} (seed {seed}): {epochs} epoch(s) in {run_dir}")
        candidate = tc.replace(seed=seed, max_epochs=epochs, warmup_candidates=1, prune_similar=0.0,
                               prune_minor=0.0)
        _, history = _train(mc, candidate, Xt, yt, Xv, yv, run_dir, resume, force, verbose, info, data)
        if i == 0 and resume:  # the first candidate took this run's settings: a max_epochs given now is the run's
            _from_rank0(lambda: record_main_run(True), info)
        candidates.append({"seed": seed, "val_loss": history[-1]["val_loss"], "val_auroc": history[-1]["val_auroc"],
                           "run_dir": os.path.relpath(run_dir, out_dir)})
    best = min(range(k), key=lambda i: candidates[i]["val_loss"])
    chosen = tc.replace(seed=candidates[best]["seed"], warmup_candidates=1)

    def adopt():  # rank 0
        with atomic_write(os.path.join(out_dir, "warmup_candidates.json"), force=True) as handle:
            dump_json({"warmup_epochs": epochs, "chosen_seed": chosen.seed, "candidates": candidates}, handle,
                      indent=1)
        run_dir = os.path.join(out_dir, candidates[best]["run_dir"])
        state = safe_load_torch(os.path.join(run_dir, "last.pt"))
        state["train_config"] = chosen.to_dict()
        with output_set(out_dir, ["model.pt", "last.pt", "history.json"], force=True) as stage:  # one set
            with open(os.path.join(run_dir, "model.pt"), "rb") as source, \
                    atomic_write(stage["model.pt"], "wb", force=True) as handle:
                handle.write(source.read())
            atomic_save_torch(state, stage["last.pt"], force=True)
            with atomic_write(stage["history.json"], force=True) as handle:
                dump_json(state["history"], handle, indent=1)

    _from_rank0(adopt, info)
    if verbose:
        print(f"continuing the warm-up of seed {chosen.seed} (validation loss "
              f"{candidates[best]['val_loss']:.4f}; the others: "
              + ", ".join(f"seed {c['seed']} {c['val_loss']:.4f}" for i, c in enumerate(candidates) if i != best)
              + ")")
    return chosen, True


def _check_finite(which, loss, epoch, optimizer, out_dir):
    """A NaN or infinite loss ends training with an error naming the epoch (the run directory keeps the
    checkpoints of the epochs before it)."""
    if not math.isfinite(loss):
        raise StartAgain(f"epoch {epoch + 1}: the {which} loss is {loss}: training diverged at learning rate "
                         f"{optimizer.param_groups[0]['lr']:g}; train again (--force) with a lower "
                         f"'learning_rate' or lower regularizer weights (model.pt and last.pt in {out_dir} "
                         "are from earlier epochs)")


def _train(mc, tc, Xt, yt, Xv, yv, out_dir, resume, force, verbose, info, data=None):
    from tqdm.auto import tqdm

    last_path, best_path = os.path.join(out_dir, "last.pt"), os.path.join(out_dir, "model.pt")

    def read_checkpoint():  # rank 0
        os.makedirs(out_dir, exist_ok=True)
        if not os.path.exists(last_path):
            _check_no_orphan(out_dir, force)
            if resume and verbose:
                print(f"no checkpoint in {out_dir} (none is written before the first epoch ends); starting a new "
                      "run with this command's settings")
            # a warm-up record left by an earlier run describes another run; with force (over a model.pt that
            # _check_no_orphan refused), every file of the old run goes, metrics.json among them
            _clear_run(out_dir, warmups=force)
            return None
        if not resume:
            if not force:
                raise _run_exists(out_dir)
            _clear_run(out_dir)
            return None
        state = safe_load_torch(last_path)
        _check_same_run(state, mc, tc, last_path, data)
        if not os.path.exists(best_path):  # written with last.pt: the run's best epoch so far is lost
            raise StartAgain(f"{out_dir}: last.pt without model.pt (the best epoch so far); a run resumes with "
                             "both, or starts again with --force (force=True)")
        return state

    state = _from_rank0(read_checkpoint, info)
    torch.manual_seed(tc.seed)  # same initial weights on every rank (DDP broadcasts rank 0's as well)
    model = build_model(architecture_of(mc), mc).to(info.device)
    optimizer = make_optimizer(model, tc)
    start_epoch, history = 0, []
    stop = {"best_loss": float("inf"), "best_epoch": -1, "bad_epochs": 0, "done": False}
    if state is not None:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, stop, history = state["epoch"] + 1, dict(state["stop"]), list(state["history"])
        _check_new_max_epochs(state, tc)
        if verbose:
            print(f"continuing {out_dir} after epoch {state['epoch'] + 1} (last.pt)")

        def rewrite_history():  # rank 0: a run killed between last.pt and history.json left it an epoch behind
            with atomic_write(os.path.join(out_dir, "history.json"), force=True) as handle:
                dump_json(history, handle, indent=1)
            # the metrics of the run as it ended before: written again when this one ends, and until then not
            # beside a model.pt this run may replace (export-kipoi would publish them with it)
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(out_dir, "metrics.json"))

        _from_rank0(rewrite_history, info)

    forward = LossForward(model)
    if info.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # ARGMINN's key biases get no gradient (a constant added to every
        # score, which softmax ignores); the baselines' parameters all do.
        # Buffers: DDP's default (broadcast_buffers / forward_sync_buffers
        # True) sends rank 0's batch-norm running statistics to every rank
        # before each forward pass; SyncBatchNorm would need GPUs.
        unused = set(_unused_parameters(model, Xt[:2].to(info.device), yt[:2].to(info.device), tc, start_epoch))
        # A parameter the loss never reaches is never updated anyway; taken out
        # of DDP's reach, DDP can skip its per-step search for unused ones.
        for name, param in model.named_parameters():
            if name in unused:
                param.requires_grad_(False)
        forward = DistributedDataParallel(forward, device_ids=[info.device] if info.device.type == "cuda" else None)

    def write_state(epoch, best=False):  # rank 0
        # with ``best``, model.pt (this epoch's model) and last.pt are renamed together: a kill between two
        # separate writes left a model.pt from an epoch last.pt does not have, which a resumed run that does not
        # train that epoch again (a lower max_epochs) returned as its best. (Ctrl-C and SIGTERM wait for both
        # renames; a SIGKILL can still fall between them, a window of two renames instead of a whole save.)
        with output_set(out_dir, ["model.pt", "last.pt"] if best else ["last.pt"], force=True) as stage:
            if best:
                save_model(model, stage["model.pt"], force=True)
            atomic_save_torch(_state(model, optimizer, epoch, stop, history, tc, data), stage["last.pt"], force=True)
        with atomic_write(os.path.join(out_dir, "history.json"), force=True) as handle:
            dump_json(history, handle, indent=1)

    def begin_attempt(prune, epoch):
        """A pruning attempt's filters zeroed and a fresh optimizer; the decision saved, so a resumed run goes on
        with it."""
        nonlocal optimizer
        if prune["filters"]:
            zero_filters(model, prune["filters"])
            optimizer = make_optimizer(model, tc)
        _from_rank0(lambda: write_state(epoch - 1), info)

    n, epoch = len(Xt), start_epoch
    while True:
        prune = stop.get("prune")
        if prune is None and (stop["done"] or epoch >= tc.max_epochs):
            # training is over; with prune_similar, one of two filters holding one motif is pruned (with
            # prune_minor, the filters used little too) and the model trained on (a separate phase with its
            # own early stopping; see TrainConfig)
            if not (isinstance(model, ARGMINN) and (tc.prune_similar > 0 or tc.prune_minor > 0)):
                break
            if epoch < tc.settled_epoch:
                # the terms never reached full weight (or resampling was still due): the pruned model would train
                # under another objective than the one it is compared with
                if verbose:
                    print(f"pruning: skipped, training ended after epoch {epoch}, before every regularizer was at "
                          f"full weight (epoch {tc.settled_epoch})")
                break
            prune = stop["prune"] = _start_pruning(model, tc, epoch, stop, history, best_path, Xt, yt, info,
                                                   verbose)
            begin_attempt(prune, epoch)
        if prune is not None and (prune["done"] or epoch >= prune["start_epoch"] + tc.prune_epochs):
            # an attempt ended; a dropped one (no phase epoch replaced model.pt) gives way to the next attempt
            if not prune["filters"] or stop["best_epoch"] > prune["start_epoch"] or not _next_pruning(
                    model, prune, epoch, best_path, info, verbose):
                break
            begin_attempt(prune, epoch)
        rng = np.random.default_rng([tc.seed, epoch])
        order = torch.from_numpy(rng.permutation(n))
        flips = torch.from_numpy(rng.random(n) < 0.5) if tc.reverse_complement_augment else None
        shifts = fill_rng = None
        if tc.shift_augment:
            shifts = torch.from_numpy(rng.integers(-tc.shift_augment, tc.shift_augment + 1, n))
            fill_rng = np.random.default_rng([tc.seed, epoch, info.rank, 1])  # the bases shifted in, per process
        if info.world > 1:
            # torch draws (dropout) differ between ranks, and are reproduced on resume
            torch.manual_seed(int(np.random.default_rng([tc.seed, epoch, info.rank]).integers(2 ** 62)))
        forward.train()
        t0, sums, count = time.time(), {}, 0
        bar = tqdm(shard_batches(order, tc.batch_size, info.rank, info.world),
                   desc=f"epoch {epoch + 1}/{tc.max_epochs}" if prune is None else
                   f"pruned, epoch {epoch + 1 - prune['start_epoch']}/{tc.prune_epochs}",
                   disable=None if verbose else True, leave=False)  # None: no bar when not on a terminal
        for idx, global_rows in bar:
            X, y = Xt[idx], yt[idx]
            if flips is not None:
                f = flips[idx]
                X = torch.where(f[:, None, None], reverse_complement(X), X)
            if shifts is not None:
                X = shift_sequences(X, shifts[idx], fill_rng.integers(0, 4, (len(idx), X.shape[-1])))
            X, y = X.to(info.device), y.to(info.device)
            loss, terms = regularized_loss(model, X, y, tc, epoch, forward=forward)
            if info.world > 1:
                # DDP averages gradients over ranks; weighting each rank's mean
                # loss by its share makes that the global batch's mean-loss gradient.
                loss = loss * (len(idx) * info.world / global_rows)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if prune is not None:
                zero_filters(model, prune["filters"])
            count += len(idx)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(idx)
            bar.set_postfix(loss=f"{sums['task'] / count:.4f}")
        bar.close()
        if info.world > 1:
            sums, count = _all_reduce_sums(sums, count, info)
            _broadcast_buffers(model)
        if prune is None:
            _check_finite("training", sums["task"] / count, epoch, optimizer, out_dir)
        resampled = _resample(model, optimizer, tc, epoch, Xt, info, history) if prune is None else []
        val_loss, val_probs = _evaluate_sharded(model, Xv, yv, info)
        if prune is None:
            _check_finite("validation", val_loss, epoch, optimizer, out_dir)
        elif not (math.isfinite(sums["task"] / count) and math.isfinite(val_loss)):
            # the pruned model diverged: the phase ends, model.pt keeps its best epoch (or the unpruned model);
            # the losses are reduced over the ranks, so every rank ends alike
            prune["done"] = True
            _from_rank0(lambda: write_state(epoch - 1), info)
            if verbose:
                print(f"pruning: the pruned model's loss is not finite at epoch {epoch + 1}; the attempt ends")
            continue  # the next attempt, if any, starts at this epoch
        val_metrics = classification_metrics(yv, val_probs)
        record = {"epoch": epoch + 1, "seconds": round(time.time() - t0, 2), "val_loss": val_loss,
                  **({"resampled": resampled} if resampled else {}),
                  "val_auroc": val_metrics[0]["auroc"], **{f"train_{k}": v / count for k, v in sums.items()}}
        history.append(record)
        if prune is not None:
            # the pruning phase: its own early stopping; its best epoch replaces model.pt only within tolerance
            record["pruned"] = prune["filters"]
            if val_loss < prune["best_loss"] - tc.min_delta:
                prune.update(best_loss=val_loss, bad_epochs=0)
                if val_loss <= prune["unpruned_val_loss"] * (1 + tc.prune_tolerance):
                    stop["best_epoch"] = epoch + 1
            else:
                prune["bad_epochs"] += 1
                prune["done"] = prune["bad_epochs"] >= tc.prune_patience
        elif epoch + 1 < tc.settled_epoch:
            # A regularizer is still warming up: keep this epoch (there must be
            # a model.pt) but do not let it win against the epochs where every
            # regularizer is at full weight, nor count towards patience.
            stop.update(best_loss=float("inf"), best_epoch=epoch + 1, bad_epochs=0)
        elif val_loss < stop["best_loss"] - tc.min_delta:
            stop.update(best_loss=val_loss, best_epoch=epoch + 1, bad_epochs=0)
        else:
            stop["bad_epochs"] += 1
            if stop["bad_epochs"] >= tc.patience:
                stop["done"] = True
            # every lr_patience epochs of the plateau; the learning rate lives in the optimizer's state,
            # saved with it (and the plateau's length, bad_epochs) in last.pt
            if tc.lr_decay < 1 and stop["bad_epochs"] % tc.lr_patience == 0:
                for group in optimizer.param_groups:
                    group["lr"] *= tc.lr_decay
                record["learning_rate"] = optimizer.param_groups[0]["lr"]

        if stop["best_epoch"] == epoch + 1:
            record["best"] = True  # saved as model.pt (until a later epoch is)

        _from_rank0(lambda: write_state(epoch, best=stop["best_epoch"] == epoch + 1), info)  # a failure: every rank
        if verbose:
            print(f"epoch {epoch + 1}: train loss {record['train_task']:.4f}  val loss {val_loss:.4f}  "
                  f"val auROC {record['val_auroc']:.4f}  ({record['seconds']} s)"
                  + (("  [kept until the regularizers are on: not compared]" if prune is None and
                      epoch + 1 < tc.settled_epoch else "  [best]") if stop["best_epoch"] == epoch + 1 else "")
                  + (f"  learning rate now {record['learning_rate']:.3g}" if "learning_rate" in record else ""))
        epoch += 1
    prune = stop.get("prune")
    if verbose and prune and prune["filters"]:
        kept = stop["best_epoch"] > prune["start_epoch"]
        print(f"pruning: {'kept' if kept else 'dropped'} the model with filter(s) {prune['filters']} pruned "
              f"(best validation loss {prune['best_loss']:.4f}, unpruned {prune['unpruned_val_loss']:.4f})")
    # rank 0 reads the best model and sends it to the others
    return model_from_payload(_from_rank0(lambda: safe_load_torch(best_path), info), best_path), history
