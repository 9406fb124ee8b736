#!/usr/bin/env python3
"""Stores a MambaWave model file's F32 tensors as F16 (IEEE half), halving the file, for a
shipped preset that would otherwise be large. Every loader path converts F16 back to float on
load (model/safetensors.h), so the model runs in float as before, on weights rounded to 11
significant bits. Refuses a tensor whose values do not fit F16 (|x| > 65504), and prints the
largest rounding error against each tensor's largest value; check the model's metric after (`mambawave eval`).

    scripts/to_f16.py MODEL.safetensors --out SMALLER.safetensors

Writes under a temporary name and renames, so a failure leaves nothing behind.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(a.model, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out_header, chunks, offset, worst = {}, [], 0, 0.0
    for name, spec in header.items():
        if name == "__metadata__":
            out_header[name] = spec
            continue
        begin, end = spec["data_offsets"]
        raw = body[begin:end]
        if spec["dtype"] == "F32":
            x = np.frombuffer(raw, dtype="<f4")
            if x.size and np.max(np.abs(x)) > 65504:
                sys.exit(f"{a.model}: tensor '{name}' holds |x| = {np.max(np.abs(x)):g}, beyond F16's 65504")
            h = x.astype("<f2")
            if x.size and np.max(np.abs(x)) > 0:  # the rounding against the tensor's largest value
                worst = max(worst, float(np.max(np.abs(h.astype(np.float32) - x)) / np.max(np.abs(x))))
            raw, dtype = h.tobytes(), "F16"
        else:
            dtype = spec["dtype"]
        out_header[name] = {"dtype": dtype, "shape": spec["shape"], "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(out_header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = a.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))
    os.replace(tmp, a.out)
    print(f"{a.out}: F16, {os.path.getsize(a.out)} bytes; largest rounding error {worst:.2e} of its tensor's largest value")


if __name__ == "__main__":
    main()
