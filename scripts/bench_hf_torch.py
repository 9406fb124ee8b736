#!/usr/bin/env python3
"""Times the user's alternative on the same GPU: HF transformers' Mamba in PyTorch (no fused
mamba_ssm / causal_conv1d kernels, as `pip install transformers` gives it), forward only,
batch 1, fp32. Prints samples/s and x real time at 48 kHz for the backbones MambaWave's
bench uses (d_model 16 x 4 and 64 x 8, d_state 16, expand 2), both with HF's sequential
scan (the default) and with its `use_mambapy` parallel scan.

    python3 scripts/bench_hf_torch.py [SAMPLES]
"""
import sys
import time

import torch
from transformers import MambaConfig, MambaForCausalLM

L = int(sys.argv[1]) if len(sys.argv) > 1 else 48000
dev = "cuda"
print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}, L = {L} samples, batch 1, fp32")
for d_model, layers in ((16, 4), (64, 8)):
    for mambapy in (False, True):
        cfg = MambaConfig(vocab_size=256, hidden_size=d_model, state_size=16, num_hidden_layers=layers,
                          expand=2, conv_kernel=4, use_mambapy=mambapy)
        model = MambaForCausalLM(cfg).to(dev).eval()
        tokens = torch.randint(0, 256, (1, L), device=dev)
        with torch.no_grad():
            model(tokens[:, :256], use_cache=False)  # warm-up
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(tokens, use_cache=False)
            torch.cuda.synchronize()
            dt = time.perf_counter() - t0
        sps = L / dt
        print(f"hf_torch D{d_model}x{layers} {'mambapy' if mambapy else 'sequential'}: {dt:.3f} s, "
              f"{sps:.3g} samples/s, {sps / 48000:.3g}x real time at 48 kHz")
        del model
        torch.cuda.empty_cache()
