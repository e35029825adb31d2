import { spawnSync } from 'node:child_process';
import * as ort from 'onnxruntime-node';
import { BlipForImageTextRetrieval } from '../src/model/blip-itm.js';

/**
 * Which operators of the three BLIP graphs onnxruntime's WebGPU provider leaves to the CPU, as
 * JSON {graph: {opType: nodes on CPU}}. A child process creates each graph's webgpu session with
 * verbose logging, in which onnxruntime lists the nodes it placed on CPUExecutionProvider (on
 * stderr, native, so only a parent can read them). Needs a WebGPU adapter (VK_ICD_FILENAMES
 * pointing at SwiftShader will do). The fp16 graphs need shader-f16 only to run, not to be placed.
 *
 *   node --import tsx bench/webgpu-fallback.ts [model dir] [fp32|fp16|int8]
 */
const [dir = 'test/fixtures/models/tiny', dtype = 'fp32', child] = process.argv.slice(2);
const MARK = '@@graph ';

if (child === '--child') {
  const model = await BlipForImageTextRetrieval.fromPretrained(dir, { dtype: dtype as 'fp32', executionProvider: 'webgpu' });
  ort.env.logLevel = 'verbose';
  for (const [name, graph] of Object.entries(model.graphs)) {
    process.stderr.write(`${MARK}${name}\n`);
    const session = await ort.InferenceSession.create(graph.bytes, {
      executionProviders: ['webgpu'], logSeverityLevel: 0, graphOptimizationLevel: 'all',
      extra: { session: { model_external_initializers_file_folder_path: graph.weightsFolder! } },
    } as ort.InferenceSession.SessionOptions);
    await session.release();
  }
  await model.dispose();
} else {
  const r = spawnSync(process.execPath, ['--import', 'tsx', process.argv[1], dir, dtype, '--child'], { encoding: 'utf8', maxBuffer: 1 << 28 });
  if (r.status !== 0) {
    process.stderr.write(`child failed (${r.status}): ${r.stderr.split('\n').filter((l) => !l.includes('[V:') && !l.includes('[I:')).slice(-5).join('\n')}\n`);
    process.exit(1);
  }
  const result: Record<string, Record<string, number>> = {};
  let graph = '';
  let onCpu = false;
  for (const line of r.stderr.split('\n')) {
    if (line.startsWith(MARK)) { graph = line.slice(MARK.length); result[graph] = {}; continue; }
    const placed = /Node\(s\) placed on \[(\w+)\]/.exec(line);
    if (placed) { onCpu = placed[1] === 'CPUExecutionProvider'; continue; }
    const node = /VerifyEachNodeIsAssignedToAnEp\]\s+(\w+) \(/.exec(line);
    if (node && onCpu && graph) result[graph][node[1]] = (result[graph][node[1]] ?? 0) + 1;
    else if (!node) onCpu = false;
  }
  process.stdout.write(`${JSON.stringify({ model: dir, dtype, cpu_fallback: result })}\n`);
}
