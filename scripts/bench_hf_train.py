#!/usr/bin/env python3
"""Times the user's alternative for training on the same GPU: HF transformers' Mamba in PyTorch
(no fused mamba_ssm / causal_conv1d kernels, as `pip install transformers` gives it), fp32,
one training step = forward + loss + backward + AdamW update, for the shapes that
`mw_bench_cuda --train` times for MambaWave (same d_model, layers, d_state 16, expand 2,
batch and length). Effects go through `inputs_embeds` from a linear stem to a linear head
with an MSE loss; generators are MambaForCausalLM (vocab 256) with cross-entropy. Both HF scans:
the sequential one (the default) and `use_mambapy` (parallel, memory-hungry). Prints samples/s
(B*L per step); a shape that runs out of memory or past --budget seconds says so.

    python3 scripts/bench_hf_train.py [--budget SECONDS] [--only NAME]
"""
import argparse
import time

import torch
from transformers import MambaConfig, MambaForCausalLM, MambaModel

SHAPES = [  # (name, generator, d_model, layers, batch, length): mw_bench_cuda --train's
    ("effect D8x3 B16 L4096", False, 8, 3, 16, 4096),
    ("effect D16x4 B16 L4096", False, 16, 4, 16, 4096),
    ("generator D64x6 B16 L8192", True, 64, 6, 16, 8192),
    ("effect D256x4 B16 L16384", False, 256, 4, 16, 16384),
    ("generator D256x4 B16 L16384", True, 256, 4, 16, 16384),
]


class Effect(torch.nn.Module):
    def __init__(self, cfg, n_in):
        super().__init__()
        self.stem = torch.nn.Linear(n_in, cfg.hidden_size)
        self.backbone = MambaModel(cfg)
        self.head = torch.nn.Linear(cfg.hidden_size, 1)

    def forward(self, x):
        h = self.backbone(inputs_embeds=self.stem(x), use_cache=False).last_hidden_state
        return self.head(h).squeeze(-1)


def one_shape(name, generator, d, layers, B, L, mambapy, budget):
    dev = "cuda"
    cfg = MambaConfig(vocab_size=256, hidden_size=d, state_size=16, num_hidden_layers=layers, expand=2,
                      conv_kernel=4, use_mambapy=mambapy)
    model = (MambaForCausalLM(cfg) if generator else Effect(cfg, 3)).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(Ls):
        if generator:
            tok = torch.randint(0, 256, (B, Ls + 1), device=dev)
            logits = model(tok[:, :-1], use_cache=False).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), tok[:, 1:].reshape(-1))
        else:
            x = torch.randn(B, Ls, 3, device=dev) * 0.3
            loss = torch.nn.functional.mse_loss(model(x), x[..., 0])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    how = "mambapy" if mambapy else "sequential"

    def timed(Ls):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        step(Ls)
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    # Per-sample cost is flat in L for both HF scans, so a step that would run past the budget
    # (or does not fit in memory) is timed at L 512 and scaled to L, and the line says so.
    try:
        step(64)  # warm-up on a short sequence
        Lt = min(L, 512)
        est = timed(Lt) * L / Lt
        if est > budget:
            dt, note = timed(Lt) * L / Lt, f"timed at L {Lt}, scaled to L {L}"
        else:
            try:
                dt, note = timed(L), "full length"
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                dt, note = timed(Lt) * L / Lt, f"L {L} out of GPU memory; timed at L {Lt}, scaled"
        print(f"hf_train {name} {how}: {dt:.3f} s per step, {B * L / dt:.4g} samples/s ({note})", flush=True)
    except torch.cuda.OutOfMemoryError:
        print(f"hf_train {name} {how}: out of GPU memory even at L 512", flush=True)
    del model, opt
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=20.0, help="seconds one full step may take before the "
                    "timing falls back to a shorter sequence")
    ap.add_argument("--only", default="", help="only shapes whose name contains this")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, fp32, AdamW")
    for name, gen, d, layers, B, L in SHAPES:
        if a.only not in name:
            continue
        for mambapy in (False, True):
            one_shape(name, gen, d, layers, B, L, mambapy, a.budget)


if __name__ == "__main__":
    main()
