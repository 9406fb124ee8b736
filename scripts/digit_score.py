#!/usr/bin/env python3
"""Are these recognisable spoken digits? Score audio with the digit classifier, next to its
calibration: real held-out takes (the ceiling) and controls that keep speech's spectrum but
lose the word (the floor).

    digit_score.py [--classifier NPZ] [--data DIR] [--json OUT] [--min-real-accuracy A] [WAV ...]

Each WAV (8 kHz, e.g. from `mambawave generate`) is cut into utterance-like segments by energy
(frames within 30 dB of the clip's loudest, gaps up to 0.15 s merged, 0.12..1 s long; longer
runs split at their quietest frame) and every segment is classified. Per set it prints:
segments, the classifier's mean max-probability ("confidence"), the fraction of segments with
confidence >= 0.9, the Inception Score IS = exp(mean_x KL(p(y|x) || p(y))) (1 = one digit or
no confident digit, 10 = confident and all digits equally often; p(y) is the mean of p(y|x)
over the set's segments), accuracy where the digit is known, and which digits were heard.

Calibration rows, always scored first, from recordings 5..9 of DIR (the generator's validation
split; the classifier never trained on them):
  real takes         the 300 takes as they are (the "recognisable" ceiling)
  real, two per clip each take, a 0.25 s pause, the next take (same speaker and digit): the
                     segmenter on clips holding more than one word, as generated clips do
  reversed           each take played backwards: same spectrum and loudness, no word
  shuffled 50 ms     the take's word cut into 50 ms blocks, put back in a random order
  shaped noise       noise with the take's long-term spectrum and loudness envelope
Exits 2 (after printing everything) when the calibration fails, so that nobody trusts a
broken classifier: see check_calibration() for the conditions and why.
The classifier comes from scripts/digit_classifier.py; docs/DIGITS.md has the measured numbers.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import digit_classifier as dc  # noqa: E402  (sets the one-thread BLAS environment before numpy)
import numpy as np  # noqa: E402

# The calibration's pass marks (see check_calibration).
MIN_REAL_ACCURACY = 0.90
MAX_SEGMENTER_LOSS = 0.05   # two-per-clip accuracy may be this much under the pass mark
MIN_CONFIDENCE_GAP = 0.10
MAX_CONTROL_IS_RATIO = 0.6
BLOCK_SAMPLES = 400     # 50 ms at 8 kHz, the shuffled control's block
FADE_SAMPLES = 40       # 5 ms fades at each block's ends, so that the cuts do not click
PAUSE_S = 0.25          # silence between the two takes of a "two per clip" clip


# ------------------------------------------------------------------ controls

def reversed_take(x, rng):
    return x[::-1].copy()


def shuffled_take(x, rng):
    """The word's 50 ms blocks in a random order (never the original one); silence kept."""
    _, energy_db = dc.analyse(x)
    s, e = dc.word_span(energy_db)
    s, e = s * dc.HOP_SAMPLES, min(len(x), e * dc.HOP_SAMPLES + dc.WIN_SAMPLES)
    word = x[s:e]
    n = len(word) // BLOCK_SAMPLES
    if n < 2:
        return x.copy()
    fade = np.ones(BLOCK_SAMPLES)
    fade[:FADE_SAMPLES] = np.linspace(0, 1, FADE_SAMPLES)
    fade[-FADE_SAMPLES:] = np.linspace(1, 0, FADE_SAMPLES)
    blocks = word[:n * BLOCK_SAMPLES].reshape(n, BLOCK_SAMPLES) * fade     # [n][BLOCK]
    order = rng.permutation(n)
    while np.all(order == np.arange(n)):
        order = rng.permutation(n)
    return np.concatenate([x[:s], blocks[order].reshape(-1), word[n * BLOCK_SAMPLES:], x[e:]])


def shaped_noise(x, rng):
    """Noise with x's long-term spectrum (x's FFT magnitudes, random phases) and x's envelope."""
    X = np.fft.rfft(x)
    y = np.fft.irfft(np.abs(X) * np.exp(2j * np.pi * rng.random(len(X))), len(x))
    kernel = np.ones(160) / 160                                   # 20 ms RMS envelopes
    env_x = np.sqrt(np.convolve(x ** 2, kernel, "same"))
    env_y = np.sqrt(np.convolve(y ** 2, kernel, "same")) + 1e-9
    return y / env_y * env_x


def two_per_clip(takes):
    """Each take, 0.25 s of silence, then the next take of the same speaker and digit (the list
    is name-sorted). FSDD takes are trimmed close to the word, so without the pause most pairs
    would merge into one segment holding two words."""
    pause = np.zeros(int(PAUSE_S * dc.RATE_HZ))
    out = []
    for (x, d, s), (x2, d2, s2) in zip(takes, takes[1:]):
        if (d, s) == (d2, s2):
            out.append((np.concatenate([x, pause, x2]), d))
    return out


# ------------------------------------------------------------------ scoring

def clip_segments(x):
    """[(start_s, end_s, features [D])] of the utterance-like segments of one clip."""
    mel_db, energy_db = dc.analyse(x)
    hop_s = dc.HOP_SAMPLES / dc.RATE_HZ
    return [(s * hop_s, e * hop_s, dc.segment_features(mel_db, s, e)) for s, e in dc.find_segments(energy_db)]


def inception_score(P):
    """exp(mean_x KL(p(y|x) || p(y))) over the rows of P [N][K]; p(y) = mean row."""
    py = P.mean(axis=0)
    kl = np.sum(P * (np.log(P + 1e-12) - np.log(py + 1e-12)), axis=1)
    return float(np.exp(kl.mean()))


def score_set(clf, name, clips):
    """clips: [(samples, digit or None, label)] -> the set's summary (and per-segment detail)."""
    segs, labels, per_clip, first = [], [], [], []  # first: each clip's first segment's index, or None
    for x, digit, label in clips:
        found = clip_segments(x)
        per_clip.append((label, len(x) / dc.RATE_HZ, [(a, b) for a, b, _ in found]))
        first.append(len(segs) if found else None)
        segs += [f for _, _, f in found]
        labels += [digit] * len(found)
    row = {"set": name, "clips": len(clips), "segments": len(segs)}
    if not segs:
        row.update(confidence=None, confident_fraction=None, inception_score=None, accuracy=None,
                   first_accuracy=None, digits=[0] * dc.N_CLASSES, mean_segment_s=None)
        return row, per_clip, np.zeros((0, dc.N_CLASSES))
    P = clf.predict(np.array(segs))                                  # [segments][K]
    pred, conf = P.argmax(axis=1), P.max(axis=1)
    lengths = [b - a for _, _, ss in per_clip for a, b in ss]
    row.update(confidence=float(conf.mean()),
               confident_fraction=float(np.mean(conf >= 0.9)),
               inception_score=inception_score(P),
               accuracy=(float(np.mean(pred == np.array(labels))) if labels[0] is not None else None),
               # a clip's first word: what was asked for, where a generator babbles on after it (a
               # clip with no segment counts as a miss)
               first_accuracy=(float(np.mean([i is not None and pred[i] == c[1] for i, c in zip(first, clips)]))
                               if labels[0] is not None else None),
               digits=[int(np.sum(pred == k)) for k in range(dc.N_CLASSES)],
               mean_segment_s=float(np.mean(lengths)))
    # acc1's binomial standard error over the clips: two sets' acc1 differ beyond the draw of clips
    # only where the gap is well over sqrt(se_a^2 + se_b^2) (about 0.04 for two sets of 300)
    if row["first_accuracy"] is not None:
        p = row["first_accuracy"]
        row["first_accuracy_se"] = float(np.sqrt(p * (1 - p) / len(clips)))
    return row, per_clip, P


def add_is_at_common_size(rows, probs, rng, draws=50):
    """IS of every row at the same number of segments n (the smallest set's), mean of random draws.

    The IS estimate falls with fewer segments (p(y) is then estimated from the same few rows;
    measured on the real takes: 7.9 at 40 segments, 8.5 at 95, 8.7 at 300), so sets of
    different sizes are compared at one size: column "IS@n".
    """
    sizes = [len(P) for P in probs if len(P)]
    n = min(sizes) if sizes else 0
    for row, P in zip(rows, probs):
        if n == 0 or not len(P):
            row["inception_score_at_n"] = None
        elif len(P) == n:
            row["inception_score_at_n"] = inception_score(P)
        else:
            row["inception_score_at_n"] = float(np.mean(
                [inception_score(P[rng.choice(len(P), n, replace=False)]) for _ in range(draws)]))
        row["n"] = n
    return n


def check_calibration(rows, min_real_accuracy):
    """[(passed, why)] for the calibration rows.

    1. Real takes are classified right: accuracy >= min_real_accuracy (default 0.90). The
       classifier gets about 96% on these takes; with 300 takes one standard error is 1.2
       points, so a sound classifier is 5 SE above the mark, while a broken pipeline (a stale
       NPZ, another sample rate, mangled features) lands near chance (10%).
    2. The segmenter finds the words of clips that hold two: "real, two per clip" accuracy at
       most MAX_SEGMENTER_LOSS (0.05) under that mark (measured 0.925 against 0.957 for single
       takes: a few words are split in two or missed).
    3. Every control is clearly less confident than real speech: its mean confidence at least
       MIN_CONFIDENCE_GAP (0.10) below the real takes', and its Inception Score at most
       MAX_CONTROL_IS_RATIO (0.6) of theirs. Measured: real 0.955 / IS 8.7, controls
       0.66-0.72 / IS 3.4-3.7. Without this the confidence of generated audio would mean nothing.
    """
    by = {r["set"]: r for r in rows}
    real, pairs = by["real takes"], by["real, two per clip"]
    pairs_mark = min_real_accuracy - MAX_SEGMENTER_LOSS
    out = [(real["accuracy"] is not None and real["accuracy"] >= min_real_accuracy,
            f"real takes: accuracy {fmt(real['accuracy'])} >= {min_real_accuracy}"),
           (pairs["accuracy"] is not None and pairs["accuracy"] >= pairs_mark,
            f"real, two per clip: accuracy {fmt(pairs['accuracy'])} >= {pairs_mark:.2f}")]
    for r in rows:
        if r["set"].startswith("control"):
            ok = (r["confidence"] is not None and real["confidence"] is not None and
                  r["confidence"] <= real["confidence"] - MIN_CONFIDENCE_GAP and
                  r["inception_score"] <= MAX_CONTROL_IS_RATIO * real["inception_score"])
            out.append((ok, f"{r['set']}: confidence {fmt(r['confidence'])} <= {fmt(real['confidence'])} - "
                            f"{MIN_CONFIDENCE_GAP} and IS {fmt(r['inception_score'], 2)} <= "
                            f"{MAX_CONTROL_IS_RATIO} x {fmt(real['inception_score'], 2)}"))
    return out


def fmt(v, digits=3):
    return "-" if v is None else f"{v:.{digits}f}"


def print_table(rows):
    print(f"{'set':34s} {'clips':>5s} {'segs':>5s} {'len s':>5s} {'acc':>6s} {'acc1':>6s} {'conf':>6s} {'>=0.9':>6s} "
          f"{'IS':>5s} {'IS@n':>5s}  predicted digits 0..9 (% of segments)")
    for r in rows:
        n = max(1, r["segments"])
        hist = " ".join(f"{100 * c / n:3.0f}" for c in r["digits"])
        print(f"{r['set']:34s} {r['clips']:5d} {r['segments']:5d} {fmt(r['mean_segment_s'], 2):>5s} "
              f"{fmt(r['accuracy']):>6s} {fmt(r['first_accuracy']):>6s} {fmt(r['confidence']):>6s} {fmt(r['confident_fraction']):>6s} "
              f"{fmt(r['inception_score'], 2):>5s} {fmt(r['inception_score_at_n'], 2):>5s}  {hist}")
    print(f"(len s: mean segment length; acc: where the digit is known; acc1: of each clip's first segment "
          f"(none: a miss); conf: mean max-probability; "
          f">=0.9: fraction of segments that confident; IS@n: IS at n = {rows[0]['n']} segments, the "
          f"smallest set's, mean of 50 random draws)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wavs", nargs="*", metavar="WAV", help="8 kHz clips to score (e.g. generated ones)")
    ap.add_argument("--classifier", default=dc.DEFAULT_NPZ,
                    help=f"classifier from digit_classifier.py (default {dc.DEFAULT_NPZ})")
    ap.add_argument("--data", default=dc.default_data_dir(), help="FSDD training split (calibration takes)")
    ap.add_argument("--name", default="generated", help="the WAVs' row name in the table")
    ap.add_argument("--json", help="also write the JSON summary to this file")
    ap.add_argument("--min-real-accuracy", type=float, default=MIN_REAL_ACCURACY,
                    help=f"calibration pass mark for real held-out takes (default {MIN_REAL_ACCURACY})")
    ap.add_argument("--quiet", action="store_true", help="no per-clip lines for the WAVs")
    ap.add_argument("--asked-from-name", action="store_true",
                    help="each WAV was asked for a digit, named in its file name as label<digit>_... "
                         "(digits_score.sh with LABELS=1): report the accuracy against it")
    args = ap.parse_args()

    for path in args.wavs:
        if not os.path.isfile(path):
            sys.exit(f"{path}: no such file")
    if not os.path.exists(args.classifier):
        sys.exit(f"{args.classifier}: no classifier; train one: "
                 f"scripts/digit_classifier.py --out {args.classifier}")
    clf = dc.Classifier.load(args.classifier)
    rng = np.random.default_rng(5)    # the controls' randomness: the same table every run

    takes = dc.held_out_takes(args.data)
    calib = [("real takes", [(x, d, None) for x, d, _ in takes]),
             ("real, two per clip", [(x, d, None) for x, d in two_per_clip(takes)]),
             ("control: reversed", [(reversed_take(x, rng), d, None) for x, d, _ in takes]),
             ("control: shuffled 50 ms blocks", [(shuffled_take(x, rng), d, None) for x, d, _ in takes]),
             ("control: shaped noise", [(shaped_noise(x, rng), d, None) for x, d, _ in takes])]
    scored = [score_set(clf, name, clips) for name, clips in calib]
    rows, probs = [r for r, _, _ in scored], [P for _, _, P in scored]

    gen_row = None
    if args.wavs:
        gen_row, per_clip, P = score_set(clf, args.name, [(dc.read_8k(p), dc.asked_digit(p) if args.asked_from_name else None, p)
                                                          for p in args.wavs])
        probs.append(P)
        if not args.quiet:
            print(f"{args.name}: segments (start-end s) -> digit (confidence)")
            k = 0
            for path, seconds, segs in per_clip:
                parts = []
                for a, b in segs:
                    parts.append(f"{a:.2f}-{b:.2f} -> {P[k].argmax()} ({P[k].max():.2f})")
                    k += 1
                print(f"  {os.path.basename(path)} ({seconds:.2f} s): " + ("; ".join(parts) or "no segment"))
            print()

    add_is_at_common_size(rows + ([gen_row] if gen_row else []), probs, rng)
    checks = check_calibration(rows, args.min_real_accuracy)
    print_table(rows + ([gen_row] if gen_row else []))
    if gen_row and gen_row.get("first_accuracy_se") is not None:
        print(f"acc1 of {gen_row['set']}: {gen_row['first_accuracy']:.3f} +- {gen_row['first_accuracy_se']:.3f} "
              f"(one standard error over its {gen_row['clips']} clips)")
    print()
    for ok, why in checks:
        print(f"calibration {'ok  ' if ok else 'FAIL'}: {why}")
    passed = all(ok for ok, _ in checks)
    summary = {"classifier": os.path.abspath(args.classifier), "calibration": rows,
               "calibration_passed": passed, "calibration_checks": [why for _, why in checks],
               "generated": gen_row}
    print(json.dumps(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    if not passed:
        print("the calibration failed: the classifier cannot tell digits from non-digits, so its scores "
              "mean nothing (retrain: scripts/digit_classifier.py)", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
