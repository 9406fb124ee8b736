#!/usr/bin/env python3
"""Spectrograms of audio files side by side, one row per group, for looking at what a
generator makes next to the real thing. Reads WAV (PCM or float, channels mixed to mono).

    plot_spectrograms.py OUT.png "TITLE" "ROW LABEL=a.wav,b.wav,..." ["ROW LABEL=..." ...]
"""
import os
import sys

import numpy as np
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "captures"))
import wavio  # noqa: E402


def read_wav(path):
    """(rate, samples, mono: the channels' mean)."""
    try:
        x, rate = wavio.read_wav(path, mix=True)
    except ValueError as e:
        sys.exit(str(e))
    return rate, x


def spectrogram_db(x, n_fft=256, hop=64):
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    frames = 1 + (len(x) - n_fft) // hop
    win = np.hanning(n_fft)
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    mag = np.abs(np.fft.rfft(x[idx] * win, axis=1)).T
    return 20 * np.log10(mag + 1e-6)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    out, title, rows = sys.argv[1], sys.argv[2], [a.split("=", 1) for a in sys.argv[3:]]
    cols = max(len(files.split(",")) for _, files in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(3.2 * cols, 2.4 * len(rows)), squeeze=False)
    for r, (label, files) in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            paths = files.split(",")
            if c >= len(paths):
                ax.axis("off")
                continue
            rate, x = read_wav(paths[c])
            S = spectrogram_db(x)
            ax.imshow(S, origin="lower", aspect="auto", cmap="magma", vmin=S.max() - 80, vmax=S.max(),
                      extent=[0, len(x) / rate, 0, rate / 2000])
            ax.set_title(paths[c].split("/")[-1], fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{label}\nkHz", fontsize=9)
            if r == len(rows) - 1:
                ax.set_xlabel("s", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
