#!/usr/bin/env python3
"""make_targets.py and lv2run.py --lv2info-dir, as the GPU machine runs them (no lilv, no
installed plugins): targets made from a packed plugin directory must equal, sample for sample,
what lv2run.py makes with the installed plugins, and bad manifests and missing listings must be
refused with a message that names the problem.

Skips (exit 77) where the guitarix LV2 plugins or lv2info are not installed (scripts/setup.sh
installs both).   usage: make_targets_test.py REPO_ROOT
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
CAP = os.path.join(ROOT, "scripts", "captures")
sys.path.insert(0, CAP)
from checks import EFFECTS, RATE  # noqa: E402
from pack_lv2 import pack  # noqa: E402
from wavio import read_wav, write_wav  # noqa: E402

failures = []


def check(ok, what):
    print(("ok      " if ok else "FAILED  ") + what, flush=True)
    if not ok:
        failures.append(what)


def guitar_like(seed, seconds=1.5):
    """0.25 s of silence (as the capture inputs start), then plucked harmonic notes and a little
    noise, peaking at -6 dBFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = np.zeros_like(t)
    for start, f0 in ((0.25, 82.4), (0.7, 196.0), (1.1, 329.6)):
        tt = np.clip(t - start, 0, None)
        note = sum(np.sin(2 * np.pi * f0 * k * tt) / k for k in range(1, 6)) * np.exp(-4 * tt)
        x += np.where(t >= start, note, 0)
    x += 0.01 * rng.standard_normal(len(t)) * (t >= 0.25)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def run(cmd, env=None):
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def main():
    if shutil.which("lv2info") is None or run(["lv2info", EFFECTS["ts9"]["plugin"]]).returncode != 0:
        print("SKIP: lv2info or the guitarix LV2 plugins are not installed (scripts/setup.sh)")
        return 77
    tmp = tempfile.mkdtemp(prefix="mw_make_targets_")
    try:
        return test(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test(tmp):
    os.makedirs(os.path.join(tmp, "in"))
    for i, name in enumerate(("a", "b")):
        write_wav(os.path.join(tmp, "in", name + ".wav"), guitar_like(i), RATE)
    settings = [("ts9", {"drive": 0.75, "tone": 200.0}, "targets/ts9_a"),
                ("ds1", {"drive": 1.0, "tone": 0.25}, "targets/ds1_a")]
    pairs = [dict(input=f"in/{n}.wav", target=f"{d}/{n}.wav", effect=e, controls=c, split="train")
             for e, c, d in settings for n in ("a", "b")]
    manifest = dict(format="mambawave-captures", version=1, sample_rate_hz=RATE, effects=EFFECTS, pairs=pairs)
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    pack([e["plugin"] for e in EFFECTS.values()], os.path.join(tmp, "lv2"))

    # As on the GPU machine: no lv2info on PATH, no LV2_PATH, only the packed directory.
    bare = os.path.join(tmp, "bare_bin")
    os.makedirs(bare)
    env = dict(os.environ, PATH=bare, LV2_PATH=os.path.join(tmp, "nowhere"))
    r = run([sys.executable, os.path.join(CAP, "make_targets.py"), os.path.join(tmp, "manifest.json"),
             "--jobs", "2"], env)
    check(r.returncode == 0 and "4 targets for 2 settings" in r.stdout,
          f"make_targets.py without lv2info: rc {r.returncode}, says {r.stdout.strip()[-80:]!r} {r.stderr.strip()[-300:]!r}")

    # The reference: lv2run.py with the installed plugins and the system's lv2info.
    for effect, controls, where in settings:
        e = EFFECTS[effect]
        args = []
        for port, value in e["fixed"].items():
            args += ["-c", port.split()[0], str(value)]
        for name, value in controls.items():
            args += ["-c", e["controls"][name]["port"], str(value)]
        files = []
        for n in ("a", "b"):
            files += [os.path.join(tmp, "in", n + ".wav"), os.path.join(tmp, f"ref_{effect}_{n}.wav")]
        r = run([sys.executable, os.path.join(CAP, "lv2run.py")] + args + [e["plugin"]] + files)
        check(r.returncode == 0, f"lv2run.py {effect} with the installed plugin: {r.stderr.strip()[-300:]!r}")
        for n in ("a", "b"):
            x, _ = read_wav(os.path.join(tmp, "in", n + ".wav"))
            path = os.path.join(tmp, where, n + ".wav")
            if not os.path.exists(path):
                check(False, f"{where}/{n}.wav was not written")
                continue
            y, rate = read_wav(path)
            ref, _ = read_wav(os.path.join(tmp, f"ref_{effect}_{n}.wav"))
            check(rate == RATE and y.shape == x.shape and np.all(np.isfinite(y)),
                  f"{where}/{n}.wav: {len(y)} frames at {rate} Hz, finite (input {len(x)} frames)")
            check(y.shape == ref.shape and np.array_equal(y, ref),
                  f"{where}/{n}.wav equals the installed plugin's output (max diff "
                  f"{np.max(np.abs(y - ref)) if y.shape == ref.shape else 'n/a'})")
            # the pedal did something: not a copy of the input, not silence
            esr = float(np.sum((y - x) ** 2) / np.sum(y ** 2)) if np.any(y) else 0.0
            check(esr > 0.01 and np.max(np.abs(y)) > 1e-3, f"{where}/{n}.wav is the pedal's output (ESR vs input {esr:.3g})")

    # Two pairs that share a target directory must share their knob settings.
    bad = dict(manifest, pairs=[dict(pairs[0]), dict(pairs[1], controls={"drive": 0.1, "tone": 200.0})])
    with open(os.path.join(tmp, "bad.json"), "w") as f:
        json.dump(bad, f)
    r = run([sys.executable, os.path.join(CAP, "make_targets.py"), os.path.join(tmp, "bad.json")], env)
    check(r.returncode != 0 and "disagree on their knob settings" in (r.stdout + r.stderr),
          f"a manifest whose pairs disagree in one directory is refused: rc {r.returncode}, {r.stderr.strip()[-200:]!r}")

    # A directory without the plugin's saved listing is refused by name.
    empty = os.path.join(tmp, "empty_lv2")
    os.makedirs(empty)
    r = run([sys.executable, os.path.join(CAP, "lv2run.py"), "--lv2info-dir", empty, EFFECTS["ts9"]["plugin"],
             os.path.join(tmp, "in", "a.wav"), os.path.join(tmp, "never.wav")], env)
    check(r.returncode != 0 and "no saved lv2info listing" in r.stderr and not os.path.exists(os.path.join(tmp, "never.wav")),
          f"lv2run.py --lv2info-dir without the listing is refused: rc {r.returncode}, {r.stderr.strip()[-200:]!r}")

    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
