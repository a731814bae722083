# vitrine, CPU image: builds the TypeScript, then a slim runtime with production dependencies only
# (and only this platform's ONNX Runtime binaries).
#   docker build -t vitrine . && docker run -p 8080:8080 -p 8081:8081 vitrine   (HTTP on 8080, gRPC on 8081)
# Serve other models by mounting a folder over /app/models:  -v "$PWD/models:/app/models:ro"

FROM node:24-bookworm-slim AS build
WORKDIR /app
# --ignore-scripts: no dependency runs code at install (onnxruntime-node's script would fetch the CUDA
# provider; the CPU provider ships in the package).
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin bin
COPY runtime runtime
COPY server server
COPY trainer trainer
RUN npx tsc -p tsconfig.build.json

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production PORT=8080 HOST=0.0.0.0 VITRINE_GRPC_PORT=8081 VITRINE_MODELS=/app/models
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm cache clean --force \
  && arch=$(case "$(uname -m)" in aarch64) echo arm64;; *) echo x64;; esac) \
  && find node_modules/onnxruntime-node/bin -mindepth 2 -maxdepth 2 -type d ! -name linux -exec rm -rf {} + \
  && find node_modules/onnxruntime-node/bin -mindepth 3 -maxdepth 3 -type d ! -name "$arch" -exec rm -rf {} +
COPY --from=build /app/dist dist
COPY server/web server/web
COPY proto proto
COPY trainer/recipes trainer/recipes
COPY trainer/vit/seed.json trainer/vit/seed.json
COPY models models
USER node
# HTTP, and the Open Inference Protocol's gRPC binding (VITRINE_GRPC_PORT; unset it to turn gRPC off)
EXPOSE 8080 8081
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The server handles SIGTERM itself (stop accepting, drain, exit 0), also as PID 1.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "--initial-old-space-size=128", "dist/bin/vitrine.js"]
CMD ["serve"]
