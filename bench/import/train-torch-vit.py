#!/usr/bin/env python3
"""Trains a ViT in PyTorch on CIFAR-10, written as transformers' ViTForImageClassification (the module
tree of test/fixtures/make-foreign-vits.py, read from modeling_vit.py), and exports it as optimum lays a
folder out, at opsets 14 and 17: a model the project never trained, for `npm run bench:import` and
the imported-model checks of `npm run bench:explain`.

    /usr/bin/python3 bench/import/train-torch-vit.py data/cifar10/cifar-10-batches-bin data/bench/torch-vit [epochs]

Writes <out>-o14/ and <out>-o17/ (model.onnx, config.json, preprocessor_config.json) and
<out>-train.log (a line per epoch: loss, test accuracy, seconds). Architecture: 32 px, patches of 4,
hidden 64, 4 layers, 4 heads, MLP 128, exact GELU, layer_norm_eps 1e-12, final LayerNorm; AdamW
(lr 2e-3, weight decay 0.05), cosine, batch 128, random crop (padding 4) and flips.
"""
import importlib.util
import json
import math
import os
import sys
import time

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("fx", os.path.join(here, "..", "..", "test", "fixtures", "make-foreign-vits.py"))
fx = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fx)
# The fixture's modules read their sizes from these module-level names when built.
fx.SIZE, fx.PATCH, fx.HIDDEN, fx.LAYERS, fx.MLP = 32, 4, 64, 4, 128
LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
fx.LABELS = LABELS
MEAN = [0.4914, 0.4822, 0.4465]
STD = [0.2470, 0.2435, 0.2616]

data_dir, out = sys.argv[1], sys.argv[2]
epochs = int(sys.argv[3]) if len(sys.argv) > 3 else 10
torch.manual_seed(0)
torch.set_num_threads(os.cpu_count())


def read(files):
    raw = np.concatenate([np.fromfile(os.path.join(data_dir, f), dtype=np.uint8).reshape(-1, 3073) for f in files])
    return torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(raw[:, 0].astype(np.int64))


train_x, train_y = read([f"data_batch_{i}.bin" for i in range(1, 6)])
test_x, test_y = read(["test_batch.bin"])
mean = torch.tensor(MEAN).view(1, 3, 1, 1)
std = torch.tensor(STD).view(1, 3, 1, 1)
norm = lambda x: (x.float() / 255 - mean) / std

model = fx.ViTForImageClassification(heads=4, eps=1e-12)
for m in model.modules():
    if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
        torch.nn.init.trunc_normal_(m.weight, std=0.02)
        torch.nn.init.zeros_(m.bias)
torch.nn.init.trunc_normal_(model.vit.embeddings.position_embeddings, std=0.02)
torch.nn.init.trunc_normal_(model.vit.embeddings.cls_token, std=0.02)
opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
batch = 128
steps = epochs * (len(train_x) // batch)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
log = open(out + "-train.log", "w")


def evaluate():
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test_x), 500):
            correct += (model(norm(test_x[i:i + 500])).argmax(1) == test_y[i:i + 500]).sum().item()
    return correct / len(test_x)


for epoch in range(epochs):
    model.train()
    t0 = time.time()
    order = torch.randperm(len(train_x))
    total = 0.0
    for k in range(len(train_x) // batch):
        idx = order[k * batch:(k + 1) * batch]
        x = torch.nn.functional.pad(train_x[idx], (4, 4, 4, 4))
        dy, dx = np.random.randint(0, 9, 2)
        x = x[:, :, dy:dy + 32, dx:dx + 32]
        flip = torch.rand(len(idx)) < 0.5
        x[flip] = x[flip].flip(3)
        loss = torch.nn.functional.cross_entropy(model(norm(x)), train_y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        total += loss.item()
    acc = evaluate()
    line = f"epoch {epoch + 1}/{epochs}: loss {total / (k + 1):.4f}, test accuracy {acc:.4f}, {time.time() - t0:.0f} s"
    print(line, flush=True)
    log.write(line + "\n")
    log.flush()

model.eval()
for opset in (14, 17):
    folder = f"{out}-o{opset}"
    os.makedirs(folder, exist_ok=True)
    torch.onnx.export(model, torch.zeros(1, 3, 32, 32), os.path.join(folder, "model.onnx"), input_names=["pixel_values"], output_names=["logits"],
                      dynamic_axes={"pixel_values": {0: "batch_size"}, "logits": {0: "batch_size"}}, opset_version=opset)
    config = {"architectures": ["ViTForImageClassification"], "model_type": "vit", "id2label": {str(i): l for i, l in enumerate(LABELS)},
              "label2id": {l: i for i, l in enumerate(LABELS)}, "image_size": 32, "patch_size": 4, "num_channels": 3, "hidden_size": 64,
              "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 128, "hidden_act": "gelu", "layer_norm_eps": 1e-12}
    processor = {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": MEAN, "image_std": STD,
                 "image_processor_type": "ViTImageProcessor", "resample": 2, "rescale_factor": 1 / 255, "size": {"height": 32, "width": 32}}
    for name, obj in [("config.json", config), ("preprocessor_config.json", processor)]:
        with open(os.path.join(folder, name), "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
torch.save(model.state_dict(), out + "-state.pt")
print(f"wrote {out}-o14 and {out}-o17 (test accuracy {acc:.4f})")
