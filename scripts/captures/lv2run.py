#!/usr/bin/env python3
"""Run a mono LV2 effect plugin over a WAV file, in blocks: the same job as `lv2apply`, faster.

Why this exists: lv2apply (lilv-utils 0.24) reads and writes one sample per system call and
runs the plugin one sample at a time; here that is about 0.7 s of wall time per second of
audio, so the capture set (~45 min of audio through six pedal settings) would take the better
part of an hour. This host loads the plugin's shared object with ctypes, finds its
LV2_Descriptor, connects the ports from `lv2info`'s listing and calls run() on blocks of
4096 samples. make_captures.sh checks, for every pedal setting, that its output equals
lv2apply's on an excerpt (the same plugin code, so it should be identical to float rounding).

Only what these plugins need: no required LV2 features, one audio input, one audio output,
control inputs; a plugin that requires features is refused.

usage: lv2run.py [-c SYMBOL VALUE]... [--lv2info-dir DIR] PLUGIN_URI IN.wav OUT.wav [IN.wav OUT.wav]...
  (a fresh plugin instance for every file, as lv2apply would start one)
"""
import argparse
import ctypes
import os
import re
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wavio import read_wav, write_wav  # noqa: E402

BLOCK = 4096


class LV2Descriptor(ctypes.Structure):
    pass


LV2Handle = ctypes.c_void_p
LV2Descriptor._fields_ = [
    ("URI", ctypes.c_char_p),
    ("instantiate", ctypes.CFUNCTYPE(LV2Handle, ctypes.POINTER(LV2Descriptor), ctypes.c_double,
                                     ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p))),
    ("connect_port", ctypes.CFUNCTYPE(None, LV2Handle, ctypes.c_uint32, ctypes.c_void_p)),
    ("activate", ctypes.CFUNCTYPE(None, LV2Handle)),
    ("run", ctypes.CFUNCTYPE(None, LV2Handle, ctypes.c_uint32)),
    ("deactivate", ctypes.CFUNCTYPE(None, LV2Handle)),
    ("cleanup", ctypes.CFUNCTYPE(None, LV2Handle)),
    ("extension_data", ctypes.c_void_p),
]


def describe(uri, info_dir=None):
    """The plugin's binary, bundle, required features and ports, from `lv2info URI`, or from
    INFO_DIR/<plugin binary's name>.info (a saved lv2info listing) with the binary beside it,
    for a machine without lilv (scripts/device_effect_data.sh packs such a directory)."""
    if info_dir:
        text = ""
        for name in sorted(os.listdir(info_dir)):
            if name.endswith(".info"):
                candidate = open(os.path.join(info_dir, name)).read()
                if candidate.strip().splitlines()[0].strip() == uri:  # lv2info's first line
                    text = candidate
        if not text:
            raise SystemExit(f"lv2run: no saved lv2info listing of {uri} in {info_dir}")
    else:
        text = subprocess.run(["lv2info", uri], check=True, capture_output=True, text=True).stdout
    if not text.strip():
        raise SystemExit(f"lv2run: lv2info knows no plugin {uri}")
    binary = re.search(r"^\s*Binary:\s*file://(\S+)", text, re.M).group(1)
    bundle = re.search(r"^\s*Bundle:\s*file://(\S+)", text, re.M).group(1)
    if info_dir:
        binary = os.path.join(os.path.abspath(info_dir), os.path.basename(binary))
        bundle = os.path.abspath(info_dir) + "/"
    required = re.search(r"^\s*Required Features:\s*(\S+)", text, re.M)
    if required:
        raise SystemExit(f"lv2run: {uri} requires LV2 features ({required.group(1)}...); use lv2apply")
    parsed = []
    chunks = re.split(r"\n\s*Port (\d+):\n", text)
    for index, body in zip(chunks[1::2], chunks[2::2]):
        kinds = re.findall(r"lv2core#(\w+Port)", body)
        symbol = re.search(r"Symbol:\s*(\S+)", body).group(1)
        default = re.search(r"Default:\s*(\S+)", body)
        parsed.append({"index": int(index), "symbol": symbol,
                       "audio": "AudioPort" in kinds, "control": "ControlPort" in kinds,
                       "input": "InputPort" in kinds, "output": "OutputPort" in kinds,
                       "default": float(default.group(1)) if default else 0.0})
    return binary, bundle, parsed


def load_descriptor(uri, binary):
    lib = ctypes.CDLL(binary)
    lib.lv2_descriptor.restype = ctypes.POINTER(LV2Descriptor)
    lib.lv2_descriptor.argtypes = [ctypes.c_uint32]
    for i in range(256):
        d = lib.lv2_descriptor(i)
        if not d:
            break
        if d.contents.URI.decode() == uri:
            return lib, d
    raise SystemExit(f"lv2run: {binary} has no descriptor for {uri}")


def run_plugin(uri, desc, bundle, ports, x, rate, controls):
    """x: float32 [frames] -> the plugin's output, float32 [frames], from a fresh instance."""
    features = (ctypes.c_void_p * 1)(None)  # none offered, none required
    handle = desc.contents.instantiate(desc, rate, bundle.encode(), features)
    if not handle:
        raise SystemExit(f"lv2run: {uri} failed to instantiate at {rate} Hz")

    symbols = {p["symbol"] for p in ports}
    for sym in controls:
        if sym not in symbols:
            raise SystemExit(f"lv2run: {uri} has no port '{sym}' (ports: {', '.join(sorted(symbols))})")
    audio_in = [p for p in ports if p["audio"] and p["input"]]
    audio_out = [p for p in ports if p["audio"] and p["output"]]
    if len(audio_in) != 1 or len(audio_out) != 1:
        raise SystemExit(f"lv2run: {uri} has {len(audio_in)} audio inputs and {len(audio_out)} outputs, expected 1 and 1")
    keep = []  # ctypes objects the plugin holds pointers to
    for p in ports:
        if p["control"]:
            value = ctypes.c_float(controls.get(p["symbol"], p["default"]))
            keep.append(value)
            desc.contents.connect_port(handle, p["index"], ctypes.addressof(value))
    buf_in = np.zeros(BLOCK, dtype=np.float32)
    buf_out = np.zeros(BLOCK, dtype=np.float32)
    desc.contents.connect_port(handle, audio_in[0]["index"], buf_in.ctypes.data)
    desc.contents.connect_port(handle, audio_out[0]["index"], buf_out.ctypes.data)
    if desc.contents.activate:
        desc.contents.activate(handle)
    y = np.empty_like(x)
    for start in range(0, len(x), BLOCK):
        n = min(BLOCK, len(x) - start)
        buf_in[:n] = x[start:start + n]
        desc.contents.run(handle, n)
        y[start:start + n] = buf_out[:n]
    if desc.contents.deactivate:
        desc.contents.deactivate(handle)
    desc.contents.cleanup(handle)
    return y


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-c", dest="controls", nargs=2, action="append", default=[], metavar=("SYMBOL", "VALUE"))
    ap.add_argument("--lv2info-dir", metavar="DIR",
                    help="read the plugin's saved `lv2info URI` listing (*.info) and binary from DIR "
                         "instead of asking lv2info")
    ap.add_argument("uri")
    ap.add_argument("files", nargs="+", metavar="IN OUT")
    a = ap.parse_args()
    if len(a.files) % 2:
        ap.error("expected pairs of IN OUT files")
    binary, bundle, ports = describe(a.uri, a.lv2info_dir)
    _lib, desc = load_descriptor(a.uri, binary)
    controls = {s: float(v) for s, v in a.controls}
    for inp, out in zip(a.files[0::2], a.files[1::2]):
        x, rate = read_wav(inp)
        y = run_plugin(a.uri, desc, bundle, ports, x, rate, controls)
        if not np.all(np.isfinite(y)):
            raise SystemExit(f"lv2run: {a.uri} produced non-finite samples on {inp}")
        write_wav(out, y, rate)


if __name__ == "__main__":
    main()
