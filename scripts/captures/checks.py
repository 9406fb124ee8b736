#!/usr/bin/env python3
"""The checks and the bookkeeping of make_captures.sh.

  checks.py make-clicks OUT.wav
      A 3 s probe for latency: single-sample impulses (+0.5) at 0.25, 0.75 and 1.25 s, then
      white noise (-12 dBFS peak) from 1.5 to 2.5 s, then silence.

  checks.py finish CAPTURES_DIR SETTING[,SETTING...]
      - lv2run.py against lv2apply on the same excerpt, for every setting (must be equal);
      - lv2apply's latency: where each click comes out, and the cross-correlation lag over the
        noise burst; and in every capture-signal target, the lag at the start and end sync
        impulses its sidecar lists (their difference is drift);
      - every pair's cross-correlation lag (the method of dsp::find_lag: the loudest 1 s of the
        input, normalised correlation within +-50 ms), to show that it is not the latency;
      - writes CAPTURES_DIR/manifest.json and prints (and saves as summary.txt) the table.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wavio import read_wav, write_wav  # noqa: E402

RATE = 48000
CLICKS_S = (0.25, 0.75, 1.25)
NOISE_S = (1.5, 2.5)
MAX_LAG = int(0.050 * RATE)  # train's default --max-latency-ms 50
TS9 = "http://guitarix.sourceforge.net/plugins/gxts9#ts9sim"
DS1 = "http://guitarix.sourceforge.net/plugins/gx_bossds1_#_bossds1_"
# The manifest's "effects": each pedal's plugin, its fixed ports and the port behind each knob.
EFFECTS = {
    "ts9": dict(plugin=TS9, name="guitarix GxTubeScreamer (ts9sim)",
                fixed={"fslider0_ (level, dB)": -16, "BYPASS": 1},
                controls={"drive": dict(port="fslider2_", min=0.0, max=1.0, default=0.5),
                          "tone": dict(port="fslider1_", min=100.0, max=1000.0, default=400.0,
                                       unit="Hz", log_scale=True)}),
    "ds1": dict(plugin=DS1, name="guitarix GxBoss DS1",
                fixed={"LEVEL (dB)": -2, "BYPASS": 1},
                controls={"drive": dict(port="DRIVE", min=0.0, max=1.0, default=0.5),
                          "tone": dict(port="TONE", min=0.0, max=1.0, default=0.5)}),
}


def make_clicks(path):
    x = np.zeros(3 * RATE, dtype=np.float32)
    for t in CLICKS_S:
        x[int(t * RATE)] = 0.5
    rng = np.random.default_rng(1)
    a, b = int(NOISE_S[0] * RATE), int(NOISE_S[1] * RATE)
    n = rng.standard_normal(b - a)
    x[a:b] = 10 ** (-12 / 20) * n / np.abs(n).max()
    write_wav(path, x, RATE)


def dbfs(x):
    m = float(np.max(np.abs(x))) if len(x) else 0.0
    return 20 * np.log10(m) if m > 0 else float("-inf")


def xcorr_lag(x, y, start, length, max_lag):
    """Lag in [-max_lag, max_lag] maximising the normalised correlation of x[start:start+length]
    with y[start+lag : start+lag+length]; -> (lag, correlation, best correlation > 8 away)."""
    a = x[start:start + length].astype(np.float64)
    seg = y[start - max_lag:start + length + max_lag].astype(np.float64)
    n = 1 << int(np.ceil(np.log2(len(seg) + len(a))))
    dots = np.fft.irfft(np.fft.rfft(seg, n) * np.conj(np.fft.rfft(a, n)), n)[:2 * max_lag + 1]
    c2 = np.concatenate([[0.0], np.cumsum(seg * seg)])
    energy = c2[length:length + 2 * max_lag + 1] - c2[:2 * max_lag + 1]
    ea = float(a @ a)
    corr = np.where((energy > 0) & (ea > 0), dots / np.sqrt(np.maximum(energy, 1e-300) * max(ea, 1e-300)), 0.0)
    best = int(np.argmax(corr))
    lags = np.arange(-max_lag, max_lag + 1)
    far = np.abs(lags - lags[best]) > 8
    return int(lags[best]), float(corr[best]), float(corr[far].max())


def xcorr_pair_lag(x, y):
    """As dsp::find_lag with window 1 s, max lag 50 ms: the loudest second of the input."""
    n = min(len(x), len(y))
    window = min(RATE, n)
    max_lag = min(MAX_LAG, n // 2)
    hop = max(1, window // 4)
    e = np.concatenate([[0.0], np.cumsum(x[:n].astype(np.float64) ** 2)])
    starts = np.arange(0, n - window + 1, hop)
    start = int(starts[np.argmax(e[starts + window] - e[starts])]) if len(starts) else 0
    start = int(np.clip(start, max_lag, max(max_lag, n - window - max_lag)))
    length = min(window, n - start - max_lag)
    return xcorr_lag(x[:n], y[:n], start, length, max_lag)


def impulse_onset(y, frame, search=480):
    """The first sample near `frame` above 1% of the biggest one, relative to `frame`."""
    lo = max(0, frame - search)
    seg = np.abs(y[lo:frame + search + 1])
    return int(np.argmax(seg > 0.01 * seg.max())) + lo - frame


def main_lobe(y, frame, search=480):
    """The first sample near `frame` within 90% of the biggest one (the start of the main lobe
    of the response), relative to `frame`."""
    lo = max(0, frame - search)
    seg = np.abs(y[lo:frame + search + 1])
    return int(np.argmax(seg >= 0.9 * seg.max())) + lo - frame


def impulse_lag(y, frame, search=480):
    """Where the biggest sample near `frame` is, relative to it."""
    lo = max(0, frame - search)
    return int(np.argmax(np.abs(y[lo:frame + search + 1]))) + lo - frame


def setting_controls(setting):
    """'ts9_d0.5_t300' -> ('ts9', {'drive': 0.5, 'tone': 300.0}) (make_captures.sh's names)."""
    effect, drive, tone = setting.split("_")
    assert drive[0] == "d" and tone[0] == "t", setting
    return effect, {"drive": float(drive[1:]), "tone": float(tone[1:])}


def finish(out, settings):
    pieces = {}
    with open(os.path.join(out, "midi", "pieces.tsv")) as f:
        for line in f:
            name, split, seconds, reverb, what = line.rstrip("\n").split("\t")
            pieces[name] = dict(split=split, what=what, reverb=reverb == "1")
    inputs = sorted(f[:-4] for f in os.listdir(os.path.join(out, "inputs")) if f.endswith(".wav"))
    problems = []

    # ---- lv2run.py == lv2apply --------------------------------------------------------
    same = {}
    for s in settings:
        a, _ = read_wav(os.path.join(out, "checks", f"excerpt_{s}_lv2run.wav"))
        b, _ = read_wav(os.path.join(out, "checks", f"excerpt_{s}_lv2apply.wav"))
        same[s] = float(np.max(np.abs(a - b))) if len(a) == len(b) else float("inf")
        if not same[s] <= 1e-6:
            problems.append(f"{s}: lv2run.py differs from lv2apply by {same[s]:.3g} on the excerpt "
                            "(rerun with --lv2apply)")

    # ---- latency ----------------------------------------------------------------------
    clicks, _ = read_wav(os.path.join(out, "checks", "clicks.wav"))
    latency = {}
    for s in settings:
        y, _ = read_wav(os.path.join(out, "checks", f"clicks_{s}_lv2apply.wav"))
        click_lags = [impulse_lag(y, int(t * RATE)) for t in CLICKS_S]
        onsets = [impulse_onset(y, int(t * RATE)) for t in CLICKS_S]
        a, b = int(NOISE_S[0] * RATE), int(NOISE_S[1] * RATE)
        noise_lag, noise_corr, _ = xcorr_lag(clicks, y, a + 500, b - a - 1000, 480)
        # A response that starts on the impulse's own sample has no delay (its peak comes later
        # because the circuit low-passes); one that starts later is delayed to the start of its
        # main lobe (the DS-1's oversampling filters ring before it: linear phase, and shifting
        # less rather than more keeps the rest causal).
        lobes = [main_lobe(y, int(t * RATE)) for t in CLICKS_S]
        # (The onset, the first sample above the noise floor, may differ: at some DS-1 settings
        # the oversampling filters' pre-ringing of the first click rises above the floor that
        # the plugin's start leaves. Peaks and main lobes must agree.)
        if len(set(click_lags)) != 1 or len(set(lobes)) != 1:
            problems.append(f"{s}: the three clicks come out differently (onsets {onsets}, peaks {click_lags})")
        delay = 0 if max(onsets) <= 0 else min(lobes)
        latency[s] = dict(click_lags=click_lags, onsets=onsets, noise_lag=noise_lag, noise_corr=noise_corr,
                          latency=delay)
    di_json = os.path.join(out, "inputs", "di_capture.wav.json")
    if os.path.exists(di_json):
        with open(di_json) as f:
            sync = json.load(f)["sync"]
        for s in settings:
            y, _ = read_wav(os.path.join(out, "targets", s, "di_capture.wav"))
            latency[s]["sync_start"] = [impulse_lag(y, f) for f in sync["start_frames"]]
            latency[s]["sync_end"] = [impulse_lag(y, f) for f in sync["end_frames"]]

    # ---- pairs, levels, manifest ------------------------------------------------------
    pairs, rows = [], []
    for name in inputs:
        x, rate = read_wav(os.path.join(out, "inputs", name + ".wav"))
        if rate != RATE:
            problems.append(f"inputs/{name}.wav is {rate} Hz, expected {RATE}")
        if name in pieces:
            split, source, kind = pieces[name]["split"], pieces[name]["what"] + " (fluidsynth, FluidR3_GM)", "synthetic"
        elif name == "di_capture":
            split, source, kind = "train", "mambawave capture-signal --seconds 90 --seed 1", "synthetic"
        elif name.startswith("real_"):
            split, source, kind = "test", "Free Spoken Digit Dataset, recording 5 of each digit and speaker", "test_real"
        else:
            problems.append(f"inputs/{name}.wav: not made by this script (remove it)")
            continue
        if np.max(np.abs(x[:RATE // 4])) > 1e-6:
            problems.append(f"inputs/{name}.wav does not start with 0.25 s of silence (the plugins fade in)")
        peak_in = dbfs(x)
        if not -12.05 <= peak_in <= -0.95:
            problems.append(f"inputs/{name}.wav peaks at {peak_in:.2f} dBFS, outside -12..-1")
        row = dict(name=name, split=split if kind != "test_real" else "test_real", seconds=len(x) / rate,
                   peak=peak_in, targets={})
        for s in settings:
            target = f"targets/{s}/{name}.wav"
            y, _ = read_wav(os.path.join(out, target))
            if len(y) != len(x) or not np.all(np.isfinite(y)):
                problems.append(f"{target}: {len(y)} frames (input {len(x)}) or non-finite samples")
            lag, corr, _ = xcorr_pair_lag(x, y)
            row["targets"][s] = dict(peak=dbfs(y), lag=lag, corr=corr)
            effect, controls = setting_controls(s)
            pairs.append(dict(input=f"inputs/{name}.wav", target=target, effect=effect, controls=controls,
                              split=split, set=kind, latency_samples=latency[s]["latency"], source=source))
        rows.append(row)

    manifest = dict(
        format="mambawave-captures", version=1, sample_rate_hz=RATE,
        made_by="scripts/make_captures.sh (docs/DATA.md)",
        effects=EFFECTS,
        latency=("latency_samples: the target is late by this many samples, measured with clicks through "
                 "lv2apply (checks/): 0 for the Tube Screamer (its response starts on the click's sample); "
                 "the DS-1 oversamples (zita-resampler) and its output is delayed to the start of its "
                 "response's main lobe, although the plugin reports no latency. Cross-correlation over music is NOT a "
                 "latency measurement for these pedals: their filters' phase moves the correlation peak "
                 "by -30..+30 samples (and more on drums)"),
        splits={"train": "training pairs", "val": "validation: instruments not in train",
                "test": "never trained or tuned on; set 'synthetic' = more unseen instruments, "
                        "set 'test_real' = real recorded speech (out of domain)"},
        attribution=["FluidR3_GM soundfont (c) 2000-2002, 2008 Frank Wen, MIT license (Debian fluid-soundfont-gm)",
                     "Free Spoken Digit Dataset (Jakobovski et al.), CC BY-SA 4.0"],
        pairs=pairs)
    with open(os.path.join(out, "manifest.json.tmp"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    os.replace(os.path.join(out, "manifest.json.tmp"), os.path.join(out, "manifest.json"))

    # ---- the table --------------------------------------------------------------------
    short = {s: s.replace("_d", " d").replace("_t", " t") for s in settings}
    lines = ["Inputs and targets: seconds, peak dBFS of the input and of each setting's target", ""]
    head = f"{'input':<22} {'split':<9} {'sec':>6} {'in pk':>6} " + " ".join(f"{short[s]:>10}" for s in settings)
    lines += [head, "-" * len(head)]
    order = {"train": 0, "val": 1, "test": 2, "test_real": 3}
    for r in sorted(rows, key=lambda r: (order[r["split"]], r["name"])):
        lines.append(f"{r['name']:<22} {r['split']:<9} {r['seconds']:6.1f} {r['peak']:6.1f} " +
                     " ".join(f"{r['targets'][s]['peak']:10.1f}" for s in settings))
    lines.append("")
    for split in ("train", "val", "test", "test_real"):
        sel = [r for r in rows if r["split"] == split]
        lines.append(f"{split:<10} {len(sel):3d} files, {sum(r['seconds'] for r in sel):6.1f} s of input per setting")
    lines.append(f"{len(pairs)} pairs in manifest.json ({len(settings)} settings)")
    lines += ["", "Latency (samples at 48 kHz; positive = output late). clicks: where each click's response",
              "starts (1% of its peak) and peaks; noise: cross-correlation lag over a noise burst; DI sync:",
              "the response peaks at the capture signal's sync impulses (start, end: drift = end - start);",
              "latency: what the manifest gives (latency_samples); xcorr lag: what cross-correlation",
              "(dsp::find_lag, loudest second, +-50 ms) finds on the 29 pairs: NOT the latency, the",
              "pedal's filters move it; !=0 / <0: pairs where it is non-zero / negative", ""]
    lines.append(f"{'setting':<14} {'onset':>6} {'peak':>5} {'noise':>11} {'DI sync s/e':>12} {'latency':>8} "
                 f"{'xcorr lag':>12} {'!=0':>4} {'<0':>3} {'min r':>6} {'lv2run==lv2apply':>17}")
    for s in settings:
        L = latency[s]
        lags = [r["targets"][s]["lag"] for r in rows]
        corr = min(r["targets"][s]["corr"] for r in rows)
        sync = f"{L['sync_start'][0]}/{L['sync_end'][0]}" if "sync_start" in L else "-"
        lines.append(f"{s:<14} {L['onsets'][0]:>6d} {L['click_lags'][0]:>5d} {L['noise_lag']:>4d} r={L['noise_corr']:.2f} "
                     f"{sync:>12} {L['latency']:>8d} {min(lags):>5d}..{max(lags):<5d} "
                     f"{sum(l != 0 for l in lags):>4d} {sum(l < 0 for l in lags):>3d} {corr:6.2f} "
                     f"{'yes' if same[s] == 0 else 'max diff %.1g' % same[s]:>17}")
    with open(os.path.join(out, "checks", "xcorr_lags.tsv"), "w") as f:
        f.write("input\tsetting\tlag\tcorrelation\n")
        for r in rows:
            for s in settings:
                f.write(f"{r['name']}\t{s}\t{r['targets'][s]['lag']}\t{r['targets'][s]['corr']:.3f}\n")
    lines.append("(every pair's xcorr lag: checks/xcorr_lags.tsv)")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write(text)
    print(text, end="")
    if problems:
        print("\nPROBLEMS:\n  " + "\n  ".join(problems))
        sys.exit(1)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "make-clicks":
        make_clicks(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "finish":
        finish(sys.argv[2], sys.argv[3].split(","))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
