// The blip-itm page: one image, captions one per line, POST /v1/score as multipart (or, in
// browser mode, the model run in this page: browser-mode.js), bars sorted by match. Plain browser
// JavaScript, no build step and nothing loaded from elsewhere.

import { scoreInBrowser } from '/page/browser-mode.js';
import { readReply } from '/page/reply.js';

const $ = (id) => document.getElementById(id);
const form = $('score-form');
const input = $('image-input');
const zone = $('drop-zone');
const preview = $('preview');
const hint = $('drop-hint');
const imageName = $('image-name');
const captions = $('captions');
const button = $('score-button');
const message = $('message');
const results = $('results');
const list = $('result-list');
const summary = $('summary');
const apiKey = $('api-key');
const browserOptions = $('browser-options');
const browserDevice = $('browser-device');
const browserDtype = $('browser-dtype');

const runsInBrowser = () => form.elements.mode.value === 'browser';
for (const radio of form.elements.mode) radio.addEventListener('change', () => { browserOptions.hidden = !runsInBrowser(); });

/** The image to score: a File from the picker, a drop or a paste. */
let image = null;
let previewUrl = null;

function showMessage(text, kind = 'error') {
  // Results of an earlier image must not read as the answer to this one.
  if (kind === 'error') results.hidden = true;
  message.textContent = text;
  message.className = kind === 'error' ? 'message' : 'message info';
  message.hidden = false;
}

function clearMessage() {
  message.hidden = true;
  message.textContent = '';
}

function setImage(file) {
  if (!file) return;
  if (file.type && !file.type.startsWith('image/')) {
    showMessage(`"${file.name}" is not an image (${file.type}). Choose a JPEG, PNG, WebP, GIF, TIFF or AVIF file.`);
    return;
  }
  clearMessage();
  image = file;
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = URL.createObjectURL(file);
  preview.src = previewUrl;
  preview.alt = `the chosen image, ${file.name || 'pasted image'}`;
  preview.hidden = false;
  hint.hidden = true;
  imageName.textContent = `${file.name || 'pasted image'} · ${formatSize(file.size)}`;
}

function formatSize(bytes) {
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MB`;
  if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(0)} KB`;
  return `${bytes} bytes`;
}

// A file the browser cannot draw (a TIFF, or not an image at all): no broken-image icon; the server decides.
preview.addEventListener('error', () => {
  preview.hidden = true;
  hint.hidden = false;
  hint.textContent = 'No preview for this file; Score sends it to the server as it is.';
});

input.addEventListener('change', () => setImage(input.files && input.files[0]));

for (const type of ['dragenter', 'dragover']) {
  zone.addEventListener(type, (e) => {
    e.preventDefault();
    zone.classList.add('dragging');
  });
}
for (const type of ['dragleave', 'drop']) zone.addEventListener(type, () => zone.classList.remove('dragging'));
zone.addEventListener('drop', (e) => {
  e.preventDefault();
  const file = e.dataTransfer && e.dataTransfer.files[0];
  if (file) setImage(file);
});
// A drop that misses the zone must not navigate away from the page.
window.addEventListener('dragover', (e) => e.preventDefault());
window.addEventListener('drop', (e) => e.preventDefault());

document.addEventListener('paste', (e) => {
  const items = e.clipboardData ? [...e.clipboardData.items] : [];
  const item = items.find((i) => i.kind === 'file' && i.type.startsWith('image/'));
  if (!item) return; // a text paste into the captions box stays a text paste
  e.preventDefault();
  const file = item.getAsFile();
  setImage(new File([file], file.name || 'pasted.png', { type: file.type }));
});

form.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    form.requestSubmit();
  }
});

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  const lines = captions.value.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  if (!image) {
    showMessage('Choose an image first (or drop or paste one).');
    input.focus();
    return;
  }
  if (lines.length === 0) {
    showMessage('Type at least one caption, one per line.');
    captions.focus();
    return;
  }
  clearMessage();
  if (runsInBrowser()) {
    await scoreHere(lines);
    return;
  }
  const body = new FormData();
  body.append('image', image, image.name || 'image');
  for (const line of lines) body.append('text', line);
  const headers = {};
  if (apiKey.value.trim()) headers.authorization = `Bearer ${apiKey.value.trim()}`;
  button.disabled = true;
  button.textContent = 'Scoring…';
  const started = performance.now();
  try {
    const response = await fetch('/v1/score', { method: 'POST', body, headers });
    const ms = performance.now() - started;
    const { payload, detail } = await readReply(response);
    if (!response.ok) {
      const prefix = response.status === 415 ? 'Not an image the server can read' : `The server answered ${response.status}`;
      showMessage(`${prefix}: ${detail}`);
      if (response.status === 401) apiKey.closest('details').open = true;
      return;
    }
    render(payload, ms);
  } catch (err) {
    showMessage(`Could not reach the server: ${err && err.message ? err.message : err}`);
  } finally {
    button.disabled = false;
    button.textContent = 'Score';
  }
});

async function scoreHere(lines) {
  button.disabled = true;
  button.textContent = 'Scoring…';
  try {
    const payload = await scoreInBrowser({
      image,
      captions: lines,
      device: browserDevice.value,
      dtype: browserDtype.value,
      apiKey: apiKey.value.trim(),
      onProgress: (e) => {
        if (e.cached) return;
        const of = e.total ? ` of ${formatSize(e.total)}` : '';
        showMessage(`Downloading the model once: ${e.file}, ${formatSize(e.loaded)}${of}`, 'info');
      },
    });
    clearMessage();
    render(payload, payload.ms, ` in this browser (${payload.device}, ${payload.dtype})`);
  } catch (err) {
    const text = err && err.message ? err.message : String(err);
    if (err && err.name === 'ImageError') showMessage(`Not an image this browser can read: ${text}`);
    else showMessage(`Could not run the model in this browser: ${text}`);
    if (err && err.status === 401) apiKey.closest('details').open = true;
  } finally {
    button.disabled = false;
    button.textContent = 'Score';
  }
}

function render(payload, ms, where = '') {
  // Best match first: by the logit difference, which still orders probabilities that round to 1.
  const pairs = payload.pairs.map((p, i) => ({ ...p, order: i }));
  pairs.sort((a, b) => (b.itm_logits[1] - b.itm_logits[0]) - (a.itm_logits[1] - a.itm_logits[0]) || b.cosine - a.cosine || a.order - b.order);
  list.replaceChildren(...pairs.map((p, i) => row(p, i + 1)));
  summary.textContent = `${payload.model} · ${pairs.length} caption${pairs.length === 1 ? '' : 's'} scored in ${Math.round(ms)} ms${where}`;
  results.hidden = false;
}

function row(pair, rank) {
  const li = document.createElement('li');
  li.className = 'result';
  // The unrounded numbers, for whoever reads the page programmatically (and the page's tests).
  li.dataset.itmLogits = JSON.stringify(pair.itm_logits);
  li.dataset.cosine = String(pair.cosine);
  const caption = document.createElement('div');
  caption.className = 'caption';
  const rankSpan = document.createElement('span');
  rankSpan.className = 'rank';
  rankSpan.textContent = `${rank}.`;
  const text = document.createElement('span');
  text.className = 'caption-text';
  text.textContent = pair.text;
  caption.append(rankSpan, text);
  li.append(caption, bar('match probability', 'prob', pair.itm_probability), bar('cosine', 'cos', pair.cosine));
  return li;
}

function bar(label, kind, value) {
  const rowEl = document.createElement('div');
  rowEl.className = 'bar-row';
  const name = document.createElement('span');
  name.className = 'bar-label';
  name.textContent = label;
  const track = document.createElement('div');
  track.className = `bar ${kind}`;
  track.setAttribute('role', 'meter');
  track.setAttribute('aria-label', label);
  track.setAttribute('aria-valuemin', kind === 'cos' ? '-1' : '0');
  track.setAttribute('aria-valuemax', '1');
  track.setAttribute('aria-valuenow', String(value));
  const fill = document.createElement('span');
  if (kind === 'cos') {
    // Centred: zero in the middle, -1 at the left edge, 1 at the right.
    const half = Math.min(1, Math.abs(value)) * 50;
    fill.style.width = `${half.toFixed(2)}%`;
    fill.style.marginLeft = `${(value < 0 ? 50 - half : 50).toFixed(2)}%`;
  } else {
    fill.style.width = `${(Math.min(1, Math.max(0, value)) * 100).toFixed(2)}%`;
  }
  track.append(fill);
  const number = document.createElement('span');
  number.className = `value ${kind}-value`;
  number.textContent = value.toFixed(4);
  rowEl.append(name, track, number);
  return rowEl;
}
