"""Speed and scaling: ARGMINN vs the standard CNN and a bpnet-lite BPNet, on the CPU.

Prints tables and writes speed.json and scaling.png to --out:

1. training throughput (sequences/s: forward + regularized loss + backward +
   Adam step) and inference throughput (no grad) at equal input length, for
   ARGMINN (as shipped, and with ModelConfig.canonical_strand), the standard
   CNN, ExplaiNN and bpnet-lite's BPNet, timed in turns
   (see ``interleaved``), once with glibc's default malloc and once with the
   steady allocator the command line sets (``argminn_plugin.runtime``): page
   faults on fresh tensors cost as much as the arithmetic at these sizes, and
   how many there are depends on the allocator's history, not on the model;
2. how time per batch (training and inference) and peak memory grow with
   input length (200, 500, 1000, 2000, 5000 bp by default), for ARGMINN and
   the standard CNN (steady allocator): at each length both models are timed
   in turns in one fresh process, so the ratio of their times is not a drift
   between two processes run minutes apart, and each model's peak RSS is
   measured alone in a fresh process of its own; the growth is summarised by
   the slope of log(time) on log(length) (1.0 = linear);
3. the regularizers' cost per batch (filter overlap, L1, attention entropy)
   next to the forward pass;
4. ARGMINN's inference time (both settings) over the standard CNN's at
   several batch sizes (16 to 1024 sequences, 200 bp, steady allocator, timed
   in turns): at small batches a pass is dominated by the fixed cost of each
   small operation, which ARGMINN's four attention layers have more of; and
   the same for both models read on both strands
   (``argminn_plugin.model.StrandAveraged``, inference only: one pass over
   twice the rows), ARGMINN's over the CNN's.

Run:  python -m benchmarks.speed --out runs/bench_speed        (about 2 minutes on 2 cores)
      python -m benchmarks.speed --out /tmp/smoke --smoke      (seconds; used by the tests)
An earlier run's speed.json / scaling.png in --out is refused before anything is timed
unless --force.
"""

import argparse
import json
import multiprocessing as mp
import os
import queue as queue_lib
import resource
import signal
import statistics
import time
import traceback

import numpy as np
import torch
from torch.nn import functional as F

from argminn_plugin.fileio import atomic_write, check_writable, output_set

from . import at_least, one_line_errors


CANONICAL = "ARGMINN (canonical strand)"  # ModelConfig.canonical_strand: each sequence read on one strand
ARGMINN_MODELS = ("ARGMINN", CANONICAL)
BOTH = " (both strands)"  # a model read on both strands (StrandAveraged); timed for inference only


def build(name, length):
    if name.endswith(BOTH):
        from argminn_plugin import StrandAveraged

        return StrandAveraged(build(name[:-len(BOTH)], length))
    if name in ARGMINN_MODELS:
        from argminn_plugin import ARGMINN, ModelConfig

        return ARGMINN(ModelConfig(input_length=length, canonical_strand=name == CANONICAL))
    if name == "standard CNN":
        from argminn_plugin.baselines import CNNConfig, StandardCNN

        return StandardCNN(CNNConfig(input_length=length))
    if name == "ExplaiNN":
        from argminn_plugin.baselines import ExplaiNN, ExplaiNNConfig

        return ExplaiNN(ExplaiNNConfig(input_length=length))
    if name == "BPNet (bpnet-lite)":
        from bpnetlite import BPNet

        return BPNet(n_filters=64, n_layers=8, n_outputs=1, n_control_tracks=0, trimming=0, verbose=False)
    raise ValueError(name)


def loss_of(name, model, X, y):
    if name in ARGMINN_MODELS:
        from argminn_plugin import TrainConfig
        from argminn_plugin.train import regularized_loss

        return regularized_loss(model, X, y, TrainConfig(), epoch=0)[0]
    out = model(X)
    if isinstance(out, tuple):  # BPNet: (profile, counts)
        profile, counts = out
        return F.mse_loss(counts, y) + profile.float().pow(2).mean()
    return F.binary_cross_entropy_with_logits(out, y)


def onehot(n, length, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.one_hot(torch.randint(0, 4, (n, length), generator=g), 4).transpose(1, 2).float()


def timed(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _steps(name, model, X, y):
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    # The mode switches once, when the other kind of batch ran last, as in use: nn.Module.train()/eval() walk
    # every submodule (ARGMINN.eval() ~130 us, the CNN's ~19 us), which a user pays once, not every batch.
    def step():
        if not model.training:
            model.train()
        opt.zero_grad()
        loss_of(name, model, X, y).backward()
        opt.step()

    def infer():
        if model.training:
            model.eval()
        with torch.no_grad():
            model(X)

    return step, infer


def peak_memory(name, length, batch):
    """Two training steps and two inference batches of one model, alone: run in a fresh process, whose
    peak RSS (``_worker`` adds it) is then that model's, imports included."""
    torch.manual_seed(0)
    X, y = onehot(batch, length).contiguous(), torch.randint(0, 2, (batch, 1)).float()
    step, infer = _steps(name, build(name, length), X, y)
    for call in (step, step, infer, infer):
        call()
    return {"model": name, "length": length, "batch": batch}


def in_turns(fns, rounds, rng, faults=None):
    """Time each of ``fns`` (name -> call) once a round, in a fresh seeded random order every round.

    The first round warms up and is not kept; returns name -> the seconds of
    its kept calls. With ``faults`` (a dict), each name's minor page faults
    over its kept calls are added to it (see ``argminn_plugin.runtime``).
    """
    from argminn_plugin.runtime import minor_page_faults

    names, times = list(fns), {name: [] for name in fns}
    for round_ in range(rounds):
        for i in rng.permutation(len(names)):
            name = names[i]
            f0, t0 = minor_page_faults() if faults is not None else 0, time.perf_counter()
            fns[name]()
            if round_:
                times[name].append(time.perf_counter() - t0)
                if faults is not None:
                    faults[name] = faults.get(name, 0) + minor_page_faults() - f0
    return times


def interleaved(names, length, batch, repeats):
    """Every model's training and inference time per batch, measured in turns.

    One round times one batch of each model in a row; the medians over rounds
    (after a warm-up round) are reported, so the drifts in this shared
    machine's speed, which are larger than the differences between runs of
    one model, hit every model alike. Each round runs the models in a new
    seeded random order: the model timed right after BPNet's large batch
    pays for the caches it leaves cold (the CNN, at 200 bp: 1.9 ms a batch
    in that slot against 0.9-1.4 ms elsewhere), and a fixed order -- or one
    rotated from round to round, which keeps the same neighbours -- would
    put the same model there nearly every time. Also counts the minor page
    faults per inference batch (see ``argminn_plugin.runtime``).
    """
    torch.manual_seed(0)
    X, y = onehot(batch, length).contiguous(), torch.randint(0, 2, (batch, 1)).float()
    fns = {name: _steps(name, build(name, length), X, y) for name in names}
    rng, faults = np.random.default_rng(0), {}
    # Inference first, before training's large temporaries raise glibc's
    # dynamic mmap threshold (BPNet's inference blocks can raise it as well;
    # after that the default allocator stops page-faulting).
    infer = in_turns({name: fns[name][1] for name in names}, 3 * repeats + 1, rng, faults)
    train = in_turns({name: fns[name][0] for name in names}, repeats + 1, rng)
    rows = []
    for name in names:
        t_train, t_infer = statistics.median(train[name]), statistics.median(infer[name])
        rows.append({"model": name, "length": length, "batch": batch, "train_seconds_per_batch": t_train,
                     "train_seqs_per_s": batch / t_train, "infer_seconds_per_batch": t_infer,
                     "infer_seqs_per_s": batch / t_infer, "infer_page_faults_per_batch": faults[name] / len(infer[name])})
    return rows


def inference_by_batch(names, length, batches, repeats):
    """Each model's inference time per batch at each batch size, timed in turns (medians, as in ``interleaved``)."""
    torch.manual_seed(0)
    models = {name: build(name, length) for name in names}
    rng = np.random.default_rng(0)
    rows = []
    for batch in batches:
        X, y = onehot(batch, length).contiguous(), torch.randint(0, 2, (batch, 1)).float()
        times = in_turns({name: _steps(name, models[name], X, y)[1] for name in names}, 3 * repeats + 1, rng)
        for name in names:
            t = statistics.median(times[name])
            rows.append({"model": name, "length": length, "batch": batch, "infer_seconds_per_batch": t,
                         "infer_seqs_per_s": batch / t})
    return rows


def own_peak_rss_mb():
    """This process's peak resident memory in MB since it started its program: Linux's VmHWM (of the memory map
    exec made). getrusage's ru_maxrss is not that: Linux carries it over fork and exec, so a process spawned by a
    parent that had grown larger (the suite, after discovery) reported the parent's peak. Elsewhere ru_maxrss
    (kilobytes on Linux, bytes on macOS)."""
    import sys

    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / 1024 if sys.platform == "darwin" else peak / 1024


def _worker(task, args, threads, steady, queue):
    """Sends back ("ok", result) or ("error", the traceback)."""
    from argminn_plugin.runtime import steady_allocator

    try:
        torch.set_num_threads(threads)
        applied = steady_allocator() if steady else False
        result = globals()[task](*args)
        peak = own_peak_rss_mb()
        for row in result if isinstance(result, list) else [result]:
            row["peak_rss_mb"], row["steady_allocator"] = peak, applied
    except Exception:
        queue.put(("error", traceback.format_exc()))
    else:
        queue.put(("ok", result))


def _exit_text(code):
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"was killed by {name}" + (" (out of memory?)" if -code == signal.SIGKILL else "")


def in_fresh_process(task, args, threads, steady):
    """``task(*args)`` (a function of this module, by name) in a new process; peak RSS is that process's.

    Raises RuntimeError, with the worker's traceback or how it ended, when
    the task fails or the process dies without a result (e.g. killed when
    out of memory); waits for the result only while the process is alive.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(task, args, threads, steady, queue))
    proc.start()
    what = f"speed benchmark: {task}{tuple(args)!r} in a fresh process"
    while True:
        ended = proc.exitcode is not None  # then anything it sent is in the pipe already
        try:
            status, payload = queue.get(timeout=0.5)
            break
        except queue_lib.Empty:
            if ended:
                proc.join()
                raise RuntimeError(f"{what} {_exit_text(proc.exitcode)} without a result") from None
    proc.join()
    if status == "error":
        raise RuntimeError(f"{what} failed:\n{payload}")
    return payload


def regularizer_cost(length, batch, repeats):
    from argminn_plugin import ARGMINN, ModelConfig
    from argminn_plugin.losses import attention_entropy, filter_overlap_loss, l1_loss

    torch.manual_seed(0)
    model = ARGMINN(ModelConfig(input_length=length)).train()
    X = onehot(batch, length)
    _, acts, attention = model._run(X, keep=True)
    mags = model.filter_column_magnitudes()
    rows = {"forward pass": timed(lambda: model._run(X, keep=True), repeats),
            "filter overlap loss": timed(lambda: filter_overlap_loss(acts, mags, model.config.n_filters), repeats),
            "L1 on weights": timed(lambda: l1_loss(model), repeats),
            "attention entropy": timed(lambda: attention_entropy(attention), repeats)}
    return {k: {"seconds": v, "relative_to_forward": v / rows["forward pass"]} for k, v in rows.items()}


def loglog_slope(lengths, seconds):
    """Slope of log(seconds) on log(length): 1.0 is linear growth, 2.0 quadratic."""
    return float(np.polyfit(np.log(lengths), np.log(seconds), 1)[0])


def plot(scaling, path):
    from argminn_plugin.fileio import pyplot, save_png

    fig, axes = pyplot().subplots(1, 3, figsize=(13, 3.5))
    for name in sorted({r["model"] for r in scaling}):
        rows = [r for r in scaling if r["model"] == name]
        lengths = [r["length"] for r in rows]
        axes[0].plot(lengths, [r["train_seconds_per_batch"] for r in rows], "o-", label=name)
        axes[1].plot(lengths, [r["infer_seconds_per_batch"] for r in rows], "o-", label=name)
        axes[2].plot(lengths, [r["peak_rss_mb"] for r in rows], "o-", label=name)
    axes[0].set_ylabel("training seconds per batch")
    axes[1].set_ylabel("inference seconds per batch")
    axes[2].set_ylabel("peak RSS (MB)")
    for ax in axes:
        ax.set_xlabel("input length (bp)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path, force=True)


def load_average():
    """The 1-minute load average (None where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _cpu_times():
    """(busy, total) jiffies of all CPUs from /proc/stat (Linux), or None."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def cpu_busy(seconds=1.0):
    """Fraction of all CPUs busy over ``seconds`` while this process sleeps: what other processes use
    (None off Linux). Unlike the load average, it does not remember the last minute's work of this
    benchmark's own earlier parts."""
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(seconds)
    second = _cpu_times()
    total = second[1] - first[1]
    return (second[0] - first[0]) / total if total > 0 else 0.0


def load_warning(busy, limit=0.25):
    """A warning line when other processes keep more than ``limit`` of the CPUs busy, else None.

    Other processes on the cores distort every figure, and with OpenMP
    threads waiting on each other by far more than their share of the CPU.
    """
    if busy is None or busy <= limit:
        return None
    return (f"warning: other processes kept {busy:.0%} of the CPUs busy just before the start: the timings "
            f"below will be slower and noisier than on an idle machine")


OUTPUTS = ("speed.json", "scaling.png")


def check_outputs(out, force=False):
    """Refuse, before anything is timed, to replace an earlier run's figures unless ``force``: each run's
    timings are a measurement of their own, not recomputed from anything kept."""
    for name in OUTPUTS:
        check_writable(os.path.join(out, name), force)


def main(out, smoke=False, threads=2, force=False):
    check_outputs(out, force)
    torch.set_num_threads(threads)
    os.makedirs(out, exist_ok=True)
    load_before, busy_before = load_average(), cpu_busy()
    warning = load_warning(busy_before)
    if warning:
        print(warning)
    length, batch, repeats = (200, 8, 1) if smoke else (200, 64, 10)
    lengths = [200, 500] if smoke else [200, 500, 1000, 2000, 5000]
    models = ["ARGMINN", CANONICAL, "standard CNN", "ExplaiNN", "BPNet (bpnet-lite)"]
    pair = ["ARGMINN", "standard CNN"]  # scaling with length: ARGMINN as shipped against the CNN

    # Each allocator setting in its own process: glibc's default (freed
    # blocks go back to the kernel, so new tensors page-fault) and the steady
    # allocator the command line uses (argminn_plugin.runtime).
    equal = {}
    for mode, steady in (("default", False), ("steady", True)):
        rows = in_fresh_process("interleaved", (models, length, batch, repeats), threads, steady)
        if steady and not rows[0]["steady_allocator"]:
            mode = "default (steady allocator not available or ARGMINN_MALLOC_TUNING=0)"
        equal["steady" if steady else "default"] = rows
        print(f"\nThroughput at {length} bp, batch {batch}, {threads} threads, {mode} malloc "
              f"(sequences/s; models timed in turns, medians)")
        print(f"{'model':<28}{'train':>10}{'inference':>12}{'page faults/batch':>19}")
        for r in rows:
            print(f"{r['model']:<28}{r['train_seqs_per_s']:>10.0f}{r['infer_seqs_per_s']:>12.0f}"
                  f"{r['infer_page_faults_per_batch']:>19.0f}")
    ratio, ratio_canonical = {}, {}
    for mode, rows in equal.items():
        seconds = {r["model"]: r["infer_seconds_per_batch"] for r in rows}
        ratio[mode] = seconds["ARGMINN"] / seconds["standard CNN"]
        ratio_canonical[mode] = seconds[CANONICAL] / seconds["standard CNN"]
        print(f"ARGMINN inference time / standard CNN ({mode} malloc): {ratio[mode]:.2f}x; with the canonical "
              f"strand {ratio_canonical[mode]:.2f}x")

    # Times: both models in turns, one fresh process per length. Peak RSS: each model alone in its own.
    scaling, ratio_by_length = [], {}
    for L in lengths:
        rows = in_fresh_process("interleaved", (pair, L, batch, repeats), threads, True)
        for row in rows:
            memory = in_fresh_process("peak_memory", (row["model"], L, batch), threads, True)
            row["peak_rss_mb"] = memory["peak_rss_mb"]
            row["steady_allocator"] = row["steady_allocator"] and memory["steady_allocator"]  # both processes
        scaling += rows
        ratio_by_length[L] = rows[0]["infer_seconds_per_batch"] / rows[1]["infer_seconds_per_batch"]
    scaling.sort(key=lambda r: pair.index(r["model"]))  # model by model, each by length
    print("\nScaling with input length, steady malloc (seconds per batch: training, inference, timed in turns "
          "with the other model; peak RSS MB, each model alone)")
    for r in scaling:
        print(f"{r['model']:<22}{r['length']:>6} bp {r['train_seconds_per_batch']:>9.4f} s "
              f"{r['infer_seconds_per_batch']:>9.4f} s {r['peak_rss_mb']:>9.0f} MB")
    print("ARGMINN inference time / standard CNN, by length: "
          + ", ".join(f"{L} bp {v:.2f}x" for L, v in ratio_by_length.items()))
    slopes = {}
    for name in pair:
        rows = [r for r in scaling if r["model"] == name]
        ls = [r["length"] for r in rows]
        slopes[name] = {"train": loglog_slope(ls, [r["train_seconds_per_batch"] for r in rows]),
                        "inference": loglog_slope(ls, [r["infer_seconds_per_batch"] for r in rows]),
                        "peak_rss": loglog_slope(ls, [r["peak_rss_mb"] for r in rows])}
        print(f"{name}: log-log slope of time on length {ls[0]}-{ls[-1]} bp: training {slopes[name]['train']:.2f}, "
              f"inference {slopes[name]['inference']:.2f} (1.0 = linear)")

    reg = regularizer_cost(length, batch, repeats)
    print("\nRegularizer cost per batch")
    for k, v in reg.items():
        print(f"{k:<22}{v['seconds'] * 1000:>9.2f} ms {v['relative_to_forward']:>7.2f}x forward")

    batches = [8, 16] if smoke else [16, 32, 64, 256, 1024]
    by_batch_models = ["ARGMINN", CANONICAL, "standard CNN", "ARGMINN" + BOTH, "standard CNN" + BOTH]
    by_batch = in_fresh_process("inference_by_batch", (by_batch_models, length, batches, repeats), threads, True)
    print(f"\nInference by batch size at {length} bp, steady malloc (seconds per batch; models timed in turns; "
          f"ratios to the CNN; both strands: each model read on both strands, ARGMINN's over the CNN's)")
    print(f"{'batch':>6}{'ARGMINN':>12}{'canonical':>12}{'standard CNN':>14}{'ratio':>8}{'canonical':>11}"
          f"{'both strands':>14}")
    ratio_by_batch, ratio_canonical_by_batch, ratio_both_by_batch = {}, {}, {}
    for b in batches:
        seconds = {r["model"]: r["infer_seconds_per_batch"] for r in by_batch if r["batch"] == b}
        ratio_by_batch[b] = seconds["ARGMINN"] / seconds["standard CNN"]
        ratio_canonical_by_batch[b] = seconds[CANONICAL] / seconds["standard CNN"]
        ratio_both_by_batch[b] = seconds["ARGMINN" + BOTH] / seconds["standard CNN" + BOTH]
        print(f"{b:>6}{seconds['ARGMINN']:>12.5f}{seconds[CANONICAL]:>12.5f}{seconds['standard CNN']:>14.5f}"
              f"{ratio_by_batch[b]:>7.2f}x{ratio_canonical_by_batch[b]:>10.2f}x{ratio_both_by_batch[b]:>13.2f}x")

    result = {"mode": "smoke" if smoke else "full", "threads": threads, "equal_length": equal["default"],
              "equal_length_steady_malloc": equal["steady"],
              "argminn_over_cnn_inference": ratio, "canonical_strand_over_cnn_inference": ratio_canonical,
              "scaling": scaling, "argminn_over_cnn_inference_by_length": ratio_by_length,
              "loglog_slopes": slopes, "regularizers": reg,
              "inference_by_batch": by_batch, "argminn_over_cnn_inference_by_batch": ratio_by_batch,
              "canonical_strand_over_cnn_inference_by_batch": ratio_canonical_by_batch,
              "both_strands_argminn_over_cnn_inference_by_batch": ratio_both_by_batch,
              "load_average_before": load_before, "load_average_after": load_average(),
              "cpu_busy_before": busy_before}
    with output_set(out, OUTPUTS, force=force) as stage:  # the figures and their plot
        with atomic_write(stage["speed.json"], force=True) as handle:  # (a fresh hidden file)
            json.dump(result, handle, indent=1)
        plot(scaling, stage["scaling.png"])
    return result


def cli(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench_speed")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--threads", type=at_least(1), default=2)
    parser.add_argument("--force", action="store_true", help="replace an earlier run's speed.json and scaling.png")
    args = parser.parse_args(argv)
    with one_line_errors("benchmarks.speed"):  # e.g. an --out that is a file, or an earlier run's figures
        main(args.out, args.smoke, args.threads, args.force)


if __name__ == "__main__":
    cli()
