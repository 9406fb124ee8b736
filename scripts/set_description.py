#!/usr/bin/env python3
"""Sets the one-line description of a MambaWave model file (the `description` field of the
config JSON in the safetensors header, which `mambawave info` and the plugins show), and with
--guidance W a labelled generator's own guidance weight (`io.guidance`: what `generate --label`
uses when not told, and where the Synth's Guidance knob goes when the model is picked), leaving
every other field and every tensor byte as it was. For a model trained without
`train --description`, e.g. on the GPU machine, before it is shipped as a preset.

    scripts/set_description.py MODEL.safetensors ["TEXT"] [--guidance W] [--out OTHER.safetensors]

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
    ap.add_argument("text", nargs="?", help="the new description (left as it is when not given)")
    ap.add_argument("--guidance", type=float, help="io.guidance: the model's own label guidance weight, 0..20 (0: none)")
    ap.add_argument("--out", help="write here instead of over MODEL")
    a = ap.parse_args()
    if a.text is None and a.guidance is None:
        sys.exit("set_description.py: give a description, --guidance W, or both")
    if a.text is not None and (not a.text.strip() or "\n" in a.text):
        sys.exit(f"set_description.py: the description must be one non-empty line")
    if a.guidance is not None and not 0 <= a.guidance <= 20:
        sys.exit(f"set_description.py: --guidance {a.guidance}: expected 0..20")
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
    if a.text is not None:
        config["description"] = a.text
    if a.guidance is not None:
        io = config.get("io", {})
        if not io.get("label_prefix"):
            sys.exit(f"{a.model}: --guidance: the model has no labels (io.label_prefix): guidance is for labelled generators")
        if a.guidance == 0:
            io.pop("guidance", None)
        else:
            io["guidance"] = a.guidance
    meta["mambawave"] = json.dumps(config, indent=2)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # tensors stay 8-byte aligned
    out = a.out or a.model
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data[8 + n:])
    os.replace(tmp, out)
    done = (["description"] if a.text is not None else []) + ([f"guidance {a.guidance:g}"] if a.guidance is not None else [])
    print(f"{out}: {' and '.join(done)} set")


if __name__ == "__main__":
    main()
