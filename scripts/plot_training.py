#!/usr/bin/env python3
"""Training curves from a `mambawave train` log.csv: loss per step and validation metric,
log scale, written as a PNG. Usage: plot_training.py LOG.csv OUT.png [TITLE]"""
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
    steps, loss, vsteps, val, vpre = [], [], [], [], []
    with open(log, newline="") as f:
        for row in csv.DictReader(f):
            steps.append(int(row["step"]))
            loss.append(float(row["loss"]))
            if row["val_metric"]:
                vsteps.append(int(row["step"]))
                val.append(float(row["val_metric"]))
                if row["val_esr_preemph"]:
                    vpre.append(float(row["val_esr_preemph"]))
    if not steps:
        sys.exit(f"{log}: no rows")
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    ax.plot(steps, loss, color="#8aa4c8", linewidth=0.8, label="training loss (per step)")
    if len(loss) >= 20:  # a running mean shows the trend under the noise
        k = max(5, len(loss) // 50)
        smooth = [sum(loss[max(0, i - k + 1):i + 1]) / len(loss[max(0, i - k + 1):i + 1]) for i in range(len(loss))]
        ax.plot(steps, smooth, color="#1f4e8c", linewidth=1.5, label=f"training loss (mean of {k})")
    if val:
        ax.plot(vsteps, val, "o-", color="#d9534f", markersize=3, label="validation")
        best = min(range(len(val)), key=lambda i: val[i])
        ax.annotate(f"best {val[best]:.4g}", (vsteps[best], val[best]), textcoords="offset points",
                    xytext=(5, 8), color="#d9534f")
    if len(vpre) == len(val) and vpre:
        ax.plot(vsteps, vpre, "s--", color="#f0ad4e", markersize=3, label="validation, pre-emphasised ESR")
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
