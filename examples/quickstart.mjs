// Runnable tour of the API on a tiny random-weight model (the output is noise; point loadModel at
// a real VARGPT v1 checkpoint folder for real answers).
//   npm run build && node examples/quickstart.mjs [work-dir]
// Without a work-dir it works in a temporary folder and removes it at the end; with one, the files
// (the tiny model, butterfly.png) stay there.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { loadModel, synthesize } from '../dist/index.js';

const keep = process.argv[2] !== undefined;
const work = keep ? process.argv[2] : await mkdtemp(path.join(tmpdir(), 'vargpt-example-'));
const dir = path.join(work, 'tiny-model');
await synthesize({ preset: 'tiny', out: dir, seed: 0 });

// In TypeScript (5.2+) or Node >= 24, `await using model = await loadModel(...)` disposes it for you.
const model = await loadModel(dir, { device: 'auto' });
try {
  console.log(`loaded on ${model.info.device}: LLM ${model.info.llm.layers} layers, VAR depth ${model.info.var?.depth}`);

  // Understanding: raw pixels work as well as files and Buffers.
  const pixels = { width: 64, height: 48, data: new Uint8Array(64 * 48 * 3).fill(200) };
  const answer = await model.ask(pixels, 'What is shown in this image?', { maxNewTokens: 8 });
  console.log('ask ->', JSON.stringify(answer.text), answer.stopReason);

  // Text to image, with progress.
  const drawing = await model.generateImage('a butterfly on a flower', {
    seed: 1234,
    onImageProgress: ({ scale, scales }) => process.stderr.write(`\rscale ${scale}/${scales}`),
  });
  process.stderr.write('\n');
  const file = path.join(work, 'butterfly.png');
  await drawing.image.save(file);
  console.log('generateImage ->', file, `${drawing.image.width}x${drawing.image.height}`);

  // Streaming a conversation that continues after the image.
  const messages = [{ role: 'user', content: 'Draw a butterfly.' }, drawing.message, { role: 'user', content: 'Describe it.' }];
  let streamed = '';
  for await (const event of model.chatStream(messages, { maxNewTokens: 8 })) {
    if (event.type === 'text') streamed += event.delta;
    if (event.type === 'end') console.log('chatStream ->', JSON.stringify(streamed), event.reply.stopReason);
  }

  // Cancellation: abort while drawing; the model stays usable.
  const controller = new AbortController();
try {
    await model.generateImage('a cat', { signal: controller.signal, onImageProgress: ({ scale }) => scale === 3 && controller.abort() });
  } catch (error) {
    console.log('aborted ->', error.name);
  }

  // VQ-VAE round trip.
  const indices = await model.encodeImageTokens(file);
  const decoded = await model.decodeImageTokens(indices);
  console.log('VQ-VAE ->', indices.map((a) => a.length).join(','), `${decoded.width}x${decoded.height}`);
} finally {
  await model.dispose();
  if (!keep) {
    await rm(work, { recursive: true, force: true });
    console.log(`(removed ${work}; pass a folder to keep the files)`);
  }
}
