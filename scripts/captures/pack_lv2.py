#!/usr/bin/env python3
"""Packs LV2 plugins for a machine without them: each plugin's binary, the libzita-resampler it
links, and its saved `lv2info URI` listing (BINARY.info), which lv2run.py --lv2info-dir reads
instead of asking lv2info. scripts/device_effect_data.sh and tests/make_targets_test.py use it.

usage: pack_lv2.py DIR PLUGIN_URI...
"""
import os
import shutil
import subprocess
import sys


def pack(uris, dst):
    os.makedirs(dst, exist_ok=True)
    for uri in uris:
        info = subprocess.run(["lv2info", uri], check=True, capture_output=True, text=True).stdout
        binary = next((l.split("file://")[1].strip() for l in info.splitlines()
                       if l.strip().startswith("Binary:")), None)
        if binary is None:
            raise SystemExit(f"pack_lv2: lv2info lists no binary for {uri}")
        shutil.copy(binary, dst)
        with open(os.path.join(dst, os.path.basename(binary) + ".info"), "w") as f:
            f.write(info)
        ldd = subprocess.run(["ldd", binary], check=True, capture_output=True, text=True).stdout
        for line in ldd.splitlines():
            if "zita" in line and "=>" in line:
                shutil.copy(line.split("=>")[1].split()[0], dst)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    pack(sys.argv[2:], sys.argv[1])
