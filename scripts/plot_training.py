#!/usr/bin/env python3
"""Training curves from a `mambawave train` log.csv: loss per step and validation metric,
log scale, written as a PNG. Usage: plot_training.py LOG.csv[,LOG2.csv...] OUT.png [TITLE]

Several logs, comma-separated, are stages of one model (each fine-tunes the one before, --init):
they are drawn end to end, the steps counted on, with a line where each stage starts."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    log, png = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else log
    steps, loss, vsteps, val, vpre, starts = [], [], [], [], [], []
    offset = 0
    for stage_log in log.split(","):
        starts.append(offset)
        last = offset
        with open(stage_log, newline="") as f:
            for row in csv.DictReader(f):
                step = offset + int(row["step"])
                last = step
                steps.append(step)
                loss.append(float(row["loss"]))
                if row["val_metric"]:
                    vsteps.append(step)
                    val.append(float(row["val_metric"]))
                    if row["val_esr_preemph"]:
                        vpre.append(float(row["val_esr_preemph"]))
        if last == offset:
            sys.exit(f"{stage_log}: no rows")
        offset = last
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    ax.plot(steps, loss, color="#8aa4c8", linewidth=0.8, label="training loss (per step)")
    # A running mean shows the trend under the noise; each stage's on its own (a stage may log
    # every step or be thinned, and its loss may be another kind of ESR).
    bounds = [next((i for i, st in enumerate(steps) if st > start), len(steps)) for start in starts] + [len(steps)]
    for n, (a, b) in enumerate(zip(bounds, bounds[1:])):
        if b - a >= 20:
            k = max(5, (b - a) // 50)
            smooth = [sum(loss[max(a, i - k + 1):i + 1]) / len(loss[max(a, i - k + 1):i + 1]) for i in range(a, b)]
            ax.plot(steps[a:b], smooth, color="#1f4e8c", linewidth=1.5,
                    label="training loss (running mean)" if n == 0 else None)
    if val:
        ax.plot(vsteps, val, "o-", color="#d9534f", markersize=3, label="validation")
        last = [i for i in range(len(val)) if vsteps[i] > starts[-1]] or list(range(len(val)))
        best = min(last, key=lambda i: val[i])  # the last stage's best: the model it exports
        ax.annotate(f"best {val[best]:.4g}", (vsteps[best], val[best]), textcoords="offset points",
                    xytext=(5, 8), color="#d9534f")
    if len(vpre) == len(val) and vpre:
        ax.plot(vsteps, vpre, "s--", color="#f0ad4e", markersize=3, label="validation, pre-emphasised ESR")
    for i, start in enumerate(starts[1:], 2):
        ax.axvline(start, color="#777777", linewidth=0.8, linestyle=":")
        ax.annotate(f"stage {i}", (start, 0), xycoords=("data", "axes fraction"), xytext=(3, 4),
                    textcoords="offset points", color="#555555", fontsize=8)
    if min(loss + val) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("ESR" if vpre else "loss / metric")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png)


if __name__ == "__main__":
    main()
