#!/usr/bin/env python3
"""Make the small HF transformers Mamba checkpoints and reference logits that the golden
tests compare MambaWave against (tests/data/hf_*/).

Needs torch and transformers (the GPU machine has both); runs on the CPU in float64.
Every parameter is randomised away from its init value so that a wrong formula cannot hide
behind a special value (A_log = log(1..N), D = 1, zero biases, unit norm weights).

    python3 scripts/make_hf_golden.py tests/data
"""
import json
import os
import sys

import numpy as np
import torch
from transformers import MambaConfig, MambaForCausalLM


def randomise(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log"):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.7 + 0.5)
            elif name.endswith(".D"):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5 + 1.0)
            elif name.endswith("dt_proj.bias"):
                p.copy_(torch.rand(p.shape, generator=gen, dtype=p.dtype) * 4.0 - 5.0)
            elif "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            elif name.endswith("conv1d.bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            else:
                fan_in = p.shape[-1]
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) / np.sqrt(fan_in))


def make(out_dir, name, tie, d_model, n_layers, d_state, seq_len, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cfg = MambaConfig(vocab_size=256, hidden_size=d_model, state_size=d_state,
                      num_hidden_layers=n_layers, expand=2, conv_kernel=4,
                      use_bias=False, use_conv_bias=True, tie_word_embeddings=tie,
                      pad_token_id=0, bos_token_id=0, eos_token_id=0)
    model = MambaForCausalLM(cfg).double().eval()
    randomise(model, gen)
    tokens = torch.randint(0, 256, (1, seq_len), generator=gen)
    with torch.no_grad():
        logits = model(tokens, use_cache=False).logits[0]   # [L, 256], float64
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    model.float().save_pretrained(d, safe_serialization=True)
    np.save(os.path.join(d, "tokens.npy"), tokens[0].numpy().astype(np.int64))
    np.save(os.path.join(d, "logits.npy"), logits.numpy().astype(np.float32))
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write(f"Made by scripts/make_hf_golden.py with transformers "
                f"{__import__('transformers').__version__}, torch {torch.__version__}: "
                f"MambaForCausalLM d_model {d_model}, {n_layers} layers, d_state {d_state}, "
                f"tie_word_embeddings={tie}, seed {seed}; tokens.npy int64 [{seq_len}], "
                f"logits.npy float32 [{seq_len}, 256] computed in float64.\n")
    print(name, "max |logit|", float(logits.abs().max()))


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data"
    make(out, "hf_tiny_tied", True, 16, 2, 16, 333, 1)
    make(out, "hf_small_untied", False, 32, 3, 8, 517, 2)
