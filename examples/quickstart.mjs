// Runnable tour of the API on the built-in demo model (a small VARGPT v1 trained on synthetic
// coloured shapes; point loadModel at a real VARGPT v1 checkpoint folder for the real thing).
//   npm run build && node examples/quickstart.mjs [work-dir]
// Without a work-dir it works in a temporary folder and removes it at the end; with one, the
// drawing (blue-square.png) stays there.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { demoModelDir, generateImageSelfChecked, loadModel, loadReadBackCheck } from '../dist/index.js';

const keep = process.argv[2] !== undefined;
const work = keep ? process.argv[2] : await mkdtemp(path.join(tmpdir(), 'vargpt-example-'));
if (keep) await mkdir(work, { recursive: true });

// In TypeScript (5.2+) or Node >= 24, `await using model = await loadModel(...)` disposes it for you.
const model = await loadModel(demoModelDir(), { device: 'auto' });
try {
  console.log(`loaded on ${model.info.device}: LLM ${model.info.llm.layers} layers, VAR depth ${model.info.var?.depth}`);

  // Text to image, with progress.
  const drawing = await model.generateImage('draw a big blue square on a white background', {
    seed: 1234,
    onImageProgress: ({ scale, scales }) => process.stderr.write(`\rscale ${scale}/${scales}`),
  });
  process.stderr.write('\n');
  const file = path.join(work, 'blue-square.png');
  await drawing.image.save(file);
  console.log('generateImage ->', file, `${drawing.image.width}x${drawing.image.height}`);

  // Drawing checked by the model's own reading (as `vargpt generate` draws on this model): up to 4
  // drawings, the first the model reads back as the colour and shape asked for.
  const check = await loadReadBackCheck(demoModelDir());
  const checked = await generateImageSelfChecked(model, 'draw a yellow square', { seed: 4, candidates: 4, check });
  const { kept, drawn, readings } = checked.selfCheck;
  console.log('generateImageSelfChecked ->', `kept drawing ${kept + 1} of ${drawn}, read as`, readings[kept].map((r) => r.answer).join(' '));

  // Understanding: files, Buffers and raw pixels all work.
  const answer = await model.ask(file, 'what shape is this?');
  console.log('ask ->', JSON.stringify(answer.text), answer.stopReason);

  // Streaming a conversation that continues after the image.
  const messages = [{ role: 'user', content: 'draw a red circle' }];
  const first = await model.chat(messages, { seed: 7 });
  console.log('chat ->', first.images.length, 'image(s)');
  messages.push(first.message, { role: 'user', content: [{ type: 'image', image: first.images[0] }, { type: 'text', text: 'what colour is the shape?' }] });
  let streamed = '';
  for await (const event of model.chatStream(messages)) {
    if (event.type === 'text') streamed += event.delta;
    if (event.type === 'end') console.log('chatStream ->', JSON.stringify(streamed.trim()), event.reply.stopReason);
  }

  // Cancellation: abort while drawing; the model stays usable.
  const controller = new AbortController();
  try {
    await model.generateImage('a green triangle', { signal: controller.signal, onImageProgress: ({ scale }) => scale === 3 && controller.abort() });
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
