#!/usr/bin/env bash
# Packs what the GPU check needs into .gpu-check/ (git-ignored) for a GPU machine that has no Node.js
# and no network (PyTorch with CUDA is there): a Node.js 24 binary and onnxruntime-node's Linux x64
# binaries (both xz-compressed), the graphs (bench/gpu-check/graphs.ts), the check itself, and the
# Vulkan loader's Debian package for a machine without one. The working tree travels beside it
# (models/, bench/torch_train.py and its fixture module); the whole stays under 64 MiB.
#   bench/gpu-check/pack.sh            then, on the GPU machine:  bench/gpu-check/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
c=.gpu-check
mkdir -p "$c"

npx tsx bench/gpu-check/graphs.ts --out "$c/graphs"
cp bench/gpu-check/check.ts "$c/check.ts"

node24=$(.ci/node 24)
[ "$c/node.xz" -nt "$node24/node" ] || xz -T0 -6 -c "$node24/node" >"$c/node.xz"

# onnxruntime-node as it loads: its JavaScript, onnxruntime-common, and the Linux x64 binaries
# (the install-time dependencies and the other platforms stay behind).
ort="$c/node_modules/onnxruntime-node"
rm -rf "$c/node_modules" && mkdir -p "$ort/bin/napi-v6/linux/x64"
cp -r node_modules/onnxruntime-common "$c/node_modules/"
cp -r node_modules/onnxruntime-node/package.json node_modules/onnxruntime-node/dist "$ort/"
cp node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node "$ort/bin/napi-v6/linux/x64/"
xz -T0 -6 -c node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1 >"$ort/bin/napi-v6/linux/x64/libonnxruntime.so.1.xz"

# The Vulkan loader (Debian's, amd64) for a machine whose image lacks it.
mkdir -p "$c/deb"
if ! ls "$c"/deb/libvulkan1_*.deb >/dev/null 2>&1; then
  lists=$(mktemp -d)
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
  mkdir -p "$lists/partial"
  apt-get "${o[@]}" update -qq
  (cd "$c/deb" && apt-get "${o[@]}" download libvulkan1)
  rm -rf "$lists"
fi

tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
packed=$(du -sb "$c" --exclude="$c/out" | cut -f1)
total=$((tree + packed))
echo "packed $c: $((packed / 1048576)) MiB, with the working tree $((total / 1048576)) MiB (64 MiB travel)"
[ "$total" -lt $((64 * 1048576)) ] || { echo "pack: over the 64 MiB a device run carries" >&2; exit 1; }
