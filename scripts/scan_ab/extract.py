#!/usr/bin/env python3
# Cuts the one-pass kernel (scan_sequences and what it needs) out of a kernels/cuda tree into a
# header that warp_sim.cpp includes inside a namespace:  extract.py TREE/kernels/cuda OUT.inc
import sys
src, out = sys.argv[1:3]
s = open(src + '/scan.cu').read()
u = open(src + '/scan_util.cuh').read()
def cut(text, a, b):
    i = text.index(a)
    return text[i:text.index(b, i)]
parts = [cut(s, 'template <class In>\nstruct ScanParams', '// SiLU(x)'),
         cut(u, '__device__ __forceinline__ float softplus_ex2', '// sigmoid(x)'),
         cut(s, '__device__ __forceinline__ float silu', '// An input element'),
         cut(s, 'constexpr int kSeqWarps = 4;', '// Segments, step 2')]
open(out, 'w').write('\n'.join(parts))
