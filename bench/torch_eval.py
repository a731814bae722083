#!/usr/bin/env python3
"""Checks a model's CIFAR-10 test accuracy with an independent implementation: the seed's PyTorch
model (test/fixtures/make-seed-parity.py) loads the safetensors weights and runs over the official
binary test batch. Needs Debian's python3-torch and the decoded data set (any vitrine train or eval
on cifar10 makes it).

    /usr/bin/python3 bench/torch_eval.py models/vit-cifar10/weights.safetensors data/cifar10/cifar-10-batches-bin
"""
import importlib.util
import json
import os
import struct
import sys

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("seed", os.path.join(here, "..", "test", "fixtures", "make-seed-parity.py"))
seed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(seed)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        assert e["dtype"] == "F32", e["dtype"]
        a, b = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[8 + n + a:8 + n + b], dtype="<f4").copy().reshape(e["shape"]))
    return out, meta


weights, meta = read_safetensors(sys.argv[1])
config = dict(seed.CONFIG)
vit = json.loads(meta.get("vit_config", "{}"))
for k in config:
    if k in vit:
        config[k] = vit[k]
model = seed.ViTForClassfication(config).eval()
model.load_state_dict({k: v for k, v in weights.items() if not k.startswith("optimizer.")}, strict=True)

raw = np.fromfile(os.path.join(sys.argv[2], "test_batch.bin"), dtype=np.uint8).reshape(-1, 3073)
labels = torch.from_numpy(raw[:, 0].astype(np.int64))
mean = torch.tensor(vit.get("mean", [0.5, 0.5, 0.5])).view(1, 3, 1, 1)
std = torch.tensor(vit.get("std", [0.5, 0.5, 0.5])).view(1, 3, 1, 1)
images = (torch.from_numpy(raw[:, 1:].astype(np.float32)).view(-1, 3, 32, 32) / 255 - mean) / std
correct = 0
with torch.no_grad():
    for i in range(0, len(labels), 1000):
        logits, _ = model(images[i:i + 1000])
        correct += (logits.argmax(-1) == labels[i:i + 1000]).sum().item()
print(json.dumps({"check": "torch-eval", "weights": sys.argv[1], "images": len(labels), "accuracy": correct / len(labels), "torch": torch.__version__}))
