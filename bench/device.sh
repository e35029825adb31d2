#!/usr/bin/env bash
# bench/device.sh — on a machine with an NVIDIA GPU and no network: the fp32 and fp16 parity checks
# on the fixture models and the large-model benchmark, on webgpu (Vulkan) and, when onnxruntime's
# CUDA provider binaries are present, on cuda. Prints one JSON object on stdout; progress on stderr.
# Budget: under 8 minutes (parity ~1 min; the benchmark writes the 1.8 GB random checkpoint once,
# converts it to fp16 once, then times 5 runs per provider and dtype).
#
# Run from the repository root. What must be there (nothing is downloaded):
#   - the repository's tracked files (src, bench, test/fixtures: ~25 MB);
#   - Node.js >= 20: `node` on PATH, or NODE=/path/to/node (the binary alone, ~95 MB, runs anywhere
#     on x86-64 Linux with glibc);
#   - node_modules with at least onnxruntime-node (its JS and bin/napi-v6/linux/x64: 45 MB, of which
#     libonnxruntime.so.1 44 MB bundles the CPU and WebGPU providers; the darwin/win32/arm64 binaries,
#     240 MB more, are not needed), onnxruntime-common (1 MB), tsx + esbuild + @esbuild/linux-x64
#     (12 MB): about 60 MB in all; `bench/device.sh --carry-list` prints the paths;
#   - for cuda: onnxruntime-node's CUDA 12 provider libraries next to libonnxruntime.so.1
#     (libonnxruntime_providers_cuda.so + libonnxruntime_providers_shared.so, ~350 MB, fetched once
#     elsewhere with `node node_modules/onnxruntime-node/script/install.js --onnxruntime-node-install=cuda12`)
#     and CUDA 12 + cuDNN 9 on the machine; without them cuda is reported as skipped;
#   - for webgpu: libvulkan.so.1 (Debian's libvulkan1, ~0.5 MB) and the NVIDIA driver's Vulkan ICD
#     (shipped with the driver; VK_DRIVER_FILES / VK_ICD_FILENAMES may point at it).
set -uo pipefail
cd "$(dirname "$0")/.."
NODE="${NODE:-$(command -v node || true)}"
ORT=node_modules/onnxruntime-node/bin/napi-v6/linux/x64
if [[ "${1:-}" == "--carry-list" ]]; then
  echo "$NODE"; ls -d node_modules/onnxruntime-node/{package.json,dist,lib,bin/napi-v6/linux/x64} node_modules/onnxruntime-common \
    node_modules/tsx node_modules/esbuild node_modules/@esbuild/linux-x64 node_modules/get-tsconfig node_modules/resolve-pkg-maps 2>/dev/null
  exit 0
fi
fail() { printf '{"ok": false, "error": %s}\n' "$(printf '%s' "$1" | "${NODE:-node}" -e 'process.stdout.write(JSON.stringify(require("fs").readFileSync(0,"utf8")))' 2>/dev/null || echo "\"$1\"")"; exit 1; }
[[ -x "$NODE" ]] || fail "no node binary: put node on PATH or set NODE=/path/to/node"
[[ -f "$ORT/libonnxruntime.so.1" ]] || fail "node_modules/onnxruntime-node is missing (carry it; see the header of bench/device.sh)"
[[ -d node_modules/tsx ]] || fail "node_modules/tsx is missing (carry it; see the header of bench/device.sh)"
providers=webgpu
if [[ -f "$ORT/libonnxruntime_providers_cuda.so" ]]; then providers=webgpu,cuda; fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$(mktemp -d)}"   # fp16 weights cache, thrown away after
start=$(date +%s)
nv="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
echo "device.sh: providers $providers; GPU: ${nv:-unknown}" >&2
echo "device.sh: parity on the fixture models ..." >&2
parity="$(timeout 180 "$NODE" --import tsx bench/device-parity.ts "$providers" 2>/dev/null | tail -1)"
[[ -n "$parity" ]] || parity='{"parity": null, "error": "parity run failed or timed out"}'
echo "device.sh: benchmark on the large random checkpoint ..." >&2
bench="$(timeout 330 "$NODE" --import tsx bench/device-bench.ts "$providers" "${RUNS:-5}" 2>/dev/null | tail -1)"
[[ -n "$bench" ]] || bench='{"bench": null, "error": "benchmark failed or timed out"}'
fallback="$(timeout 60 "$NODE" --import tsx bench/webgpu-fallback.ts test/fixtures/models/tiny fp32 2>/dev/null | tail -1)"
[[ -n "$fallback" ]] || fallback='{"cpu_fallback": null}'
"$NODE" -e '
  const [p, b, f, gpu, seconds, providers] = process.argv.slice(1);
  const parity = JSON.parse(p), bench = JSON.parse(b), fb = JSON.parse(f);
  const ok = Array.isArray(parity.parity) && parity.parity.every((r) => r.pass || (r.dtype === "fp16" && /shader-f16/.test(r.error ?? "")));
  process.stdout.write(JSON.stringify({ ok, gpu, providers: providers.split(","), seconds: Number(seconds), ...parity, ...bench, webgpu_cpu_fallback: fb.cpu_fallback ?? null }) + "\n");
' "$parity" "$bench" "$fallback" "$nv" "$(( $(date +%s) - start ))" "$providers"
