"""The whole benchmark suite in one command: motif discovery/prediction, then speed and scaling.

    python -m benchmarks --out runs/bench            (about 30 minutes on 2 cores: README, Benchmarks)
    python -m benchmarks --out /tmp/bench --smoke    (a couple of minutes: tiny data, 2 epochs)

Writes <out>/discovery/{discovery.json,discovery.png}, <out>/speed/{speed.json,scaling.png}
and prints every table. Finished (dataset, method) results are reused on a re-run; an
earlier run's speed figures are refused at the start, before anything runs, unless
--force (timings are measured afresh, so replacing them loses them).
A user mistake (e.g. another --seed in the same --out) prints one line,
``benchmarks: error: ...``, and exits with status 2, as ``argminn`` does (so do
``benchmarks.discovery`` and ``benchmarks.errors``); a flag argparse refuses (a
bad value, an unknown flag) gets its usage and error line, also with status 2.
"""

import argparse
import os

from . import at_least, discovery, one_line_errors, speed


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--threads", type=at_least(1), default=2)
    parser.add_argument("--seed", type=at_least(0), default=0)
    parser.add_argument("--force", action="store_true",
                        help="replace an earlier run's speed figures (discovery's finished runs are reused either way)")
    args = parser.parse_args(argv)
    with one_line_errors("benchmarks"):  # e.g. another seed in the same --out
        speed.check_outputs(os.path.join(args.out, "speed"), args.force)  # not after 25 minutes of discovery
        discovery.main(os.path.join(args.out, "discovery"), smoke=args.smoke, seed=args.seed, threads=args.threads)
        speed.main(os.path.join(args.out, "speed"), smoke=args.smoke, threads=args.threads, force=args.force)


if __name__ == "__main__":
    main()
