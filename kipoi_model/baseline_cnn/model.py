"""Kipoi entry point: the model built from config.json (sigmoid outputs).

Kipoi builds the model inside this directory, so config_path is relative to it.
"""
from argminn_plugin.kipoi_support import KipoiModel


class Model(KipoiModel):
    def __init__(self, config_path="config.json"):
        super().__init__(config_path)
