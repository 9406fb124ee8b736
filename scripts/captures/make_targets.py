#!/usr/bin/env python3
"""Makes the targets of a captures manifest by running its effects' LV2 plugins over its inputs.

For a machine without the Debian packages (the GPU machine): the manifest's "effects" name
each plugin's URI, fixed ports ("PORT (note)": value) and the port of every control; each pair
gets its target from a fresh plugin instance at the pair's control values, exactly as
make_captures.sh made it. The plugin binaries and their saved `lv2info` listings come from
DIR/lv2 (scripts/device_effect_data.sh packs them); one lv2run.py process per knob setting,
all cores busy.

usage: make_targets.py MANIFEST [--jobs N]     (targets are written where the manifest says)
"""
import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest")
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    a = ap.parse_args()
    base = os.path.dirname(os.path.abspath(a.manifest))
    m = json.load(open(a.manifest))
    lv2 = os.path.join(base, "lv2")
    env = dict(os.environ, LD_LIBRARY_PATH=lv2 + ":" + os.environ.get("LD_LIBRARY_PATH", ""))

    settings = {}  # (effect, target dir) -> (lv2run arguments, [input, target, ...])
    for p in m["pairs"]:
        e = m["effects"][p["effect"]]
        args = []
        for port, value in e.get("fixed", {}).items():
            args += ["-c", port.split()[0], str(value)]
        for name, value in p["controls"].items():
            args += ["-c", e["controls"][name]["port"], str(value)]
        key = (p["effect"], os.path.dirname(p["target"]))
        entry = settings.setdefault(key, (args + [e["plugin"]], []))
        if entry[0] != args + [e["plugin"]]:
            sys.exit(f"make_targets: {a.manifest}: pairs in {key[1]} disagree on their knob settings")
        target = os.path.join(base, p["target"])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        entry[1].extend([os.path.join(base, p["input"]), target])

    def run(item):
        (_effect, where), (args, files) = item
        subprocess.run([sys.executable, os.path.join(HERE, "lv2run.py"), "--lv2info-dir", lv2] + args + files,
                       check=True, env=env)
        return where

    start = time.time()
    with ThreadPoolExecutor(a.jobs) as ex:
        for where in ex.map(run, settings.items()):
            print(f"make_targets: {where} done ({time.time() - start:.0f} s)", flush=True)
    print(f"make_targets: {len(m['pairs'])} targets for {len(settings)} settings in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
