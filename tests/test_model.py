import pytest
import torch

from argminn_plugin import ARGMINN, ArgminnError, ModelConfig, TrainConfig
from argminn_plugin.data import reverse_complement
from argminn_plugin.train import load_model, save_model
from conftest import random_onehot


def test_forward_returns_only_logits(small_config):
    model = ARGMINN(small_config).eval()
    X = random_onehot(5, 60)
    out = model(X)
    assert isinstance(out, torch.Tensor) and out.shape == (5, 1)


def test_interims_shapes_and_attention_sums(small_config):
    model = ARGMINN(small_config.replace(n_tasks=3)).eval()
    X = random_onehot(4, 60)
    out = model.interims(X)
    P = 60 - 6 + 1
    assert out["logits"].shape == (4, 3)
    assert torch.allclose(out["logits"], model(X))
    assert out["raw_activations"].shape == (4, 8, P)
    assert out["activations"].shape == (4, 4, P) and out["strand"].shape == (4, 4, P)
    assert len(out["attention"]) == 2
    for attn in out["attention"]:
        assert attn.shape == (4, 2, P)
        assert torch.allclose(attn.sum(-1), torch.ones(4, 2))
    assert (out["activations"] >= 0).all()


def test_reverse_complement_scanning_reads_strand(small_config):
    """A filter hit on the forward strand shows up on the minus strand of the reverse complement."""
    model = ARGMINN(small_config).eval()
    X = random_onehot(2, 60, seed=4)
    a = model.interims(X)
    b = model.interims(reverse_complement(X))
    P = a["activations"].shape[-1]
    # Activation at p on the forward strand equals activation at P-1-p on the minus strand of the RC.
    assert torch.allclose(a["raw_activations"][:, :4], b["raw_activations"][:, 4:].flip(-1), atol=1e-5)
    assert torch.allclose(a["activations"], b["activations"].flip(-1), atol=1e-5)
    fwd = a["raw_activations"][:, :4] > a["raw_activations"][:, 4:]
    assert torch.equal(a["strand"] == 0, fwd | (a["raw_activations"][:, :4] == a["raw_activations"][:, 4:]))
    assert P == 55


def test_every_nonlinearity_is_its_own_module_called_once(small_config):
    model = ARGMINN(small_config).eval()
    calls = {}
    from tangermeme.deep_lift_shap import BilinearOp

    kinds = (torch.nn.ReLU, torch.nn.Softmax, torch.nn.LayerNorm, torch.nn.BatchNorm1d, BilinearOp)
    for name, module in model.named_modules():
        if isinstance(module, kinds):
            module.register_forward_hook(lambda m, i, o, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
    model(random_onehot(2, 60))
    # scanner relu, batchnorm, final norm, and per layer: softmax, 2 layernorms, mlp relu, 2 products
    assert len(calls) == 3 + 2 * 6
    assert set(calls.values()) == {1}


def test_memory_is_fixed_and_shared(small_config):
    m1, m2 = ARGMINN(small_config), ARGMINN(small_config)
    assert torch.equal(m1.memory, m2.memory)
    assert "memory" not in dict(m1.named_parameters())
    assert not ARGMINN(small_config.replace(memory_seed=1)).memory.equal(m1.memory)


def test_config_rejects_unknown_and_mistyped_keys():
    with pytest.raises(ArgminnError, match="unknown key.*'n_filter'"):
        ModelConfig.from_dict({"n_filter": 8})
    with pytest.raises(ArgminnError, match="'n_filters' must be an integer"):
        ModelConfig.from_dict({"n_filters": "8"})
    with pytest.raises(ArgminnError, match="'learning_rate' must be a number"):
        TrainConfig.from_dict({"learning_rate": "fast"})
    with pytest.raises(ArgminnError, match="l1_target"):
        TrainConfig.from_dict({"l1_target": "bias"})
    with pytest.raises(ArgminnError, match="filter_width"):
        ModelConfig(input_length=5, filter_width=10)


def test_key_value_settings_are_read_as_json_else_text():
    """One reader for --set, --train-set and the benchmark's --argminn-set."""
    from argminn_plugin.config import settings_from_pairs

    read = settings_from_pairs(["overlap_units=raw", "lr_decay=0.5", "x==1", "reverse_complement_augment=false",
                                "milestones=[1, 2]", "name="], "--set")
    assert read == {"overlap_units": "raw", "lr_decay": 0.5, "x": "=1", "reverse_complement_augment": False,
                    "milestones": [1, 2], "name": ""}
    assert settings_from_pairs(None, "--set") == {}
    assert settings_from_pairs(["lr=1", "lr=2"], "--set") == {"lr": 2}  # the last given wins
    for pairs, message in ((["lr"], "--set: 'lr' is not KEY=VALUE"), (["=1"], "--set: '=1' is not KEY=VALUE"),
                           (["lr=1", "lr=2"], "--set: key 'lr' given twice")):
        with pytest.raises(ArgminnError) as caught:
            settings_from_pairs(pairs, "--set", refuse_repeats=True)
        assert str(caught.value) == message


def test_design_defaults():
    c = ModelConfig()
    assert (c.n_filters, c.filter_width, c.pos_enc_dim, c.token_dim, c.stream_dim, c.n_layers, c.n_heads) == \
        (8, 10, 16, 32, 128, 4, 4)
    t = TrainConfig()
    assert t.overlap_weight == t.l1_weight == t.entropy_weight == 1e-3


def test_weight_schedule():
    t = TrainConfig(overlap_weight=1.0, overlap_warmup=2, overlap_ramp=3)
    assert [t.weight_at("overlap", e) for e in range(7)] == [0, 0, 0.25, 0.5, 0.75, 1.0, 1.0]
    g = t.replace(ramp_shape="geometric", ramp_start=1e-3, l1_ramp=2, l1_weight=0.5)
    assert g.weight_at("overlap", 1) == 0 and g.weight_at("overlap", 5) == g.weight_at("overlap", 9) == 1.0
    assert [g.weight_at("overlap", e) for e in (2, 3, 4)] == pytest.approx([1e-3, 1e-2, 1e-1])
    assert [g.weight_at("l1", e) for e in range(3)] == pytest.approx([0.5e-3, 0.5 * 10 ** -1.5, 0.5])
    assert g.settled_epoch == 6
    assert [g.replace(ramp_start=0.01).weight_at("overlap", e) for e in (2, 3, 4, 5)] == \
        pytest.approx([1e-2, 10 ** (-4 / 3), 10 ** (-2 / 3), 1.0])
    with pytest.raises(ArgminnError, match="ramp_shape"):
        t.replace(ramp_shape="cosine")
    with pytest.raises(ArgminnError, match="ramp_start"):
        t.replace(ramp_start=0.0)


def test_model_file_roundtrip(tmp_path, small_config):
    torch.manual_seed(0)
    model = ARGMINN(small_config).eval()
    path = tmp_path / "model.pt"
    save_model(model, str(path))
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "argminn-model" and raw["model_config"]["n_filters"] == 4
    assert all(t.device.type == "cpu" for t in raw["state_dict"].values())
    loaded = load_model(str(path))
    X = random_onehot(3, 60)
    assert torch.equal(loaded(X), model(X))
    with pytest.raises(ArgminnError, match="output exists; pass --force"):  # never replaced silently
        save_model(ARGMINN(small_config), str(path))
    save_model(ARGMINN(small_config), str(path), force=True)
    assert not torch.equal(load_model(str(path))(X), model(X))


def test_truncated_model_file_is_a_clear_error(tmp_path, small_config):
    path = tmp_path / "model.pt"
    save_model(ARGMINN(small_config), str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArgminnError, match="not a valid ARGMINN model file"):
        load_model(str(path))


def test_explainn_units_are_independent_and_roundtrip(tmp_path):
    """Each ExplaiNN unit's output depends on its own filter only; model files round-trip."""
    from argminn_plugin.baselines import ExplaiNN, ExplaiNNConfig
    from argminn_plugin.train import load_model, save_model

    torch.manual_seed(0)
    model = ExplaiNN(ExplaiNNConfig(input_length=60, n_units=3, filter_width=7, pool=5, hidden=4)).eval()
    X = random_onehot(5, 60)
    out = model.unit_outputs(X)
    assert out.shape == (5, 3) and model(X).shape == (5, 1)
    u = int(out.sum(0).argmax())  # a unit whose ReLU is open
    out[:, u].sum().backward()
    grad = model.conv.weight.grad.abs().sum((1, 2))
    assert grad[u] > 0 and grad.sum() == grad[u]
    save_model(model, str(tmp_path / "m.pt"))
    again = load_model(str(tmp_path / "m.pt"))
    assert type(again).__name__ == "ExplaiNN"
    assert torch.allclose(again(X), model(X))


def test_standard_cnn_deeplift_converges():
    """The CNN's global max-pool is a MaxPool1d, so tangermeme's DeepLIFT/SHAP closes (sum = output - reference)."""
    from tangermeme.deep_lift_shap import deep_lift_shap

    from argminn_plugin.baselines import CNNConfig, StandardCNN

    torch.manual_seed(0)
    model = StandardCNN(CNNConfig(input_length=60, n_filters=6, filter_width=6, pool=3, conv2_filters=5)).double().eval()
    X = random_onehot(3, 60).double()
    attr, refs = deep_lift_shap(model, X, n_shuffles=4, return_references=True, random_state=0)
    delta = attr.sum((1, 2)) - (model(X)[:, 0] - model(refs.reshape(-1, 4, 60)).reshape(3, 4).mean(1))
    assert delta.abs().max() < 1e-6


def test_strand_averaged_reads_both_strands_in_one_pass(small_config):
    """StrandAveraged: the mean of the logits for each sequence and its reverse complement, from one pass of the
    wrapped model over both (a row's two strands next to each other), for ARGMINN and the baselines alike."""
    from argminn_plugin import StrandAveraged
    from argminn_plugin.baselines import ExplaiNN, ExplaiNNConfig

    torch.manual_seed(0)
    X = random_onehot(5, 60, seed=3)
    for model in (ARGMINN(small_config.replace(n_tasks=2)).eval(),
                  ExplaiNN(ExplaiNNConfig(input_length=60, n_units=3, filter_width=7, pool=5, hidden=4)).eval()):
        both = StrandAveraged(model)
        assert not both.training and both.config is model.config
        seen = []
        handle = model.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
        with torch.no_grad():
            out, rc_out = both(X), both(reverse_complement(X))
        handle.remove()
        assert [x.shape[0] for x in seen] == [10, 10]  # one pass each, over both strands
        assert torch.equal(seen[0][0::2], X) and torch.equal(seen[0][1::2], reverse_complement(X))
        with torch.no_grad():
            one, other = model(X), model(reverse_complement(X))
        assert out.shape == one.shape and not torch.allclose(one, other, atol=1e-3)
        assert torch.allclose(out, (one + other) / 2, atol=1e-6)
        assert torch.allclose(rc_out, out, atol=1e-6)  # a sequence and its reverse complement score the same
        assert both(X[:0]).shape == (0, one.shape[1])
        with pytest.raises(ArgminnError, match="input is a ndarray"):  # the wrapped model's own errors
            both(X.numpy())
        with pytest.raises(ArgminnError, match=r"input of shape \(5, 60\)"):
            both(X[:, 0])
        with pytest.raises(ArgminnError, match=r"input of shape \(5, 4, 50\)"):  # as given, not doubled
            both(X[..., :50])
    # the wrapper's mode is the model's, also after the model's changes, so tangermeme (which puts the wrapper
    # back in the mode it found) leaves the model in its own
    from tangermeme.predict import predict

    wrapped = StrandAveraged(model.train())
    model.eval()
    predict(wrapped, X, device="cpu")
    assert not model.training and not wrapped.training
    model.train()
    predict(wrapped, X, device="cpu")
    assert model.training and wrapped.training
    wrapped.eval()  # and setting it sets the model's
    assert not model.training
    # tangermeme's greedy design (argminn's greedy_design) pushes the logit read on both strands
    from argminn_plugin.design import greedy_design

    argminn = ARGMINN(small_config).eval()
    background = random_onehot(1, 60, seed=4)
    designed = greedy_design(StrandAveraged(argminn), background, ["ACGTACGTAC", "TTGACA"], max_iter=2)
    with torch.no_grad():
        before, after = StrandAveraged(argminn)(background), StrandAveraged(argminn)(designed)
    assert designed.shape == background.shape and not torch.equal(designed, background)
    assert (after > before).all() and not argminn.training
    with pytest.raises(ArgminnError, match="StrandAveraged: wraps a torch model .* not a function"):
        StrandAveraged(lambda x: x)
    with pytest.raises(ArgminnError, match="StrandAveraged: the wrapped Sequential has no config"):
        StrandAveraged(torch.nn.Sequential()).config


def _textbook(model, X, out):
    """(logits, per layer the (N, H, P [+ 1: the sink]) attention) with explicit keys and values:
    softmax(q . (W_k t + b_k) / sqrt(e) [+ the sink's logit]) and sum_p a_p (W_v t_p + b_v), t the tokens
    [and the layer's sink token], from the scanner activations in ``out`` (model.interims(X))."""
    import math

    c = model.config
    feats = torch.cat([model.norm(out["raw_activations"]), model.pos_enc.unsqueeze(0).expand(len(X), -1, -1)], 1)
    tokens = model.token_proj(feats.transpose(1, 2))  # (N, P, D)
    stream = model.memory.unsqueeze(0).expand(len(X), -1).to(tokens.dtype)
    n, p = len(X), tokens.shape[1]
    attention = []
    for layer in model.layers:
        full = tokens if layer.sink is None else torch.cat([tokens, layer.sink.expand(n, 1, -1)], 1)
        q = layer.query(stream).view(n, c.n_heads, c.head_dim)
        k = layer.key(full).view(n, full.shape[1], c.n_heads, c.head_dim).transpose(1, 2)
        v = layer.value(full).view(n, full.shape[1], c.n_heads, c.head_dim).transpose(1, 2)
        scores = torch.einsum("nhe,nhpe->nhp", q, k) / math.sqrt(c.head_dim)
        if layer.sink is not None:
            scores[..., p] += layer.sink_bias  # the head's sink logit
        a = torch.softmax(scores, -1)
        attention.append(a)
        mixed = torch.einsum("nhp,nhpe->nhe", a, v).reshape(n, -1)
        stream = stream + layer.norm2(layer.mlp_out(layer.mlp_act(layer.mlp_in(layer.norm1(layer.out(mixed))))))
    return model.head(model.final_norm(stream)), attention


def test_attention_matches_the_textbook_formula(small_config):
    """The fused computation equals softmax(q . (W_k t + b_k)) and sum_p a_p (W_v t_p + b_v) with explicit keys/values."""
    torch.manual_seed(1)
    model = ARGMINN(small_config).eval()
    X = random_onehot(4, small_config.input_length)
    out = model.interims(X)
    logits, attention = _textbook(model, X, out)
    for a, attn in zip(attention, out["attention"]):
        assert torch.allclose(a, attn, atol=1e-5)
    assert torch.allclose(logits, out["logits"], atol=1e-4)


@pytest.mark.parametrize("changes", [{}, {"batch_norm": False}, {"scan_reverse_complement": False},
                                     {"pos_enc_dim": 0}, {"n_tasks": 3}, {"attention_sink": True}, {"n_layers": 1},
                                     {"attention_sink": True, "batch_norm": False, "pos_enc_dim": 0},
                                     {"canonical_strand": True}, {"canonical_strand": True, "attention_sink": True}])
@pytest.mark.parametrize("stack_max", [None, 0])
def test_folded_inference_equals_the_module_path(small_config, changes, stack_max, monkeypatch):
    """Eval mode without autograd runs the merged-matrix path; it gives the module path's logits, attention
    and activations (float64: to rounding), with batch-norm statistics and weights away from their init;
    with the activations and the encoding stacked (small batches) or kept apart (large ones)."""
    if stack_max is not None:
        monkeypatch.setattr(ARGMINN, "_STACK_MAX_POSITIONS", stack_max)
    torch.manual_seed(3)
    model = ARGMINN(small_config.replace(**changes)).double()
    model.train()
    X = random_onehot(9, small_config.input_length).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
        model(X)  # training-mode pass: batch-norm running statistics move off (0, 1)
    model.eval()
    modules = model.interims(X)  # autograd on: the module path
    assert modules["logits"].requires_grad
    with torch.no_grad():
        assert model._folded() is not None
        folded = model.interims(X)
    assert not folded["logits"].requires_grad
    assert torch.allclose(folded["logits"], modules["logits"], rtol=0, atol=1e-10)
    for a, b in zip(folded["attention"], modules["attention"]):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    assert torch.equal(folded["raw_activations"], modules["raw_activations"])


def test_canonical_strand_reads_each_sequence_on_one_strand(small_config):
    """ModelConfig.canonical_strand: a sequence and its reverse complement get the same logits (each is read on
    the strand of its strongest activation), on both paths and in training mode; what the model returns stays in
    the input's frame: the scanner's own activations, and attention that for the reverse complement is the
    sequence's own reversed. DeepLIFT (tangermeme) sums to the output difference where an input's references are
    read on its strand. Refused without two-strand scanning."""
    from tangermeme.deep_lift_shap import deep_lift_shap

    torch.manual_seed(4)
    model = ARGMINN(small_config.replace(canonical_strand=True)).double()
    X = random_onehot(12, small_config.input_length, seed=4).double()
    rc = reverse_complement(X)
    model.train()
    logits = model(X)
    assert logits.requires_grad and torch.allclose(logits, model(rc), rtol=0, atol=1e-12)
    model.eval()
    for grad in (True, False):  # the module path and the folded one
        with torch.set_grad_enabled(grad):
            out, back = model.interims(X), model.interims(rc)
        assert torch.allclose(out["logits"], back["logits"], rtol=0, atol=1e-12)
        assert torch.equal(out["raw_activations"], model.scanner(X).detach())
        for a, b in zip(out["attention"], back["attention"]):
            assert torch.allclose(a, b.flip(-1), rtol=0, atol=1e-12)
    acts = model.scanner(X).detach()
    read, flipped = model._strand_read(acts)
    assert 0 < int(flipped.sum()) < len(X)  # both kinds in the batch
    f = small_config.n_filters
    assert torch.equal(flipped, acts[:, f:].amax(dim=(1, 2)) > acts[:, :f].amax(dim=(1, 2)))  # the strongest
    # an inverted repeat (a filter's best k-mer, and its reverse complement downstream): both strands' strongest
    # activations are equal; the larger total decides, the same for the sequence and its reverse complement
    weight = model.scanner.conv.weight.detach()
    best = weight[int((weight.amax(1).sum(1) + model.scanner.conv.bias.detach()).argmax())].argmax(0)
    bases = torch.tensor([0, 1, 2, 3] * (small_config.input_length // 4))
    bases[5:5 + len(best)], bases[40:40 + len(best)] = best, (3 - best).flip(0)
    repeat = torch.nn.functional.one_hot(bases, 4).T.double()[None]
    tied = model.scanner(repeat).detach()
    assert tied[:, :f].amax() == tied[:, f:].amax() and tied[:, :f].sum() != tied[:, f:].sum()
    assert model._strand_read(tied)[1].item() == bool(tied[:, f:].sum() > tied[:, :f].sum())
    with torch.no_grad():
        assert torch.allclose(model(repeat), model(reverse_complement(repeat)), rtol=0, atol=1e-12)
    plain = ARGMINN(small_config).double().eval()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.allclose(model(X)[~flipped], plain(X)[~flipped], rtol=0, atol=1e-12)  # as given
        assert torch.allclose(model(X)[flipped], plain(rc)[flipped], rtol=0, atol=1e-12)  # as its minus strand
    # in training, the gradients are those of each sequence read on its strand; a batch read as given, or empty
    model.train(), plain.train()
    model.zero_grad(), plain.zero_grad()
    model(X).sum().backward()
    plain(torch.where(flipped[:, None, None], rc, X)).sum().backward()
    grads = [(name, a.grad, b.grad) for (name, a), b in zip(model.named_parameters(), plain.parameters())]
    assert all((a is None) == (b is None) for _, a, b in grads)  # (the keys' bias: none, softmax drops it)
    assert sum(a is not None for _, a, _ in grads) > len(grads) // 2
    for name, a, b in grads:
        assert a is None or torch.allclose(a, b, rtol=0, atol=1e-10), name
    model.eval(), plain.eval()
    plain.load_state_dict(model.state_dict())  # (the batch norm's statistics moved in training)
    with torch.no_grad():
        assert torch.allclose(model(X[~flipped]), plain(X[~flipped]), rtol=0, atol=1e-12)
        assert model(X[:0]).shape == (0, small_config.n_tasks)
    attr, refs = deep_lift_shap(model, X[:4], n_shuffles=6, random_state=0, return_references=True,
                                warning_threshold=1e9, device="cpu")
    refs = refs.reshape(-1, 4, small_config.input_length)
    with torch.no_grad():
        diff = model(X[:4])[:, 0] - model(refs)[:, 0].reshape(4, 6).mean(1)
        ref_flipped = model._strand_read(model.scanner(refs))[1].reshape(4, 6)
    # the strand chosen is a step DeepLIFT's rules take as it is for the input: the sums hold for an input whose
    # references are all read on its strand (the others can miss; README, ModelConfig.canonical_strand)
    agree = (ref_flipped == flipped[:4, None]).all(1)
    assert agree.any() and not agree.all()
    assert torch.allclose(attr.sum((1, 2))[agree], diff[agree], atol=1e-8)
    with pytest.raises(ArgminnError, match="'canonical_strand' .* needs scan_reverse_complement=True"):
        small_config.replace(canonical_strand=True, scan_reverse_complement=False)


def test_canonical_strand_choice_row_by_row_and_in_a_graph_capture(small_config):
    """The strand choice is made row by row in a mixed batch (a tie anywhere does not move another row), reads
    activations of any layout, and is captured by torch.export and torch.jit.trace without a branch on the data:
    the captured program chooses per input as the eager model does."""
    model = ARGMINN(small_config.replace(canonical_strand=True)).eval()
    f, p = small_config.n_filters, 5
    acts = torch.zeros(6, 2 * f, p)
    acts[0, 0, 1], acts[0, f, 2], acts[0, 1, 3] = 2.0, 2.0, 1.0  # peaks tie, the forward total larger
    # row 1: all zero (a tie of both)
    acts[2, 0, 1], acts[2, f, p - 2] = 1.5, 1.5  # its own reverse complement: ties of both, read as given
    acts[3, 0, 1], acts[3, f, 2], acts[3, f + 1, 3] = 2.0, 2.0, 1.0  # peaks tie, the minus total larger
    acts[4, f + 2, 0] = 3.0  # the minus strand strongest
    acts[5, 2, 0], acts[5, f + 3, 4] = 1.0, 1.5
    read, flipped = model._strand_read(acts)
    assert flipped.tolist() == [False, False, False, True, True, True]
    swapped = torch.cat([acts[:, f:], acts[:, :f]], 1).flip(-1)
    assert torch.equal(read[:3], acts[:3]) and torch.equal(read[3:], swapped[3:])
    for row in range(6):  # each row alone as in the batch
        alone = model._strand_read(acts[row:row + 1])
        assert torch.equal(alone[0], read[row:row + 1]) and alone[1].item() == flipped[row].item()
    other = acts.transpose(1, 2).contiguous().transpose(1, 2)  # another memory layout (e.g. from a hook)
    assert torch.equal(model._strand_read(other)[0], read) and torch.equal(model._strand_read(other)[1], flipped)
    n = small_config.input_length
    torch.manual_seed(3)
    X = random_onehot(16, n, seed=3)
    with torch.no_grad():
        eager = model(X)
        mixed = model._strand_read(model.scanner(X))[1]
        assert 0 < int(mixed.sum()) < len(X)
        program = torch.export.export(model, (X[:3],), dynamic_shapes={"X": {0: torch.export.Dim("batch")}})
        assert torch.allclose(program.module()(X), eager, atol=1e-6)
        keep = X[~mixed][:2]  # traced on two sequences read as given, run on both kinds
        traced = torch.jit.trace(model, keep, check_trace=False)
        assert torch.allclose(traced(X), eager, atol=1e-6)

    class Choice(torch.nn.Module):  # the choice alone, captured on rows without a tie, run on the crafted batch
        def forward(self, a):
            return model._strand_read(a)

    got = torch.jit.trace(Choice(), acts[4:6], check_trace=False)(acts)
    assert torch.equal(got[0], read) and torch.equal(got[1], flipped)
    program = torch.export.export(Choice(), (acts[4:6],), dynamic_shapes={"a": {0: torch.export.Dim("batch")}})
    got = program.module()(acts)
    assert torch.equal(got[0], read) and torch.equal(got[1], flipped)


def test_folded_inference_steps_aside_for_hooks(small_config):
    """A forward hook on a module the merged matrices replace (a DeepLIFT rule, an ablation) must see its call:
    then the module path runs, with the same result; knock-out hooks on the scanner work on both paths."""
    model = ARGMINN(small_config).eval()
    X = random_onehot(3, small_config.input_length)
    with torch.no_grad():
        plain = model(X)
        seen = []
        handle = model.norm.register_forward_hook(lambda m, i, o: seen.append(o.shape))
        assert model._folded() is None
        hooked = model(X)
        handle.remove()
        assert len(seen) == 1 and torch.allclose(hooked, plain, atol=1e-5)
        handle = torch.nn.modules.module.register_module_forward_pre_hook(lambda m, i: None)
        assert model._folded() is None
        handle.remove()
        assert model._folded() is not None
        module, channels = model.motif_knockout(0)

        def knock(m, i, o):
            o = o.clone()
            o[:, channels] = 0
            return o

        handle = module.register_forward_hook(knock)
        assert model._folded() is not None  # the scanner is still called as a module
        knocked = model(X)
        handle.remove()
        seen = []  # and so is its ReLU when it carries a hook (otherwise both strands run as one convolution)
        handle = model.scanner.relu.register_forward_hook(lambda m, i, o: seen.append(o.shape))
        assert model._folded() is not None and torch.equal(model(X), plain) and len(seen) == 1
        handle.remove()
    with torch.enable_grad():
        handle = module.register_forward_hook(knock)
        expected = model(X)
        handle.remove()
    assert torch.allclose(knocked, expected, atol=1e-5) and not torch.allclose(knocked, plain, atol=1e-4)


def test_folded_inference_applies_only_plain_modules_as_functions(small_config):
    """The inference path applies the softmax, norms, MLP and head as functions: a hook on any of them is
    seen (the module path runs), a module swapped for another kind is honoured, and their weights are read
    on every pass (an in-place edit after a cached pass shows)."""
    torch.manual_seed(5)
    model = ARGMINN(small_config).eval()
    X = random_onehot(4, small_config.input_length)
    with torch.no_grad():
        assert model._folded() is not None
        plain = model(X)
        for module in (model.layers[0].softmax, model.layers[1].norm1, model.layers[0].mlp_in,
                       model.layers[1].mlp_act, model.layers[0].mlp_out, model.layers[1].norm2,
                       model.final_norm, model.head):
            seen = []
            handle = module.register_forward_hook(lambda m, i, o: seen.append(1))
            assert model._folded() is None
            assert torch.allclose(model(X), plain, atol=1e-6) and len(seen) == 1
            handle.remove()
        model.layers[1].mlp_act = torch.nn.GELU().eval()  # eval mode: only its kind tells it apart
        assert model._folded() is None
        swapped = model(X)
    assert torch.allclose(swapped, model(X), atol=1e-6) and not torch.allclose(swapped, plain, atol=1e-5)
    model.layers[1].mlp_act = torch.nn.ReLU().eval()
    model.layers[0].softmax = torch.nn.Softmax(dim=1).eval()  # over heads, not positions
    assert model._folded() is None
    model.layers[0].softmax = torch.nn.Softmax(dim=-1).eval()
    with torch.no_grad():
        assert torch.allclose(model(X), plain, atol=1e-6)  # the folded path again, cache filled
        model.head.weight.mul_(2)
        model.layers[0].norm2.bias.add_(0.5)
        edited = model(X)
    assert torch.allclose(edited, model(X), atol=1e-5) and not torch.allclose(edited, plain, atol=1e-4)


def test_folded_inference_steps_aside_where_it_would_differ(small_config):
    """Cases where merged matrices would not be what the modules compute: a hook on a whole layer (here one
    that skips the layer), a batch norm put back in training mode, a replaced norm, autocast; each gives the
    module path's result under no_grad too, and afterwards the folded path is back."""
    import copy
    import pickle

    torch.manual_seed(4)
    model = ARGMINN(small_config).eval()
    X = random_onehot(5, small_config.input_length)

    def both():
        with torch.no_grad():
            fast = model(X)
        return fast, model(X)  # autograd on: the module path

    handle = model.layers[1].register_forward_hook(lambda m, i, o: (i[0], o[1]))  # skip layer 1
    fast, slow = both()
    assert torch.allclose(fast, slow, atol=1e-6)
    handle.remove()
    with torch.no_grad():
        assert not torch.allclose(fast, model(X), atol=1e-4)  # the hook did change the output
    model.norm.train()  # batch statistics instead of running ones
    fast, slow = both()
    assert torch.allclose(fast, slow, atol=1e-6)
    model.norm.eval()
    saved = model.norm
    model.norm = torch.nn.Sequential(saved)
    fast, slow = both()
    assert torch.allclose(fast, slow, atol=1e-6) and model._folded() is None
    model.norm = saved
    with torch.no_grad():
        assert model._folded() is not None
        plain = model(X)
        model.train().eval()  # a cold cache: the autocast pass would be the one to fill it
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert model(X).dtype == torch.bfloat16
        assert torch.equal(model(X), plain)  # nothing of the bf16 pass is left behind
    assert copy.deepcopy(model)._fold_cache is None and pickle.loads(pickle.dumps(model))._fold_cache is None


@pytest.mark.parametrize("sink", [False, True])
def test_inference_cache_follows_every_weight_change(small_config, sink):
    """No-grad forwards reuse the merged inference matrices; an optimizer step, load_state_dict, an in-place
    edit, new batch-norm statistics or a dtype change between two no-grad forwards must invalidate them
    (checked against a freshly built copy)."""
    small_config = small_config.replace(attention_sink=sink)
    torch.manual_seed(2)
    model = ARGMINN(small_config).eval()
    X = random_onehot(6, small_config.input_length)

    def check():
        reference = ARGMINN(small_config).eval()
        reference.load_state_dict(model.state_dict())
        with torch.no_grad():
            out, expected = model(X), reference(X)
        assert torch.equal(out, expected)
        return out

    first = check()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for p in model.parameters():  # a step without a forward pass under autograd, which would drop the cache
        p.grad = torch.randn_like(p)
    optimizer.step()
    second = check()
    assert not torch.allclose(first, second)
    model.load_state_dict(ARGMINN(small_config).state_dict())
    third = check()
    assert not torch.allclose(second, third)
    with torch.no_grad():
        model.layers[0].value.bias.add_(1.0)
        model.layers[-1].query.weight.mul_(-1.0)
    fourth = check()
    assert not torch.allclose(third, fourth)
    # the scanner's two-strand weights, the memory and the positional encoding are merged into the cache too
    with torch.no_grad():
        model.scanner.conv.weight[0].mul_(-1.0)
    edited = check()
    assert not torch.allclose(fourth, edited)
    for buffer in (model.memory, model.pos_enc):  # not in the state dict: against the module path instead
        with torch.no_grad():
            before = model(X)
            buffer.mul_(-1.0)
            after = model(X)
        assert torch.allclose(after, model(X), atol=1e-6) and not torch.allclose(before, after, atol=1e-4)
        with torch.no_grad():
            buffer.mul_(-1.0)
    assert torch.equal(check(), edited)
    torch.manual_seed(7)
    model.scanner.conv = torch.nn.Conv1d(4, small_config.n_filters, small_config.filter_width)  # a new module
    fourth = check()
    assert not torch.allclose(edited, fourth)
    if sink:  # the sink's token and logit are in the key too
        with torch.no_grad():
            model.layers[0].sink_bias.add_(2.0)
            model.layers[-1].sink.add_(1.0)
        edited = check()
        assert not torch.allclose(fourth, edited)
        fourth = edited
    model.train()
    with torch.no_grad():
        model(random_onehot(16, small_config.input_length, seed=5) * 3)  # running statistics move
    model.eval()
    fifth = check()
    assert not torch.allclose(fourth, fifth)
    with torch.no_grad():
        model.norm.running_var.mul_(4.0)
    assert not torch.allclose(fifth, check())
    # fine-tuning in eval mode with a fused optimizer (its steps leave the version counters alone): the
    # forward pass with autograd on drops the cache
    sixth = check()
    fused = torch.optim.Adam(model.parameters(), lr=0.1, fused=True)
    model(X).sum().backward()
    fused.step()
    model.eval()  # already in eval mode: keeps nothing stale either way
    assert not torch.allclose(sixth, check())
    # a knock-out through .data (no version counter moves): a filter or a batch-norm channel is seen on the next
    # pass; an attention map after eval(), which tangermeme calls on every predict
    before = check()
    model.scanner.conv.weight.data[0].zero_()
    model.scanner.conv.weight.data[1:].mul_(-3.0)
    knocked = check()
    assert not torch.allclose(before, knocked)
    model.norm.weight.data[1] = 0.0
    model.norm.bias.data.add_(2.0)
    assert not torch.allclose(knocked, check())
    with torch.no_grad():
        stale = model(X)
    model.layers[0].value.weight.data.mul_(-1.0)
    model.eval()
    assert not torch.allclose(stale, check())
    from tangermeme.predict import predict as tangermeme_predict

    model.head.weight.data.mul_(-1.0)
    expected = ARGMINN(small_config).eval()
    expected.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(tangermeme_predict(model, X, verbose=False), expected(X))
    model.norm = torch.nn.Identity()  # a replaced module, no train()/eval() call
    with torch.no_grad():
        replaced = model(X)
    assert torch.allclose(replaced, model(X), atol=1e-5)  # autograd on: the module path
    model.double()
    with torch.no_grad():
        assert model(X.double()).dtype == torch.float64


def test_folded_inference_edge_cases(small_config):
    """An empty batch gives (0, T) logits on both paths; a scanner whose forward was replaced (on the instance
    or the class) is called, not merged; a None buffer on the model does not break the cache key."""
    from argminn_plugin.model import MotifScanner

    torch.manual_seed(6)
    model = ARGMINN(small_config.replace(n_tasks=2)).eval()
    X = random_onehot(4, small_config.input_length)
    empty = torch.zeros(0, 4, small_config.input_length)
    with torch.no_grad():
        assert model(empty).shape == (0, 2)
        plain = model(X)
    assert model(empty).shape == (0, 2)
    scanner = model.scanner
    scanner.forward = lambda x: MotifScanner.forward(scanner, x) * 0.5
    with torch.no_grad():
        halved = model(X)
    assert torch.allclose(halved, model(X), atol=1e-6) and not torch.allclose(halved, plain, atol=1e-4)
    del scanner.forward
    original = MotifScanner.forward
    try:
        MotifScanner.forward = lambda self, x: original(self, x) * 0.5
        with torch.no_grad():
            assert torch.allclose(model(X), halved, atol=1e-6)
    finally:
        MotifScanner.forward = original
    model.register_buffer("extra", None)
    with torch.no_grad():
        assert model._folded() is not None and torch.allclose(model(X), plain, atol=1e-6)


def test_wrong_input_shape_is_a_clear_error(small_config):
    model = ARGMINN(small_config).eval()
    n = small_config.input_length
    for X in (random_onehot(2, n + 1), random_onehot(2, n)[:, :3], random_onehot(2, n)[0]):
        for grad in (True, False):
            with torch.set_grad_enabled(grad), pytest.raises(
                    ArgminnError, match=rf"input of shape .*; this model takes \(N, 4, {n}\) one-hot sequences"):
                model(X)
    X = random_onehot(2, n)
    with pytest.raises(ArgminnError, match="input is a ndarray; this model takes a torch tensor"):
        model(X.numpy())
    assert ARGMINN(small_config.to_dict()).config == small_config
    with pytest.raises(ArgminnError, match="config must be a ModelConfig or a dict of its keys, got str"):
        ARGMINN("config.json")
    for dtype in (torch.int8, torch.float64):  # tangermeme's one_hot_encode gives int8
        with pytest.raises(ArgminnError, match=rf"input of dtype {dtype}; this model computes in torch.float32: "
                                               r"pass X.to\(torch.float32\)") as error:
            model(X.to(dtype))
        # float64 (tangermeme's dtype= for DeepLIFT) may ask for the model in float64 instead; int8 may not
        assert ("or the model to the input's (model.to(torch.float64))" in str(error.value)) == dtype.is_floating_point
    with torch.no_grad():
        assert torch.allclose(model.double()(X.double()).float(), model.float()(X), atol=1e-5)
        plain = model(X)
        with torch.autocast("cpu", torch.bfloat16):  # mixed precision: the input's dtype is autocast's
            mixed = model(X.bfloat16())
        assert torch.allclose(mixed.float(), plain, atol=0.1)
    from tangermeme.predict import predict

    assert predict(model, X.to(torch.int8), dtype=torch.bfloat16, verbose=False).shape == (2, small_config.n_tasks)
    # the baselines check their input alike (the CNN's global pool is sized for its input length: a longer
    # window would be read only in part)
    from argminn_plugin.baselines import CNNConfig, ExplaiNN, ExplaiNNConfig, StandardCNN

    for baseline in (StandardCNN(CNNConfig(input_length=n)), ExplaiNN(ExplaiNNConfig(input_length=n))):
        name = type(baseline).__name__
        baseline.eval()
        assert baseline(X).shape == (2, 1)
        for bad in (random_onehot(2, n + 50), random_onehot(2, n)[0]):
            with pytest.raises(ArgminnError, match=rf"{name}: input of shape .*; this model takes \(N, 4, {n}\)"):
                baseline(bad)
        with pytest.raises(ArgminnError, match=rf"{name}: input is a ndarray; .*predict.predict converts numpy"):
            baseline(X.numpy())
        with pytest.raises(ArgminnError, match=rf"{name}: input of dtype torch.float64; this model computes in"):
            baseline(X.double())


def test_motif_activations_check_their_input_and_take_any_length(small_config):
    """The scanner alone slides along any sequence from the filter width up; the wrong dtype or shape is a
    clear error naming the model, for ARGMINN and the baselines alike (not torch's conv error)."""
    from argminn_plugin.baselines import CNNConfig, ExplaiNN, ExplaiNNConfig, StandardCNN

    n = small_config.input_length
    for model in (ARGMINN(small_config), StandardCNN(CNNConfig(input_length=n)),
                  ExplaiNN(ExplaiNNConfig(input_length=n))):
        model.eval()
        name, width = type(model).__name__, model.motif_conv.kernel_size[0]
        X = random_onehot(2, n)
        acts, strand = model.motif_activations(X)
        assert acts.shape == strand.shape == (2, model.motif_conv.out_channels, n - width + 1)
        longer = torch.cat([X, X], 2)
        assert torch.equal(model.motif_activations(longer)[0][..., :n - width + 1], acts)  # any length
        assert model.motif_activations(X[..., :width])[0].shape[-1] == 1
        with pytest.raises(ArgminnError, match=rf"{name}: input of dtype torch.float64; .*model.to\(torch.float64\)"):
            model.motif_activations(X.double())
        for bad in (X[..., :width - 1], X[:, :3], X[0]):
            with pytest.raises(ArgminnError, match=rf"{name}: input of shape .*; the motif scanner takes \(N, 4, L\) "
                                                   rf"one-hot sequences of any length L from its filter width "
                                                   rf"\({width}\) up"):
                model.motif_activations(bad)
        with pytest.raises(ArgminnError, match=rf"{name}: input is a ndarray"):
            model.motif_activations(X.numpy())


def test_builds_and_runs_under_float64_default_dtype(small_config):
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = ARGMINN(small_config).eval()
        assert model.pos_enc.dtype == torch.float64
        with torch.no_grad():
            assert model(random_onehot(2, small_config.input_length).double()).dtype == torch.float64
    finally:
        torch.set_default_dtype(before)


def test_torch_export_with_a_dynamic_batch(small_config, tmp_path):
    """torch.export (TorchScript's successor; torch.jit.script is not supported) gives a program that
    takes any batch size and matches the eager model, for a saved-and-loaded model too."""
    torch.manual_seed(7)
    model = ARGMINN(small_config.replace(n_tasks=2, attention_sink=True)).eval()
    save_model(model, tmp_path / "model.pt")
    model = load_model(tmp_path / "model.pt").eval()
    n = small_config.input_length
    program = torch.export.export(model, (random_onehot(3, n),),
                                  dynamic_shapes={"X": {0: torch.export.Dim("batch")}})
    with torch.no_grad():
        for batch in (1, 5, 33):
            X = random_onehot(batch, n, seed=batch)
            assert torch.allclose(program.module()(X), model(X), atol=1e-6)
    path = tmp_path / "model.pt2"
    torch.export.save(program, path)
    with torch.no_grad():
        X = random_onehot(4, n, seed=11)
        assert torch.allclose(torch.export.load(path).module()(X), model(X), atol=1e-6)
        # exported with autograd off too (as tangermeme's fast saturation mutagenesis does): the inference
        # path, whose cache is keyed on storage fake tensors lack, steps aside during the capture
        program = torch.export.export(model, (random_onehot(3, n),))
        assert torch.allclose(program.module()(X[:3]), model(X[:3]), atol=1e-6)


def test_attention_sink_is_one_more_key_and_value(small_config):
    """With ModelConfig.attention_sink each layer's learned token is one more key/value beside the positions
    (explicit keys/values, as in the textbook formula); the attention returned covers the positions and
    leaves the sink's share of each row; DeepLIFT/SHAP (tangermeme) still closes; without the option the
    model has no such parameter (state dicts of earlier models load as they were)."""
    from tangermeme.deep_lift_shap import deep_lift_shap

    c = small_config.replace(attention_sink=True)
    assert not any("sink" in key for key in ARGMINN(small_config).state_dict())
    fresh = ARGMINN(c).eval()  # at first the sink weighs as much as every position together
    with torch.no_grad():
        start = fresh.interims(random_onehot(2, c.input_length))["attention"][0].sum(-1)
    assert 0.2 < float(start.min()) and float(start.max()) < 0.8
    torch.manual_seed(1)
    model = ARGMINN(c).double()
    with torch.no_grad():
        for layer in model.layers:
            layer.sink.copy_(torch.randn(c.token_dim) * 10)  # a sink whose share varies by row
            layer.sink_bias.copy_(torch.randn(c.n_heads) + 2)
    model.eval()
    X = random_onehot(4, c.input_length).double()
    out = model.interims(X)
    logits, attention = _textbook(model, X, out)
    n, p = len(X), c.n_positions
    shares = []
    for a, attn in zip(attention, out["attention"]):
        assert attn.shape == (n, c.n_heads, p) and torch.allclose(a[..., :p], attn, atol=1e-10)
        shares.append(a[..., p])
    assert torch.allclose(logits, out["logits"], atol=1e-10)
    assert min(float(s.max()) for s in shares) > 0.05  # the sink does take attention here
    attr, refs = deep_lift_shap(model, X, n_shuffles=3, random_state=0, return_references=True,
                                warning_threshold=1e9, device="cpu")
    with torch.no_grad():
        diff = model(X)[:, 0] - model(refs.reshape(-1, 4, c.input_length))[:, 0].reshape(4, 3).mean(1)
    assert torch.allclose(attr.sum((1, 2)), diff, atol=1e-8) and diff.abs().max() > 1e-3


def test_hooks_on_the_scanners_conv_see_each_strand_and_knock_filters_out(small_config):
    """The usual CNN read-out: a forward hook on the first conv (model.motif_conv) fires, once per strand,
    and a hook that zeroes a filter's output channel is the filter's knock-out, on both strands; on the
    module path and on the no-grad inference path alike."""
    torch.manual_seed(3)
    model = ARGMINN(small_config).eval()
    X = random_onehot(4, small_config.input_length)
    with torch.no_grad():
        plain = model(X)
        acts = model.scanner(X)
    seen = []
    handle = model.motif_conv.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    with torch.no_grad():
        assert torch.allclose(model(X), plain, atol=1e-5)
    f = small_config.n_filters
    assert [o.shape for o in seen] == [(4, f, acts.shape[2])] * 2
    assert torch.allclose(torch.relu(torch.cat([seen[0], seen[1].flip([2])], 1)), acts, atol=1e-5)
    handle.remove()

    def zero_filter_1(module, inputs, output):
        output = output.clone()
        output[:, 1] = -1.0  # below zero: nothing passes the ReLU
        return output

    module, channels = model.motif_knockout(1)
    knock = module.register_forward_hook(lambda m, i, o: o.index_fill(1, torch.tensor(channels), 0.0))
    with torch.no_grad():
        expected = model(X)
    knock.remove()
    assert not torch.allclose(expected, plain, atol=1e-4)
    handle = model.motif_conv.register_forward_hook(zero_filter_1)
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            assert torch.allclose(model(X), expected, atol=1e-5)
    handle.remove()
    with torch.no_grad():
        assert torch.equal(model(X), plain)  # the merged convolution again
