#!/usr/bin/env python3
"""SSM variants on our data (issue 5, item 7): is a non-selective (LTI) layer or a complex-valued
state worth supporting? The Mamba paper (Gu & Dao 2023, section 4.3) found both helped in the
layers nearest the waveform for raw-audio pretraining. This trains the variants side by side
from the same start, on the same batches, for the same steps, and reports held-out metrics.

It is a research tool in PyTorch, run on the GPU machine (torch is installed there; it is not a
dependency of MambaWave). Every layer picks one SSM mode; the rest of the Mamba block (RMSNorm,
in_proj, causal conv + SiLU, D, SiLU(z) gate, out_proj, residual) and the heads are the model of
../shared/DESIGN.md in every variant:

  sel   the shipped model: Δ, B, C from the input (x_proj, dt_proj), real A = -exp(A_log),
        S4D-real start (A = -(n+1))
  lti   non-selective: Δ = softplus(dt_bias) per channel, B and C learnt [d_inner, d_state],
        real A (S4D-real), no x_proj or dt_proj
  csel  selective, complex state: A = -exp(A_log) + i·A_im (S4D-Lin start: -1/2 + iπn),
        x_proj makes complex B and C (2·d_state real numbers each), y = Re(C·s)
  clti  non-selective and complex: S4D-Lin with learnt complex B, C (the paper's "S4D" layer)
  dsel  Δ fixed per channel (softplus(dt_bias)), B and C selective (x_proj without its Δ rows):
        MambaWave's own file format can hold it (x_proj's Δ rows zero), and its decays are
        constants, as LTI's are

A variant is named by its layers, e.g. `clti,sel,sel,clti` (complex LTI at the two layers
nearest the signal). Complex states hold twice the numbers of real ones at the same d_state.

The scan is chunked (16 steps; within a chunk a cumulative sum about the chunk's middle, across
chunks a masked product in groups of 16 chunks, then a short loop), exact up to float rounding
except that Re(Δ·A) is clamped at -5 per step (a decay of 0.0067 per sample or faster, for every
variant alike); `self-check` tests it against a step-by-step float64 loop and tests the `sel`
model against MambaWave's own reference forward (`mambawave run --path reference`) on an
exported file.

  ssm_ablation.py train --task ts9 --layers sel,sel,sel,sel --steps 3000 --out DIR [--name N]
      effects (ts9, ds1): the capture manifest's train pairs, ESR loss (pooled over the batch)
      after a warm-up; validation: one fixed crop of every val pair, mean / max / pooled ESR.
      digits: FSDD, mu-law 8 bit, recordings 5..9 held out (MambaWave's rule); cross-entropy;
      validation: NLL in bits per sample over every held-out clip, teacher-forced.
      Writes DIR/NAME.json (config, curve, final and best validation) and, for all-`sel`
      effect models, DIR/NAME.safetensors that `mambawave eval` reads.
  ssm_ablation.py pack-digits FSDD_DIR OUT.npz    the digits as classes, to carry to the GPU machine
  ssm_ablation.py table DIR...       the JSON files as one markdown table
  ssm_ablation.py self-check [--mambawave build/bin/mambawave]
"""
import argparse
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    import torch.utils.checkpoint
except ImportError:
    if "self-check" in sys.argv:  # ctest's ssm_ablation_self_check: 77 = skipped
        print("ssm_ablation self-check skipped: no PyTorch here (apt-get install python3-torch; "
              "the GPU machine has it)")
        sys.exit(77)
    sys.exit("ssm_ablation.py needs PyTorch: apt-get install python3-torch (the GPU machine has it)")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "captures"))
import wavio  # noqa: E402

MODES = ("sel", "lti", "csel", "clti", "dsel")
CHUNK = 16      # steps per chunk of the scan
GROUP = 16      # chunks per group in the scan's second level
DA_MIN = -5.0   # Re(Δ·A) clamped here (see the module's doc)


# ------------------------------------------------------------------ the scan

def scan(dA, bx):
    """States s_t = exp(dA_t) ⊙ s_{t-1} + bx_t from s_{-1} = 0. dA, bx: [B, L, E, N], real or
    complex (Re dA <= 0). Returns s: [B, L, E, N]."""
    cplx = dA.is_complex()
    if cplx:
        dA = torch.complex(dA.real.clamp(min=DA_MIN), dA.imag)
    else:
        dA = dA.clamp(min=DA_MIN)
    Bt, L, E, N = dA.shape
    pad = (-L) % CHUNK
    if pad:  # steps past the end: no decay, no input (they never reach a returned state)
        dA = F.pad(dA, (0, 0, 0, 0, 0, pad))
        bx = F.pad(bx, (0, 0, 0, 0, 0, pad))
    nc = dA.shape[1] // CHUNK
    dA = dA.view(Bt, nc, CHUNK, E, N)
    bx = bx.view(Bt, nc, CHUNK, E, N)
    # Level 1: each chunk from zero. s_t = Σ_{j<=t} exp(S_t - S_j) bx_j with S the running sum
    # of dA, computed as exp(S_t - m)·Σ exp(m - S_j) bx_j about m = S_end / 2, so that neither
    # exponent exceeds 8·5 = 40 in size.
    S = torch.cumsum(dA, 2)
    m = 0.5 * S[:, :, -1:]
    loc = torch.exp(S - m) * torch.cumsum(bx * torch.exp(m - S), 2)
    # Level 2: the true state at each chunk's end, H_c = exp(S_end,c) H_{c-1} + loc_end,c.
    H = chunk_ends(S[:, :, -1], loc[:, :, -1])
    start = torch.cat([torch.zeros_like(H[:, :1]), H[:, :-1]], 1)
    s = loc + torch.exp(S) * start[:, :, None]
    return s.reshape(Bt, nc * CHUNK, E, N)[:, :L]


def chunk_ends(lS, h):
    """H_c = exp(lS_c) H_{c-1} + h_c, H_{-1} = 0, for lS, h: [B, C, E, N]: a masked product
    within groups of GROUP chunks (every exponent <= 0), then a loop over the groups."""
    Bt, C, E, N = lS.shape
    pad = (-C) % GROUP
    if pad:
        lS = F.pad(lS, (0, 0, 0, 0, 0, pad))
        h = F.pad(h, (0, 0, 0, 0, 0, pad))
    ng = lS.shape[1] // GROUP
    lS = lS.view(Bt, ng, GROUP, E, N)
    h = h.view(Bt, ng, GROUP, E, N)
    cs = torch.cumsum(lS, 2)                                   # [B, g, i, E, N]
    diff = cs[:, :, :, None] - cs[:, :, None, :]               # [B, g, i, j, E, N]: cs_i - cs_j
    mask = torch.tril(torch.ones(GROUP, GROUP, dtype=torch.bool, device=lS.device))[:, :, None, None]
    far = torch.full((), -1e4, dtype=diff.dtype, device=diff.device)
    M = torch.exp(torch.where(mask, diff, far))                # exp(-1e4) = 0 above the diagonal
    loc = (M * h[:, :, None]).sum(3)                           # [B, g, i, E, N], from zero
    decay = torch.exp(cs)
    out, carry = [], torch.zeros_like(loc[:, 0, 0])
    for g in range(ng):
        Hg = loc[:, g] + decay[:, g] * carry[:, None]
        out.append(Hg)
        carry = Hg[:, -1]
    return torch.stack(out, 1).view(Bt, ng * GROUP, E, N)[:, :C]


def scan_loop(dA, bx):
    """The same recurrence step by step in float64: the oracle for self-check."""
    dA = dA.to(torch.complex128 if dA.is_complex() else torch.float64)
    bx = bx.to(dA.dtype)
    if dA.is_complex():
        dA = torch.complex(dA.real.clamp(min=DA_MIN), dA.imag)
    else:
        dA = dA.clamp(min=DA_MIN)
    s = torch.zeros_like(bx[:, 0])
    out = []
    for t in range(dA.shape[1]):
        s = torch.exp(dA[:, t]) * s + bx[:, t]
        out.append(s)
    return torch.stack(out, 1)


# ------------------------------------------------------------------ the model

def inv_softplus(x):
    return x + torch.log(-torch.expm1(-x))


class Layer(torch.nn.Module):
    def __init__(self, D, E, N, n_layers, mode, g):
        super().__init__()
        assert mode in MODES, f"layer mode {mode!r}: one of {', '.join(MODES)}"
        self.mode, self.E, self.N = mode, E, N
        self.cplx, self.lti = mode.startswith("c"), mode.endswith("lti")
        self.fixed_dt = self.lti or mode == "dsel"
        self.R = math.ceil(D / 16)
        P = torch.nn.Parameter
        rn = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
        self.norm = P(torch.ones(D))
        self.in_proj = P(rn(2 * E, D) / math.sqrt(D))
        self.conv_w = P(rn(E, 1, 4) / 2.0)
        self.conv_b = P(0.1 * rn(E))
        dt = torch.exp(math.log(1e-3) + torch.rand(E, generator=g) * (math.log(1e-1) - math.log(1e-3)))
        self.dt_b = P(inv_softplus(dt))
        if self.cplx:  # S4D-Lin: A = -1/2 + iπn
            self.A_log = P(torch.full((E, N), math.log(0.5)))
            self.A_im = P(math.pi * torch.arange(N, dtype=torch.float32).expand(E, N).clone())
        else:          # S4D-real: A = -(n + 1)
            self.A_log = P(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).expand(E, N).clone())
        w = 2 if self.cplx else 1  # real numbers per B or C entry
        if self.lti:
            self.B = P(torch.ones(E, N, w) if self.cplx else torch.ones(E, N))
            if self.cplx:
                self.B.data[..., 1] = 0.0
            self.C = P(rn(E, N, w) * math.sqrt(0.5) if self.cplx else rn(E, N))
        else:
            self.x_proj = P(rn(self.R + 2 * w * N, E) / math.sqrt(E))
            self.dt_w = P(rn(E, self.R) / math.sqrt(self.R))
            # dsel leaves x_proj's Δ rows and dt_w unused (no gradient reaches them)
        self.D = P(torch.ones(E))
        self.out_proj = P(rn(D, E) / math.sqrt(E) / math.sqrt(n_layers))

    def A(self):
        a = -torch.exp(self.A_log)
        return torch.complex(a, self.A_im) if self.cplx else a

    def forward(self, x):
        E, N = self.E, self.N
        h = rms_norm(x, self.norm)
        u, z = (h @ self.in_proj.t()).split(E, -1)
        u = F.conv1d(F.pad(u.transpose(1, 2), (3, 0)), self.conv_w, self.conv_b, groups=E).transpose(1, 2)
        u = F.silu(u)
        if self.lti:
            dt = F.softplus(self.dt_b).expand_as(u)
            Bm = torch.view_as_complex(self.B) if self.cplx else self.B   # [E, N]
            Cm = torch.view_as_complex(self.C) if self.cplx else self.C
            bx = (dt * u)[..., None] * Bm
        else:
            xp = u @ self.x_proj.t()
            r, bc = xp[..., :self.R], xp[..., self.R:]
            dt = F.softplus(self.dt_b).expand_as(u) if self.fixed_dt else F.softplus(r @ self.dt_w.t() + self.dt_b)
            if self.cplx:
                bc = torch.view_as_complex(bc.reshape(*bc.shape[:-1], 2 * N, 2).contiguous())
            Bm, Cm = bc[..., :N], bc[..., N:]                            # [B, L, N]
            bx = (dt * u)[..., None] * Bm[:, :, None, :]
            Cm = Cm[:, :, None, :]
        s = scan(dt[..., None] * self.A(), bx)
        y = (s * Cm).sum(-1)
        if self.cplx:
            y = y.real
        y = y + self.D * u
        return x + (y * F.silu(z)) @ self.out_proj.t()


def rms_norm(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


class Model(torch.nn.Module):
    """kind 'effect' (inputs [B, L, 1 + n_cond] -> [B, L]) or 'generator' (classes [B, L] ->
    logits [B, L, 256], tied embeddings), layers: one mode per layer."""

    def __init__(self, kind, D, layers, N=16, n_cond=0, seed=1):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.kind, self.D, self.modes, self.N, self.n_cond = kind, D, list(layers), N, n_cond
        E = 2 * D
        P = torch.nn.Parameter
        if kind == "effect":
            self.stem_w = P(torch.randn(D, 1 + n_cond, generator=g))
            self.stem_b = P(0.1 * torch.randn(D, generator=g))
            self.head_w = P(0.005 / math.sqrt(D) * torch.randn(1, D, generator=g))
            self.head_b = P(torch.zeros(1))
        else:
            self.embed = P(0.1 * torch.randn(256, D, generator=g))
        self.layers = torch.nn.ModuleList(Layer(D, E, N, len(layers), m, g) for m in layers)
        self.norm_f = P(torch.ones(D))
        self.checkpoint = False

    def forward(self, x):
        h = x @ self.stem_w.t() + self.stem_b if self.kind == "effect" else self.embed[x]
        for layer in self.layers:
            if self.checkpoint and torch.is_grad_enabled():
                h = torch.utils.checkpoint.checkpoint(layer, h, use_reentrant=False)
            else:
                h = layer(h)
        h = rms_norm(h, self.norm_f)
        if self.kind == "effect":
            return (h @ self.head_w.t() + self.head_b)[..., 0]
        return h @ self.embed.t()


def export_mambawave(model, path, controls):
    """An all-`sel` effect model as a MambaWave .safetensors (tensor names as HF's Mamba)."""
    assert model.kind == "effect" and all(m == "sel" for m in model.modes)
    D, E, N = model.D, 2 * model.D, model.N
    t = {"stem.weight": model.stem_w, "stem.bias": model.stem_b, "head.weight": model.head_w,
         "head.bias": model.head_b, "backbone.norm_f.weight": model.norm_f}
    for i, L in enumerate(model.layers):
        p = f"backbone.layers.{i}."
        t.update({p + "norm.weight": L.norm, p + "mixer.in_proj.weight": L.in_proj,
                  p + "mixer.conv1d.weight": L.conv_w, p + "mixer.conv1d.bias": L.conv_b,
                  p + "mixer.x_proj.weight": L.x_proj, p + "mixer.dt_proj.weight": L.dt_w,
                  p + "mixer.dt_proj.bias": L.dt_b, p + "mixer.A_log": L.A_log, p + "mixer.D": L.D,
                  p + "mixer.out_proj.weight": L.out_proj})
    config = {"model_type": "mamba", "hidden_size": D, "intermediate_size": E, "state_size": N,
              "num_hidden_layers": len(model.layers), "expand": 2, "conv_kernel": 4,
              "time_step_rank": math.ceil(D / 16), "layer_norm_epsilon": 1e-5,
              "tie_word_embeddings": True, "use_bias": False, "use_conv_bias": True, "format_version": 1,
              "io": {"kind": "continuous", "sample_rate": 48000, "n_cond": len(controls),
                     "controls": controls, "skip": False},
              "untrained": False, "description": "effect trained by scripts/ssm_ablation.py"}
    header, blobs, off = {}, [], 0
    for name, v in t.items():
        a = v.detach().cpu().float().contiguous().numpy()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    header["__metadata__"] = {"format": "pt", "mambawave": json.dumps(config)}
    h = json.dumps(header).encode()
    h += b" " * ((-len(h)) % 8)
    with open(path + ".part", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(path + ".part", path)


# ------------------------------------------------------------------ data

def normalise(value, spec):
    lo, hi, v = spec["min"], spec["max"], value
    if spec.get("log_scale"):
        lo, hi, v = math.log(lo), math.log(hi), math.log(v)
    return 2.0 * (v - lo) / (hi - lo) - 1.0


class EffectData:
    """The manifest's pairs of one effect: input rows [x, controls...] and aligned targets."""

    def __init__(self, manifest, effect, split):
        m = json.load(open(manifest))
        base = os.path.dirname(os.path.abspath(manifest))
        specs = m["effects"][effect]["controls"]
        self.names = list(specs)
        self.controls = [{"name": n, "unit": s.get("unit", ""), "min": s["min"], "max": s["max"],
                          "default": s["default"], "scale": "log" if s.get("log_scale") else "linear"}
                         for n, s in specs.items()]
        inputs, self.pairs = {}, []
        for p in m["pairs"]:
            if p["effect"] != effect or p["split"] != split:
                continue
            if p["input"] not in inputs:
                inputs[p["input"]] = wavio.read_wav(os.path.join(base, p["input"]))[0]
            x = inputs[p["input"]]
            y = wavio.read_wav(os.path.join(base, p["target"]))[0]
            lat = int(p.get("latency_samples", 0))
            n = min(len(x), len(y) - lat)
            cond = np.array([normalise(p["controls"][k], specs[k]) for k in self.names], np.float32)
            self.pairs.append((x[:n], y[lat:lat + n], cond, p["target"]))
        if not self.pairs:
            sys.exit(f"{manifest}: no {split} pairs of effect {effect!r}")
        self.lengths = np.array([len(p[0]) for p in self.pairs], np.float64)

    def crop(self, i, start, length):
        x, y, cond, _ = self.pairs[i]
        rows = np.empty((length, 1 + len(cond)), np.float32)
        rows[:, 0] = x[start:start + length]
        rows[:, 1:] = cond
        return rows, y[start:start + length]

    def loud_crops(self, length, tries=16, seed=12345):
        """[(pair, start)]: per pair the crop whose target is loudest of `tries` seeded draws
        (a crop of near silence would make a meaningless ESR)."""
        rng, out = np.random.default_rng(seed), []
        for i, (x, y, _, _) in enumerate(self.pairs):
            starts = rng.integers(0, max(1, len(x) - length), size=tries)
            out.append((i, int(max(starts, key=lambda s: float(np.square(y[s:s + length]).sum())))))
        return out

    def batch(self, rng, B, length):
        idx = rng.choice(len(self.pairs), size=B, p=self.lengths / self.lengths.sum())
        xs, ys = zip(*(self.crop(i, int(rng.integers(0, len(self.pairs[i][0]) - length)), length) for i in idx))
        return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def mulaw(x, mu=255.0):
    """MambaWave's encoder (dsp/mulaw.cpp): 256 classes, 128 near silence."""
    x = np.clip(np.nan_to_num(x), -1.0, 1.0)
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return np.clip(np.floor((y + 1.0) * 0.5 * mu + 0.5), 0, 255).astype(np.int64)


def fsdd(data_dir):
    """(train, val) lists of class arrays, MambaWave's split: recordings 5..9 held out. data_dir
    may also be an .npz that `pack-digits` wrote (the classes only: small enough to carry)."""
    if data_dir.endswith(".npz"):
        z = np.load(data_dir)
        return ([z[k].astype(np.int64) for k in sorted(z.files) if k.startswith("train")],
                [z[k].astype(np.int64) for k in sorted(z.files) if k.startswith("val")])
    rx = re.compile(r"^(\d+)_([A-Za-z]+)_(\d+)\.wav$")
    train, val = [], []
    for name in sorted(os.listdir(data_dir)):
        m = rx.match(name)
        if m:
            x, rate = wavio.read_wav(os.path.join(data_dir, name), mix=True)
            if rate != 8000:
                sys.exit(f"{name}: {rate} Hz, expected 8000 (FSDD)")
            (val if 5 <= int(m.group(3)) <= 9 else train).append(mulaw(x))
    return train, val


# ------------------------------------------------------------------ training

def lr_at(step, lr, warmup, total, final=0.1):
    """MambaWave's schedule (model/optim.h): linear warm-up, cosine to lr·final."""
    if step < warmup:
        return lr * (step + 1) / warmup
    f = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * f)))


def esr(y, t):
    return float(((y - t) ** 2).sum() / max(float((t ** 2).sum()), 1e-30))


def train(a):
    dev = torch.device(a.device)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)  # the batches: the same for every variant of one seed
    modes = a.layers.split(",")
    name = a.name or a.layers.replace(",", "-")
    t0 = time.time()
    if a.task == "digits":
        tr, va = fsdd(a.data or "/work/shared/data/fsdd/train")
        model = Model("generator", a.d_model, modes, a.d_state, seed=a.seed)
        length = a.segment or 8192
    else:
        data = EffectData(a.manifest, a.task, "train")
        val = EffectData(a.manifest, a.task, "val")
        model = Model("effect", a.d_model, modes, a.d_state, n_cond=len(data.names), seed=a.seed)
        length = a.segment or 4096
        vcrops = val.loud_crops(a.warmup + a.val_len)
    model.to(dev)
    model.checkpoint = a.checkpoint
    params = list(model.parameters())
    decay = [p for n, p in model.named_parameters() if n.endswith(("proj", "_w", "embed"))]
    rest = [p for n, p in model.named_parameters() if not n.endswith(("proj", "_w", "embed"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    nparams = sum(p.numel() for p in params)
    print(f"{name}: {a.task}, d_model {a.d_model}, layers {modes}, d_state {a.d_state}, {nparams} parameters, "
          f"data loaded in {time.time() - t0:.0f} s", flush=True)

    def validate():
        model.eval()
        with torch.no_grad():
            if a.task == "digits":
                nll, count = 0.0, 0
                for i in range(0, len(va), 16):
                    clips = va[i:i + 16]
                    n = max(len(c) for c in clips)
                    x = torch.full((len(clips), n), 128, dtype=torch.long)
                    w = torch.zeros(len(clips), n)
                    for j, c in enumerate(clips):
                        x[j, :len(c)] = torch.from_numpy(c)
                        w[j, :len(c) - 1] = 1.0
                    x, w = x.to(dev), w.to(dev)
                    logits = model(x)[:, :-1]
                    ce = F.cross_entropy(logits.reshape(-1, 256), x[:, 1:].reshape(-1), reduction="none")
                    nll += float((ce * w[:, :-1].reshape(-1)).sum())
                    count += int(w.sum())
                model.train()
                return {"nll_bits_per_sample": nll / count / math.log(2), "samples": count}
            errs, e_sum, s_sum = [], 0.0, 0.0
            for k in range(0, len(vcrops), 16):
                rows, tgt = zip(*(val.crop(i, s, a.warmup + a.val_len) for i, s in vcrops[k:k + 16]))
                y = model(torch.from_numpy(np.stack(rows)).to(dev))[:, a.warmup:].double().cpu().numpy()
                t = np.stack(tgt)[:, a.warmup:].astype(np.float64)
                for yi, ti in zip(y, t):
                    errs.append(esr(yi, ti))
                    e_sum += float(((yi - ti) ** 2).sum())
                    s_sum += float((ti ** 2).sum())
            model.train()
            return {"esr_mean": float(np.mean(errs)), "esr_max": float(np.max(errs)),
                    "esr_pooled": e_sum / s_sum, "pairs": len(errs)}

    curve, vals, best = [], [], None
    t_train = time.time()
    for step in range(a.steps):
        if a.task == "digits":
            pick = rng.integers(0, len(tr), size=a.batch)
            x = torch.full((a.batch, length), 128, dtype=torch.long)
            w = torch.zeros(a.batch, length - 1)
            for j, i in enumerate(pick):
                c = tr[i]
                s = int(rng.integers(0, max(1, len(c) - length + 1)))
                c = c[s:s + length]
                x[j, :len(c)] = torch.from_numpy(c)
                w[j, :len(c) - 1] = 1.0
            x, w = x.to(dev), w.to(dev)
            logits = model(x)[:, :-1]
            ce = F.cross_entropy(logits.reshape(-1, 256), x[:, 1:].reshape(-1), reduction="none")
            loss = (ce * w.reshape(-1)).sum() / w.sum() / math.log(2)
        else:
            x, t = data.batch(rng, a.batch, a.warmup + length)
            x, t = x.to(dev), t.to(dev)
            y = model(x)[:, a.warmup:]
            t = t[:, a.warmup:]
            loss = ((y - t) ** 2).sum() / (t ** 2).sum().clamp(min=1e-12)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.lr, a.lr_warmup, a.steps)
        opt.step()
        lv = float(loss)
        if not math.isfinite(lv):
            sys.exit(f"{name}: loss {lv} at step {step}")
        curve.append(lv)
        out_of_time = a.max_seconds and time.time() - t_train > a.max_seconds
        if (step + 1) % a.val_every == 0 or step + 1 == a.steps or out_of_time:
            v = dict(validate(), step=step + 1, seconds=round(time.time() - t_train, 1))
            vals.append(v)
            key = "nll_bits_per_sample" if a.task == "digits" else "esr_mean"
            if best is None or v[key] < best[key]:
                best = v
                if a.task != "digits" and all(m == "sel" for m in modes):
                    export_mambawave(model, os.path.join(a.out, name + ".safetensors"), data.controls)
            print(f"{name}: step {step + 1}, loss {np.mean(curve[-a.val_every:]):.5f}, grad {gnorm:.3g}, "
                  f"val {json.dumps(v)}", flush=True)
        if out_of_time:
            print(f"{name}: --max-seconds {a.max_seconds} reached at step {step + 1} of {a.steps}", flush=True)
            break
    result = {"name": name, "task": a.task, "layers": modes, "d_model": a.d_model, "d_state": a.d_state,
              "parameters": nparams, "steps": len(curve), "steps_planned": a.steps, "batch": a.batch, "segment": length,
              "warmup": a.warmup, "lr": a.lr, "seed": a.seed, "seconds": round(time.time() - t_train, 1),
              "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
              "final": vals[-1], "best": best, "validations": vals,
              "loss_per_100": [float(np.mean(curve[i:i + 100])) for i in range(0, len(curve), 100)]}
    with open(os.path.join(a.out, name + ".json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({k: result[k] for k in ("name", "parameters", "seconds", "final", "best")}), flush=True)


def table(a):
    rows = []
    for d in a.dirs:
        for f in sorted(os.listdir(d)):
            if f.endswith(".json"):
                r = json.load(open(os.path.join(d, f)))
                if "layers" in r:
                    rows.append(r)
    for task in sorted({r["task"] for r in rows}):
        rs = [r for r in rows if r["task"] == task]
        if task == "digits":
            print("| layers | parameters | steps | seconds | val NLL, final (bits/sample) | best |\n|---|---:|---:|---:|---:|---:|")
            for r in rs:
                print(f"| `{','.join(r['layers'])}` | {r['parameters']} | {r['steps']} | {r['seconds']:.0f} | "
                      f"{r['final']['nll_bits_per_sample']:.4f} | {r['best']['nll_bits_per_sample']:.4f} |")
        else:
            print("| layers | parameters | steps | seconds | val ESR mean, final | max | pooled | best mean |\n"
                  "|---|---:|---:|---:|---:|---:|---:|---:|")
            for r in rs:
                f = r["final"]
                print(f"| `{','.join(r['layers'])}` | {r['parameters']} | {r['steps']} | {r['seconds']:.0f} | "
                      f"{f['esr_mean']:.5f} | {f['esr_max']:.4f} | {f['esr_pooled']:.5f} | {r['best']['esr_mean']:.5f} |")
        print()


# ------------------------------------------------------------------ self-check

def self_check(a):
    torch.manual_seed(0)
    ok = True

    def report(what, err, bound):
        nonlocal ok
        ok &= err <= bound
        print(f"{'ok  ' if err <= bound else 'FAIL'} {what}: {err:.3g} (bound {bound:g})")

    # The chunked scan against the loop: lengths not a multiple of the chunk or the group,
    # decays from fast (clamped) to slow, real and complex.
    for L in (1, 15, 17, 300, 16 * 16 * 3 + 5):
        for cplx in (False, True):
            shape = (2, L, 3, 4)
            re_ = -torch.exp(torch.empty(shape).uniform_(-9, 2.5))  # -1e-4 .. -12 per step
            dA = torch.complex(re_, torch.randn(shape)) if cplx else re_
            bx = torch.complex(torch.randn(shape), torch.randn(shape)) if cplx else torch.randn(shape)
            ref = scan_loop(dA, bx)
            got = scan(dA, bx).to(ref.dtype)
            err = float((got - ref).abs().max() / ref.abs().max())
            report(f"scan vs float64 loop, L {L}, {'complex' if cplx else 'real'}", err, 1e-5)
    # Every mode learns the same thing's gradient shape and runs forward/backward.
    for modes in (["sel", "lti"], ["csel", "clti"]):
        m = Model("effect", 8, modes, 4, n_cond=1, seed=3)
        x = torch.randn(2, 100, 2)
        m(x).pow(2).mean().backward()
        bad = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        report(f"gradients of every parameter, layers {modes} (parameters without one)", len(bad), 0)
    # The sel model against MambaWave's reference forward, random parameters (not the start).
    exe = a.mambawave
    if not os.path.exists(exe):
        print(f"FAIL {exe} not found: build first (cmake --build build)")
        sys.exit(1)
    m = Model("effect", 16, ["sel"] * 3, 16, n_cond=2, seed=5)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.add_(0.1 * torch.randn_like(p))
        for layer in m.layers:  # Δ·A within the clamp, where the scan is exact
            layer.dt_w.mul_(0.05)
    controls = [{"name": "drive", "unit": "", "min": 0.0, "max": 1.0, "default": 0.5, "scale": "linear"},
                {"name": "tone", "unit": "Hz", "min": 100.0, "max": 1000.0, "default": 400.0, "scale": "log"}]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.safetensors")
        export_mambawave(m, path, controls)
        L = 3001
        x = np.random.default_rng(1).standard_normal(L).astype(np.float32) * 0.3
        np.save(os.path.join(d, "x.npy"), x)
        # the knobs in the model's units: the engine normalises them as the file declares
        r = subprocess.run([exe, "run", "--model", path, "--in", os.path.join(d, "x.npy"), "--out",
                            os.path.join(d, "y.npy"), "--path", "reference", "--control", "drive=0.7",
                            "--control", "tone=250"], capture_output=True, text=True)
        if r.returncode:
            print("FAIL mambawave run:", r.stderr.strip())
            sys.exit(1)
        ref = np.load(os.path.join(d, "y.npy")).astype(np.float64)
        rows = np.empty((L, 3), np.float32)
        rows[:, 0] = x
        rows[:, 1] = normalise(0.7, {"min": 0.0, "max": 1.0})
        rows[:, 2] = normalise(250.0, {"min": 100.0, "max": 1000.0, "log_scale": True})
        with torch.no_grad():
            got = m(torch.from_numpy(rows)[None])[0].double().numpy()
        report("sel model vs `mambawave run --path reference` (relative to the peak)",
               float(np.abs(got - ref).max() / np.abs(ref).max()), 1e-4)
    print("self-check", "passed" if ok else "FAILED")
    sys.exit(0 if ok else 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train one variant")
    t.add_argument("--task", required=True, choices=("ts9", "ds1", "digits"))
    t.add_argument("--layers", required=True, help="one mode per layer, comma-separated: " + ", ".join(MODES))
    t.add_argument("--out", required=True)
    t.add_argument("--name", help="file name of the results (default: the layers)")
    t.add_argument("--manifest", default=".carry/fxdata/manifest.json")
    t.add_argument("--data", help="digits: the FSDD directory (default /work/shared/data/fsdd/train)")
    t.add_argument("--d-model", type=int, default=16)
    t.add_argument("--d-state", type=int, default=16)
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--segment", type=int, default=0, help="trained samples per lane (effects 4096, digits 8192)")
    t.add_argument("--warmup", type=int, default=1024, help="effects: samples before the loss counts")
    t.add_argument("--val-len", type=int, default=32768, help="effects: samples scored per val pair")
    t.add_argument("--val-every", type=int, default=500)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--lr-warmup", type=int, default=200)
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    t.add_argument("--max-seconds", type=float, default=0, help="stop (after a validation) past this much training time")
    t.add_argument("--checkpoint", action="store_true", help="recompute each layer in the backward (memory)")
    pk = sub.add_parser("pack-digits", help="FSDD as mu-law classes in one .npz (for the GPU machine)")
    pk.add_argument("data_dir")
    pk.add_argument("npz")
    tb = sub.add_parser("table", help="results as a markdown table")
    tb.add_argument("dirs", nargs="+")
    sc = sub.add_parser("self-check", help="the scan against a loop, the model against MambaWave's")
    sc.add_argument("--mambawave", default="build/bin/mambawave")
    a = ap.parse_args()
    if a.cmd == "train":
        os.makedirs(a.out, exist_ok=True)
        train(a)
    elif a.cmd == "pack-digits":
        tr, va = fsdd(a.data_dir)
        arrays = {f"train{i:05d}": c.astype(np.uint8) for i, c in enumerate(tr)}
        arrays.update({f"val{i:05d}": c.astype(np.uint8) for i, c in enumerate(va)})
        np.savez_compressed(a.npz, **arrays)
        print(f"{a.npz}: {len(tr)} training and {len(va)} validation clips")
    elif a.cmd == "table":
        table(a)
    else:
        self_check(a)


if __name__ == "__main__":
    main()
