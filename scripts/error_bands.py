#!/usr/bin/env python3
"""Where in frequency an effect model's error lies, per test pair of a captures manifest.

Renders each selected pair's input through MODEL at the pair's knob settings (`mambawave
render`), then splits the error energy (output - target) and the target's energy into bands:
the share of the pair's ESR that lies below 10 Hz, below 100 Hz, and so on.

usage: error_bands.py MODEL --effect ts9 [--manifest data/captures/manifest.json]
                      [--split test] [--where tone=100] [--mambawave build/bin/mambawave]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "captures"))
from wavio import read_wav  # noqa: E402

EDGES = (10, 100, 1000)  # Hz: the bands are [0,10), [10,100), [100,1000), [1000, Nyquist)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--effect", required=True)
    ap.add_argument("--manifest", default="data/captures/manifest.json")
    ap.add_argument("--split", default="test")
    ap.add_argument("--where", action="append", default=[], help="NAME=VALUE: only pairs with this knob value")
    ap.add_argument("--mambawave", default="build/bin/mambawave")
    a = ap.parse_args()
    base = os.path.dirname(os.path.abspath(a.manifest))
    m = json.load(open(a.manifest))
    want = {k: float(v) for k, v in (w.split("=", 1) for w in a.where)}
    pairs = [p for p in m["pairs"] if p["effect"] == a.effect and p["split"] == a.split
             and all(float(p["controls"].get(k, "nan")) == v for k, v in want.items())]
    if not pairs:
        sys.exit(f"error_bands: no {a.split} pairs of '{a.effect}' match {a.where} in {a.manifest}")
    names = ["<%d Hz" % EDGES[0]] + ["%d-%d" % (lo, hi) for lo, hi in zip(EDGES, EDGES[1:])] + [">%d" % EDGES[-1]]
    print(f"{'setting':<24} {'input':<24} {'ESR':>7}  error by band (share of the ESR)        target <{EDGES[0]} Hz")
    print(f"{'':<24} {'':<24} {'':>7}  " + " ".join(f"{n:>9}" for n in names))
    totals = np.zeros(len(names) + 1)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "y.wav")
        for p in pairs:
            controls = [x for k, v in p["controls"].items() for x in ("--control", f"{k}={v}")]
            subprocess.run([a.mambawave, "render", "-m", a.model, "--in", os.path.join(base, p["input"]),
                            "--out", out] + controls, check=True, capture_output=True)
            y, rate = read_wav(out)
            t, _ = read_wav(os.path.join(base, p["target"]))
            lat = int(p.get("latency_samples", 0))  # the target is late by this much
            t = t[lat:]
            y = y.reshape(-1)[:len(t)]
            f = np.fft.rfftfreq(len(t), 1 / rate)
            E = np.abs(np.fft.rfft(y - t)) ** 2
            T = np.abs(np.fft.rfft(t)) ** 2
            edges = (0,) + EDGES + (rate,)
            bands = [E[(f >= lo) & (f < hi)].sum() / T.sum() for lo, hi in zip(edges, edges[1:])]
            esr = E.sum() / T.sum()
            low = T[f < EDGES[0]].sum() / T.sum()
            totals += np.array(bands + [esr])
            setting = " ".join(f"{k}={v:g}" for k, v in p["controls"].items())
            print(f"{setting:<24} {os.path.basename(p['input']):<24} {esr:7.4f}  " +
                  " ".join(f"{b / esr:9.0%}" for b in bands) + f"   {low:9.1%}")
    mean = totals / len(pairs)
    print(f"{'mean of ' + str(len(pairs)) + ' pairs':<49} {mean[-1]:7.4f}  " +
          " ".join(f"{b / mean[-1]:9.0%}" for b in mean[:-1]))


if __name__ == "__main__":
    main()
