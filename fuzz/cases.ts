import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * The generated bad inputs of `npm run fuzz`. Each case is a CLI invocation plus what a correct
 * outcome is: 'error' (the input is wrong and must be refused), 'ok' (unusual but valid: it must
 * run), 'either' (a clean refusal or a run are both fine). Files are made under `work`.
 */
export interface FuzzCase {
  name: string;
  args: string[];
  expect: 'error' | 'ok' | 'either';
  input?: string;
}

export const TINY = resolve('test/fixtures/models/tiny');
export const IMAGE = resolve('test/fixtures/images/coco_000000039769.png');
const SMALL = resolve('test/fixtures/images/syn_1x1.png');

let counter = 0;
function tinyCopy(work: string, edits: Record<string, string | Buffer | null | ((dir: string, file: string) => void)> = {}): string {
  const dir = join(work, `m${counter++}`);
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(TINY)) if (f !== 'pytorch_model.bin' && !(f in edits)) copyFileSync(join(TINY, f), join(dir, f));
  for (const [f, e] of Object.entries(edits)) {
    if (typeof e === 'function') e(dir, join(dir, f));
    else if (e !== null) writeFileSync(join(dir, f), e);
  }
  return dir;
}

/** Ways a file can be wrong; each writes `file` (which does not exist yet). */
const FILE_KINDS: Record<string, (file: string, work: string) => void> = {
  fifo: (f) => execFileSync('mkfifo', [f]),
  devzero: (f) => symlinkSync('/dev/zero', f),
  folder: (f) => mkdirSync(f),
  empty: (f) => writeFileSync(f, ''),
  random: (f) => writeFileSync(f, Buffer.from(Array.from({ length: 1024 }, (_, i) => (i * 7919 + 13) % 256))),
  dangling: (f) => symlinkSync('/nonexistent/blip-itm-fuzz', f),
  loop: (f) => symlinkSync(f, f),
  nul: (f) => writeFileSync(f, Buffer.alloc(4096)),
  sparse2g: (f) => { writeFileSync(f, ''); truncateSync(f, 2 ** 31); },
  devnull: (f) => symlinkSync('/dev/null', f),
};

function badFile(work: string, kind: string, name: string): string {
  const dir = join(work, `f${counter++}`);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  FILE_KINDS[kind](file, work);
  return file;
}

const score = (model: string, ...extra: string[]) => ['score', '--model', model, '--image', IMAGE, '--text', 'a cat', ...extra];

export function generateCases(work: string): FuzzCase[] {
  const cases: FuzzCase[] = [];
  const add = (name: string, args: string[], expect: FuzzCase['expect'], input?: string) => cases.push({ name, args, expect, input });

  // 1. Numbers in flags (no model load needed to refuse them).
  const badNumbers = ['0x10', ' 4', '4 ', '1e3', '-1', '0', '4.5', '', 'NaN', 'Infinity', '99999999999999999999', '٣', '+4', '0b11'];
  const numberFlags: Array<[string, (v: string) => string[]]> = [
    ['threads', (v) => score(TINY, `--threads=${v}`)],
    ['top', (v) => ['rank', '--model', TINY, '--image', IMAGE, '--texts', '-', `--top=${v}`]],
    ['rerank', (v) => ['rank', '--model', TINY, '--image', IMAGE, '--texts', '-', `--rerank=${v}`]],
    ['k-test', (v) => ['eval', '--model', TINY, '--annotations', 'test/fixtures/retrieval/dataset.json', '--images', 'test/fixtures/images', '--no-cache', `--k-test=${v}`]],
    ['batch-size', (v) => ['index', SMALL, '--db', join(work, `db${counter++}`), '--model', TINY, `--batch-size=${v}`]],
    ['k', (v) => ['search', '--db', join(work, 'no-db'), '--text', 'x', `--k=${v}`]],
  ];
  for (const [flag, make] of numberFlags) {
    for (const v of badNumbers) {
      // --rerank 0 is valid (cosine only); every other value here is not a decimal count.
      add(`--${flag} ${JSON.stringify(v)}`, make(v), flag === 'rerank' && v === '0' ? 'ok' : 'error', 'a cat\n');
    }
  }
  add('--threads -1 (separate argument)', score(TINY, '--threads', '-1'), 'error');
  add('--threads 1024 (capped with a warning)', score(TINY, '--threads', '1024'), 'ok');
  add('unknown option', score(TINY, '--frobnicate'), 'error');
  add('unknown command', ['frobnicate'], 'error');
  add('--device gpu', score(TINY, '--device', 'gpu'), 'error');
  add('--itm-text-start x', score(TINY, '--itm-text-start', 'x'), 'error');

  // 2. Every file role x every way a file can be wrong.
  const modelRoles = ['config.json', 'preprocessor_config.json', 'vocab.txt', 'tokenizer_config.json', 'special_tokens_map.json', 'model.safetensors'];
  // The fixture's tokenizer_config.json has "added_tokens_decoder", so transformers (and blip-itm)
  // never read its special_tokens_map.json or added_tokens.json; for those two roles the config
  // loses that key, so that the bad file is actually read.
  const tokenizerConfig = JSON.parse(readFileSync(join(TINY, 'tokenizer_config.json'), 'utf8'));
  const { added_tokens_decoder: _decoder, ...olderTokenizerConfig } = tokenizerConfig;
  for (const role of [...modelRoles, 'added_tokens.json']) {
    for (const kind of Object.keys(FILE_KINDS)) {
      const read: Record<string, string> = role === 'special_tokens_map.json' || role === 'added_tokens.json' ? { 'tokenizer_config.json': JSON.stringify(olderTokenizerConfig) } : {};
      // A missing optional tokenizer file is fine: a dangling link reads as absent.
      const optional = role.startsWith('tokenizer_config') || role === 'special_tokens_map.json' || role === 'added_tokens.json';
      const model = tinyCopy(work, { ...read, [role]: (_d: string, f: string) => FILE_KINDS[kind](f, work) });
      add(`${role} is ${kind}`, score(model), optional && kind === 'dangling' ? 'either' : 'error');
    }
  }
  const userRoles: Array<[string, (f: string) => string[]]> = [
    ['--image', (f) => score(TINY).map((a) => (a === IMAGE ? f : a))],
    ['--texts', (f) => ['rank', '--model', TINY, '--image', IMAGE, '--texts', f]],
    ['--annotations', (f) => ['eval', '--model', TINY, '--annotations', f, '--images', 'test/fixtures/images', '--no-cache']],
    ['--images-from', (f) => ['score', '--model', TINY, '--images-from', f, '--text', 'x']],
    ['index list file', (f) => ['index', f, '--db', join(work, `db${counter++}`), '--model', TINY]],
    ['search --image', (f) => ['search', '--db', join(work, 'no-db'), '--image', f]],
  ];
  for (const [role, make] of userRoles) {
    for (const kind of Object.keys(FILE_KINDS)) {
      const file = badFile(work, kind, role === '--image' || role === 'search --image' ? 'x.png' : 'x.txt');
      // `index` takes a folder as well as a list, and an empty list (index mirrors it: nothing).
      const valid = role === 'index list file' && (kind === 'folder' || kind === 'empty' || kind === 'devnull');
      add(`${role} is ${kind}`, make(file), valid ? 'either' : 'error');
    }
  }

  // 3. config.json values.
  const fields = ['num_hidden_layers', 'hidden_size', 'num_attention_heads', 'intermediate_size', 'layer_norm_eps', 'hidden_act'];
  const values: Array<[unknown, FuzzCase['expect']]> = [[0, 'error'], [-1, 'error'], [1e9, 'error'], [1.5, 'error'], ['x', 'error'], [1e300, 'error'], [3, 'either'], [[1], 'error']];
  const config = JSON.parse(readFileSync(join(TINY, 'config.json'), 'utf8'));
  for (const section of ['text_config', 'vision_config']) {
    for (const field of [...fields, ...(section === 'text_config' ? ['vocab_size', 'max_position_embeddings', 'encoder_hidden_size'] : ['image_size', 'patch_size', 'num_channels'])]) {
      for (const [v, expect] of values) {
        const c = structuredClone(config);
        c[section][field] = v;
        add(`config ${section}.${field} = ${JSON.stringify(v)}`, score(tinyCopy(work, { 'config.json': JSON.stringify(c) })), expect);
      }
    }
  }
  for (const [key, v] of [['image_text_hidden_size', 1e9], ['model_type', 'bert'], ['architectures', ['BlipForConditionalGeneration']], ['vision_config', 'x'], ['text_config', null]] as Array<[string, unknown]>) {
    const c = structuredClone(config);
    c[key] = v;
    add(`config ${key} = ${JSON.stringify(v)}`, score(tinyCopy(work, { 'config.json': JSON.stringify(c) })), key === 'text_config' ? 'either' : 'error');
  }
  add('config.json not JSON', score(tinyCopy(work, { 'config.json': '{"model_type": "blip",\n SECRET }' })), 'error');
  add('config.json a list', score(tinyCopy(work, { 'config.json': '[]' })), 'error');

  // 4. preprocessor_config.json values.
  const pre = JSON.parse(readFileSync(join(TINY, 'preprocessor_config.json'), 'utf8'));
  const preCases: Array<[string, unknown, FuzzCase['expect']]> = [
    ['size', 32768, 'error'], ['size', 20000, 'error'], ['size', 0, 'error'], ['size', -5, 'error'], ['size', 1e9, 'error'],
    ['size', 'x', 'error'], ['size', { height: 32 }, 'error'], ['size', [32, 32], 'ok'], ['size', { shortest_edge: 32 }, 'ok'], ['size', 64, 'error'],
    ['size', { height: 32, width: 64 }, 'error'], ['image_mean', [1, 2], 'error'], ['image_std', [0, 1, 1], 'error'], ['image_std', 'x', 'error'],
    ['resample', 0, 'error'], ['resample', 99, 'error'], ['rescale_factor', 'NaN', 'error'], ['do_resize', 'yes', 'error'],
    ['image_processor_type', 'CLIPImageProcessor', 'error'], ['do_normalize', false, 'ok'], ['do_resize', false, 'either'],
  ];
  for (const [key, v, expect] of preCases) {
    const p = structuredClone(pre);
    p[key] = v;
    add(`preprocessor ${key} = ${JSON.stringify(v)}`, score(tinyCopy(work, { 'preprocessor_config.json': JSON.stringify(p) })), expect);
  }

  // 5. Weights: corrupt safetensors, NaN/Inf values.
  const st = readFileSync(join(TINY, 'model.safetensors'));
  const headerLen = Number(st.readBigUInt64LE(0));
  const withHeader = (h: Buffer, len = BigInt(h.length)) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(len); return Buffer.concat([b, h, st.subarray(8 + headerLen)]); };
  const header = st.subarray(8, 8 + headerLen);
  add('safetensors header length 2^60', score(tinyCopy(work, { 'model.safetensors': withHeader(header, 1n << 60n) })), 'error');
  add('safetensors header not JSON', score(tinyCopy(work, { 'model.safetensors': withHeader(Buffer.from('{"a": nope'.padEnd(headerLen, ' '))) })), 'error');
  add('safetensors truncated', score(tinyCopy(work, { 'model.safetensors': st.subarray(0, st.length >> 1) })), 'error');
  add('safetensors header only', score(tinyCopy(work, { 'model.safetensors': st.subarray(0, 8 + headerLen) })), 'error');
  add('safetensors wrong dtype', score(tinyCopy(work, { 'model.safetensors': withHeader(Buffer.from(header.toString().replaceAll('"F32"', '"Q4"'))) })), 'error');
  const offsets = header.toString().replace(/"data_offsets":\[(\d+),(\d+)\]/, (_m, a, b) => `"data_offsets":[${a},${Number(b) + 4}]`);
  add('safetensors overlapping offsets', score(tinyCopy(work, { 'model.safetensors': withHeader(Buffer.from(offsets)) })), 'error');
  const meta = JSON.parse(header.toString());
  for (const tensor of ['vision_proj.weight', 'text_proj.weight', 'itm_head.bias', 'vision_model.embeddings.patch_embedding.weight', 'text_encoder.embeddings.word_embeddings.weight']) {
    for (const value of [NaN, Infinity, -Infinity]) {
      const b = Buffer.from(st);
      const begin = 8 + headerLen + meta[tensor].data_offsets[0];
      // Every element, so that the value reaches the output whatever the token or pixel.
      for (let o = begin; o < 8 + headerLen + meta[tensor].data_offsets[1]; o += 4) b.writeFloatLE(value, o);
      add(`weights ${tensor} all ${value}`, score(tinyCopy(work, { 'model.safetensors': b }), '--json'), 'error');
    }
  }
  add('pytorch_model.bin random bytes (no safetensors)', score(tinyCopy(work, { 'model.safetensors': null, 'pytorch_model.bin': Buffer.alloc(4096, 7) })), 'error');

  // 6. Tokenizer files.
  const vocab = readFileSync(join(TINY, 'vocab.txt'), 'utf8').split('\n');
  const tokCases: Array<[string, Record<string, string>, FuzzCase['expect']]> = [
    ['vocab without [UNK]', { 'vocab.txt': vocab.filter((l) => l !== '[UNK]').join('\n') }, 'error'],
    ['vocab without [CLS]', { 'vocab.txt': vocab.filter((l) => l !== '[CLS]').join('\n') }, 'error'],
    ['one-line vocab', { 'vocab.txt': '[PAD]\n' }, 'error'],
    ['random vocab', { 'vocab.txt': ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...Array.from({ length: 30517 }, (_, i) => `zq${i}`)].join('\n') }, 'error'],
    ['vocab with 100 extra lines', { 'vocab.txt': [...vocab.slice(0, 2000), ...Array.from({ length: 100 }, (_, i) => `x${i}`), ...vocab.slice(2000)].join('\n') }, 'error'],
    ['vocab CRLF', { 'vocab.txt': vocab.join('\r\n') }, 'ok'],
    ['vocab not UTF-8', { 'vocab.txt': Buffer.from([0xff, 0xfe, 0x41]).toString('latin1') + vocab.join('\n') }, 'either'],
    ['unk_token names nothing', { 'tokenizer_config.json': JSON.stringify({ ...JSON.parse(readFileSync(join(TINY, 'tokenizer_config.json'), 'utf8')), unk_token: '<nowhere>' }), 'special_tokens_map.json': '{}' }, 'error'],
    ['tokenizer_config not JSON', { 'tokenizer_config.json': '{\n"a": ' }, 'error'],
    ['added_tokens id 10^9', { 'tokenizer_config.json': JSON.stringify(olderTokenizerConfig), 'added_tokens.json': JSON.stringify({ '[DEC]': 1e9, '[ENC]': 30523 }) }, 'error'],
    ['added_tokens id -1', { 'tokenizer_config.json': JSON.stringify(olderTokenizerConfig), 'added_tokens.json': JSON.stringify({ '[DEC]': -1 }) }, 'error'],
    ['special_tokens_map unk names nothing', { 'tokenizer_config.json': JSON.stringify({ ...olderTokenizerConfig, unk_token: undefined }), 'special_tokens_map.json': JSON.stringify({ unk_token: '<nowhere>' }) }, 'error'],
  ];
  for (const [name, edits, expect] of tokCases) add(name, score(tinyCopy(work, edits)), expect);

  // 7. Long command lines and many inputs.
  add('30,000-character --text', score(TINY, '--text', 'a'.repeat(30_000)), 'ok');
  add('100,000-character --text', score(TINY, '--text', 'cat '.repeat(25_000)), 'ok');
  add('600 --image arguments', ['score', '--model', TINY, ...Array.from({ length: 600 }, () => ['--image', SMALL]).flat(), '--text', 'x'], 'ok');
  add('30,000-character --revision on a local folder', score(TINY, '--revision', 'r'.repeat(30_000)), 'either');
  add('40,000-character --model path', score('m/'.repeat(20_000)), 'error');
  add('newline in an image name', score(TINY, '--image', 'a\nb.png'), 'error');
  add('NUL-free control characters in a caption', score(TINY, '--text', '\u0007\u001b[31m'), 'ok');
  add('empty caption', score(TINY, '--text', ''), 'either');

  // 8. Annotations.
  const annCases: Array<[string, unknown]> = [
    ['escaping path', [{ image: '../../../../etc/passwd', caption: ['x'] }]], ['absolute path', [{ image: '/etc/passwd', caption: ['x'] }]],
    ['not a list', { image: 'x' }], ['no captions', [{ image: 'syn_1x1.png', caption: [] }]], ['caption numbers', [{ image: 'syn_1x1.png', caption: [1] }]],
    ['image number', [{ image: 5, caption: ['x'] }]], ['empty list', []], ['missing image', [{ image: 'nope.png', caption: ['x'] }]],
    ['image is a folder', [{ image: '.', caption: ['x'] }]], ['null entry', [null]],
  ];
  for (const [name, ann] of annCases) {
    const f = join(work, `ann${counter++}.json`);
    writeFileSync(f, JSON.stringify(ann));
    add(`annotations: ${name}`, ['eval', '--model', TINY, '--annotations', f, '--images', 'test/fixtures/images', '--no-cache'], 'error');
  }
  return cases;
}
