#!/usr/bin/env python3
"""Sets the one-line description of a MambaWave model file (the `description` field of the
config JSON in the safetensors header, which `mambawave info` and the plugins show), leaving
every other field and every tensor byte as it was. For a model trained without
`train --description`, e.g. on the GPU machine, before it is shipped as a preset.

    scripts/set_description.py MODEL.safetensors "TEXT" [--out OTHER.safetensors]

Writes under a temporary name and renames, so a failure leaves MODEL as it was.
"""
import argparse
import json
import os
import struct
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("--out", help="write here instead of over MODEL")
    a = ap.parse_args()
    if not a.text.strip() or "\n" in a.text:
        sys.exit(f"set_description.py: the description must be one non-empty line")
    with open(a.model, "rb") as f:
        data = f.read()
    if len(data) < 8:
        sys.exit(f"{a.model}: {len(data)} bytes, too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        sys.exit(f"{a.model}: header length {n} runs past the file's {len(data)} bytes")
    header = json.loads(data[8:8 + n])
    meta = header.get("__metadata__", {})
    if "mambawave" not in meta:
        sys.exit(f"{a.model}: no __metadata__.mambawave config: not a MambaWave model file")
    config = json.loads(meta["mambawave"])
    config["description"] = a.text
    meta["mambawave"] = json.dumps(config, indent=2)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # tensors stay 8-byte aligned
    out = a.out or a.model
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data[8 + n:])
    os.replace(tmp, out)
    print(f"{out}: description set")


if __name__ == "__main__":
    main()
