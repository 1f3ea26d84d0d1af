"""Baseline models trained and packaged like ARGMINN, for side-by-side comparison.

:class:`StandardCNN` is the usual first-layer-motif CNN: Conv1d (filters read
as motifs) + ReLU + max-pool, a second Conv1d + ReLU, global max-pool and a
linear head, returning (N, T) logits like ARGMINN, so the same training loop,
tangermeme functions and Kipoi export apply. The global max-pool is a
``MaxPool1d`` over the whole track (tangermeme's DeepLIFT has a rule for it,
not for ``AdaptiveMaxPool1d``), so DeepLIFT/SHAP attributions converge.

:class:`ExplaiNN` follows the ExplaiNN design (Novakovsky et al. 2023):
independent units, each one filter + BatchNorm + exponential activation +
max-pool + its own small fully connected network to one number, and a linear
layer over the units, so every prediction is a sum of per-motif contributions.

Every model here exposes what motif read-out needs: ``motif_conv`` (the Conv1d
whose filters are read as motifs), ``motif_activations(X)`` ->
(activations (N, F, P) >= 0, strand (N, F, P)) and ``motif_knockout(f)`` ->
(module, channels[, "zero" | "mean"]): the output channels that are set to zero
(the default) or to their mean over the data to remove filter f.
"""

import dataclasses
import typing

import numpy as np
import torch
from torch import nn

from .config import _ModelConfigBase
from .errors import ArgminnError
from .model import check_input


@dataclasses.dataclass(frozen=True)
class CNNConfig(_ModelConfigBase):
    input_length: int = 200
    n_tasks: int = 1
    task_names: typing.Tuple[str, ...] = ()
    n_filters: int = 32
    filter_width: int = 10
    pool: int = 4
    conv2_filters: int = 32
    conv2_width: int = 5

    def __post_init__(self):
        self._check_types()
        self._check_positive(["input_length", "n_tasks", "n_filters", "filter_width", "pool", "conv2_filters",
                              "conv2_width"])
        if self.final_length < 1:
            raise ArgminnError("CNNConfig: the input is too short for filter_width, pool and conv2_width")
        self._check_task_names()

    @property
    def final_length(self):
        """Length of the second convolution's output (the global max-pool's window)."""
        pooled = (self.input_length - self.filter_width + 1) // self.pool
        return pooled + 2 * (self.conv2_width // 2) - self.conv2_width + 1 if pooled >= 1 else 0


def _plain_activations(conv, X):
    acts = torch.relu(conv(X))
    return acts, torch.zeros_like(acts, dtype=torch.long)


class StandardCNN(nn.Module):
    """Conv -> ReLU -> MaxPool -> Conv -> ReLU -> global max -> Linear (logits)."""

    architecture = "cnn"

    def __init__(self, config=None, **kwargs):
        super().__init__()
        config = config or CNNConfig.from_dict(kwargs)
        self.config = c = config
        self.conv1 = nn.Conv1d(4, c.n_filters, c.filter_width)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool1d(c.pool)
        self.conv2 = nn.Conv1d(c.n_filters, c.conv2_filters, c.conv2_width, padding=c.conv2_width // 2)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool1d(c.final_length)
        self.flatten = nn.Flatten()
        self.head = nn.Linear(c.conv2_filters, c.n_tasks)

    def forward(self, X):
        check_input(self, X, self.conv1.weight.dtype)  # the global pool is sized for config.input_length
        h = self.pool1(self.relu1(self.conv1(X)))
        return self.head(self.flatten(self.pool2(self.relu2(self.conv2(h)))))

    @property
    def motif_conv(self):
        return self.conv1

    def motif_activations(self, X):
        check_input(self, X, self.conv1.weight.dtype, any_length=True)
        return _plain_activations(self.conv1, X)

    def motif_knockout(self, f):
        return self.relu1, [f]  # the filter's post-ReLU track


@dataclasses.dataclass(frozen=True)
class ExplaiNNConfig(_ModelConfigBase):
    input_length: int = 200
    n_tasks: int = 1
    task_names: typing.Tuple[str, ...] = ()
    n_units: int = 16
    filter_width: int = 19
    pool: int = 7
    hidden: int = 100
    dropout: float = 0.3

    def __post_init__(self):
        self._check_types()
        self._check_positive(["input_length", "n_tasks", "n_units", "filter_width", "pool", "hidden"])
        if not 0 <= self.dropout < 1:
            raise ArgminnError(f"ExplaiNNConfig: 'dropout' must be in [0, 1), got {self.dropout}")
        if self.pooled_length < 1:
            raise ArgminnError("ExplaiNNConfig: the input is too short for filter_width and pool")
        self._check_task_names()

    @property
    def pooled_length(self):
        return (self.input_length - self.filter_width + 1) // self.pool


class Exp(nn.Module):
    """Exponential activation (ExplaiNN's first-layer nonlinearity) as a module."""

    def forward(self, x):
        return torch.exp(x)


class ExplaiNN(nn.Module):
    """Independent CNN units + a linear layer (logits = sum of unit outputs x weights + bias).

    Unit u: Conv1d(4 -> 1, width W) -> BatchNorm -> exp -> MaxPool(pool) ->
    Linear(pooled -> hidden) -> BatchNorm -> ReLU -> Dropout -> Linear(hidden
    -> 1) -> BatchNorm -> ReLU. All units run at once: one Conv1d with
    n_units filters (every unit sees the same one-hot input), and grouped
    convolutions for the per-unit fully connected layers, so no unit mixes
    with another before the final linear layer.
    """

    architecture = "explainn"

    def __init__(self, config=None, **kwargs):
        super().__init__()
        config = config or ExplaiNNConfig.from_dict(kwargs)
        self.config = c = config
        u = c.n_units
        self.conv = nn.Conv1d(4, u, c.filter_width)
        self.bn1 = nn.BatchNorm1d(u)
        self.exp = Exp()
        self.pool = nn.MaxPool1d(c.pool)
        self.fc1 = nn.Conv1d(u, u * c.hidden, c.pooled_length, groups=u)
        self.bn2 = nn.BatchNorm1d(u * c.hidden)
        self.relu1 = nn.ReLU()
        self.drop = nn.Dropout(c.dropout)
        self.fc2 = nn.Conv1d(u * c.hidden, u, 1, groups=u)
        self.bn3 = nn.BatchNorm1d(u)
        self.relu2 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.head = nn.Linear(u, c.n_tasks)

    def unit_outputs(self, X):
        """(N, n_units): each unit's output before the final linear layer."""
        h = self.pool(self.exp(self.bn1(self.conv(X))))
        h = self.drop(self.relu1(self.bn2(self.fc1(h))))
        return self.flatten(self.relu2(self.bn3(self.fc2(h))))

    def forward(self, X):
        check_input(self, X, self.conv.weight.dtype)
        return self.head(self.unit_outputs(X))

    @property
    def motif_conv(self):
        return self.conv

    def motif_activations(self, X):
        """The units' own activations, exp(bn1(conv(X))) (> 0 everywhere; a unit's sites are its
        highest values). Ranked this way, not by the raw filter score: with a negative BatchNorm
        scale the raw score's lowest positions are the unit's motif."""
        check_input(self, X, self.conv.weight.dtype, any_length=True)
        acts = self.exp(self.bn1(self.conv(X)))
        return acts, torch.zeros_like(acts, dtype=torch.long)

    def motif_signs(self):
        """(n_units,) +1 or -1: the sign of each unit's BatchNorm scale (-1: the unit responds to
        the filter read negated), for reading motifs from the weights."""
        return np.where(self.bn1.weight.detach().cpu().numpy() < 0, -1.0, 1.0)

    def motif_knockout(self, f):
        # The unit's output, replaced by its mean over the data: a unit is an additive term of
        # the logits, so this removes exactly what it says about each sequence (and a unit whose
        # output does not depend on the sequence gets importance 0). Zeroing its exp track
        # instead is no "motif absent": the unit's batch norms rescale whatever comes through.
        return self.flatten, [f], "mean"
