#!/usr/bin/env python3
"""Turns `mambawave bench --json` output (stdin) into the markdown table of docs/BENCHMARKS.md.

    build/bin/mambawave bench --json | python3 scripts/bench_table.py
"""
import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.startswith("{")]
peaks = next(r for r in rows if r.get("machine") == "peaks")
n_peaks = sum(1 for r in rows if r.get("machine") == "peaks")
print(f"Peaks on one core, same run: **{peaks['flops_per_s'] * 1e-9:.1f} GFLOP/s** FMA, "
      f"**{peaks['exps_per_s'] * 1e-9:.2f} G exp/s** (our SSM exponential), "
      f"**{peaks['l1_bytes_per_s'] * 1e-9:.0f} GB/s** L1 load+store ({peaks['isa']}); "
      f"measured {n_peaks} times, before each model's rows, whose floors use the measurement "
      f"just before them.\n")
print("| model | path | ns/sample | % core @48k | vs reference | / floor |")
print("|---|---|---:|---:|---:|---:|")
last = None
for r in rows:
    if "path" not in r:
        continue
    chan = {1: "mono", 2: "stereo"}.get(r["streams"], f"{r['streams']} streams")
    name = f"{r['kind']} D{r['d_model']}×{r['n_layers']} {chan} ({r['params'] / 1000:.1f}k params)"
    label = name if name != last else ""
    last = name
    print(f"| {label} | {r['path']} | {r['ns_per_sample']:.0f} | {r['pct_core_48k']:.1f}% | "
          f"{r['speedup_vs_reference']:.1f}× | {r['ratio_to_floor']:.2f}× |")
floors = {(r["kind"], r["d_model"], r["n_layers"]): r["floor_ns_per_sample"] for r in rows if "path" in r}
print()
for (kind, d, n), f in floors.items():
    print(f"- floor, {kind} D{d}×{n}: {f:.0f} ns per sample = {f * 48000 * 1e-7:.2f}% of a core at 48 kHz")
