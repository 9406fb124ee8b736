#!/usr/bin/env python3
"""Where a step's wall time goes on the GPU's timeline, from Nsight Systems' traces.

    nsys profile --capture-range=cudaProfilerApi --trace=cuda,osrt -o run PROGRAM ...
    nsys stats --report cuda_gpu_trace,cuda_api_trace --format csv -o run run.nsys-rep
    scripts/nsys_summary.py run_cuda_gpu_trace.csv run_cuda_api_trace.csv --steps 4

Nsight Compute (scripts/ncu_summary.py) times each kernel alone; this says what the GPU did
between them: the captured span, the time the GPU was busy (kernels, copies by direction,
memsets, overlaps counted once), the time it sat idle, the host's CUDA calls by the time they
took, and the longest idle gaps with the calls the host made during each (what it was waiting
on or doing instead). --steps: how many steps the capture covers (times are divided by it).
Used by scripts/device_profile_train.sh (NSYS=1).
"""
import argparse
import collections
import csv
import sys


def rows(path):
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        sys.exit(f"nsys_summary.py: {path}: {e.strerror}")
    # (nsys may print notes before the table: the header is the first line naming a start time)
    for i, line in enumerate(lines):
        if "Start" in line and "Duration" in line:
            return list(csv.DictReader(lines[i:]))
    sys.exit(f"nsys_summary.py: {path}: no table with Start and Duration columns in it")


def column(row, *names):
    for n in names:
        for k, v in row.items():
            if k and k.startswith(n):
                return v
    return None


def events(path):
    out = []
    for r in rows(path):
        try:
            start = float(column(r, "Start").replace(",", ""))
            dur = float(column(r, "Duration").replace(",", ""))
        except (TypeError, ValueError):
            continue
        out.append((start, start + dur, column(r, "Name") or "?"))
    out.sort()
    return out


def kind(name):
    if "[CUDA memcpy" in name or "memcpy" in name.lower():
        for d in ("Host-to-Device", "Device-to-Host", "Device-to-Device", "HtoD", "DtoH", "DtoD"):
            if d in name:
                return "copy " + {"HtoD": "Host-to-Device", "DtoH": "Device-to-Host", "DtoD": "Device-to-Device"}.get(d, d)
        return "copy"
    if "memset" in name.lower():
        return "memset"
    return "kernels"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("gpu_trace")
    ap.add_argument("api_trace")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--gaps", type=int, default=12, help="how many of the longest idle gaps to list")
    ap.add_argument("--min-gap-us", type=float, default=5.0, help="shorter idle gaps count as launch latency")
    a = ap.parse_args()
    if a.steps < 1:
        sys.exit("nsys_summary.py: --steps must be >= 1")
    gpu = events(a.gpu_trace)
    api = events(a.api_trace)
    if not gpu:
        sys.exit(f"nsys_summary.py: {a.gpu_trace}: no GPU work in it: did the capture range open?")
    s = a.steps
    span0 = min(gpu[0][0], api[0][0] if api else gpu[0][0])
    span1 = max(max(e[1] for e in gpu), max((e[1] for e in api), default=0))
    span = span1 - span0

    by_kind = collections.defaultdict(float)
    for b, e, n in gpu:
        by_kind[kind(n)] += e - b
    busy, gaps, cur0, cur1, prev = 0.0, [], None, None, None
    for b, e, n in gpu:  # the union of the GPU's intervals, and the idle gaps between them
        if cur1 is None or b > cur1:
            if cur1 is not None:
                busy += cur1 - cur0
                gaps.append((b - cur1, cur1, b, prev, n))
            cur0, cur1 = b, e
        else:
            cur1 = max(cur1, e)
        prev = n
    busy += cur1 - cur0
    print(f"  captured span {span / s / 1e6:.2f} ms a step; the GPU busy {busy / s / 1e6:.2f} ms "
          f"({100 * busy / span:.0f}%), idle {(span - busy) / s / 1e6:.2f} ms")
    for k, t in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"    {k:24s} {t / s / 1e6:8.2f} ms a step")
    small = sum(g[0] for g in gaps if g[0] < a.min_gap_us * 1e3)
    print(f"  idle gaps: {len(gaps) / s:.0f} a step; those under {a.min_gap_us:g} us (launch latency) "
          f"{small / s / 1e6:.2f} ms a step, the rest {(sum(g[0] for g in gaps) - small) / s / 1e6:.2f} ms")

    calls = collections.defaultdict(lambda: [0.0, 0])
    for b, e, n in api:
        calls[n][0] += e - b
        calls[n][1] += 1
    print("  the host's CUDA calls, by time taken (a step):")
    for n, (t, c) in sorted(calls.items(), key=lambda kv: -kv[1][0])[:10]:
        print(f"    {t / s / 1e6:8.2f} ms  {c / s:7.1f} calls  {n}")

    print(f"  the {a.gaps} longest idle gaps, and the host's calls during each:")
    for g, b, e, before, after in sorted(gaps, reverse=True)[: a.gaps]:
        inside = collections.Counter(n for cb, ce, n in api if ce > b and cb < e)
        made = ", ".join(f"{n} x{c}" if c > 1 else n for n, c in inside.most_common(4)) or "none (host work)"
        print(f"    {g / 1e3:8.1f} us  after {before[:40]!r} before {after[:40]!r}: {made}")


if __name__ == "__main__":
    main()
