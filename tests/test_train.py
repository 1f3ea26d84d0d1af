import contextlib
import json
import os
import pickle
import re
import stat

import numpy as np
import pytest
import torch

from argminn_plugin import ArgminnError, ModelConfig, TrainConfig
from argminn_plugin.errors import StartAgain
from argminn_plugin.fileio import atomic_write, output_set, safe_load_torch
from argminn_plugin.train import load_model, run_train_config, train
from conftest import random_onehot

CFG = ModelConfig(input_length=40, n_filters=3, filter_width=5, n_layers=1, n_heads=2, head_dim=8, stream_dim=16,
                  token_dim=8, pos_enc_dim=4)


def data(seed):
    X = random_onehot(64, 40, seed=seed)
    y = (X[:, 0, :20].sum(1) > 5).float()[:, None]
    return X, y


def assert_reproducible_and_changed_by(tmp_path, tc, other):
    """Two runs of ``tc`` end with the same weights; a run of ``other`` with others."""
    a, _ = train(CFG, tc, data(0), data(1), str(tmp_path / "a"), verbose=False)
    b, _ = train(CFG, tc, data(0), data(1), str(tmp_path / "b"), verbose=False)
    c, _ = train(CFG, other, data(0), data(1), str(tmp_path / "c"), verbose=False)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_same_seed_same_model(tmp_path):
    tc = TrainConfig(max_epochs=2, batch_size=16, seed=3)
    assert_reproducible_and_changed_by(tmp_path, tc, tc.replace(seed=4))


def test_shift_augmentation_moves_each_sequence_and_is_reproducible(tmp_path):
    from argminn_plugin.data import decode, shift_sequences
    X = random_onehot(3, 10, seed=0)
    fill = torch.tensor([[0] * 10, [1] * 10, [3] * 10])
    out = shift_sequences(X, torch.tensor([2, -3, 0]), fill)
    a, b, c = decode(X)
    assert decode(out) == ["AA" + a[:8], b[3:] + "CCC", c]
    with pytest.raises(ArgminnError, match=r"'shift_augment' \(40\) must be below the input length \(40\)"):
        train(CFG, TrainConfig(max_epochs=1, shift_augment=40), data(0), data(1), str(tmp_path / "x"),
              verbose=False)
    tc = TrainConfig(max_epochs=2, batch_size=16, seed=3, shift_augment=5)
    assert_reproducible_and_changed_by(tmp_path, tc, tc.replace(shift_augment=0))



def test_strand_consistency_runs_each_batch_on_both_strands(tmp_path):
    """The loss is taken over the batch and its reverse complement, with the mean squared logit difference
    between the two strands as its own term; the models it trains differ from those trained without it."""
    from argminn_plugin import ARGMINN
    from argminn_plugin.baselines import CNNConfig, StandardCNN
    from argminn_plugin.data import reverse_complement
    from argminn_plugin.train import regularized_loss

    X, y = data(0)
    X, y = X[:8], y[:8]
    both, y2 = torch.cat([X, reverse_complement(X)]), torch.cat([y, y])
    tc = TrainConfig(strand_consistency=0.5)  # the regularizers at full weight from epoch 0
    # scanning one strand, the overlap term differs between a batch and its reverse complement (scanning both,
    # it is the same on each)
    for model in (ARGMINN(CFG.replace(scan_reverse_complement=False)), StandardCNN(CNNConfig(input_length=40))):
        model.eval()  # batch norm's running statistics: each row's logits do not depend on the rest of the batch
        with torch.no_grad():
            forward, reverse = model(X), model(reverse_complement(X))
            total, terms = regularized_loss(model, X, y, tc, epoch=0)
            # without the option, on the batch and its reverse complement: every other term the same
            off_total, off = regularized_loss(model, both, y2, tc.replace(strand_consistency=0.0), epoch=0)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(torch.cat([forward, reverse]), y2)
        strand = (forward - reverse).pow(2).mean()
        assert strand > 0 and torch.isclose(terms["strand"], strand) and torch.isclose(terms["task"], bce)
        assert "strand" not in off and set(terms) == set(off) | {"strand"}
        assert all(torch.equal(terms[k], off[k]) for k in off)
        assert set(off) == ({"task", "overlap", "l1", "entropy"} if isinstance(model, ARGMINN) else {"task"})
        assert torch.isclose(total, off_total + 0.5 * strand)
    tc = TrainConfig(max_epochs=2, batch_size=16, seed=3, strand_consistency=0.1)
    assert_reproducible_and_changed_by(tmp_path, tc, tc.replace(strand_consistency=0.0))
    assert "train_strand" in json.loads((tmp_path / "a" / "history.json").read_text())[0]


@pytest.mark.parametrize("architecture", ["ARGMINN", "CNN"])
def test_weight_decay_shrinks_every_parameter_but_the_scanners(architecture):
    """weight_decay 0: plain Adam. Above 0: AdamW, whose step without a gradient multiplies every parameter by
    (1 - lr * weight_decay), the motif scanner's (the filters read as motifs) aside."""
    from argminn_plugin import ARGMINN
    from argminn_plugin.baselines import CNNConfig, StandardCNN
    from argminn_plugin.train import make_optimizer

    torch.manual_seed(0)
    model = ARGMINN(CFG) if architecture == "ARGMINN" else StandardCNN(CNNConfig(input_length=CFG.input_length))
    assert type(make_optimizer(model, TrainConfig())) is torch.optim.Adam
    tc = TrainConfig(learning_rate=0.01, weight_decay=5.0)
    optimizer = make_optimizer(model, tc)
    assert type(optimizer) is torch.optim.AdamW
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    scanner = {id(p) for p in model.motif_conv.parameters()}
    assert scanner and len(scanner) < len(before)
    for n, p in model.named_parameters():
        factor = 1.0 if id(p) in scanner else 1 - 0.01 * 5.0
        assert torch.allclose(p.detach(), before[n] * factor), n


def test_weight_decay_trains_reproducibly_and_changes_the_run(tmp_path):
    tc = TrainConfig(max_epochs=2, batch_size=16, seed=3, weight_decay=0.5)
    assert_reproducible_and_changed_by(tmp_path, tc, tc.replace(weight_decay=0.0))


def test_a_run_with_shift_augmentation_resumes_identically(tmp_path, monkeypatch):
    """Killed while evaluating its second epoch and resumed, a shift-augmented run ends as an uninterrupted one."""
    import argminn_plugin.train as train_module

    real, calls = train_module._evaluate_sharded, []

    def evaluate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    tc = TrainConfig(max_epochs=3, batch_size=16, seed=3, shift_augment=5)
    whole, _ = train(CFG, tc, data(0), data(1), str(tmp_path / "whole"), verbose=False)
    monkeypatch.setattr(train_module, "_evaluate_sharded", evaluate)
    with pytest.raises(KeyboardInterrupt):
        train(CFG, tc, data(0), data(1), str(tmp_path / "cut"), verbose=False)
    monkeypatch.undo()
    assert len(json.load(open(tmp_path / "cut" / "history.json"))) == 1
    resumed, _ = train(CFG, tc, data(0), data(1), str(tmp_path / "cut"), resume=True, verbose=False)
    a, b = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_input_errors(tmp_path):
    X, y = data(0)
    with pytest.raises(ArgminnError, match="training labels: row 1, column 1: value 2.0 is not 0 or 1"):
        train(CFG, TrainConfig(max_epochs=1), (X, torch.full_like(y, 2.0)), data(1), str(tmp_path), verbose=False)
    with pytest.raises(ArgminnError, match="validation sequences: sequences are 30 bp but the model expects 40"):
        train(CFG, TrainConfig(max_epochs=1), (X, y), (X[:, :, :30], y), str(tmp_path), verbose=False)
    with pytest.raises(ArgminnError, match="2 task column"):
        train(CFG, TrainConfig(max_epochs=1), (X, y.repeat(1, 2)), (X, y.repeat(1, 2)), str(tmp_path),
              verbose=False)


def test_configs_check_types_on_construction_and_take_numpy_scalars(tmp_path):
    """Built directly (not only through from_dict), a config rejects mistyped values and makes numpy scalars
    plain values, so the model file written with it loads with weights_only."""
    import numpy as np

    for kwargs, message in ((dict(n_filters=8.5), "'n_filters' must be an integer, got 8.5"),
                            (dict(n_filters="8"), "'n_filters' must be an integer, got '8'"),
                            (dict(task_names="ab", n_tasks=2), "'task_names' must be a list, got 'ab'"),
                            (dict(batch_norm=1), "'batch_norm' must be true or false, got 1"),
                            (dict(memory_seed=-1), r"'memory_seed' must be in \[0, 2\*\*63\), got -1"),
                            (dict(memory_seed=2 ** 70), r"'memory_seed' must be in \[0, 2\*\*63\)"),
                            # predict writes a column per task name and one more per <name>_logit
                            (dict(task_names=["a\tb"]), r"'a\\tb' is not a task name"),
                            (dict(task_names=[" "]), "' ' is not a task name"),
                            (dict(task_names=["chrom"]), "'chrom' is not a task name"),
                            (dict(task_names=["x", "x"], n_tasks=2), "'x' is named twice"),
                            (dict(task_names=["x", "x_logit"], n_tasks=2), "'x_logit' is also the name of "
                                                                             "predict's logit column of task 'x'"),
                            # a layer norm over one value is a constant: a model blind to its input
                            (dict(token_dim=1), "'token_dim' must be >= 2"),
                            (dict(stream_dim=1), "'stream_dim' must be >= 2")):
        with pytest.raises(ArgminnError, match=message):
            ModelConfig(**kwargs)
    config = ModelConfig(input_length=np.int64(40), n_filters=np.int32(4), n_layers=1, n_heads=2, head_dim=8,
                         task_names=[np.str_("peak")], batch_norm=np.bool_(True))
    assert type(config.input_length) is int and config.task_names == ("peak",) and type(config.batch_norm) is bool
    tc = TrainConfig(max_epochs=1, batch_size=32, learning_rate=np.logspace(-4, -2, 3)[1])
    assert type(tc.learning_rate) is float
    model, _ = train(config, tc, data(0), data(1), str(tmp_path / "run"), verbose=False)
    assert load_model(str(tmp_path / "run" / "model.pt")).config == config
    assert "state_dict" in safe_load_torch(str(tmp_path / "run" / "last.pt"))  # the resume checkpoint loads
    # a finished run whose last.pt was removed cannot be continued and is not overwritten without force, with
    # or without resume, with or without warm-up candidates
    (tmp_path / "run" / "last.pt").unlink()
    kept = (tmp_path / "run" / "model.pt").read_bytes()
    for extra in ({}, {"warmup_candidates": 2, "overlap_warmup": 1, "l1_warmup": 1, "entropy_warmup": 1,
                       "max_epochs": 2}):
        for resume in (False, True):
            with pytest.raises(ArgminnError, match=r"holds a trained model \(model.pt, history.json\) without its "
                                                   r"checkpoint \(last.pt\), so it cannot be continued; pass --force"):
                train(config, tc.replace(**extra), data(0), data(1), str(tmp_path / "run"), resume=resume,
                      verbose=False)
    assert (tmp_path / "run" / "model.pt").read_bytes() == kept
    train(config, tc, data(0), data(1), str(tmp_path / "run"), force=True, verbose=False)
    # the same with only the command line's metrics.json beside it (last.pt and history.json removed)
    for name in ("last.pt", "history.json"):
        (tmp_path / "run" / name).unlink()
    (tmp_path / "run" / "metrics.json").write_text("{}")
    kept = (tmp_path / "run" / "model.pt").read_bytes()
    with pytest.raises(StartAgain, match=r"holds a trained model \(model.pt, metrics.json\) without its checkpoint"):
        train(config, tc, data(5), data(6), str(tmp_path / "run"), verbose=False)
    assert (tmp_path / "run" / "model.pt").read_bytes() == kept
    # its way out, force, removes every file of the old run first (its metrics.json too)
    train(config, tc, data(5), data(6), str(tmp_path / "run"), force=True, verbose=False)
    assert sorted(os.listdir(tmp_path / "run")) == ["history.json", "last.pt", "model.pt"]
    # a model.pt with no record of a run beside it starts again
    for name in ("last.pt", "history.json"):
        (tmp_path / "run" / name).unlink()
    train(config, tc, data(0), data(1), str(tmp_path / "run"), resume=True, verbose=False)
    assert (tmp_path / "run" / "last.pt").exists()


def test_evaluate_and_metrics_take_the_labels_and_inputs_train_takes():
    """evaluate and classification_metrics (tutorial 2) take labels as train() does, (N,) or (N, T), numpy or
    torch, int, bool or float, and tangermeme's int8 one-hot; every form gives the same numbers. The model
    is back in its own mode after; wrong shapes are one-line errors."""
    from argminn_plugin import ARGMINN
    from argminn_plugin.train import classification_metrics, evaluate

    torch.manual_seed(0)
    model = ARGMINN(ModelConfig(input_length=40, n_filters=3, filter_width=5, n_layers=1, n_heads=2, head_dim=8,
                                stream_dim=16, token_dim=8, pos_enc_dim=4)).train()
    X = random_onehot(30, 40, seed=5)
    y = (torch.arange(30) % 3 == 0).float()[:, None]
    running = model.norm.running_mean.clone()
    loss, probs = evaluate(model, X, y)
    assert model.training and probs.shape == (30, 1)
    assert torch.equal(model.norm.running_mean, running)  # run in eval mode: no statistics updated
    with torch.no_grad():
        assert torch.allclose(probs, torch.sigmoid(model.eval()(X)), atol=1e-6)
    model.train()

    class Wrapped(torch.nn.Module):  # as DistributedDataParallel holds a model: .module, no .config
        def __init__(self, inner):
            super().__init__()
            self.module = inner

        def forward(self, X):
            return self.module(X)

    wrapped_loss, wrapped = evaluate(Wrapped(model), X.to(torch.int8), y)
    assert wrapped_loss == pytest.approx(loss) and torch.equal(wrapped, probs) and model.training
    expected = classification_metrics(y, probs)
    assert 0 <= expected[0]["auroc"] <= 1
    for labels in (y[:, 0], y.numpy(), y[:, 0].numpy().astype(int), y.long(), y.bool(), y[:, 0].numpy() == 1,
                   list(y[:, 0].tolist())):
        other_loss, other = evaluate(model, X.to(torch.int8).numpy() if isinstance(labels, list) else X, labels)
        assert other_loss == pytest.approx(loss) and torch.equal(other, probs)
        assert classification_metrics(labels, probs[:, 0].numpy()) == expected
    assert classification_metrics(y.numpy(), probs.to(torch.bfloat16)) == classification_metrics(
        y, probs.to(torch.bfloat16).float())
    with pytest.raises(ArgminnError, match=r"labels: 29 rows but there are 30 sequences"):
        evaluate(model, X, y[1:])
    with pytest.raises(ArgminnError, match=r"labels: 2 column\(s\), but the model has 1 task\(s\)"):
        evaluate(model, X, torch.cat([y, y], 1))
    with pytest.raises(ArgminnError, match=r"scores of shape \(30, 2\) for labels of shape \(30, 1\)"):
        classification_metrics(y, torch.cat([probs, probs], 1))
    with pytest.raises(ArgminnError, match="value 2.0 is not 0 or 1"):
        classification_metrics(y * 2, probs)
    assert model.training


def test_labels_of_one_class_are_refused(tmp_path):
    X, y = data(0)
    y = torch.as_tensor(y).clone()
    two = torch.cat([y.reshape(len(y), -1), torch.ones(len(y), 1)], dim=1)
    with pytest.raises(ArgminnError, match=r"training labels: task 'task1' is 1 on every sequence; a classifier "
                                           "needs sequences of both labels"):
        train(CFG.replace(n_tasks=2), TrainConfig(max_epochs=1), (X, two), (X, two), str(tmp_path), verbose=False)
    assert not (tmp_path / "last.pt").exists()


def test_resume_with_other_config_is_refused(tmp_path):
    train(CFG, TrainConfig(max_epochs=1, batch_size=32), data(0), data(1), str(tmp_path), verbose=False)
    # a kill between last.pt and history.json leaves the latter behind: a resume writes it from last.pt
    full = (tmp_path / "history.json").read_text()
    (tmp_path / "history.json").write_text("[]")
    train(CFG, TrainConfig(max_epochs=1, batch_size=32), data(0), data(1), str(tmp_path), resume=True, verbose=False)
    assert (tmp_path / "history.json").read_text() == full
    with pytest.raises(ArgminnError, match=r"resume=True \(--resume\) continues the run there and force=True"):
        train(CFG, TrainConfig(max_epochs=1, batch_size=32), data(0), data(1), str(tmp_path), resume=True,
              force=True, verbose=False)
    with pytest.raises(ArgminnError, match="different model or training config"):
        train(CFG, TrainConfig(max_epochs=2, batch_size=16), data(0), data(1), str(tmp_path), resume=True,
              verbose=False)
    # the number of CPU threads is how the run executes, not what it trains: a resume may change it
    threads = torch.get_num_threads()
    try:
        _, history = train(CFG, TrainConfig(max_epochs=1, batch_size=32, num_threads=1), data(0), data(1),
                           str(tmp_path), resume=True, verbose=False)
    finally:
        torch.set_num_threads(threads)
    assert len(history) == 1
    # nor lr_patience while there is no decay; with a decay it changes the training
    _, history = train(CFG, TrainConfig(max_epochs=1, batch_size=32, lr_patience=7), data(0), data(1),
                       str(tmp_path), resume=True, verbose=False)
    assert len(history) == 1
    with pytest.raises(ArgminnError, match="different model or training config"):
        train(CFG, TrainConfig(max_epochs=1, batch_size=32, lr_decay=0.5), data(0), data(1), str(tmp_path),
              resume=True, verbose=False)
    with pytest.raises(ArgminnError, match=r"weight_decay 0\.0 -> 0\.1"):  # a decay changes the training too
        train(CFG, TrainConfig(max_epochs=1, batch_size=32, weight_decay=0.1), data(0), data(1), str(tmp_path),
              resume=True, verbose=False)
    # likewise resample_grace without resample_unused
    _, history = train(CFG, TrainConfig(max_epochs=1, batch_size=32, resample_grace=9), data(0), data(1),
                       str(tmp_path), resume=True, verbose=False)
    assert len(history) == 1
    # a checkpoint written before a TrainConfig key existed resumes as that key's default
    last = tmp_path / "last.pt"
    state = safe_load_torch(str(last))
    del state["train_config"]["overlap_units"]
    torch.save(state, last)
    _, history = train(CFG, TrainConfig(max_epochs=1, batch_size=32), data(0), data(1), str(tmp_path), resume=True,
                       verbose=False)  # not refused
    assert len(history) == 1


def test_resume_with_another_grace_is_refused_while_unused_filters_are_drawn(tmp_path):
    # with resample_unused on, resample_grace decides which filters are drawn again: a resume must keep it
    tc = TrainConfig(max_epochs=1, batch_size=32, overlap_ramp=2, resample_share=0.5, resample_until=2,
                     resample_unused=0.05, resample_grace=4)
    train(CFG, tc, data(0), data(1), str(tmp_path), verbose=False)
    with pytest.raises(ArgminnError, match="different model or training config"):
        train(CFG, tc.replace(resample_grace=3), data(0), data(1), str(tmp_path), resume=True, verbose=False)
    _, history = train(CFG, tc, data(0), data(1), str(tmp_path), resume=True, verbose=False)  # same: resumes
    assert len(history) == 1


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_tampered_model_file_does_not_run_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "model.pt"
    torch.save({"format": "argminn-model", "payload": Exploit()}, path, pickle_protocol=2)
    with pytest.raises(ArgminnError, match="not a valid ARGMINN model file") as caught:
        load_model(str(path))
    assert not (tmp_path / "pwned").exists()
    assert "weights_only" not in str(caught.value)  # torch's advice to load it unsafely is not passed on
    path.write_text(">chr1\nACGT\n")  # a FASTA given as the model
    with pytest.raises(ArgminnError, match="not a valid ARGMINN model file") as caught:
        load_model(str(path))
    assert "weights_only" not in str(caught.value)
    path.write_text("hello\n")  # text torch reads as a pickle: its bare key error (a number) is explained
    with pytest.raises(ArgminnError, match=r"not a valid ARGMINN model file .*: not a torch file \(KeyError \d+ "
                                           r"while reading it\)$"):
        load_model(str(path))
    path.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(ArgminnError, match="not a valid ARGMINN model file|not an ARGMINN model file"):
        load_model(str(path))
    torch.save({"format": "something-else"}, path)
    with pytest.raises(ArgminnError, match="not an ARGMINN model file"):
        load_model(str(path))


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("finished work")
    with pytest.raises(RuntimeError):
        with atomic_write(str(path), force=True) as handle:
            handle.write("half")
            raise RuntimeError("killed")
    assert path.read_text() == "finished work"
    assert os.listdir(tmp_path) == ["out.txt"]
    with pytest.raises(ArgminnError, match="output exists"):
        with atomic_write(str(path)) as handle:
            handle.write("x")
    with pytest.raises(ArgminnError, match="model file not found"):
        safe_load_torch(str(tmp_path / "none.pt"))
    with pytest.raises(ArgminnError, match="is a directory; give the model file in it"):
        safe_load_torch(str(tmp_path))


def test_atomic_write_through_links_refuses_pipes_keeps_modes_and_replaces_no_file_made_meanwhile(tmp_path,
                                                                                                  monkeypatch):
    """A replaced file keeps its permissions (a set's too); a symbolic link is written through (was: replaced by a
    file); a pipe or /dev/stdout is refused up front, with or without force (was: 'output exists', and with force
    replaced by a file); a name of up to 255 bytes gets a scratch file of a name the file system takes, cut at a
    whole character (was: 'File name too long', naming the scratch file); without force, a file made at the output
    while it is written is not replaced (was: overwritten), also where the file system has no hard links."""
    from argminn_plugin.fileio import check_writable, scratch_prefix
    from argminn_plugin.motifs import write_meme

    private = tmp_path / "private.txt"
    private.write_text("old")
    private.chmod(0o600)
    with atomic_write(str(private), force=True) as handle:
        handle.write("new")
    assert private.read_text() == "new" and stat.S_IMODE(private.stat().st_mode) == 0o600
    with output_set(str(tmp_path), ["private.txt"], force=True) as stage:
        with atomic_write(stage["private.txt"], force=True) as handle:
            handle.write("set")
    assert private.read_text() == "set" and stat.S_IMODE(private.stat().st_mode) == 0o600
    real, link = tmp_path / "real.txt", tmp_path / "link.txt"
    real.write_text("old")
    link.symlink_to(real)
    with atomic_write(str(link), force=True) as handle:
        handle.write("new")
    assert link.is_symlink() and real.read_text() == "new"
    write_meme(str(link), {"m": np.full((4, 3), 0.25)}, force=True)  # memelite's scratch: beside the real file
    assert link.is_symlink() and real.read_text().startswith("MEME")
    with pytest.raises(ArgminnError, match=re.escape(f"{link}: output exists; pass --force")):
        with atomic_write(str(link)) as handle:
            handle.write("x")
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/stdout"):
        for force in (False, True):
            with pytest.raises(ArgminnError, match=re.escape(f"{path}: is a pipe or device, not a file")):
                check_writable(path, force)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    # a directory's name (made or not), or a name longer than the file system takes: refused before any work
    for path in (str(tmp_path / "new_dir") + "/", str(tmp_path) + "/"):
        with pytest.raises(ArgminnError, match=re.escape(f"{path}: ") + "(ends in '/', as a directory's name does"
                                                                         "|is a directory)"):
            check_writable(path, True)
    with pytest.raises(ArgminnError, match="a file name of 300 bytes; this file system takes at most 255"):
        check_writable(str(tmp_path / "no_dir" / ("q" * 296 + ".tsv")))
    with pytest.raises(ArgminnError, match="a file name of 256 bytes"):  # bytes, not characters (130 of them)
        check_writable(str(tmp_path / ("\u00e9" * 126 + ".tsv")))
    assert not (tmp_path / "new_dir").exists() and not (tmp_path / "no_dir").exists()
    long = tmp_path / ("p" * 251 + ".tsv")  # 255 bytes: the longest name there is
    check_writable(str(long))
    check_writable(long)  # a pathlib.Path too
    with atomic_write(str(long)) as handle:
        handle.write("x")
    assert long.read_text() == "x"
    write_meme(str(tmp_path / ("m" * 250 + ".meme")), {"m": np.full((4, 3), 0.25)})
    assert scratch_prefix("a" + "\u00e9" * 120) == "." + "a" + "\u00e9" * 99 + "."  # 199 bytes, not half an \u00e9
    # without force: a file another writer puts there meanwhile stays, and this write is an error
    late = tmp_path / "late.txt"
    with pytest.raises(ArgminnError, match=re.escape(f"{late}: output exists (made while this one was written)")):
        with atomic_write(str(late)) as handle:
            handle.write("ours")
            late.write_text("theirs")
    assert late.read_text() == "theirs"

    def no_links(*args):
        raise PermissionError("no hard links here")

    monkeypatch.setattr(os, "link", no_links)  # (some network file systems): the rename, after one more look
    with atomic_write(str(tmp_path / "plain.txt")) as handle:
        handle.write("x")
    assert (tmp_path / "plain.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no scratch left


def test_output_set_writes_all_or_none_and_a_ctrl_c_during_the_renames_waits_for_them(tmp_path, monkeypatch):
    import signal

    names = ["a.txt", "b.txt", "c.txt"]
    paths = [os.path.join(str(tmp_path), name) for name in names]
    with pytest.raises(RuntimeError):  # fails after two of three are written: none is left
        with output_set(str(tmp_path), names) as stage:
            for name in names[:2]:
                with open(stage[name], "w") as handle:
                    handle.write("new")
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []
    for path in paths:
        with open(path, "w") as handle:
            handle.write("old")
    with pytest.raises(ArgminnError, match="output exists"):
        with output_set(str(tmp_path), names):
            pass
    # a Ctrl-C, or a SIGTERM (here with a handler that raises, as the command line sets), right after the first
    # rename waits for the others: the whole new set, then the interrupt

    class Stop(Exception):
        pass

    def stop(signum, frame):
        raise Stop()

    real_replace = os.replace
    previous = signal.signal(signal.SIGTERM, stop)
    # Python's own Ctrl-C handler, which a test run started in the background by a non-interactive shell
    # does not have (SIGINT is ignored there from the start)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for signum, raised, text in ((signal.SIGINT, KeyboardInterrupt, "new"), (signal.SIGTERM, Stop, "newer")):
            handler, renamed = signal.getsignal(signum), []

            def replace(source, target, signum=signum, renamed=renamed):
                real_replace(source, target)
                renamed.append(target)
                if len(renamed) == 1:
                    os.kill(os.getpid(), signum)

            monkeypatch.setattr(os, "replace", replace)
            with pytest.raises(raised):
                with output_set(str(tmp_path), names, force=True) as stage:
                    for name in names:
                        with open(stage[name], "w") as handle:
                            handle.write(text)
            monkeypatch.undo()
            assert renamed == paths and sorted(os.listdir(tmp_path)) == ["a.txt", "b.txt", "c.txt"]
            assert [open(path).read() for path in paths] == [text] * 3
            assert signal.getsignal(signum) is handler
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def test_last_batch_of_one_row_is_skipped_and_one_row_is_refused(tmp_path):
    """Batch norm cannot train on one row: a last batch of one row is dropped (ExplaiNN's
    per-unit batch norm would fail on it), and a one-row training set is a clear error."""
    from argminn_plugin.baselines import ExplaiNNConfig

    cfg = ExplaiNNConfig(input_length=40, n_units=2, filter_width=5, pool=4, hidden=4)
    X = random_onehot(33, 40, seed=1)  # batches of 16: 16 + 16 + 1
    y = (X[:, 0].sum(1) > 10).float()[:, None]
    tc = TrainConfig(max_epochs=1, batch_size=16, seed=0)
    model, history = train(cfg, tc, (X, y), (X[:8], y[:8]), str(tmp_path / "a"), verbose=False)
    assert len(history) == 1 and type(model).__name__ == "ExplaiNN"
    with pytest.raises(ArgminnError, match="training data has 1 row"):
        train(cfg, tc, (X[:1], y[:1]), (X[:8], y[:8]), str(tmp_path / "b"), verbose=False)


def test_early_stopping_waits_for_the_regularizers(tmp_path, monkeypatch):
    """While a regularizer warms up, no epoch can become the best model for good nor use up patience:
    the best model is chosen among epochs where every regularizer is at full weight."""
    import argminn_plugin.train as train_module

    real = train_module._evaluate_sharded
    losses = iter([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])  # validation only gets worse

    def worsening(*args, **kwargs):
        return next(losses), real(*args, **kwargs)[1]

    monkeypatch.setattr(train_module, "_evaluate_sharded", worsening)
    tc = TrainConfig(max_epochs=6, batch_size=16, patience=1, overlap_warmup=2, overlap_ramp=1)
    assert tc.settled_epoch == 4
    _, history = train(CFG, tc, data(0), data(1), str(tmp_path / "run"), verbose=False)
    state = safe_load_torch(str(tmp_path / "run" / "last.pt"))
    assert state["stop"]["best_epoch"] == 4  # the first epoch at full weight, not epoch 1
    assert len(history) == 5  # patience counted from epoch 4 on
    assert TrainConfig().settled_epoch == 1  # no warm-up: early stopping as before


def test_learning_rate_decays_on_a_plateau_and_resumes_identically(tmp_path, monkeypatch):
    """With lr_decay < 1, every lr_patience epochs in a row without a better validation loss (counted once the
    regularizers are at full weight) halve the learning rate; it is saved with the optimizer, so a resumed
    run decays at the same epochs and ends with the same weights."""
    import argminn_plugin.train as train_module

    real = train_module._evaluate_sharded
    # epochs 1-2 warm up (worse losses there count for nothing), 3 best, 4 worse, 5 best (the count starts
    # again), 6-7 worse -> decay after 7 (the count starts again), 8-9 worse -> decay after 9, 10 best
    script = [5.0, 6.0, 1.0, 1.1, 0.9, 0.95, 0.97, 0.98, 0.99, 0.85]

    def run(out, crash_at=None):
        calls = []

        def evaluate(*args, **kwargs):
            calls.append(1)
            if len(calls) == crash_at:
                raise KeyboardInterrupt
            epoch = len(saved_history(out))  # the epoch being evaluated (0-based): those saved so far
            return script[epoch], real(*args, **kwargs)[1]

        monkeypatch.setattr(train_module, "_evaluate_sharded", evaluate)
        return train(CFG, tc, data(0), data(1), out, resume=crash_at is None and os.path.exists(out),
                     verbose=False)

    def saved_history(out):
        path = os.path.join(out, "history.json")
        if not os.path.exists(path):
            return []
        with open(path) as handle:
            return json.load(handle)

    tc = TrainConfig(max_epochs=10, batch_size=16, patience=10, l1_warmup=2, lr_decay=0.5, lr_patience=2)
    assert tc.settled_epoch == 3
    whole_dir = str(tmp_path / "whole")
    whole, history = run(whole_dir)
    decays = {h["epoch"]: h["learning_rate"] for h in history if "learning_rate" in h}
    assert decays == {7: 5e-4, 9: 2.5e-4}
    state = safe_load_torch(os.path.join(whole_dir, "last.pt"))
    assert all(group["lr"] == 2.5e-4 for group in state["optimizer"]["param_groups"])
    assert state["stop"]["best_epoch"] == 10
    # killed while evaluating epoch 9 (after epoch 8, one epoch into a plateau), then resumed
    cut_dir = str(tmp_path / "cut")
    with pytest.raises(KeyboardInterrupt):
        run(cut_dir, crash_at=9)
    resumed, resumed_history = run(cut_dir)
    assert [h.get("learning_rate") for h in resumed_history] == [h.get("learning_rate") for h in history]
    a, b = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # off by default, and the settings are checked
    assert TrainConfig().lr_decay == 1.0
    for bad in ({"lr_decay": 0.0}, {"lr_decay": 1.5}, {"lr_patience": 0}):
        with pytest.raises(ArgminnError, match=list(bad)[0]):
            TrainConfig(**bad)


def test_diverging_training_is_a_clear_error(tmp_path, monkeypatch):
    """A NaN loss ends training with an error naming the epoch, the loss and the learning rate, not a NaN
    error from the metrics; the checkpoints of the epochs before are kept."""
    import argminn_plugin.train as train_module

    real, losses = train_module._evaluate_sharded, iter([0.5, float("nan")])

    def diverging(*args, **kwargs):
        return next(losses), real(*args, **kwargs)[1]

    monkeypatch.setattr(train_module, "_evaluate_sharded", diverging)
    run = tmp_path / "run"
    with pytest.raises(StartAgain, match=r"epoch 2: the validation loss is nan: training diverged at learning "
                                           r"rate 0.001; train again \(--force\) with a lower 'learning_rate'"):
        train(CFG, TrainConfig(max_epochs=3, batch_size=16), data(0), data(1), str(run), verbose=False)
    assert safe_load_torch(str(run / "last.pt"))["epoch"] == 0 and (run / "model.pt").exists()
    monkeypatch.setattr(train_module, "_evaluate_sharded", real)
    with pytest.raises(ArgminnError, match=r"epoch 1: the training loss is (nan|inf)"):
        train(CFG, TrainConfig(max_epochs=2, batch_size=16, learning_rate=1e6), data(0), data(1),
              str(tmp_path / "run2"), verbose=False)


def test_best_of_several_warmups_is_the_chosen_seeds_own_run(tmp_path):
    """warmup_candidates=3 trains three warm-ups (seeds S, S + 1000, S + 2000), continues the one with the
    lowest validation loss, and ends with exactly the weights and history of a plain run from that seed;
    a resumed run reuses the finished candidates and continues the main run."""
    base = dict(max_epochs=4, batch_size=16, overlap_warmup=2, l1_warmup=2, entropy_warmup=2, seed=5)
    tc = TrainConfig(**base, warmup_candidates=3)
    assert tc.warmup_epochs == 2
    out = tmp_path / "best"
    model, history = train(CFG, tc, data(0), data(1), str(out), verbose=False)
    with open(out / "warmup_candidates.json") as handle:
        record = json.load(handle)
    losses = {c["seed"]: c["val_loss"] for c in record["candidates"]}
    assert sorted(losses) == [5, 1005, 2005] and record["warmup_epochs"] == 2
    assert record["chosen_seed"] == min(losses, key=losses.get) != 5  # this data: not the first candidate
    for seed in losses:
        assert len(json.load(open(out / "warmup_candidates" / f"seed{seed}" / "history.json"))) == 2
    plain, plain_history = train(CFG, TrainConfig(**{**base, "seed": record["chosen_seed"]}), data(0), data(1),
                                 str(tmp_path / "plain"), verbose=False)
    assert [h["val_loss"] for h in history] == [h["val_loss"] for h in plain_history]
    a, b = model.state_dict(), plain.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert safe_load_torch(str(out / "last.pt"))["train_config"]["seed"] == record["chosen_seed"]
    assert run_train_config(str(out)) == tc  # the config asked for, rebuilt from the record
    assert run_train_config(str(tmp_path / "plain")).seed == record["chosen_seed"]
    # resumed: the candidates are reused, the main run goes on (here: it is finished)
    _, again = train(CFG, tc, data(0), data(1), str(out), resume=True, verbose=False)
    assert [h["val_loss"] for h in again] == [h["val_loss"] for h in history]
    # resumed with another seed: refused before any candidate trains (none of its candidates exists)
    with pytest.raises(ArgminnError, match="different model or training config"):
        train(CFG, tc.replace(seed=6), data(0), data(1), str(out), resume=True, verbose=False)
    assert sorted(os.listdir(out / "warmup_candidates")) == ["main_run.json", "seed1005", "seed2005", "seed5"]
    assert run_train_config(str(out)) == tc
    # a damaged warm-up record: one line naming it, not a traceback
    text = (out / "warmup_candidates.json").read_text()
    for damaged, message in (('{"chosen_seed": 5, "candidates": [', "not a readable warm-up record (line 1: not "
                                                                    "valid JSON"),
                             ("[1, 2]", "not a readable warm-up record (a JSON object is expected, got list)"),
                             ('{"chosen_seed": 5, "candidates": [3]}', "its 'candidates' must be a list of objects "
                                                                       "with a 'seed')")):
        (out / "warmup_candidates.json").write_text(damaged)
        with pytest.raises(StartAgain, match=re.escape(message) + ".*; start the run again with --force$"):
            run_train_config(str(out))
    (out / "warmup_candidates.json").write_text(text)
    # a plain run from that seed resumed as if it had been this best of three: refused, naming both
    chosen = record["chosen_seed"]
    with pytest.raises(ArgminnError, match=f"started with warmup_candidates=1 from seed {chosen}, not 3 from seed "
                                           f"{chosen}"):
        train(CFG, tc.replace(seed=chosen), data(0), data(1), str(tmp_path / "plain"), resume=True, verbose=False)
    assert not (tmp_path / "plain" / "warmup_candidates").exists()
    # an existing run is not overwritten without --force; with it, the candidates are trained again
    with pytest.raises(StartAgain, match="holds a training run already"):
        train(CFG, tc, data(0), data(1), str(out), verbose=False)
    forced, _ = train(CFG, tc, data(0), data(1), str(out), force=True, verbose=False)
    assert all(torch.equal(a[k], forced.state_dict()[k]) for k in a)
    # a plain run started over it drops the warm-up record, which would describe the run before
    train(CFG, TrainConfig(**base), data(0), data(1), str(out), force=True, verbose=False)
    assert not (out / "warmup_candidates.json").exists() and run_train_config(str(out)) == TrainConfig(**base)
    # the settings are checked
    for bad, match in (({"warmup_candidates": 0}, "'warmup_candidates' must be >= 1"),
                       ({"warmup_candidates": 2}, "needs a warm-up of at least one epoch"),
                       ({"warmup_candidates": 2, "overlap_warmup": 3, "l1_warmup": 3, "entropy_warmup": 3,
                         "max_epochs": 3}, r"now 3 epoch\(s\), max_epochs 3\); set 'warmup_candidates=1'")):
        with pytest.raises(ArgminnError, match=match):
            TrainConfig(**bad)


def test_a_forced_run_killed_early_is_never_resumed_as_the_run_it_replaced(tmp_path, monkeypatch):
    """--force removes the old run's files before anything trains: killed in its first epoch, the new run
    resumes as a new run on its own data, not as the old run (which had the same settings)."""
    import argminn_plugin.train as train_module

    tc = TrainConfig(max_epochs=2, batch_size=16)
    out = tmp_path / "run"
    old, _ = train(CFG, tc, data(0), data(1), str(out), verbose=False)
    (out / "metrics.json").write_text("{}")  # the CLI's, of the old run
    real = train_module.regularized_loss

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "regularized_loss", killed)
    with pytest.raises(KeyboardInterrupt):
        train(CFG, tc, data(5), data(6), str(out), force=True, verbose=False)
    assert os.listdir(out) == []
    monkeypatch.setattr(train_module, "regularized_loss", real)
    resumed, history = train(CFG, tc, data(5), data(6), str(out), resume=True, verbose=False)
    fresh, fresh_history = train(CFG, tc, data(5), data(6), str(tmp_path / "fresh"), verbose=False)
    assert len(history) == 2 and [h["val_loss"] for h in history] == [h["val_loss"] for h in fresh_history]
    assert all(torch.equal(resumed.state_dict()[k], fresh.state_dict()[k]) for k in fresh.state_dict())
    # with warm-up candidates, the old candidates go too: none is reused by the new run's resume
    warm = TrainConfig(max_epochs=3, batch_size=16, overlap_warmup=1, l1_warmup=1, entropy_warmup=1,
                       warmup_candidates=2)
    train(CFG, warm, data(0), data(1), str(out), force=True, verbose=False)
    assert sorted(os.listdir(out / "warmup_candidates")) == ["main_run.json", "seed0", "seed1000"]
    monkeypatch.setattr(train_module, "regularized_loss", killed)
    with pytest.raises(KeyboardInterrupt):
        train(CFG, warm, data(5), data(6), str(out), force=True, verbose=False)
    assert not (out / "last.pt").exists() and sorted(os.listdir(out / "warmup_candidates")) == ["main_run.json",
                                                                                                 "seed0"]
    assert os.listdir(out / "warmup_candidates" / "seed0") == []


def test_resume_reads_a_checkpoint_from_before_a_model_config_key_existed(tmp_path):
    tc = TrainConfig(max_epochs=1, batch_size=32)
    train(CFG, tc, data(0), data(1), str(tmp_path), verbose=False)
    last = tmp_path / "last.pt"
    state = safe_load_torch(str(last))
    del state["model_config"]["attention_sink"]  # a key added after this checkpoint was written
    torch.save(state, last)
    _, history = train(CFG, tc, data(0), data(1), str(tmp_path), resume=True, verbose=False)
    assert len(history) == 1
    state["model_config"]["n_filters"] = 4  # another model is still refused
    torch.save(state, last)
    with pytest.raises(ArgminnError, match="different model or training config"):
        train(CFG, tc, data(0), data(1), str(tmp_path), resume=True, verbose=False)


@pytest.mark.parametrize("labels", [["0", "1"] * 32, None, [[0, 1]] * 32 + [[1]] * 32, "ab"])
def test_labels_that_are_not_numbers_are_one_line_errors(tmp_path, labels):
    with pytest.raises(ArgminnError, match="training labels: expected numeric 0/1 labels of shape"):
        train(CFG, TrainConfig(max_epochs=1), (data(0)[0], labels), data(1), str(tmp_path), verbose=False)


def test_labels_that_require_grad_are_taken(tmp_path):
    X, y = data(0)
    _, history = train(CFG, TrainConfig(max_epochs=1, batch_size=32), (X, y.clone().requires_grad_()), data(1),
                       str(tmp_path), verbose=False)
    assert len(history) == 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=1), "'batch_size' must be >= 2"),
    (dict(seed=-1), r"'seed' must be in \[0, 2\*\*62\)"),
    (dict(seed=2 ** 64), r"'seed' must be in \[0, 2\*\*62\)"),
    (dict(num_threads=-2), "'num_threads' must be >= 0"),
    (dict(patience=0), "'patience' must be >= 1"),
    (dict(min_delta=-1.0), "'min_delta' must be >= 0"),
    (dict(shift_augment=-1), "'shift_augment' must be >= 0"),
    (dict(strand_consistency=-0.1), "'strand_consistency' must be >= 0"),
    (dict(strand_consistency=float("inf")), "key 'strand_consistency' must be a finite number"),
    (dict(weight_decay=-0.1), r"'weight_decay' must be >= 0 \(0: off\) and below 1 / learning_rate \(1000\)"),
    (dict(weight_decay=2000.0, learning_rate=5e-4), r"below 1 / learning_rate \(2000\), got 2000"),
    (dict(learning_rate=float("nan")), "key 'learning_rate' must be a finite number, got nan"),
    (dict(overlap_weight=float("nan")), "key 'overlap_weight' must be a finite number"),
    (dict(entropy_weight=float("inf")), "key 'entropy_weight' must be a finite number"),
])
def test_train_config_refuses_settings_that_cannot_train(kwargs, message):
    with pytest.raises(ArgminnError, match=message):
        TrainConfig(**kwargs)


def test_an_undefined_auroc_is_null_in_the_json_files(tmp_path):
    """Validation rows of one class: the auROC is undefined (NaN in Python), written as null, strict JSON."""
    import math

    X, y = data(1)
    _, history = train(CFG, TrainConfig(max_epochs=1, batch_size=32), data(0), (X, torch.zeros_like(y)),
                       str(tmp_path), verbose=False)
    assert math.isnan(history[0]["val_auroc"])
    saved = json.loads((tmp_path / "history.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert saved[0]["val_auroc"] is None and saved[0]["val_loss"] == history[0]["val_loss"]


def test_resume_without_the_best_model_is_refused_before_training(tmp_path):
    tc = TrainConfig(max_epochs=1, batch_size=32, patience=10)
    train(CFG, tc, data(0), data(1), str(tmp_path), verbose=False)
    os.remove(tmp_path / "model.pt")
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(ArgminnError, match="last.pt without model.pt"):
        train(CFG, tc.replace(max_epochs=3), data(0), data(1), str(tmp_path), resume=True, verbose=False)
    assert (tmp_path / "last.pt").read_bytes() == before
    assert len(json.loads((tmp_path / "history.json").read_text())) == 1


def test_a_resumed_run_may_train_to_a_larger_max_epochs(tmp_path):
    """max_epochs only says where a run stops: resumed with a larger one, a run ends as one started with it
    (with warm-up candidates too); a smaller one than the epochs trained is refused, and so is another one for a
    run whose training ended (early stopping, or a pruning phase begun)."""
    base = dict(batch_size=16, overlap_warmup=1, l1_warmup=1, entropy_warmup=1, patience=10)
    for extra in ({}, {"warmup_candidates": 2}):
        short, long = TrainConfig(max_epochs=3, **base, **extra), TrainConfig(max_epochs=5, **base, **extra)
        out = tmp_path / f"run{len(extra)}"
        train(CFG, short, data(0), data(1), str(out), verbose=False)
        (out / "metrics.json").write_text('{"test": {}}')  # what argminn train writes at the end of the first
        resumed, history = train(CFG, long, data(0), data(1), str(out), resume=True, verbose=False)
        assert not (out / "metrics.json").exists()  # that end's metrics are not left beside this run's model
        (out / "metrics.json").write_text('{"test": {}}')
        whole, whole_history = train(CFG, long, data(0), data(1), str(tmp_path / f"whole{len(extra)}"),
                                     verbose=False)
        assert [h["val_loss"] for h in history] == [h["val_loss"] for h in whole_history] and len(history) == 5
        assert all(torch.equal(resumed.state_dict()[k], whole.state_dict()[k]) for k in whole.state_dict())
        assert run_train_config(str(out)) == long
        with pytest.raises(ArgminnError, match="max_epochs 4: the run has trained 5 epochs already"):
            train(CFG, long.replace(max_epochs=4), data(0), data(1), str(out), resume=True, verbose=False)
        assert (out / "metrics.json").exists()  # a refused resume changes nothing
    stopped = TrainConfig(max_epochs=20, batch_size=16, patience=1, min_delta=10.0)  # stops at epoch 2
    _, history = train(CFG, stopped, data(0), data(1), str(tmp_path / "stopped"), verbose=False)
    assert len(history) == 2
    with pytest.raises(ArgminnError, match="ended after epoch 2 by early stopping, so another max_epochs does not"):
        train(CFG, stopped.replace(max_epochs=30), data(0), data(1), str(tmp_path / "stopped"), resume=True)
    _, again = train(CFG, stopped, data(0), data(1), str(tmp_path / "stopped"), resume=True, verbose=False)
    assert len(again) == 2
    # with pruning after training, reaching max_epochs starts the pruning phase: training is over there too
    pruned = TrainConfig(max_epochs=2, batch_size=16, prune_minor=0.3)
    train(CFG, pruned, data(0), data(1), str(tmp_path / "pruned"), verbose=False)
    with pytest.raises(ArgminnError, match="ended after epoch 2 and its pruning phase began"):
        train(CFG, pruned.replace(max_epochs=4), data(0), data(1), str(tmp_path / "pruned"), resume=True)


KILLED_WRITER = """
import os, signal, sys, time
from argminn_plugin.fileio import atomic_write, output_set
d, how = sys.argv[1], sys.argv[2]
if how == "file":  # killed inside an atomic write
    with atomic_write(os.path.join(d, "c.txt"), force=True) as handle:
        handle.write("half")
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
with output_set(d, ["a.txt", "b.txt"], force=True) as stage:
    with open(stage["a.txt"], "w") as handle:
        handle.write("new")
    with atomic_write(stage["b.txt"], force=True) as handle:  # a staged file written atomically
        handle.write("half")
        handle.flush()
        if how == "set":
            os.kill(os.getpid(), signal.SIGKILL)
        print("writing", flush=True)
        sys.stdin.readline()  # alive, writing, until told to go on
"""


def test_scratch_left_by_a_killed_writer_is_removed_by_the_next_write_and_a_live_writers_is_not(tmp_path):
    """A SIGKILL inside an atomic write or an output set leaves hidden scratch files; the next write beside them
    removes them once they are ABANDONED_AFTER seconds old (a fresh one may be a writer's first moment), and never
    those a live process is writing."""
    import subprocess
    import sys
    import time

    from argminn_plugin import fileio
    from argminn_plugin.motifs import write_meme

    def run(how, **kwargs):
        return subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path), how], text=True, **kwargs)

    def hidden():
        return sorted(name for name in os.listdir(tmp_path) if name.startswith("."))

    def age():  # every scratch file as old as the limit
        then = time.time() - fileio.ABANDONED_AFTER - 1
        for name in hidden():
            os.utime(tmp_path / name, (then, then))

    for how in ("file", "set"):
        assert run(how).wait() == -9
    left = hidden()
    # the plain write's scratch; the set's lock, its staged a.txt and the scratch of its staged b.txt
    assert len(left) == 4 and sum(re.fullmatch(r"\.c\.txt\.[a-z0-9_]{8}\.tmp", n) is not None for n in left) == 1
    assert sum(re.fullmatch(r"\.[0-9a-f]{8}\.partial", n) is not None for n in left) == 1
    with atomic_write(str(tmp_path / "c.txt")) as handle:  # fresh: may be a writer between making and locking
        handle.write("c")
    with output_set(str(tmp_path), ["a.txt"]) as stage:
        with open(stage["a.txt"], "w") as handle:
            handle.write("a")
    assert hidden() == left
    (tmp_path / "c.txt").unlink()
    (tmp_path / "a.txt").unlink()
    # a live writer (holding its set, writing b.txt) beside the abandoned files, all as old as the limit
    live = run("live", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert live.stdout.readline() == "writing\n"
        writing = sorted(set(hidden()) - set(left))
        assert len(writing) == 3  # its lock, its staged a.txt, the scratch of its staged b.txt
        age()
        with atomic_write(str(tmp_path / "c.txt")) as handle:
            handle.write("c")
        with output_set(str(tmp_path), ["a.txt"]) as stage:
            with open(stage["a.txt"], "w") as handle:
                handle.write("a")
        assert hidden() == writing  # the killed writers' scratch is gone, the live writer's is not
        live.stdin.write("go on\n")
        live.stdin.close()
        assert live.wait(timeout=60) == 0
    finally:
        live.kill()
        live.wait()
    assert hidden() == [] and (tmp_path / "a.txt").read_text() == "new" and (tmp_path / "b.txt").read_text() == "half"
    # write_meme's scratch (memelite writes a file by its name) and a killed export's staging directory
    (tmp_path / ".m.meme.abcd_123.memelite.tmp").write_text("half")
    (tmp_path / ".export-abcd_123.tmp").mkdir()
    (tmp_path / ".export-abcd_123.tmp" / "model.yaml").write_text("half")
    age()
    write_meme(str(tmp_path / "m.meme"), {"x": np.full((4, 3), 0.25)}, force=True)
    fileio.remove_abandoned(str(tmp_path), r"\.export-" + fileio.MKSTEMP_PART + r"\.tmp")
    assert hidden() == []


def test_a_writers_scratch_stays_held_between_closing_and_renaming(tmp_path, monkeypatch):
    """atomic_write keeps its scratch file held until the rename: another write of the same output in between (the
    file aged past ABANDONED_AFTER, as after a slow fsync) leaves it alone, and both writes land."""
    import time

    from argminn_plugin import fileio

    real_replace, seen = os.replace, []

    def replace(source, target):
        if not seen:
            seen.append(source)
            then = time.time() - fileio.ABANDONED_AFTER - 1
            os.utime(source, (then, then))
            with atomic_write(target, force=True) as handle:  # another writer of the same output, meanwhile
                handle.write("second")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with atomic_write(str(tmp_path / "out.txt")) as handle:
        handle.write("first")
    monkeypatch.undo()
    assert (tmp_path / "out.txt").read_text() == "first" and os.listdir(tmp_path) == ["out.txt"]


@contextlib.contextmanager
def _held_elsewhere(path):
    """``path`` held (fileio.hold_directory) by another thread, as by a training in another process, in the
    block (a thread's own holds are re-entrant)."""
    import threading

    from argminn_plugin.fileio import hold_directory, release_directory

    ready, done, box = threading.Event(), threading.Event(), []

    def hold():
        box.append(hold_directory(path, "held"))
        ready.set()
        done.wait()
        release_directory(box[0])
    thread = threading.Thread(target=hold)
    thread.start()
    ready.wait()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _free_elsewhere(path):
    """Whether another thread (as another process) could hold ``path`` now."""
    import threading

    from argminn_plugin.fileio import hold_directory, release_directory

    box = []

    def probe():
        try:
            release_directory(hold_directory(path, "held"))
            box.append(True)
        except ArgminnError:
            box.append(False)
    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return box[0]


def test_a_second_training_into_a_run_directory_in_use_is_refused(tmp_path, monkeypatch):
    """While a training holds its run directory, another training into it (even with force) is refused before it
    writes anything; once the first ends, the directory is free again. A refused run leaves no directory it made."""
    tc = TrainConfig(max_epochs=1, batch_size=16)
    out = tmp_path / "run"
    with _held_elsewhere(str(out)):  # as a training in another process holds it
        with pytest.raises(ArgminnError, match=re.escape(f"{out}: another training is writing this run directory "
                                                         "now; wait for it to end, or give another --out")):
            train(CFG, tc, data(0), data(1), str(out), force=True, verbose=False)
        assert os.listdir(out) == []
    train(CFG, tc, data(0), data(1), str(out), verbose=False)
    assert (out / "model.pt").exists()
    import argminn_plugin.train as train_module

    def fails(*args, **kwargs):
        raise RuntimeError("failed before writing")
    monkeypatch.setattr(train_module, "_train", fails)
    with pytest.raises(RuntimeError, match="failed before writing"):
        train(CFG, tc, data(0), data(1), str(tmp_path / "new"), verbose=False)
    assert not (tmp_path / "new").exists()
    monkeypatch.undo()
    # another training that makes and holds the directory first, between this one's look and its hold: this one
    # is refused and leaves the other's directory alone
    real_hold, other = train_module.hold_directory, contextlib.ExitStack()

    def hold_after_another(path, held_by):
        other.enter_context(_held_elsewhere(path))
        return real_hold(path, held_by)
    monkeypatch.setattr(train_module, "hold_directory", hold_after_another)
    with other:
        with pytest.raises(ArgminnError, match="another training is writing"):
            train(CFG, tc, data(0), data(1), str(tmp_path / "raced"), verbose=False)
        assert (tmp_path / "raced").is_dir()


def test_argminn_train_holds_its_run_over_the_training_and_its_scores(tmp_path, monkeypatch):
    """argminn train's scores (metrics.json) are computed and written while the run directory is still held: a
    training started meanwhile cannot put its model.pt beside them."""
    import argminn_plugin.train as train_module
    from argminn_plugin.cli import main

    assert main(["simulate", "--out", str(tmp_path / "data"), "--set", "n_train=200", "--set", "n_valid=60",
                 "--set", "n_test=60", "--set", "length=60", "--set", "spacing=10"]) == 0
    real_evaluate, seen = train_module.evaluate, []

    def evaluate(model, X, y, *args, **kwargs):  # a second training trying its hold at each evaluation
        seen.append("free" if _free_elsewhere(str(tmp_path / "run")) else "held")
        return real_evaluate(model, X, y, *args, **kwargs)
    monkeypatch.setattr(train_module, "evaluate", evaluate)
    assert main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--quiet",
                 "--train-set", "max_epochs=1", "--model-set", "n_layers=1", "--model-set", "stream_dim=16"]) == 0
    assert seen and set(seen) == {"held"} and (tmp_path / "run" / "metrics.json").exists()


def _killed_at_a_save(monkeypatch, kill_at, run):
    """``run()`` with train's atomic_save_torch raising KeyboardInterrupt (a kill) at the first path ``kill_at``
    takes; returns the paths it was given, in order, the last the one it was killed at."""
    import argminn_plugin.train as train_module

    real, paths = train_module.atomic_save_torch, []

    def save(obj, path, force=False):
        paths.append(path)
        if kill_at(path):
            raise KeyboardInterrupt
        return real(obj, path, force=force)
    monkeypatch.setattr(train_module, "atomic_save_torch", save)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(train_module, "atomic_save_torch", real)
    return paths


def test_a_kill_during_the_warmup_adoption_leaves_no_main_files_and_resumes_to_the_same_run(tmp_path, monkeypatch):
    """Killed while the chosen warm-up is copied in (its last.pt being written), the main run has none of model.pt,
    last.pt, history.json (they are moved in as one set) and no staged file; resumed, the finished candidates are
    reused and the run ends as one never interrupted."""
    tc = TrainConfig(max_epochs=3, batch_size=16, overlap_warmup=1, l1_warmup=1, entropy_warmup=1,
                     warmup_candidates=2)
    whole, whole_history = train(CFG, tc, data(0), data(1), str(tmp_path / "whole"), verbose=False)
    out = tmp_path / "run"
    # killed at the first checkpoint written into the main run
    saved = _killed_at_a_save(monkeypatch, lambda path: os.path.dirname(os.path.abspath(path)) == str(out),
                              lambda: train(CFG, tc, data(0), data(1), str(out), verbose=False))
    assert os.path.basename(saved[-1]).startswith(".last.pt.")  # the adopted set's staged last.pt
    assert sorted(p.name for p in out.iterdir()) == ["warmup_candidates", "warmup_candidates.json"]
    stamps = {p: p.stat().st_mtime_ns for p in (out / "warmup_candidates").rglob("last.pt")}
    resumed, history = train(CFG, tc, data(0), data(1), str(out), resume=True, verbose=False)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # the candidates were not trained again
    assert [h["val_loss"] for h in history] == [h["val_loss"] for h in whole_history]
    assert all(torch.equal(resumed.state_dict()[k], whole.state_dict()[k]) for k in whole.state_dict())


def test_epochs_before_the_regularizers_are_on_are_not_printed_as_best(tmp_path, capsys):
    train(CFG, TrainConfig(max_epochs=3, batch_size=16, overlap_warmup=2), data(0), data(1), str(tmp_path))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert ["[best]" in line for line in lines] == [False, False, True]
    assert all("[kept until the regularizers are on: not compared]" in line for line in lines[:2])


def test_resume_on_other_data_is_refused_and_a_config_change_is_named(tmp_path):
    tc = TrainConfig(max_epochs=1, batch_size=32)
    train(CFG, tc, data(0), data(1), str(tmp_path / "run"), verbose=False)
    more = tc.replace(max_epochs=2)
    for train_data, valid_data in ((data(2), data(1)), (data(0), data(3)),
                                   ((data(0)[0], 1 - data(0)[1]), data(1))):
        with pytest.raises(StartAgain, match="was trained on other data"):
            train(CFG, more, train_data, valid_data, str(tmp_path / "run"), resume=True, verbose=False)
    _, history = train(CFG, more, data(0), data(1), str(tmp_path / "run"), resume=True, verbose=False)
    assert len(history) == 2
    with pytest.raises(ArgminnError, match=r"different model or training config; .* \(n_filters 3 -> 4; "
                                           r"batch_size 32 -> 16\)"):
        train(CFG.replace(n_filters=4), more.replace(batch_size=16), data(0), data(1), str(tmp_path / "run"),
              resume=True, verbose=False)
    # the run under way after warm-up candidates is checked too, before any candidate trains again
    warm = TrainConfig(max_epochs=3, batch_size=16, overlap_warmup=1, l1_warmup=1, entropy_warmup=1,
                       warmup_candidates=2)
    train(CFG, warm, data(0), data(1), str(tmp_path / "warm"), verbose=False)
    with pytest.raises(StartAgain, match="was trained on other data"):
        train(CFG, warm, data(4), data(1), str(tmp_path / "warm"), resume=True, verbose=False)


def test_a_kill_while_an_epoch_is_saved_leaves_model_pt_and_last_pt_of_one_epoch(tmp_path, monkeypatch):
    """model.pt (the best epoch) and last.pt are renamed together: killed while epoch 2's last.pt is written,
    the run keeps epoch 1's model.pt, so a resume that stops at epoch 1 returns epoch 1's model (it returned
    epoch 2's, an epoch the run no longer has)."""
    tc = TrainConfig(max_epochs=2, batch_size=16)  # both epochs before the regularizers settle: each is kept
    out = tmp_path / "run"
    seen = []  # killed at the fourth save: epoch 1's model.pt and last.pt, epoch 2's model.pt, then its last.pt
    calls = [os.path.basename(path) for path in _killed_at_a_save(
        monkeypatch, lambda path: seen.append(path) or len(seen) == 4,
        lambda: train(CFG, tc, data(0), data(1), str(out), verbose=False))]
    assert ["model" if "model" in name else "last" for name in calls] == ["model", "last", "model", "last"]
    assert safe_load_torch(str(out / "last.pt"))["epoch"] == 0
    assert not [name for name in os.listdir(out) if name.endswith(".partial")]
    resumed, history = train(CFG, tc.replace(max_epochs=1), data(0), data(1), str(out), resume=True, verbose=False)
    one, _ = train(CFG, tc.replace(max_epochs=1), data(0), data(1), str(tmp_path / "one"), verbose=False)
    assert len(history) == 1
    assert all(torch.equal(resumed.state_dict()[k], one.state_dict()[k]) for k in one.state_dict())
