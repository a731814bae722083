#!/usr/bin/env bash
# Builds the CPU image with whichever engine is present (docker, else podman), runs it, waits for
# health, classifies a bundled image through /classify, fetches its heatmap through /attention/:id,
# classifies it again over gRPC (ModelInfer, the image as BYTES; the client is this checkout's
# @grpc/grpc-js), sends SIGTERM and checks a clean exit. Exits non-zero on any failure.
#
#   docker/smoke-test.sh
# Environment: ENGINE (docker|podman), SMOKE_BUILD_FLAGS and SMOKE_RUN_FLAGS (extra flags),
# SMOKE_PORT (host port, default 18080; gRPC on the next one), SMOKE_TAG (image tag, default vitrine:smoke).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "smoke test FAILED: $*" >&2; exit 1; }
say() { echo "smoke: $*"; }

if [ -z "${ENGINE:-}" ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then ENGINE=docker
  elif command -v podman >/dev/null 2>&1; then ENGINE=podman
  else fail "no container engine: docker (with a running daemon) or podman is needed"; fi
fi
PORT=${SMOKE_PORT:-18080}
GRPC_PORT=$((PORT + 1))
TAG=${SMOKE_TAG:-vitrine:smoke}
NAME=vitrine-smoke-$$
work=$(mktemp -d)
cleanup() {
  $ENGINE rm -f "$NAME" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# podman keeps HEALTHCHECK only in the docker format; host networking avoids needing a bridge.
if [ "$ENGINE" = podman ]; then
  build_flags="--format docker --network=host"
  run_flags="--network=host -e PORT=$PORT -e VITRINE_GRPC_PORT=$GRPC_PORT"
  url=http://127.0.0.1:$PORT
else
  build_flags=""
  run_flags="-p 127.0.0.1:$PORT:8080 -p 127.0.0.1:$GRPC_PORT:8081"
  url=http://127.0.0.1:$PORT
fi

say "building $TAG with $ENGINE"
# shellcheck disable=SC2086
$ENGINE build $build_flags ${SMOKE_BUILD_FLAGS:-} -t "$TAG" . >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; fail "the image did not build"; }
size=$($ENGINE image inspect "$TAG" --format '{{.Size}}')
say "image size $((size / 1024 / 1024)) MiB"
$ENGINE image inspect "$TAG" --format '{{json .Config.Healthcheck}}' | grep -q healthz || fail "the image has no HEALTHCHECK on /healthz"
[ "$($ENGINE image inspect "$TAG" --format '{{.Config.User}}')" = node ] || fail "the image does not run as the non-root user node"

say "running it"
# No --init: the server must handle SIGTERM as PID 1 itself.
# shellcheck disable=SC2086
$ENGINE run -d --name "$NAME" $run_flags ${SMOKE_RUN_FLAGS:-} "$TAG" >/dev/null
for i in $(seq 1 90); do
  if curl -fsS "$url/readyz" >/dev/null 2>&1; then break; fi
  if [ "$($ENGINE inspect -f '{{.State.Running}}' "$NAME")" != true ]; then $ENGINE logs "$NAME" | tail -20; fail "the container stopped"; fi
  sleep 1
  [ "$i" = 90 ] && { $ENGINE logs "$NAME" | tail -20; fail "not ready after 90 s"; }
done
curl -fsS "$url/healthz" | grep -q '"ok"' || fail "/healthz"
if [ "$ENGINE" = podman ]; then $ENGINE healthcheck run "$NAME" >/dev/null || fail "the HEALTHCHECK command failed"; fi
say "healthy"

curl -fsS -X POST -H 'content-type: image/png' --data-binary @server/web/examples/cat.png "$url/classify" >"$work/classify.json" || fail "/classify"
grep -q '"predictions":\[{"label":"' "$work/classify.json" || fail "no predictions in $(cat "$work/classify.json")"
id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' "$work/classify.json")
[ -n "$id" ] || fail "no id in the /classify answer"
label=$(sed -n 's/.*"predictions":\[{"label":"\([^"]*\)".*/\1/p' "$work/classify.json")
say "classified the bundled cat image as: $label"

curl -fsS "$url/attention/$id" -o "$work/heatmap.png" || fail "/attention/$id"
[ "$(head -c 8 "$work/heatmap.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "/attention/$id is not a PNG"
say "heatmap: $(wc -c <"$work/heatmap.png") bytes of PNG"

grpc_label=$(node --input-type=module -e "
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';
import { readFileSync } from 'node:fs';
const pkg = grpc.loadPackageDefinition(loader.loadSync('proto/grpc_predict_v2.proto', { keepCase: true, longs: Number, defaults: true, oneofs: true }));
const client = new pkg.inference.GRPCInferenceService('127.0.0.1:$GRPC_PORT', grpc.credentials.createInsecure());
const image = readFileSync('server/web/examples/cat.png');
client.ModelInfer({ model_name: 'cct-cifar10', inputs: [{ name: 'pixel_values', datatype: 'BYTES', shape: [1], contents: { bytes_contents: [image] } }],
  outputs: [{ name: 'logits', parameters: { classification: { int64_param: 1 } } }] }, { deadline: Date.now() + 20000 }, (err, res) => {
  if (err) { console.error(err.message); process.exit(1); }
  console.log(res.outputs[0].contents.bytes_contents[0].toString().split(':')[2]);
  client.close();
});") || fail "gRPC ModelInfer on port $GRPC_PORT"
[ "$grpc_label" = "$label" ] || fail "gRPC said $grpc_label where /classify said $label"
say "gRPC ModelInfer (BYTES image, classification=1) agrees: $grpc_label"

say "sending SIGTERM"
$ENGINE kill --signal TERM "$NAME" >/dev/null
for i in $(seq 1 40); do
  [ "$($ENGINE inspect -f '{{.State.Running}}' "$NAME")" = true ] || break
  sleep 0.5
  [ "$i" = 40 ] && fail "still running 20 s after SIGTERM"
done
code=$($ENGINE inspect -f '{{.State.ExitCode}}' "$NAME")
[ "$code" = 0 ] || { $ENGINE logs "$NAME" | tail -20; fail "exit status $code after SIGTERM"; }
$ENGINE logs "$NAME" 2>&1 | grep -q 'SIGTERM: draining and shutting down' || fail "the log does not show a graceful shutdown"
say "clean exit (0) after SIGTERM"
say "passed"
