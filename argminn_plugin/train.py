"""Training: Adam, early stopping on validation loss, reverse-complement
augmentation, deterministic given a seed, resumable, atomic checkpoints.

A run directory holds
- ``last.pt``: the full training state after the latest finished epoch (model,
  optimizer, epoch, early-stopping state, history, RNG state), written
  atomically at every epoch, so ``resume=True`` continues a killed run;
- ``model.pt``: the best model so far (config + CPU state_dict), the file that
  ``argminn predict``/``motifs`` and the Kipoi model read;
- ``history.json`` and, at the end, ``metrics.json``.

Batch order and augmentation of epoch e come from a generator seeded with
(seed, e), so a resumed run sees exactly the batches an uninterrupted run
would and ends with the same weights.
"""

import json
import os
import time

import numpy as np
import torch
from torch.nn import functional as F

from .baselines import CNNConfig, StandardCNN
from .config import ModelConfig, TrainConfig
from .data import check_labels, check_X, reverse_complement
from .errors import ArgminnError
from .fileio import atomic_save_torch, atomic_write, safe_load_torch
from .losses import attention_entropy, filter_overlap_loss, l1_loss
from .model import ARGMINN

MODEL_FORMAT = "argminn-model"
STATE_FORMAT = "argminn-train-state"
FORMAT_VERSION = 1


# ------------------------------------------------------------------ model files

ARCHITECTURES = {"argminn": (ModelConfig, ARGMINN), "cnn": (CNNConfig, StandardCNN)}


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


def save_model(model, path, force=True):
    """Write config + CPU state_dict (no pickled classes) atomically."""
    atomic_save_torch(model_payload(model), path, force=force)


def model_from_payload(payload, path="model file"):
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


def load_model(path):
    """Load a model file (``model.pt`` or a ``last.pt`` training state) safely."""
    return model_from_payload(safe_load_torch(path), path)


# ----------------------------------------------------------------------- losses

def regularized_loss(model, X, y, train_cfg, epoch):
    """Task BCE + (for ARGMINN) scheduled overlap, L1 and attention-entropy terms."""
    if not isinstance(model, ARGMINN):
        task = F.binary_cross_entropy_with_logits(model(X), y)
        return task, {"task": task}
    logits, acts, attention = model._run(X, keep=True)
    task = F.binary_cross_entropy_with_logits(logits, y)
    terms = {"task": task}
    w = {name: train_cfg.weight_at(name, epoch) for name in ("overlap", "l1", "entropy")}
    total = task
    if w["overlap"] > 0:
        terms["overlap"] = filter_overlap_loss(acts, model.filter_column_magnitudes(), model.config.n_filters)
        total = total + w["overlap"] * terms["overlap"]
    if w["l1"] > 0:
        terms["l1"] = l1_loss(model, acts, train_cfg.l1_target)
        total = total + w["l1"] * terms["l1"]
    if w["entropy"] > 0:
        terms["entropy"] = attention_entropy(attention)
        total = total + w["entropy"] * terms["entropy"]
    return total, terms


@torch.no_grad()
def evaluate(model, X, y, batch_size=256):
    """(mean BCE, probabilities) of ``model`` on (X, y)."""
    model.eval()
    logits = torch.cat([model(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])
    return float(F.binary_cross_entropy_with_logits(logits, y)), torch.sigmoid(logits)


def classification_metrics(y, probs):
    """auROC and auPRC per task (sklearn)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, probs = np.asarray(y), np.asarray(probs)
    out = []
    for t in range(y.shape[1]):
        if len(np.unique(y[:, t])) < 2:
            out.append({"auroc": float("nan"), "auprc": float("nan")})
        else:
            out.append({"auroc": float(roc_auc_score(y[:, t], probs[:, t])),
                        "auprc": float(average_precision_score(y[:, t], probs[:, t]))})
    return out


# --------------------------------------------------------------------- training

def _state(model, optimizer, epoch, stop, history, train_cfg):
    return {"format": STATE_FORMAT, "version": FORMAT_VERSION, "architecture": model.architecture,
            "model_config": model.config.to_dict(),
            "train_config": train_cfg.to_dict(), "epoch": epoch, "stop": stop, "history": history,
            "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}


def train(model_config, train_config, train_data, valid_data, out_dir, resume=False, force=False, verbose=True):
    """Train a model (ARGMINN, or a baseline given its config); returns (best model, history).

    model_config: a ModelConfig (ARGMINN), a CNNConfig (baseline) or a dict of
    ModelConfig keys. train_data / valid_data: (X (N, 4, L), y (N, T)), 0/1 labels.
    """
    from tqdm.auto import tqdm

    mc = model_config if isinstance(model_config, tuple(c for c, _ in ARCHITECTURES.values())) \
        else ModelConfig.from_dict(model_config)
    tc = train_config if isinstance(train_config, TrainConfig) else TrainConfig.from_dict(train_config)
    Xt = check_X(train_data[0], mc.input_length, "training sequences")
    yt = check_labels(train_data[1], len(Xt), "training labels")
    Xv = check_X(valid_data[0], mc.input_length, "validation sequences")
    yv = check_labels(valid_data[1], len(Xv), "validation labels")
    for name, y in (("training", yt), ("validation", yv)):
        if y.shape[1] != mc.n_tasks:
            raise ArgminnError(f"{name} labels have {y.shape[1]} task column(s) but the model has n_tasks={mc.n_tasks}")
    if tc.num_threads:
        torch.set_num_threads(tc.num_threads)

    os.makedirs(out_dir, exist_ok=True)
    last_path, best_path = os.path.join(out_dir, "last.pt"), os.path.join(out_dir, "model.pt")
    torch.manual_seed(tc.seed)
    model = build_model(architecture_of(mc), mc)
    optimizer = torch.optim.Adam(model.parameters(), lr=tc.learning_rate)
    start_epoch, history = 0, []
    stop = {"best_loss": float("inf"), "best_epoch": -1, "bad_epochs": 0, "done": False}
    if os.path.exists(last_path):
        if resume:
            state = safe_load_torch(last_path)
            if state.get("format") != STATE_FORMAT:
                raise ArgminnError(f"{last_path}: not an ARGMINN training state")
            if state["model_config"] != mc.to_dict() or state["train_config"] != tc.to_dict():
                raise ArgminnError(f"{last_path}: was written with a different model or training config; "
                                   "resume with the same settings or start a new run directory")
            model.load_state_dict(state["state_dict"])
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["torch_rng"])
            start_epoch, stop, history = state["epoch"] + 1, dict(state["stop"]), list(state["history"])
            if verbose:
                print(f"resuming {out_dir} after epoch {state['epoch'] + 1}")
        elif not force:
            raise ArgminnError(f"{out_dir}: holds a training run already; pass --resume to continue it "
                               "or --force to start again")
    elif resume and verbose:
        print(f"no checkpoint in {out_dir}; starting a new run")

    n = len(Xt)
    for epoch in range(start_epoch, tc.max_epochs):
        if stop["done"]:
            break
        rng = np.random.default_rng([tc.seed, epoch])
        order = torch.from_numpy(rng.permutation(n))
        flips = torch.from_numpy(rng.random(n) < 0.5) if tc.reverse_complement_augment else None
        model.train()
        t0, sums, count = time.time(), {}, 0
        bar = tqdm(range(0, n, tc.batch_size), desc=f"epoch {epoch + 1}/{tc.max_epochs}", disable=not verbose,
                   leave=False)
        for i in bar:
            idx = order[i:i + tc.batch_size]
            X, y = Xt[idx], yt[idx]
            if flips is not None:
                f = flips[idx]
                X = torch.where(f[:, None, None], reverse_complement(X), X)
            loss, terms = regularized_loss(model, X, y, tc, epoch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            count += len(idx)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(idx)
            bar.set_postfix(loss=f"{sums['task'] / count:.4f}")
        bar.close()
        val_loss, val_probs = evaluate(model, Xv, yv)
        val_metrics = classification_metrics(yv, val_probs)
        record = {"epoch": epoch + 1, "seconds": round(time.time() - t0, 2), "val_loss": val_loss,
                  "val_auroc": val_metrics[0]["auroc"], **{f"train_{k}": v / count for k, v in sums.items()}}
        history.append(record)
        if val_loss < stop["best_loss"] - tc.min_delta:
            stop.update(best_loss=val_loss, best_epoch=epoch + 1, bad_epochs=0)
            save_model(model, best_path)
        else:
            stop["bad_epochs"] += 1
            if stop["bad_epochs"] >= tc.patience:
                stop["done"] = True
        atomic_save_torch(_state(model, optimizer, epoch, stop, history, tc), last_path, force=True)
        with atomic_write(os.path.join(out_dir, "history.json"), force=True) as handle:
            json.dump(history, handle, indent=1)
        if verbose:
            print(f"epoch {epoch + 1}: train loss {record['train_task']:.4f}  val loss {val_loss:.4f}  "
                  f"val auROC {record['val_auroc']:.4f}  ({record['seconds']} s)"
                  + ("  [best]" if stop["best_epoch"] == epoch + 1 else ""))
    return load_model(best_path), history
