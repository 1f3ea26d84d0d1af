"""Tutorial 2: train ARGMINN from scratch, then read motifs, instances and syntax from it.

The same steps as `argminn demo`, through the Python API, on a dataset and
budget you choose. `--quick` (used by the tests) trains a small model for a
few epochs on a smaller dataset: it runs end to end in under a minute but
does not reach the full model's accuracy; without it, the default dataset and
the demo's settings are used (about 5 minutes on 2 cores).

Run:  python tutorials/02_train_from_scratch.py --out runs/tutorial2 [--quick]
"""

import argparse
import json
import os

from argminn_plugin import ModelConfig, TrainConfig
from argminn_plugin.data import load_splits, rows_with_label
from argminn_plugin.interpret import instance_report
from argminn_plugin.report import motif_report
from argminn_plugin.simulate import SimulationConfig, planted_instances, simulate
from argminn_plugin.train import classification_metrics, evaluate, train


def main(out, quick=False):
    sim = SimulationConfig(n_train=1500, n_valid=300, n_test=300) if quick else SimulationConfig()
    data = os.path.join(out, "data")
    meta = simulate(data, sim, force=True)
    splits, names = load_splits(os.path.join(data, "genome.fa"), os.path.join(data, "peaks.bed"), sim.length,
                                [meta["splits"]["valid"]], [meta["splits"]["test"]])
    model_cfg = ModelConfig(input_length=sim.length, task_names=tuple(names))
    train_cfg = TrainConfig(overlap_weight=0.05, patience=8, max_epochs=6 if quick else 40)
    model, history = train(model_cfg, train_cfg, splits["train"][:2], splits["valid"][:2],
                           os.path.join(out, "run"), force=True, verbose=False)
    X, y, bed = splits["test"]
    _, probs = evaluate(model, X, y)
    metrics = classification_metrics(y, probs)[0]
    print(f"{len(history)} epochs; held-out auROC {metrics['auroc']:.3f}, auPRC {metrics['auprc']:.3f}")

    motif_report(model, splits["train"][0], os.path.join(out, "motifs"), force=True,
                 planted=os.path.join(data, "simulation.json"))
    positives, _, bed = rows_with_label(X, y, bed)
    summary = instance_report(model, positives, bed, os.path.join(out, "motifs"), os.path.join(out, "instances"),
                              truth=planted_instances(data, bed), force=True)
    print(json.dumps(summary, indent=1))
    return metrics, summary


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/tutorial2")
    parser.add_argument("--quick", action="store_true", help="small data, few epochs")
    args = parser.parse_args()
    main(args.out, args.quick)
