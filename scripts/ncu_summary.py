#!/usr/bin/env python3
"""Where the GPU time of some training steps went, kernel by kernel, from an Nsight Compute CSV.

    ncu --metrics gpu__time_duration.sum --csv --page raw PROGRAM ... > run.csv
    scripts/ncu_summary.py run.csv --steps 3 [--wall-ms 57.1] [--top 22]

--steps: how many steps the CSV covers (its launches are summed and divided by it).
--wall-ms: one step's wall time measured without the profiler; the summary then says what share
of it the kernels fill (the rest: copies, host work, launch gaps and waits).
Used by scripts/device_profile_train.sh.
"""
import argparse
import collections
import csv
import re
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--wall-ms", type=float)
    ap.add_argument("--top", type=int, default=22)
    a = ap.parse_args()
    if a.steps < 1:
        sys.exit("ncu_summary.py: --steps must be >= 1")
    try:
        lines = [l for l in open(a.csv) if l.startswith('"')]
    except OSError as e:
        sys.exit(f"ncu_summary.py: {a.csv}: {e.strerror}")
    total = collections.defaultdict(float)  # ns
    count = collections.Counter()
    for row in csv.DictReader(lines):
        try:
            t = float(row["gpu__time_duration.sum"].replace(",", ""))  # (ncu may group digits: "28,864")
        except (KeyError, ValueError):
            continue
        name = re.sub(r"\(.*", "", row.get("Kernel Name", "?"))[:70]
        total[name] += t
        count[name] += 1
    if not total:
        sys.exit(f"ncu_summary.py: {a.csv}: no kernel durations (gpu__time_duration.sum) in it: "
                 "did the profiler capture anything?")
    all_ns = sum(total.values())
    per_step_ms = all_ns / a.steps / 1e6
    launches = sum(count.values()) / a.steps
    line = f"  kernels' time per step {per_step_ms:.2f} ms over {launches:.0f} launches"
    if a.wall_ms:
        line += f"; a step's wall time {a.wall_ms:.2f} ms: the kernels fill {100 * per_step_ms / a.wall_ms:.0f}% of it"
    print(line)
    for name, t in sorted(total.items(), key=lambda kv: -kv[1])[:a.top]:
        print(f"  {100 * t / all_ns:5.1f}%  {t / a.steps / 1e3:9.1f} us/step  {count[name] / a.steps:6.1f} launches/step  {name}")


if __name__ == "__main__":
    main()
