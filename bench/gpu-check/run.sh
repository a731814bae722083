#!/usr/bin/env bash
# The GPU check, on the GPU machine, from what bench/gpu-check/pack.sh packed (carried as .gpu-check):
# every graph on WebGPU and on the CPU (outputs compared, images/s), then the same training steps in
# PyTorch on CUDA as the anchor. Results as JSON lines in $OUT (or .gpu-check/out). Under 8 minutes on
# one H100 with 16 cores.
#   bench/gpu-check/run.sh [--quick]     (--quick: batch 2, for a software Vulkan device)
set -uo pipefail
cd "$(dirname "$0")/../.."
c=.gpu-check
out=${OUT:-$c/out}
mkdir -p "$out"
results="$out/gpu-check.jsonl"
: >"$results"

[ -x "$c/node" ] || { xz -dc "$c/node.xz" >"$c/node" && chmod +x "$c/node"; }
so="$c/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1"
[ -f "$so" ] || xz -dc "$so.xz" >"$so"

# Dawn loads libvulkan.so.1; where the image has none, the carried package's.
if ! ldconfig -p | grep -q 'libvulkan\.so\.1 '; then
  for f in "$c"/deb/*.deb; do dpkg -x "$f" "$c/root"; done
  export LD_LIBRARY_PATH="$PWD/$c/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# NVIDIA's driver manifest where the loader does not look by default (some container images).
if [ -z "${VK_DRIVER_FILES:-}" ] && ! ls /etc/vulkan/icd.d/nvidia*.json /usr/share/vulkan/icd.d/nvidia*.json >/dev/null 2>&1; then
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/local/nvidia/icd.d/nvidia_icd.json; do
    [ -f "$f" ] && export VK_DRIVER_FILES="$f" && break
  done
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/vitrine-xdg}"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"

{ nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"; nproc; uname -r; } >"$out/machine.txt"
quick=()
[ "${1:-}" = "--quick" ] && quick=(--quick)
status=0
timeout 360 "$c/node" "$c/check.ts" --graphs "$c/graphs" --out "$results" "${quick[@]}" || status=$?

# The anchor: the same architectures' steps in PyTorch on CUDA (the seed's code, DeiT-tiny's sizes).
if [ ${#quick[@]} -eq 0 ] && python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  deit='{"image_size":224,"patch_size":16,"hidden_size":192,"num_hidden_layers":12,"num_attention_heads":3,"intermediate_size":768,"num_classes":1000}'
  cct=$(python3 -c 'import json; print(json.dumps(json.load(open("trainer/recipes/cct-cifar10.json"))["model"]))')
  for run in "seed-step 256 {}" "cct-cifar10-step 128 $cct" "deit-tiny-224-step 64 $deit"; do
    read -r graph batch config <<<"$run"
    timeout 60 python3 bench/torch_train.py --device cuda --steps 30 --batch "$batch" --config "$config" \
      | sed "s/^{/{\"graph\": \"$graph\", /" >>"$results" || status=1
  done
else
  echo '{"bench": "gpu-check", "anchor": "none: no PyTorch with CUDA here"}' >>"$results"
fi
cat "$results"
exit $status
