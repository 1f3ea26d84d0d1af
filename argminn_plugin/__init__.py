"""ARGMINN: a mechanistically interpretable neural network for regulatory genomics."""

from .config import ModelConfig, TrainConfig
from .errors import ArgminnError
from .model import ARGMINN, StrandAveraged

__all__ = ["ARGMINN", "ArgminnError", "ModelConfig", "StrandAveraged", "TrainConfig"]
__version__ = "0.1.0"
