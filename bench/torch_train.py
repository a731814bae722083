#!/usr/bin/env python3
"""The seed's PyTorch ViT trained at batch 256 on random data (AdamW), and its forward pass, on the
CPU with one thread per core (PyTorch's own default here is one per physical core), or with --device
cuda on the GPU (bench/gpu-check). Prints JSON lines like bench/train.ts. Run by npm run bench:train."""
import argparse
import importlib.util
import json
import os

import torch

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("seed", os.path.join(here, "..", "test", "fixtures", "make-seed-parity.py"))
seed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(seed)
spec = importlib.util.spec_from_file_location("torch_anchor", os.path.join(here, "torch_anchor.py"))
anchor = importlib.util.module_from_spec(spec)
spec.loader.exec_module(anchor)

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=12)
p.add_argument("--batch", type=int, default=256)
p.add_argument("--per-head", action="store_true", help="the seed's per-head attention modules instead of its fused one")
p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: every core, as ONNX Runtime uses)")
p.add_argument("--device", default="cpu", help="cpu, or cuda (the GPU check's anchor)")
p.add_argument("--config", default="{}", help="ViT config keys over the seed's (JSON), e.g. a recipe's model: with tokenizer_layers > 0 the patch embedding is the convolutional tokenizer")
a = p.parse_args()
torch.set_num_threads(a.threads)


class ConvTokenizer(torch.nn.Module):
    """vitrine's tokenizer (trainer/vit/model.ts ConvTokenizer): stages of a k x k convolution without
    bias (padded to keep the size), ReLU and a 3x3 max-pool with stride 2 and padding 1; the last
    map's pixels, row by row, are the tokens."""

    def __init__(self, c):
        super().__init__()
        k, n = c.get("tokenizer_kernel", 3), c["tokenizer_layers"]
        chans = [c["num_channels"]] + [c.get("tokenizer_channels", 64)] * (n - 1) + [c["hidden_size"]]
        self.num_patches = (c["image_size"] // c["patch_size"]) ** 2
        self.stages = torch.nn.Sequential(*[torch.nn.Sequential(torch.nn.Conv2d(chans[i], chans[i + 1], k, padding=(k - 1) // 2, bias=False), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2, 1)) for i in range(n)])

    def forward(self, x):
        return self.stages(x).flatten(2).transpose(1, 2)


torch.manual_seed(0)
# The seed post's config trains with use_faster_attention (one fused qkv matmul), its fastest form.
config = {**seed.CONFIG, **json.loads(a.config), "use_faster_attention": not a.per_head}
model = seed.ViTForClassfication(config)
if config.get("tokenizer_layers", 0) > 0:
    model.embedding.patch_embeddings = ConvTokenizer(config)
device = torch.device(a.device)
model.to(device)
opt = torch.optim.AdamW(model.parameters(), lr=0.001, weight_decay=0.01)
loss_fn = torch.nn.CrossEntropyLoss()
x = torch.randn(a.batch, config["num_channels"], config["image_size"], config["image_size"], device=device)
y = torch.randint(0, config["num_classes"], (a.batch,), device=device)
model.train()
# CUDA runs asynchronously: a timed step ends when the GPU is done with it.
sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def step():
    opt.zero_grad()
    logits, _ = model(x)
    loss_fn(logits, y).backward()
    opt.step()
    sync()


train_s = anchor.time_steps(step, 3, a.steps)
blas = anchor.blas_libraries()
common = {"model": "cct" if config.get("tokenizer_layers", 0) > 0 else "seed", "parameters": sum(p.numel() for p in model.parameters()), "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(), "attention": "per-head" if a.per_head else "fused",
          "blas": blas, "openblas": any("openblas" in b for b in blas),
          "openblas_env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS") if k in os.environ}}
runner = f"torch-{device.type}"
if device.type == "cuda":
    common["gpu"] = torch.cuda.get_device_name(device)
print(json.dumps({"bench": "train", "runner": runner, "batch": a.batch, "images_per_s": round(a.steps * a.batch / train_s), "ms_per_step": round(1000 * train_s / a.steps, 1), "steps": a.steps, **common}))
model.eval()
n = max(4, a.steps)
with torch.no_grad():
    fwd_s = anchor.time_steps(lambda: (model(x), sync()), 2, n)
print(json.dumps({"bench": "forward", "runner": runner, "batch": a.batch, "images_per_s": round(n * a.batch / fwd_s), **common}), flush=True)
