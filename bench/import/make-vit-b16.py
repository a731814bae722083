#!/usr/bin/env python3
"""Exports torchvision's vit_b_16 (random weights: nothing is downloaded) with PyTorch's exporter, for
`npm run bench:import` (a git-ignored folder; the bench runs this when the file is missing).

    /usr/bin/python3 bench/import/make-vit-b16.py data/bench/vit-b16 [opset]

Writes model.onnx (input pixel_values [batch, 3, 224, 224], output logits [batch, 1000]) and the
config.json and preprocessor_config.json optimum writes beside it (ImageNet's mean and std, bilinear).
Gradients stay enabled: torch 1.13 cannot export nn.MultiheadAttention's inference fast path.
"""
import json
import os
import sys

import torch
from torchvision.models import vit_b_16

out = sys.argv[1]
opset = int(sys.argv[2]) if len(sys.argv) > 2 else 17
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
model = vit_b_16()  # weights=None: random initialization
torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision zero-initializes the head
model.eval()
torch.onnx.export(
    model,
    torch.zeros(1, 3, 224, 224),
    os.path.join(out, "model.onnx"),
    input_names=["pixel_values"],
    output_names=["logits"],
    dynamic_axes={"pixel_values": {0: "batch_size"}, "logits": {0: "batch_size"}},
    opset_version=opset,
)
config = {
    "architectures": ["VisionTransformer"],
    "model_type": "vit",
    "id2label": {str(i): f"class_{i}" for i in range(1000)},
    "image_size": 224,
    "patch_size": 16,
    "num_channels": 3,
}
processor = {
    "do_normalize": True, "do_rescale": True, "do_resize": True,
    "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
    "image_processor_type": "ViTImageProcessor", "resample": 2, "rescale_factor": 1 / 255,
    "size": {"height": 224, "width": 224},
}
for name, obj in [("config.json", config), ("preprocessor_config.json", processor)]:
    with open(os.path.join(out, name), "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
print(f"wrote {out}/model.onnx ({os.path.getsize(os.path.join(out, 'model.onnx')) / 1e6:.0f} MB, opset {opset})")
