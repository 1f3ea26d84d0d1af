import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def small_config():
    from argminn_plugin import ModelConfig

    return ModelConfig(input_length=60, n_filters=4, filter_width=6, n_layers=2, n_heads=2, head_dim=8,
                       token_dim=12, stream_dim=16, pos_enc_dim=8)


def random_onehot(n, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 4, (n, length), generator=g)
    return torch.nn.functional.one_hot(idx, 4).transpose(1, 2).float()
