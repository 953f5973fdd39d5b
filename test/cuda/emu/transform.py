#!/usr/bin/env python3
"""Rewrite src/cuda/model.cu (with the .cuh headers it includes inlined)
for the CPU emulator: kernel launches
name<<<g, b[, shm]>>>(args) -> emu_launch(g, b, shm, [&]{ name(args); }),
extern __shared__ arrays -> the emulator's dynamic shared buffer."""
import os, re, sys


def inline(path, seen):
    """the file with each #include "X.cuh" (relative to the including file,
    src/cuda/ops/ and trainer.cuh) replaced by its text, once per file, so
    that the launches in the op headers are rewritten too"""
    path = os.path.normpath(path)
    if path in seen:
        return ''
    seen.add(path)
    def sub(m):
        return inline(os.path.join(os.path.dirname(path), m.group(1)), seen)
    return re.sub(r'^#include "([^"]+\.cuh)"[^\n]*$', sub, open(path).read(), flags=re.M)

src = inline(sys.argv[1], set())
src = src.replace('#include <cuda_runtime.h>', '#include "cuda_emu.h"')
src = src.replace('#include <cublas_v2.h>', '')
src = re.sub(r'extern __shared__ float (\w+)\[\];', r'float *\1 = (float *) emu_dyn_shared;', src)

def split_top(s):
    parts, depth, cur = [], 0, ''
    for ch in s:
        if ch in '([': depth += 1
        if ch in ')]': depth -= 1
        if ch == ',' and depth == 0:
            parts.append(cur); cur = ''
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]

# kernels that need fibers: their body (or a helper they call) synchronises
sync_tokens = ('__syncthreads', '__syncwarp', '__shfl', 'warp_sum', 'warp_ln_')
needs_sync = {}
for km in re.finditer(r'__global__ void\s*\n?\s*([A-Za-z_]\w*)\s*\(', src):
    end = src.find('\n}\n', km.end())
    body = src[km.end():end]
    needs_sync[km.group(1)] = any(t in body for t in sync_tokens)

out, i = [], 0
pat = re.compile(r'([A-Za-z_]\w*(?:<[^<>;]*>)?)<<<')
while True:
    m = pat.search(src, i)
    if not m:
        out.append(src[i:]); break
    out.append(src[i:m.start()])
    name = m.group(1)
    j = src.index('>>>', m.end())
    cfg = split_top(src[m.end():j])
    k = j + 3
    assert src[k] == '(', src[k:k+40]
    depth, p = 0, k
    while True:
        if src[p] == '(': depth += 1
        elif src[p] == ')':
            depth -= 1
            if depth == 0: break
        p += 1
    args = src[k + 1:p]
    shm = cfg[2] if len(cfg) > 2 else '0'
    base = name.split('<')[0]
    sync = 1 if needs_sync.get(base, True) else 0
    out.append('emu_launch(dim3(%s), dim3(%s), (size_t) (%s), [&]{ %s(%s); }, %d)' % (cfg[0], cfg[1], shm, name, args, sync))
    i = p + 1
open(sys.argv[2], 'w').write(''.join(out))
