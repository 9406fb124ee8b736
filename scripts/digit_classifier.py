#!/usr/bin/env python3
"""A small spoken-digit classifier for judging the digits generator (numpy only, one CPU core).

    digit_classifier.py [--data DIR] [--out NPZ] [--members N] [--loso SPEAKER|all|none]

Trains on the Free Spoken Digit training split (DIR, default ../shared/data/fsdd/train from
the repository root: files DIGIT_SPEAKER_INDEX.wav, 8 kHz 16-bit mono), recordings 10..49 of
every speaker and digit, and reports its accuracy on recordings 5..9 (the digits generator's
own validation split: held-out takes of speakers it has heard) and, with --loso, on a whole
speaker it has never heard (trained again without that speaker). Saves the weights and the
feature normalisation to NPZ (default /tmp/mambawave-digits/classifier.npz; not committed).
scripts/digit_score.py uses it to score generated audio; docs/DIGITS.md explains both.

The pipeline, shared with digit_score.py (which imports this file):
  audio -> 8-bit mu-law round trip (the generator's own domain, so its quantisation noise is
  no surprise to the classifier) -> STFT (25 ms Hann windows, 10 ms hop, 256-point FFT) ->
  40 mel bands (60..3800 Hz), dB -> energy voice activity (frames within VAD_RANGE_DB of the
  loudest frame, gaps up to MERGE_GAP_S merged) -> the word's frames resampled to N_FRAMES ->
  level removed (the segment's mean dB subtracted, floor at FLOOR_DB below its peak) -> the
  lowest N_DCT_MEL x N_DCT_TIME coefficients of its 2-D DCT (a smooth outline of the word; MFCCs
  are the same idea along one axis) -> standardised with the training set's per-feature mean and
  deviation -> an ensemble of one-hidden-layer MLPs (ReLU), whose averaged softmax is
  p(digit | segment).

Small on purpose: this machine's numpy runs on the reference BLAS (about 1 GFLOP/s), so the
features are 130 numbers, not the 1280 of the mel map, and training takes seconds.

Dimension letters: N clips or segments, T frames, F FFT bins (129), M mel bands (40),
D features (N_DCT_MEL * N_DCT_TIME = 130), H hidden units, K classes (10).
"""
import argparse
import os
import re
import sys
import time

# One core: others share this machine. Must be set before numpy loads its BLAS.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "captures"))
import wavio  # noqa: E402

# ---- feature settings (saved in the NPZ; a classifier made with other values is refused) ----
FEATURE_VERSION = 1
RATE_HZ = 8000
WIN_SAMPLES = 200      # 25 ms analysis window
HOP_SAMPLES = 80       # 10 ms hop: one frame = 10 ms
N_FFT = 256
N_MELS = 40
MEL_LO_HZ, MEL_HI_HZ = 60.0, 3800.0
N_FRAMES = 32          # every segment is resampled to this many frames
FLOOR_DB = 60.0        # features are clipped at the segment's peak minus this
N_DCT_MEL, N_DCT_TIME = 13, 10   # 2-D DCT coefficients kept (along bands, along frames)
# ---- voice activity (utterance-like segments) ----
VAD_RANGE_DB = 30.0    # a frame is active when its energy is within this of the clip's loudest
MERGE_GAP_S = 0.15     # active runs closer than this are one segment (stop closures in "six", "eight")
MIN_SEG_S = 0.12       # shorter ones are clicks or fragments (FSDD words: 1st percentile 0.15 s)
MAX_SEG_S = 1.00       # longer ones are split at their quietest frame (99% of FSDD words are under 0.65 s)
# ---- the model ----
N_CLASSES = 10
HIDDEN = 64
MEMBERS = 3            # ensemble size: the members' softmaxes are averaged
EPOCHS = 20
BATCH = 64
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-4
JITTER_FRAMES = 3      # training augmentation: word boundaries moved by up to this many frames
N_JITTERED = 1         # jittered copies of each training clip, besides the clip itself

NAME_RE = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
VAL_INDICES = range(5, 10)   # the generator's validation split: recordings 5..9


def default_data_dir():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.normpath(os.path.join(root, "..", "shared", "data", "fsdd", "train"))


DEFAULT_NPZ = "/tmp/mambawave-digits/classifier.npz"


# ------------------------------------------------------------------ audio in

def read_wav(path):
    """(rate_hz, samples float64 in [-1, 1], mono: the channels' mean) from a WAV file."""
    try:
        x, rate = wavio.read_wav(path, mix=True)
    except ValueError as e:
        sys.exit(str(e))
    return rate, x.astype(np.float64)


def read_8k(path):
    rate, x = read_wav(path)
    if rate != RATE_HZ:
        sys.exit(f"{path}: {rate} Hz; the digit classifier works at {RATE_HZ} Hz (resample first)")
    return x


def mulaw_round_trip(x, mu=255.0):
    """x quantised to 8-bit mu-law and back: y = sign(x) ln(1 + mu|x|) / ln(1 + mu), 256 codes."""
    y = np.sign(x) * np.log1p(mu * np.minimum(np.abs(x), 1.0)) / np.log1p(mu)
    code = np.round((y + 1.0) * 127.5)                      # 0..255
    y = code / 127.5 - 1.0
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu


def asked_digit(path):
    """The digit a generated clip was asked for, from its name: label7_003.wav -> 7."""
    m = re.match(r"label(\d)_", os.path.basename(path))
    if not m:
        sys.exit(f"{path}: --asked-from-name wants names such as label7_003.wav")
    return int(m.group(1))


def fsdd_files(data_dir):
    """[(path, digit, speaker, index)] for every DIGIT_SPEAKER_INDEX.wav in data_dir, sorted."""
    out = []
    for name in sorted(os.listdir(data_dir)):
        m = NAME_RE.match(name)
        if m:
            out.append((os.path.join(data_dir, name), int(m.group(1)), m.group(2), int(m.group(3))))
    if not out:
        sys.exit(f"{data_dir}: no DIGIT_SPEAKER_INDEX.wav files (the Free Spoken Digit training split)")
    return out


# ------------------------------------------------------------------ spectrogram

def mel_filterbank():
    """[M][F] triangular filters, equally spaced on the mel scale m = 2595 log10(1 + f / 700)."""
    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(MEL_LO_HZ), hz_to_mel(MEL_HI_HZ), N_MELS + 2))  # [M+2]
    bins_hz = np.arange(N_FFT // 2 + 1) * RATE_HZ / N_FFT                                  # [F]
    fb = np.zeros((N_MELS, len(bins_hz)))
    for m in range(N_MELS):
        lo, mid, hi = edges_hz[m], edges_hz[m + 1], edges_hz[m + 2]
        rise = (bins_hz - lo) / (mid - lo)
        fall = (hi - bins_hz) / (hi - mid)
        fb[m] = np.maximum(0.0, np.minimum(rise, fall))
    return fb


MEL_FB = mel_filterbank()                                                   # [M][F]
def dct_matrix(n, k):
    """[k][n] DCT-II basis: row j is cos(pi / n * (t + 1/2) * j), t = 0..n-1 (unnormalised)."""
    t = np.arange(n)
    return np.cos(np.pi / n * (t[None, :] + 0.5) * np.arange(k)[:, None])


DCT_MEL = dct_matrix(N_MELS, N_DCT_MEL)                                     # [N_DCT_MEL][M]
DCT_TIME = dct_matrix(N_FRAMES, N_DCT_TIME)                                 # [N_DCT_TIME][N_FRAMES]
WINDOW = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN_SAMPLES) / WIN_SAMPLES)  # periodic Hann


def analyse(x):
    """The clip's mel spectrogram and frame energies, both in dB.

    Returns (mel_db [T][M], energy_db [T]); frame t covers samples [t*HOP, t*HOP + WIN).
    """
    x = mulaw_round_trip(np.asarray(x, np.float64))
    x = x - x.mean()
    if len(x) < WIN_SAMPLES:
        x = np.pad(x, (0, WIN_SAMPLES - len(x)))
    n = 1 + (len(x) - WIN_SAMPLES) // HOP_SAMPLES
    idx = np.arange(WIN_SAMPLES)[None, :] + HOP_SAMPLES * np.arange(n)[:, None]  # [T][WIN]
    power = np.abs(np.fft.rfft(x[idx] * WINDOW, n=N_FFT, axis=1)) ** 2          # [T][F]
    mel_db = 10.0 * np.log10(power @ MEL_FB.T + 1e-12)                           # [T][M]
    energy_db = 10.0 * np.log10(power.sum(axis=1) + 1e-12)                       # [T]
    return mel_db, energy_db


def find_segments(energy_db, min_seg_s=MIN_SEG_S, max_seg_s=MAX_SEG_S):
    """Utterance-like segments [(start, end)] in frames (end exclusive), from frame energies.

    Active frames: within VAD_RANGE_DB of the clip's loudest. Runs closer than MERGE_GAP_S are
    merged; segments shorter than min_seg_s are dropped; longer than max_seg_s are split at their
    quietest frame (at least min_seg_s from either end) until none is too long.
    """
    frames_per_s = RATE_HZ / HOP_SAMPLES
    active = energy_db >= energy_db.max() - VAD_RANGE_DB
    runs, t = [], 0
    while t < len(active):
        if active[t]:
            s = t
            while t < len(active) and active[t]:
                t += 1
            runs.append([s, t])
        else:
            t += 1
    merged = []
    for s, e in runs:
        if merged and s - merged[-1][1] <= MERGE_GAP_S * frames_per_s:
            merged[-1][1] = e
        else:
            merged.append([s, e])
    min_len, max_len = int(round(min_seg_s * frames_per_s)), int(round(max_seg_s * frames_per_s))
    out, todo = [], [tuple(m) for m in merged]
    while todo:
        s, e = todo.pop(0)
        if e - s < min_len:
            continue
        if e - s <= max_len:
            out.append((s, e))
            continue
        cut = s + min_len + int(np.argmin(energy_db[s + min_len:e - min_len]))
        todo[:0] = [(s, cut), (cut + 1, e)]
    return out


def word_span(energy_db):
    """The whole word of a clip known to hold one: first to last active frame (any length)."""
    segs = find_segments(energy_db, min_seg_s=0.0, max_seg_s=1e9)
    if not segs:
        return 0, len(energy_db)
    return segs[0][0], segs[-1][1]


def segment_features(mel_db, start, end):
    """[D] features of frames [start, end): resampled to N_FRAMES, level removed, flattened."""
    seg = mel_db[start:end]                                         # [t][M]
    src = np.linspace(0.0, len(seg) - 1.0, N_FRAMES)                # fractional source frames
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, len(seg) - 1)
    w = (src - lo)[:, None]
    fixed = (1 - w) * seg[lo] + w * seg[hi]                         # [N_FRAMES][M]
    fixed = np.maximum(fixed, fixed.max() - FLOOR_DB)
    fixed = fixed - fixed.mean()
    coef = DCT_MEL @ fixed.T @ DCT_TIME.T                           # [N_DCT_MEL][N_DCT_TIME]
    return coef.reshape(-1).astype(np.float32)                      # [D]


def clip_word_features(x, rng=None, n_jittered=0):
    """Features of a one-word clip (the word span), plus n_jittered copies with moved boundaries."""
    mel_db, energy_db = analyse(x)
    s, e = word_span(energy_db)
    feats = [segment_features(mel_db, s, e)]
    for _ in range(n_jittered):
        js = int(np.clip(s + rng.integers(-JITTER_FRAMES, JITTER_FRAMES + 1), 0, e - 2))
        je = int(np.clip(e + rng.integers(-JITTER_FRAMES, JITTER_FRAMES + 1), js + 2, len(mel_db)))
        feats.append(segment_features(mel_db, js, je))
    return feats


# ------------------------------------------------------------------ the model

def init_mlp(rng, d_in, hidden=HIDDEN):
    """He-initialised weights: W1 [D][H], b1 [H], W2 [H][K], b2 [K]."""
    return {"W1": rng.normal(0, np.sqrt(2.0 / d_in), (d_in, hidden)).astype(np.float32),
            "b1": np.zeros(hidden, np.float32),
            "W2": rng.normal(0, np.sqrt(2.0 / hidden), (hidden, N_CLASSES)).astype(np.float32),
            "b2": np.zeros(N_CLASSES, np.float32)}


def mlp_logits(p, X):
    """X [N][D] -> (logits [N][K], hidden activations [N][H])."""
    h = np.maximum(0.0, X @ p["W1"] + p["b1"])      # h = relu(X W1 + b1)
    return h @ p["W2"] + p["b2"], h                 # z = h W2 + b2


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train_mlp(X, y, seed, epochs=EPOCHS, log=None):
    """One member: cross-entropy + L2 (decoupled weight decay), Adam, shuffled minibatches."""
    rng = np.random.default_rng(seed)
    p = init_mlp(rng, X.shape[1])
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    b1, b2, eps, step = 0.9, 0.999, 1e-8, 0
    onehot = np.eye(N_CLASSES, dtype=np.float32)[y]                 # [N][K]
    for epoch in range(epochs):
        order = rng.permutation(len(X))
        loss_sum = 0.0
        for i in range(0, len(X), BATCH):
            idx = order[i:i + BATCH]
            xb, tb = X[idx], onehot[idx]
            z, h = mlp_logits(p, xb)
            prob = softmax(z)
            loss_sum += -np.sum(tb * np.log(prob + 1e-12))
            dz = (prob - tb) / len(idx)                              # dL/dz of the mean cross-entropy
            dh = (dz @ p["W2"].T) * (h > 0)
            grads = {"W2": h.T @ dz, "b2": dz.sum(0), "W1": xb.T @ dh, "b1": dh.sum(0)}
            step += 1
            for k in p:
                m[k] = b1 * m[k] + (1 - b1) * grads[k]
                v[k] = b2 * v[k] + (1 - b2) * grads[k] ** 2
                mhat, vhat = m[k] / (1 - b1 ** step), v[k] / (1 - b2 ** step)
                p[k] -= LEARNING_RATE * (mhat / (np.sqrt(vhat) + eps) + WEIGHT_DECAY * p[k])
        if log and (epoch + 1) % 10 == 0:
            log(f"    member seed {seed}: epoch {epoch + 1}/{epochs}, training loss {loss_sum / len(X):.4f}")
    return p


class Classifier:
    """Feature standardisation plus an ensemble of MLPs; predict() gives p(digit | features)."""

    def __init__(self, mean, std, members):
        self.mean, self.std, self.members = mean, std, members

    def predict(self, F):
        """F [N][D] raw features -> [N][K] probabilities (the members' softmaxes averaged)."""
        X = (np.asarray(F, np.float32) - self.mean) / self.std
        return np.mean([softmax(mlp_logits(p, X)[0]) for p in self.members], axis=0)

    def save(self, path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        arrays = {"mean": self.mean, "std": self.std, "settings": settings_array()}
        for i, p in enumerate(self.members):
            for k, a in p.items():
                arrays[f"m{i}_{k}"] = a
        np.savez(path, **arrays)

    @staticmethod
    def load(path):
        z = np.load(path)
        if "settings" not in z or not np.array_equal(z["settings"], settings_array()):
            sys.exit(f"{path}: made with other feature settings than this digit_classifier.py; "
                     f"delete it and train again (scripts/digit_classifier.py --out {path})")
        n = len([k for k in z.files if k.endswith("_W1")])
        members = [{k: z[f"m{i}_{k}"] for k in ("W1", "b1", "W2", "b2")} for i in range(n)]
        return Classifier(z["mean"], z["std"], members)


def settings_array():
    """The settings a saved classifier must share with this file, as numbers."""
    return np.array([FEATURE_VERSION, RATE_HZ, WIN_SAMPLES, HOP_SAMPLES, N_FFT, N_MELS, MEL_LO_HZ,
                     MEL_HI_HZ, N_FRAMES, FLOOR_DB, N_DCT_MEL, N_DCT_TIME, VAD_RANGE_DB, MERGE_GAP_S],
                    np.float64)


def fit(clips, n_members=MEMBERS, epochs=EPOCHS, seed=1, log=None):
    """Train on [(samples, digit)] clips: jittered word features, standardised, n_members MLPs."""
    rng = np.random.default_rng(seed)
    F, y = [], []
    for x, digit in clips:
        f = clip_word_features(x, rng, N_JITTERED)
        F += f
        y += [digit] * len(f)
    F, y = np.array(F, np.float32), np.array(y)
    mean, std = F.mean(axis=0), F.std(axis=0) + 1e-3
    X = (F - mean) / std
    members = [train_mlp(X, y, seed=seed * 1000 + i, epochs=epochs, log=log) for i in range(n_members)]
    return Classifier(mean, std, members)


def word_accuracy(clf, clips):
    """Accuracy over one-word [(samples, digit)] clips, each classified on its word span."""
    F = np.array([clip_word_features(x)[0] for x, _ in clips])
    y = np.array([d for _, d in clips])
    pred = clf.predict(F).argmax(axis=1)
    return float(np.mean(pred == y)), pred, y


def held_out_takes(data_dir):
    """[(samples, digit, speaker)] of the generator's validation split (recordings VAL_INDICES)."""
    return [(read_8k(p), d, s) for p, d, s, i in fsdd_files(data_dir) if i in VAL_INDICES]


def load_fsdd(data_dir):
    """[(samples, digit, speaker, index)] for the whole directory."""
    return [(read_8k(path), d, s, i) for path, d, s, i in fsdd_files(data_dir)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=default_data_dir(), help="FSDD training split directory")
    ap.add_argument("--out", default=DEFAULT_NPZ, help=f"where to save the classifier (default {DEFAULT_NPZ})")
    ap.add_argument("--members", type=int, default=MEMBERS, help="ensemble size")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--loso", default="jackson",
                    help="speaker(s) to hold out entirely, comma-separated, 'all' or 'none' (default jackson)")
    args = ap.parse_args()

    t0 = time.time()
    data = load_fsdd(args.data)
    train = [(x, d) for x, d, s, i in data if i not in VAL_INDICES]
    held = [(x, d) for x, d, s, i in data if i in VAL_INDICES]
    print(f"{len(data)} clips from {args.data}: training on {len(train)} (recordings 10..49), "
          f"testing on {len(held)} (recordings 5..9)")
    clf = fit(train, args.members, args.epochs, log=print)
    acc, pred, y = word_accuracy(clf, held)
    print(f"held-out takes (recordings 5..9, speakers seen): accuracy {acc:.4f} "
          f"({int(round(acc * len(held)))}/{len(held)})  [{time.time() - t0:.0f} s]")
    print_confusion(pred, y)
    clf.save(args.out)
    print(f"saved {args.out}")

    speakers = sorted({s for _, _, s, _ in data})
    loso = {"all": speakers, "none": []}.get(args.loso, [s for s in args.loso.split(",") if s])
    for spk in loso:
        if spk not in speakers:
            sys.exit(f"--loso {spk}: no such speaker (have {', '.join(speakers)})")
        tr = [(x, d) for x, d, s, i in data if s != spk and i not in VAL_INDICES]
        te = [(x, d) for x, d, s, i in data if s == spk]
        acc_s, _, _ = word_accuracy(fit(tr, args.members, args.epochs), te)
        print(f"held-out speaker {spk} (trained without them, all {len(te)} of their takes): "
              f"accuracy {acc_s:.4f}  [{time.time() - t0:.0f} s]")


def print_confusion(pred, y):
    """Rows: true digit; columns: predicted digit."""
    c = np.zeros((N_CLASSES, N_CLASSES), int)
    for p, t in zip(pred, y):
        c[t, p] += 1
    print("confusion (rows true, columns predicted):")
    print("      " + " ".join(f"{k:3d}" for k in range(N_CLASSES)))
    for t in range(N_CLASSES):
        print(f"  {t:2d}: " + " ".join(f"{c[t, k]:3d}" for k in range(N_CLASSES)))


if __name__ == "__main__":
    main()
