// "Run in this browser": the model runs in this page on blip-itm/web (served by this server at
// /web/), with the checkpoint's files from /model/. Nothing goes to the /v1 API; the image and
// captions never leave the page. Loaded on first use only, so the server mode costs nothing.

import { readReply } from '/page/reply.js';

let web = null;
let loaded = null; // { key, model, name }

/** The model for these settings, loaded once (and again only when a setting or the server's model changes). */
async function modelFor({ device, dtype, apiKey, onProgress }) {
  const headers = apiKey ? { authorization: `Bearer ${apiKey}` } : {};
  const response = await fetch('/model/manifest.json', { headers });
  const { payload: manifest, detail } = await readReply(response);
  if (!response.ok) {
    const error = new Error(`The server does not offer its model files (${detail})`);
    error.status = response.status;
    throw error;
  }
  const key = `${manifest.base}|${device}|${dtype}`;
  if (loaded && loaded.key === key) return loaded;
  if (loaded) {
    await loaded.model.dispose();
    loaded = null;
  }
  web ??= await import('/web/blip-itm.web.js');
  const model = await web.BlipForImageTextRetrieval.fromPretrained(manifest.base, {
    device: device === 'auto' ? undefined : device,
    dtype: dtype === 'auto' ? undefined : dtype,
    fetchInit: { headers },
    progress: onProgress,
  });
  loaded = { key, model, name: manifest.model };
  return loaded;
}

/**
 * Scores one image against the captions in the page, in the shape of POST /v1/score's answer
 * (plus where and in what precision it ran).
 */
export async function scoreInBrowser({ image, captions, device, dtype, apiKey, onProgress }) {
  const { model, name } = await modelFor({ device, dtype, apiKey, onProgress });
  const started = performance.now();
  const inputs = await model.processor.call({ images: [image], text: captions });
  const images = await model.encodeImages(inputs.pixelValues);
  const itm = await model.itmForImage(images, 0, inputs);
  const cosine = model.cosine(images, await model.encodeTexts(inputs));
  const pairs = captions.map((text, j) => {
    const logits = [itm.data[2 * j], itm.data[2 * j + 1]];
    return { image: 0, text, itm_logits: logits, itm_probability: web.matchProbability(logits[0], logits[1]), cosine: cosine.data[j] };
  });
  return { model: name, pairs, device: model.device, dtype: model.dtype, ms: performance.now() - started };
}
