#!/usr/bin/env python3
"""PyTorch's own numbers for the ViT bench/import/train-torch-vit.py trained: logits, the rollout map and
the relevance map (Chefer's rule, for the predicted class) of the first N CIFAR-10 test images, for
`npm run bench:import-check` to compare with what the service answers for the imported model.

    /usr/bin/python3 bench/import/torch-vit-reference.py data/cifar10/cifar-10-batches-bin data/bench/torch-vit [N]

Writes <out>-reference.json: images (bytes, HWC), logits, rollout and relevance ([N][64]).
"""
import importlib.util
import json
import os
import sys

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("fx", os.path.join(here, "..", "..", "test", "fixtures", "make-foreign-vits.py"))
fx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fx)
fx.SIZE, fx.PATCH, fx.HIDDEN, fx.LAYERS, fx.MLP = 32, 4, 64, 4, 128
fx.LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MEAN = [0.4914, 0.4822, 0.4465]
STD = [0.2470, 0.2435, 0.2616]

data_dir, out = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 100
model = fx.ViTForImageClassification(heads=4, eps=1e-12)
model.load_state_dict(torch.load(out + "-state.pt"))
model.eval()
raw = np.fromfile(os.path.join(data_dir, "test_batch.bin"), dtype=np.uint8).reshape(-1, 3073)[:n]
u8 = torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy())
x = (u8.double() * (1 / 255) - torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)) / torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
logits = model(x.float())
attentions = list(model.kept)
target = logits.argmax(dim=1)
grads = torch.autograd.grad(logits[torch.arange(n), target].sum(), attentions)
result = {
    "images": u8.permute(0, 2, 3, 1).reshape(n, -1).tolist(),
    "logits": logits.tolist(),
    "rollout": fx.rollout(attentions, 1).tolist(),
    "relevance": fx.chefer(attentions, grads, 1).tolist(),
}
with open(out + "-reference.json", "w") as f:
    json.dump(result, f)
print(f"wrote {out}-reference.json: {n} images, top-1 agrees with the labels on {(target == torch.from_numpy(raw[:, 0].astype(np.int64))).float().mean().item():.3f}")
