"""Multi-process data-parallel training: torchrun + DistributedDataParallel (gloo on the CPU)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from argminn_plugin import ModelConfig, TrainConfig
from argminn_plugin.cli import main
from argminn_plugin.train import load_model, safe_load_torch, shard_batches, train
from conftest import random_onehot

TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")

TINY = ModelConfig(input_length=40, n_filters=3, filter_width=5, n_layers=1, n_heads=2, head_dim=8, stream_dim=16,
                   token_dim=8, pos_enc_dim=4)
# 61 rows in batches of 16: the last global batch (13 rows) splits 7 / 6 over two ranks.
TINY_TC = TrainConfig(max_epochs=3, batch_size=16, seed=3, patience=10)
CANDIDATES_TC = TINY_TC.replace(overlap_warmup=1, l1_warmup=1, entropy_warmup=1, warmup_candidates=2)
STRAND_TC = TINY_TC.replace(strand_consistency=0.5)
PRUNE_TC = TINY_TC.replace(prune_similar=1e-3, prune_epochs=2, prune_tolerance=float("inf"))


def tiny_data(seed):
    X = random_onehot(61, 40, seed=seed)
    return X, (X[:, 0, :20].sum(1) > 5).float()[:, None]


# ------------------------------------------------------------------ sharding

@pytest.mark.parametrize("n, batch_size, world, steps", [
    (61, 16, 2, 4),   # last batch 13 rows -> 7 + 6
    (67, 16, 2, 4),   # last batch 3 rows: a rank would get 1 (< 2): dropped on both
    (68, 16, 2, 5),   # last batch 4 rows -> 2 + 2
    (61, 7, 3, 8),    # 8 full batches of 7 (3 + 2 + 2), last 5 rows (< 6) dropped
    (34, 16, 1, 3),   # one process: the plain batches, nothing dropped
    (33, 16, 1, 2),   # one process, last batch of 1 row (batch norm cannot train on it): dropped
    (64, 64, 4, 1),
])
def test_shards_are_disjoint_and_cover_each_global_batch(n, batch_size, world, steps):
    order = torch.from_numpy(np.random.default_rng([0, 5]).permutation(n))
    per_rank = [shard_batches(order, batch_size, rank, world) for rank in range(world)]
    assert [len(shards) for shards in per_rank] == [steps] * world  # every rank makes the same steps
    for b in range(steps):
        batch = order[b * batch_size:(b + 1) * batch_size]
        parts = [per_rank[rank][b][0] for rank in range(world)]
        assert all(per_rank[rank][b][1] == len(batch) for rank in range(world))
        joined = torch.cat(parts).tolist()
        assert len(joined) == len(set(joined)) == len(batch)  # disjoint
        assert set(joined) == set(batch.tolist())  # and covering the global batch
        sizes = [len(p) for p in parts]
        assert min(sizes) >= (2 if world > 1 else 1) and max(sizes) - min(sizes) <= 1
    covered = sum(len(idx) for shards in per_rank for idx, _ in shards)
    assert covered == min(n, steps * batch_size)
    if world == 1:
        assert [idx.tolist() for idx, _ in per_rank[0]] == [order[i:i + batch_size].tolist()
                                                             for i in range(0, steps * batch_size, batch_size)]


def test_batch_smaller_than_world_is_refused(tmp_path, monkeypatch):
    """Checked before any process group is joined, so a plain process sees it."""
    import torch.distributed as dist

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 4)
    monkeypatch.setattr(dist, "get_rank", lambda: 0)
    monkeypatch.setattr(dist, "get_backend", lambda: "gloo")
    from argminn_plugin import ArgminnError

    with pytest.raises(ArgminnError, match="batch_size \\(7\\) is below 2 rows per process \\(4 processes\\)"):
        train(TINY, TINY_TC.replace(batch_size=7), tiny_data(0), tiny_data(1), str(tmp_path), verbose=False)


# ------------------------------------------- two ranks in one test (torch.multiprocessing + gloo)

class _Killed(Exception):
    pass


def _mp_worker(rank, world, store, out):
    import torch.distributed as dist

    import argminn_plugin.train as T

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    real_evaluate = T._evaluate_sharded
    try:
        results = {}
        # (a) without batch norm the gradient is exactly the single-process one
        model, history = T.train(TINY.replace(batch_norm=False), TINY_TC, tiny_data(0), tiny_data(1),
                                 os.path.join(out, "nobn"), verbose=False)
        results["nobn"] = {"state_dict": model.state_dict(), "history": history}

        # (b) with batch norm: record the weights each rank holds after every epoch
        seen = []

        def spy(model, *args, **kwargs):
            seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
            return real_evaluate(model, *args, **kwargs)

        T._evaluate_sharded = spy
        T.train(TINY, TINY_TC, tiny_data(0), tiny_data(1), os.path.join(out, "bn"), verbose=False)
        results["epochs"] = seen

        # (c) killed (on every rank) after epoch 1's checkpoint, then resumed
        calls = []

        def crash(model, *args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise _Killed()
            return real_evaluate(model, *args, **kwargs)

        T._evaluate_sharded = crash
        try:
            T.train(TINY, TINY_TC, tiny_data(0), tiny_data(1), os.path.join(out, "resumed"), verbose=False)
        except _Killed:
            results["killed"] = True
        T._evaluate_sharded = real_evaluate
        T.train(TINY, TINY_TC, tiny_data(0), tiny_data(1), os.path.join(out, "resumed"), resume=True,
                verbose=False)

        # (d) filter resampling: rank 0 decides for every rank (were rank 1 to decide for itself, it would
        # see no filter to draw again)
        real_find = T.filters_to_resample
        T.filters_to_resample = lambda model, X, share: ([(0, 1, 0.9, 0.9)], [2]) if rank == 0 else ([], [])
        seen = []
        T._evaluate_sharded = spy
        resampling = TINY_TC.replace(overlap_warmup=1, overlap_ramp=2, resample_share=0.5, resample_until=2)
        _, history = T.train(TINY, resampling, tiny_data(0), tiny_data(1), os.path.join(out, "resampled"),
                             verbose=False)
        T._evaluate_sharded, T.filters_to_resample = real_evaluate, real_find
        results["resampled"] = {"epochs": seen, "history": history}

        # (e) best of two warm-ups: rank 0 writes the candidates' files, every rank continues the same one
        model, history = T.train(TINY.replace(batch_norm=False), CANDIDATES_TC, tiny_data(0), tiny_data(1),
                                 os.path.join(out, "candidates"), verbose=False)
        results["candidates"] = {"state_dict": model.state_dict(), "history": history}

        # (f) pruning when training ends: rank 0 decides for every rank, which all train the pruned model on
        real_decision = T._prune_decision
        T._prune_decision = lambda *args: ([[0, 1]], [[1]]) if rank == 0 else ([], [])
        try:
            model, history = T.train(TINY.replace(batch_norm=False), PRUNE_TC, tiny_data(0), tiny_data(1),
                                     os.path.join(out, "pruned"), verbose=False)
        finally:
            T._prune_decision = real_decision
        results["pruned"] = {"state_dict": model.state_dict(), "history": history}

        # (h) strand consistency: each rank runs its rows and their reverse complements, pairs kept together
        model, history = T.train(TINY.replace(batch_norm=False), STRAND_TC, tiny_data(0), tiny_data(1),
                                 os.path.join(out, "strand"), verbose=False)
        results["strand"] = {"state_dict": model.state_dict(), "history": history}

        # (g) a refusal of rank 0's (a run there already) is raised on every rank as the same class
        try:
            T.train(TINY, TINY_TC, tiny_data(0), tiny_data(1), os.path.join(out, "bn"), verbose=False)
        except Exception as exc:
            results["refused"] = (type(exc).__name__, str(exc))
        torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    finally:
        T._evaluate_sharded = real_evaluate
        dist.destroy_process_group()


def test_two_processes_train_like_one(tmp_path, monkeypatch):
    import torch.multiprocessing as mp

    import argminn_plugin.train as train_module

    mp.spawn(_mp_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2))

    # (a) no batch norm: same weights and history as one process, to float rounding
    single, single_history = train(TINY.replace(batch_norm=False), TINY_TC, tiny_data(0), tiny_data(1),
                                   str(tmp_path / "single"), verbose=False)
    for key, value in single.state_dict().items():
        assert torch.allclose(r0["nobn"]["state_dict"][key], value, rtol=0, atol=1e-6), key
    for ddp_record, record in zip(r0["nobn"]["history"], single_history, strict=True):
        for key in ("val_loss", "train_task", "train_overlap", "train_l1", "train_entropy"):
            assert ddp_record[key] == pytest.approx(record[key], abs=1e-5), key

    # (b) batch norm per rank: both ranks hold identical weights and running statistics after every epoch
    assert len(r0["epochs"]) == len(r1["epochs"]) == TINY_TC.max_epochs
    for a, b in zip(r0["epochs"], r1["epochs"]):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key
    last = safe_load_torch(str(tmp_path / "bn" / "last.pt"))
    assert all(torch.equal(last["state_dict"][k], r0["epochs"][-1][k]) for k in last["state_dict"])
    # one set of files, written by rank 0 alone (no stray temporary files)
    for run in ("nobn", "bn", "resumed", "resampled"):
        assert sorted(os.listdir(tmp_path / run)) == ["history.json", "last.pt", "model.pt"], run

    # (g) rank 0's refusal, on both ranks as the same class (a caller may catch StartAgain by type)
    assert r0["refused"][0] == r1["refused"][0] == "StartAgain" and "holds a training run already" in r1["refused"][1]

    # (c) a run killed after epoch 1 and resumed ends with the uninterrupted run's weights
    assert r0["killed"] and r1["killed"]
    resumed = safe_load_torch(str(tmp_path / "resumed" / "last.pt"))
    assert resumed["epoch"] == last["epoch"] == TINY_TC.max_epochs - 1
    for key, value in last["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
    assert [h["val_loss"] for h in resumed["history"]] == [h["val_loss"] for h in last["history"]]

    # (e) best of two warm-ups: the same choice as one process, the same weights on both ranks
    single, _ = train(TINY.replace(batch_norm=False), CANDIDATES_TC, tiny_data(0), tiny_data(1),
                      str(tmp_path / "single_candidates"), verbose=False)
    for key, value in single.state_dict().items():
        assert torch.equal(r0["candidates"]["state_dict"][key], r1["candidates"]["state_dict"][key]), key
        assert torch.allclose(r0["candidates"]["state_dict"][key], value, rtol=0, atol=1e-6), key
    with open(tmp_path / "candidates" / "warmup_candidates.json") as a, \
            open(tmp_path / "single_candidates" / "warmup_candidates.json") as b:
        assert json.load(a)["chosen_seed"] == json.load(b)["chosen_seed"]
    assert sorted(os.listdir(tmp_path / "candidates")) == ["history.json", "last.pt", "model.pt",
                                                           "warmup_candidates", "warmup_candidates.json"]

    # (f) pruned as rank 0 decided, on both ranks alike, like one process
    monkeypatch.setattr(train_module, "_prune_decision", lambda *args: ([[0, 1]], [[1]]))
    single, single_history = train(TINY.replace(batch_norm=False), PRUNE_TC, tiny_data(0), tiny_data(1),
                                   str(tmp_path / "single_pruned"), verbose=False)
    assert [h.get("pruned") for h in r1["pruned"]["history"]] == [None] * 3 + [[1]] * 2
    for ddp_record, record in zip(r1["pruned"]["history"], single_history, strict=True):
        assert ddp_record["val_loss"] == pytest.approx(record["val_loss"], abs=1e-5)
    for key, value in single.state_dict().items():
        assert torch.equal(r0["pruned"]["state_dict"][key], r1["pruned"]["state_dict"][key]), key
        assert torch.allclose(r1["pruned"]["state_dict"][key], value, rtol=0, atol=1e-6), key
    assert r1["pruned"]["state_dict"]["scanner.conv.weight"][1].abs().max() == 0

    # (h) strand consistency (the last global batch uneven over the ranks): like one process
    single, single_history = train(TINY.replace(batch_norm=False), STRAND_TC, tiny_data(0), tiny_data(1),
                                   str(tmp_path / "single_strand"), verbose=False)
    for key, value in single.state_dict().items():
        assert torch.allclose(r0["strand"]["state_dict"][key], value, rtol=0, atol=1e-6), key
    for ddp_record, record in zip(r0["strand"]["history"], single_history, strict=True):
        for key in ("val_loss", "train_task", "train_strand"):
            assert ddp_record[key] == pytest.approx(record[key], abs=1e-5), key
    assert single_history[0]["train_strand"] > 0

    # (d) resampling as rank 0 decided, on both ranks alike
    drawn = [[h.get("resampled") for h in r["resampled"]["history"]] for r in (r0, r1)]
    assert drawn[0] == drawn[1]
    assert drawn[0][0] is None and drawn[0][2] is None and sorted(drawn[0][1]) in ([0, 2], [1, 2])
    for a, b in zip(r0["resampled"]["epochs"], r1["resampled"]["epochs"], strict=True):
        for key in a:
            assert torch.equal(a[key], b[key]), key


# ------------------------------------------------------------ torchrun + the CLI

SMALL_MODEL = ["--model-set", "n_filters=4", "--model-set", "n_layers=1", "--model-set", "stream_dim=32",
               "--model-set", "head_dim=8", "--model-set", "n_heads=2"]
TRAIN_SET = ["--train-set", "max_epochs=6", "--train-set", "learning_rate=0.003", "--train-set", "batch_size=32"]


@pytest.fixture(scope="module")
def easy_data(tmp_path_factory):
    """Positives hold HNF4A + FOXA2, negatives neither: a few epochs reach auROC > 0.95."""
    out = tmp_path_factory.mktemp("ddp") / "data"
    assert main(["simulate", "--out", str(out), "--set", "n_train=800", "--set", "n_valid=200",
                 "--set", "n_test=200", "--set", "length=100", "--set", "spacing=15",
                 "--set", "negative_mix=[1,0,0,0]"]) == 0
    return out


def test_torchrun_two_processes_match_one(easy_data, tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    train_args = ["train", "--data", str(easy_data), "--quiet", *TRAIN_SET, *SMALL_MODEL]
    assert main([*train_args, "--out", str(single)]) == 0
    proc = subprocess.run([TORCHRUN, "--standalone", "--nproc-per-node", "2", "-m", "argminn_plugin.cli",
                           *train_args, "--out", str(ddp)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # rank 0 alone printed the summary and wrote the run directory
    metrics = json.loads((ddp / "metrics.json").read_text())
    summaries = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert summaries == [json.dumps({k: metrics[k] for k in ("valid", "test")})]
    assert sorted(os.listdir(ddp)) == sorted(os.listdir(single)) == \
        ["history.json", "last.pt", "metrics.json", "model.pt"]
    history = json.loads((ddp / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, 7))
    one, two = (json.loads((run / "metrics.json").read_text()) for run in (single, ddp))
    for split in ("valid", "test"):
        a, b = one[split]["label"]["auroc"], two[split]["label"]["auroc"]
        assert a > 0.95 and b > 0.95, (split, a, b)
        assert abs(a - b) <= 0.03, (split, a, b)
    model = load_model(str(ddp / "model.pt"))
    assert model.config.n_filters == 4 and model.config.task_names == ("label",)


def _alive(pid):
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped by whoever adopted it, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the workers' pids from /proc (Linux)")
def test_ranks_stop_when_torchrun_is_killed(easy_data, tmp_path):
    """torchrun SIGKILLed (out of memory, a scheduler's hard kill) cannot stop its workers, which it starts in
    sessions of their own: each rank sees its parent gone and stops as on a SIGTERM (exit via 'terminated'),
    instead of training on alone into the run directory; once each, though the training contexts nest."""
    import signal
    import time

    out, log = tmp_path / "run", tmp_path / "torchrun.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen([TORCHRUN, "--standalone", "--nproc-per-node", "2", "-m", "argminn_plugin.cli",
                                 "train", "--data", str(easy_data), "--quiet", *SMALL_MODEL, "--train-set",
                                 "max_epochs=500", "--train-set", "patience=500", "--out", str(out)],
                                env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=handle, stderr=subprocess.STDOUT)
    workers = []
    try:
        deadline = time.monotonic() + 240
        while not (out / "history.json").exists():  # rank 0 wrote its first epoch: both ranks are training
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as handle:
            workers = [int(pid) for pid in handle.read().split()]
        assert len(workers) == 2 and all(map(_alive, workers))
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 60
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(map(_alive, workers)), log.read_text()[-3000:]
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
    # each rank's watch fires at most once (a rank waiting on the other in an all-reduce may stop on the
    # connection's error before its own watch fires)
    text = log.read_text()
    counts = [text.count(f"rank {rank}: torchrun (process {proc.pid}) is gone; stopping") for rank in (0, 1)]
    assert max(counts) == 1 and "argminn: terminated" in text, text[-3000:]
    assert not [name for name in os.listdir(out) if name.startswith(".")]  # nothing staged left behind


def test_the_watch_lives_with_the_training_context(monkeypatch):
    """Under torchrun the watch runs while the outermost context is open and ends with it, also when joining the
    process group fails; outside torchrun there is none."""
    import threading

    import torch.distributed as dist

    from argminn_plugin.train import _stop_when_orphaned, distributed_context

    def watches():
        return [t for t in threading.enumerate() if t.name == "argminn-torchrun-watch" and t.is_alive()]

    def gone():
        for thread in watches():
            thread.join(timeout=10)
        return not watches()

    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    assert _stop_when_orphaned() is None
    with distributed_context():
        assert not watches()
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    monkeypatch.setenv("WORLD_SIZE", "1")
    for _ in range(2):  # a second context after the first ended has its own watch
        with distributed_context():
            with distributed_context():  # nested: still one
                assert len(watches()) == 1
        assert gone()

    def refused(*args, **kwargs):
        raise RuntimeError("rendezvous timed out")

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "init_process_group", refused)
    with pytest.raises(RuntimeError, match="rendezvous timed out"):
        with distributed_context():
            pass
    assert gone()
