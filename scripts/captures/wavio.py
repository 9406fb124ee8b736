"""Mono WAV files as float32 numpy arrays: the few formats the capture scripts meet (PCM 16,
24, 32-bit and IEEE float, plain or WAVE_FORMAT_EXTENSIBLE). Writes 32-bit float, under a
temporary name renamed on success, so an interrupted run leaves no truncated file."""
import os
import struct

import numpy as np


def read_wav(path, mix=False):
    """-> (samples float32 [frames], rate). Refuses anything but one channel, unless mix: then
    the channels' mean."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    fmt = None
    i = 12
    while i + 8 <= len(data):
        cid, n = data[i:i + 4], struct.unpack("<I", data[i + 4:i + 8])[0]
        body = data[i + 8:i + 8 + n]
        if cid == b"fmt ":
            tag, ch, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == 0xFFFE:  # extensible: the real tag opens the sub-format GUID
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, ch, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise ValueError(f"{path}: data before fmt")
            tag, ch, rate, bits = fmt
            if ch != 1 and not mix:
                raise ValueError(f"{path}: {ch} channels, expected mono")
            frame_bytes = ch * (bits // 8)
            if frame_bytes:  # a truncated last frame is dropped
                body = body[: len(body) // frame_bytes * frame_bytes]
            if tag == 3 and bits == 32:
                x = np.frombuffer(body, dtype="<f4")
            elif tag == 1 and bits == 16:
                x = np.frombuffer(body, dtype="<i2") / 32768.0
            elif tag == 1 and bits == 32:
                x = np.frombuffer(body, dtype="<i4") / 2147483648.0
            elif tag == 1 and bits == 24:
                b = np.frombuffer(body[: len(body) // 3 * 3], dtype=np.uint8).reshape(-1, 3).astype(np.int32)
                v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
                x = np.where(v >= 1 << 23, v - (1 << 24), v) / 8388608.0
            else:
                raise ValueError(f"{path}: format tag {tag} with {bits} bits is not read here")
            if ch != 1:
                x = np.asarray(x, dtype=np.float64).reshape(-1, ch).mean(axis=1)
            return np.asarray(x, dtype=np.float32), rate
        i += 8 + n + (n & 1)
    raise ValueError(f"{path}: no data chunk")


def write_wav(path, x, rate):
    """x: [frames] -> mono 32-bit float WAV."""
    x = np.asarray(x, dtype="<f4")
    payload = x.tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, int(rate), int(rate) * 4, 4, 32)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(payload)) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        f.write(b"data" + struct.pack("<I", len(payload)) + payload)
    os.replace(tmp, path)
