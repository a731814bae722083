#!/usr/bin/env python3
"""A fine-tuning step of a DeiT-tiny-sized ViT at 224 px (facebook/deit-tiny-patch16-224's
architecture: 192 wide, 12 blocks of 3 heads, MLP 768, patch 16, 197 tokens, 1000 classes, 5.7M
parameters; random weights and images) in PyTorch: forward, cross-entropy, backward, AdamW. The model is
transformers' ViTForImageClassification as test/fixtures/make-foreign-vits.py writes it out from
modeling_vit.py (eager attention, exact GELU, final LayerNorm). Prints one JSON line like
bench/finetune.ts; run by npm run bench:finetune."""
import argparse
import importlib.util
import json
import os

import torch

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("foreign", os.path.join(here, "..", "..", "test", "fixtures", "make-foreign-vits.py"))
hf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hf)
spec = importlib.util.spec_from_file_location("torch_anchor", os.path.join(here, "..", "torch_anchor.py"))
anchor = importlib.util.module_from_spec(spec)
spec.loader.exec_module(anchor)

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=5)
p.add_argument("--batch", type=int, default=32)
p.add_argument("--threads", type=int, default=os.cpu_count())
a = p.parse_args()
torch.set_num_threads(a.threads)

# the fixture module's sizes are module constants, read when the modules are built
hf.SIZE, hf.PATCH, hf.HIDDEN, hf.LAYERS, hf.MLP = 224, 16, 192, 12, 768
hf.LABELS = [str(i) for i in range(1000)]
torch.manual_seed(0)
model = hf.ViTForImageClassification(heads=3, eps=1e-12)
params = sum(p.numel() for p in model.parameters())
opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.05)
loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
x = torch.randn(a.batch, 3, 224, 224)
y = torch.randint(0, 1000, (a.batch,))
model.train()


def step():
    opt.zero_grad()
    loss_fn(model(x), y).backward()
    opt.step()


s = anchor.time_steps(step, 2, a.steps)
blas = anchor.blas_libraries()
print(json.dumps({"bench": "finetune-step", "runner": f"pytorch-{torch.__version__}", "model": "deit-tiny-224", "parameters": params, "batch": a.batch,
                  "images_per_s": round(a.steps * a.batch / s, 2), "ms_per_step": round(s / a.steps * 1000, 1), "steps": a.steps, "threads": torch.get_num_threads(),
                  "openblas": any("openblas" in b for b in blas), "blas": blas}))
