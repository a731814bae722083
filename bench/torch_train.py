#!/usr/bin/env python3
"""The seed's PyTorch ViT trained at batch 256 on random data (AdamW), and its forward pass, on the
CPU with one thread per core (PyTorch's own default here is one per physical core). Prints JSON lines like bench/train.ts. Run by npm run bench:train."""
import argparse
import importlib.util
import json
import os
import time

import torch

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("seed", os.path.join(here, "..", "test", "fixtures", "make-seed-parity.py"))
seed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(seed)

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=12)
p.add_argument("--batch", type=int, default=256)
p.add_argument("--per-head", action="store_true", help="the seed's per-head attention modules instead of its fused one")
p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: every core, as ONNX Runtime uses)")
a = p.parse_args()
torch.set_num_threads(a.threads)

torch.manual_seed(0)
# The seed post's config trains with use_faster_attention (one fused qkv matmul), its fastest form.
model = seed.ViTForClassfication({**seed.CONFIG, "use_faster_attention": not a.per_head})
opt = torch.optim.AdamW(model.parameters(), lr=0.001, weight_decay=0.01)
loss_fn = torch.nn.CrossEntropyLoss()
x = torch.randn(a.batch, 3, 32, 32)
y = torch.randint(0, 10, (a.batch,))
model.train()
for i in range(3 + a.steps):
    if i == 3:
        start = time.perf_counter()
    opt.zero_grad()
    logits, _ = model(x)
    loss = loss_fn(logits, y)
    loss.backward()
    opt.step()
train_s = time.perf_counter() - start
def blas_libraries():
    """The BLAS and LAPACK libraries this process loaded, links resolved: PyTorch's speed depends on them."""
    found = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if path.startswith("/") and ("blas" in path or "lapack" in path):
                found.add(os.path.realpath(path))
    return sorted(found)


blas = blas_libraries()
common = {"cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(), "attention": "per-head" if a.per_head else "fused",
          "blas": blas, "openblas": any("openblas" in b for b in blas),
          "openblas_env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS") if k in os.environ}}
print(json.dumps({"bench": "train", "runner": "torch-cpu", "batch": a.batch, "images_per_s": round(a.steps * a.batch / train_s), "ms_per_step": round(1000 * train_s / a.steps, 1), "steps": a.steps, **common}))
model.eval()
with torch.no_grad():
    for _ in range(2):
        model(x)
    start = time.perf_counter()
    n = max(4, a.steps)
    for _ in range(n):
        model(x)
    fwd_s = time.perf_counter() - start
print(json.dumps({"bench": "forward", "runner": "torch-cpu", "batch": a.batch, "images_per_s": round(n * a.batch / fwd_s), **common}), flush=True)
