#!/usr/bin/env python3
"""Fails when the digit classifier behind scripts/digit_score.py breaks (docs/DIGITS.md).

    digit_score_test.py [REPO_ROOT]     (MW_FSDD_DIR=DIR: the FSDD training split elsewhere)

Trains a small classifier (recordings 10..29 of each speaker and digit, two members; about
10 s on one core) and checks, on the held-out recordings 5..9:
  - the segmenter finds one word in a take, and two in two takes with a pause between;
  - accuracy on real takes above a floor (0.85; the full classifier gets 0.957);
  - the shuffled-50-ms-blocks and reversed controls clearly less confident than real takes;
  - the NPZ round trip gives the same probabilities, and an NPZ made with other settings is
    refused;
  - digit_score.py passes its calibration with this classifier (exit 0) and fails it (exit 2)
    with one whose weights are scrambled.
Exits 77 (skipped) where the FSDD data is missing.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(root, "scripts"))
import digit_classifier as dc  # noqa: E402  (one BLAS thread before numpy loads)
import digit_score as ds  # noqa: E402
import numpy as np  # noqa: E402

ACCURACY_FLOOR = 0.85      # this small classifier gets about 0.93 on the held-out takes
CONFIDENCE_GAP = 0.10      # controls at least this far under the real takes' mean confidence

failures = []


def check(ok, what):
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)


def main():
    data_dir = os.environ.get("MW_FSDD_DIR") or dc.default_data_dir()
    if not os.path.isdir(data_dir):
        print(f"skipped: no FSDD training split at {data_dir} (set MW_FSDD_DIR)")
        sys.exit(77)
    data = dc.load_fsdd(data_dir)
    train = [(x, d) for x, d, s, i in data if 10 <= i < 30]
    held = [(x, d) for x, d, s, i in data if i in dc.VAL_INDICES]
    clf = dc.fit(train, n_members=2, epochs=15)

    # The segmenter: one take is one segment; take + 0.25 s pause + take are two.
    x0 = held[0][0]
    one = dc.find_segments(dc.analyse(x0)[1])
    two = dc.find_segments(dc.analyse(np.concatenate([x0, np.zeros(2000), held[1][0]]))[1])
    check(len(one) == 1 and len(two) == 2,
          f"segments: one take -> {len(one)} (want 1), two with a pause -> {len(two)} (want 2)")

    rng = np.random.default_rng(3)
    real, _, P_real = ds.score_set(clf, "real takes", [(x, d, None) for x, d in held])
    check(real["accuracy"] >= ACCURACY_FLOOR,
          f"real held-out takes: accuracy {real['accuracy']:.3f} >= {ACCURACY_FLOOR}")
    # acc1, a clip's first segment: 40 clips of a take, a pause and a take of another digit, and
    # 10 silent clips (no segment: misses). The first words are right, half the segments are not.
    pairs = []
    for i, (x, d) in enumerate(held[:40]):
        y = next(y for y, e in held[i + 1:] + held if e != d)
        pairs.append((np.concatenate([x, np.zeros(2000), y]), d, None))
    mixed, _, _ = ds.score_set(clf, "pairs and silence", pairs + [(np.zeros(8000), 3, None)] * 10)
    check(0.8 * (ACCURACY_FLOOR - 0.05) <= mixed["first_accuracy"] <= 0.8 and mixed["accuracy"] <= 0.6,
          f"first-segment accuracy: {mixed['first_accuracy']:.3f} in [{0.8 * (ACCURACY_FLOOR - 0.05):.3f}, 0.8] "
          f"(40 of 50 clips can be right), all segments {mixed['accuracy']:.3f} <= 0.6")
    p1 = mixed["first_accuracy"]
    check(abs(mixed.get("first_accuracy_se", -1) - (p1 * (1 - p1) / 50) ** 0.5) < 1e-9,
          f"acc1's standard error over the 50 clips: {mixed.get('first_accuracy_se')} "
          f"(want sqrt(p(1-p)/50) = {(p1 * (1 - p1) / 50) ** 0.5:.4f})")
    for name, make in [("shuffled 50 ms blocks", ds.shuffled_take), ("reversed", ds.reversed_take)]:
        row, _, _ = ds.score_set(clf, name, [(make(x, rng), d, None) for x, d in held])
        check(row["confidence"] <= real["confidence"] - CONFIDENCE_GAP,
              f"control {name}: confidence {row['confidence']:.3f} <= "
              f"real {real['confidence']:.3f} - {CONFIDENCE_GAP}")
        check(row["inception_score"] < real["inception_score"] / 1.5,
              f"control {name}: IS {row['inception_score']:.2f} < real {real['inception_score']:.2f} / 1.5")

    with tempfile.TemporaryDirectory() as tmp:
        npz = os.path.join(tmp, "classifier.npz")
        clf.save(npz)
        F = np.array([dc.clip_word_features(x)[0] for x, _ in held[:20]])
        check(np.allclose(dc.Classifier.load(npz).predict(F), clf.predict(F), atol=1e-6),
              "NPZ round trip: same probabilities")

        # An NPZ whose settings differ is refused (sys.exit with a message).
        z = dict(np.load(npz))
        z["settings"] = z["settings"] + 1
        stale = os.path.join(tmp, "stale.npz")
        np.savez(stale, **z)
        try:
            dc.Classifier.load(stale)
            check(False, "an NPZ made with other settings is refused")
        except SystemExit as e:
            check("other feature settings" in str(e.code), "an NPZ made with other settings is refused")

        # digit_score.py end to end: passes with this classifier (a lower pass mark: it is the
        # small one), fails with scrambled weights.
        script = os.path.join(root, "scripts", "digit_score.py")
        run = [sys.executable, script, "--data", data_dir, "--quiet",
               "--min-real-accuracy", str(ACCURACY_FLOOR), "--classifier"]
        r = subprocess.run(run + [npz], capture_output=True, text=True)
        check(r.returncode == 0, f"digit_score.py with the classifier: exit {r.returncode} (want 0)")
        if r.returncode != 0:
            print(r.stdout[-3000:], r.stderr[-3000:])
        # --asked-from-name (LABELS=1 in digits_score.sh): real held-out takes named after their
        # own digit score as they do above; named after the next digit, near zero.
        takes = [(p, d) for p, d, s, i in dc.fsdd_files(data_dir) if i in dc.VAL_INDICES][:40]
        for name, shift in (("right", 0), ("wrong", 1)):
            folder = os.path.join(tmp, name)
            os.makedirs(folder)
            wavs = []
            for k, (p, d) in enumerate(takes):
                wavs.append(os.path.join(folder, f"label{(d + shift) % 10}_{k:03d}.wav"))
                shutil.copy(p, wavs[-1])
            out = os.path.join(tmp, name + ".json")
            r = subprocess.run(run + [npz, "--asked-from-name", "--json", out] + wavs, capture_output=True, text=True)
            acc = json.load(open(out))["generated"]["accuracy"] if r.returncode == 0 else None
            want = (lambda a: a >= ACCURACY_FLOOR) if shift == 0 else (lambda a: a <= 0.2)
            check(acc is not None and want(acc),
                  f"--asked-from-name, takes named after {'their own' if shift == 0 else 'the next'} digit: "
                  f"accuracy {acc}")
        for k in [k for k in z if k.endswith("_W1")]:
            z[k] = np.random.default_rng(0).permutation(z[k].reshape(-1)).reshape(z[k].shape)
        z["settings"] = dc.settings_array()
        broken = os.path.join(tmp, "broken.npz")
        np.savez(broken, **z)
        r = subprocess.run(run + [broken], capture_output=True, text=True)
        check(r.returncode == 2,
              f"digit_score.py with scrambled weights: exit {r.returncode} (want 2: calibration failed)")

        # scripts/digits_score.sh gives each SEED clips of its own (until 2026-12-07 it passed SEED to
        # generate --seed as it was, and generate draws clip k with seed + k - 1: seeds 1 and 11
        # shared 20 of their 30 clips a digit). A stand-in mambawave logs each --seed and --count
        # and writes copies of a real take where the clips would go.
        stub, log = os.path.join(tmp, "mw_stub"), os.path.join(tmp, "seeds.log")
        with open(stub, "w") as f:
            f.write(f"""#!{sys.executable}
import shutil, sys
a = sys.argv[1:]
seed, count, out = int(a[a.index("--seed") + 1]), int(a[a.index("--count") + 1]), a[a.index("-o") + 1]
open({log!r}, "a").write(f"{{seed}} {{count}}\\n")
for k in range(1, count + 1):
    shutil.copy({takes[0][0]!r}, out if count == 1 else out[:-4] + f"_{{k:03d}}.wav")
""")
        os.chmod(stub, 0o755)
        env = dict(os.environ, MW=stub, CLASSIFIER=npz, FSDD=data_dir, PYTHON=sys.executable, LABELS="1",
                   COUNT="200", SEED="1 11", ASR="0")
        r = subprocess.run(["bash", os.path.join(root, "scripts", "digits_score.sh"), npz], env=env,
                           capture_output=True, text=True)
        calls = [tuple(map(int, line.split())) for line in open(log)] if os.path.exists(log) else []
        check(len(calls) == 20 and all(n == 20 for _, n in calls),
              f"digits_score.sh asked for 20 clips of each digit for each of two seeds: {calls}")
        check(sorted({s for s, _ in calls}) == [1000, 11000], f"SEED s draws from s x 1000: {sorted({s for s, _ in calls})}")
        ranges = sorted({(s, s + n) for s, n in calls})
        check(all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:])), f"no two seeds share a clip: {ranges}")
        check("label9_s11__020.wav" in r.stdout, "digits_score.sh scored the clips it asked for")

        # LABELS=random: generate --label random lists the digit each clip drew, and the script names
        # each clip after it. A stand-in writes real held-out takes and lists each take's own digit,
        # so that the right names score as real takes do; a script that put the names on the wrong
        # clips would score near chance.
        stub2 = os.path.join(tmp, "mw_random")
        with open(stub2, "w") as f:
            f.write(f"""#!{sys.executable}
import os, shutil, sys
a = sys.argv[1:]
assert a[a.index("--label") + 1] == "random", a
count, out = int(a[a.index("--count") + 1]), a[a.index("-o") + 1]
takes = {takes!r}
listed = []
for k in range(1, count + 1):
    p, d = takes[(k * 7) % len(takes)]
    name = out[:-4] + f"_{{k:03d}}.wav"
    shutil.copy(p, name)
    listed.append(f"{{os.path.basename(name)}} {{d}}")
print("generated " + str(count) + " clips")
print("labels drawn at random: " + ", ".join(listed))
""")
        os.chmod(stub2, 0o755)
        out = os.path.join(tmp, "random.json")
        env = dict(os.environ, MW=stub2, CLASSIFIER=npz, FSDD=data_dir, PYTHON=sys.executable, LABELS="random",
                   COUNT="30", SEED="1 2", ASR="0", JSON=out)
        r = subprocess.run(["bash", os.path.join(root, "scripts", "digits_score.sh"), npz], env=env,
                           capture_output=True, text=True)
        got = json.load(open(out))["generated"] if r.returncode == 0 and os.path.exists(out) else {}
        check(got.get("clips") == 60 and got.get("first_accuracy", 0) >= 0.85,
              f"LABELS=random: 60 clips scored against the digits listed, as real takes (acc1 >= 0.85): "
              f"exit {r.returncode}, {got.get('clips')} clips, acc1 {got.get('first_accuracy')}")

    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
