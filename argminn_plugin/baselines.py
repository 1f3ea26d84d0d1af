"""Baseline models trained and packaged like ARGMINN, for side-by-side comparison.

:class:`StandardCNN` is the usual first-layer-motif CNN: Conv1d (filters read
as motifs) + ReLU + max-pool, a second Conv1d + ReLU, global max-pool and a
linear head, returning (N, T) logits like ARGMINN, so the same training loop,
tangermeme functions and Kipoi export apply.
"""

import dataclasses
import typing

from torch import nn

from .config import _Config
from .errors import ArgminnError


@dataclasses.dataclass(frozen=True)
class CNNConfig(_Config):
    input_length: int = 200
    n_tasks: int = 1
    task_names: typing.Tuple[str, ...] = ()
    n_filters: int = 32
    filter_width: int = 10
    pool: int = 4
    conv2_filters: int = 32
    conv2_width: int = 5

    def __post_init__(self):
        for name in ("input_length", "n_tasks", "n_filters", "filter_width", "pool", "conv2_filters",
                     "conv2_width"):
            if getattr(self, name) < 1:
                raise ArgminnError(f"CNNConfig: '{name}' must be >= 1, got {getattr(self, name)}")
        if (self.input_length - self.filter_width + 1) // self.pool < 1:
            raise ArgminnError("CNNConfig: the input is too short for filter_width and pool")
        if self.task_names and len(self.task_names) != self.n_tasks:
            raise ArgminnError("CNNConfig: 'task_names' must have n_tasks names")

    @property
    def names(self):
        return list(self.task_names) or [f"task{i}" for i in range(self.n_tasks)]


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
        self.pool2 = nn.AdaptiveMaxPool1d(1)
        self.flatten = nn.Flatten()
        self.head = nn.Linear(c.conv2_filters, c.n_tasks)

    def forward(self, X):
        h = self.pool1(self.relu1(self.conv1(X)))
        return self.head(self.flatten(self.pool2(self.relu2(self.conv2(h)))))
