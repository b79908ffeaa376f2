// POST /v1/images/generations and POST /v1/images/edits in the OpenAI shape: b64_json PNGs, with
// stream: true the family's per-step previews as image_generation.partial_image (or
// image_edit.partial_image) events, then image_generation.completed (image_edit.completed).
import type { IncomingMessage, ServerResponse } from 'node:http';

import type { ImageReply, VargptModel } from '../model.js';
import type { EditImageOptions, GenerateImageOptions, ImageProgress } from '../options.js';
import { DEFAULT_SELF_CHECK_CANDIDATES, MAX_SELF_CHECK_CANDIDATES, generateImageSelfChecked } from '../self-check.js';
import type { SelfCheckReport } from '../self-check.js';
import type { RequestContext, Services } from './context.js';
import { EventStream, HttpError, badRequest, readJson, sendJson } from './http.js';
import { canEdit, checkImageBytes, drawingOptions, pngBase64, requireDrawing, sizeOptions } from './images.js';
import { readMultipart } from './multipart.js';
import type { Params } from './params.js';
import { MAX_SEED, fromFormFields, optionalBool, optionalInt, optionalString, requiredString, seedParam } from './params.js';

const MAX_IMAGES = 10;

interface ImageRequest {
  prompt: string;
  n: number;
  seed: number | undefined;
  stream: boolean;
  partialImages: number | null;
  size: { width: number; height: number };
  options: GenerateImageOptions;
}

function imageRequest(o: Params, model: VargptModel): ImageRequest {
  const prompt = requiredString(o, 'prompt');
  const n = optionalInt(o, 'n', 1, MAX_IMAGES) ?? 1;
  const format = optionalString(o, 'response_format');
  if (format !== undefined && format !== 'b64_json') throw badRequest(`response_format ${JSON.stringify(format)} is not supported: this server returns images as b64_json`, 'response_format', 'unsupported_value');
  const output = optionalString(o, 'output_format');
  if (output !== undefined && output !== 'png') throw badRequest(`output_format ${JSON.stringify(output)} is not supported: this server returns PNG`, 'output_format', 'unsupported_value');
  const stream = optionalBool(o, 'stream') ?? false;
  if (stream && n !== 1) throw badRequest('stream: true draws one image (n must be 1)', 'n');
  const partialImages = optionalInt(o, 'partial_images', 0, 1000) ?? null;
  const sized = sizeOptions(model, optionalString(o, 'size'));
  const seed = seedParam(o);
  if (seed !== undefined && seed + n - 1 > MAX_SEED) throw badRequest(`seed must leave room for n seeds (at most ${MAX_SEED - n + 1})`, 'seed');
  return { prompt, n, seed, stream, partialImages, size: { width: sized.width, height: sized.height }, options: { ...drawingOptions(o), ...sized.options } };
}

// Sends step k of K's preview when it is one of `partial` evenly spaced over steps 1..K-1 (every preview
// when `partial` is null), never the last step's (the completed event carries the image).
function wantPartial(p: ImageProgress, partial: number | null): boolean {
  if (!p.preview || p.step >= p.steps) return false;
  if (partial === null) return true;
  const last = p.steps - 1;
  return Math.floor((p.step * partial) / last) > Math.floor(((p.step - 1) * partial) / last);
}

async function draw(
  req: ImageRequest,
  res: ServerResponse,
  ctx: RequestContext,
  services: Services,
  picked: ReturnType<Services['scheduler']>,
  kind: 'image_generation' | 'image_edit',
  call: (model: VargptModel, options: GenerateImageOptions) => Promise<ImageReply & { selfCheck?: SelfCheckReport }>,
): Promise<void> {
  const { scheduler, name } = picked;
  const created = Math.floor(Date.now() / 1000);
  const size = `${req.size.width}x${req.size.height}`;
  const events = new EventStream(res);
  const common = { created_at: created, size, quality: 'auto', background: 'opaque', output_format: 'png' } as const;
  let partialIndex = 0;
  const stopBeats = req.stream ? events.keepAlive() : () => undefined;
  const replies = await scheduler.submit(ctx.signal, async (model, signal) => {
    const out: Array<ImageReply & { selfCheck?: SelfCheckReport }> = [];
    const sends: Array<Promise<void>> = [];
    for (let i = 0; i < req.n; i++) {
      const options: GenerateImageOptions = { ...req.options, signal };
      if (req.seed !== undefined) options.seed = req.seed + i;
      if (req.stream) {
        options.onImageProgress = (p) => {
          if (!wantPartial(p, req.partialImages) || !p.preview) return;
          const index = partialIndex++;
          const preview = p.preview;
          sends.push(pngBase64(preview).then((b64) => events.send({ type: `${kind}.partial_image`, b64_json: b64, ...common, partial_image_index: index }, `${kind}.partial_image`)));
        };
      }
      out.push(await call(model, options));
    }
    await Promise.all(sends);
    return out;
  }).finally(stopBeats);
  const data: Array<{ b64_json: string; revised_prompt: string; seed: number; self_check?: SelfCheckReport }> = [];
  let inputTokens = 0;
  let outputTokens = 0;
  for (const r of replies) {
    data.push({ b64_json: await pngBase64(r.image), revised_prompt: req.prompt, seed: r.seed, ...(r.selfCheck ? { self_check: r.selfCheck } : {}) });
    inputTokens += r.promptTokens;
    outputTokens += r.tokens.length;
  }
  services.generated(name, 0, replies.length);
  const usage = { input_tokens: inputTokens, input_tokens_details: { text_tokens: inputTokens, image_tokens: 0 }, output_tokens: outputTokens, total_tokens: inputTokens + outputTokens };
  if (req.stream) {
    const first = data[0];
    if (first) events.send({ type: `${kind}.completed`, b64_json: first.b64_json, ...common, usage, seed: first.seed }, `${kind}.completed`);
    events.end();
    return;
  }
  sendJson(res, 200, { created, data, output_format: 'png', quality: 'auto', background: 'opaque', size, usage });
}

export async function imageGenerations(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, services: Services): Promise<void> {
  const body = await readJson(req, services.maxBodyBytes);
  const picked = services.scheduler(body['model']);
  requireDrawing(picked.model, picked.name);
  const request = imageRequest(body, picked.model);
  // Self-checked where the model has a check (ServerOptions.selfChecks): up to `candidates`
  // drawings per image, the first the model reads back as the prompt asks kept.
  const check = services.selfCheck(picked.name);
  const candidates = optionalInt(body, 'candidates', 1, MAX_SELF_CHECK_CANDIDATES) ?? (check ? DEFAULT_SELF_CHECK_CANDIDATES : 1);
  if (candidates > 1 && !check) throw badRequest(`candidates: the model "${picked.name}" has no self-check (no self_check.json in its folder), so it draws once per image`, 'candidates');
  await draw(request, res, ctx, services, picked, 'image_generation', (model, options) =>
    check && candidates > 1 ? generateImageSelfChecked(model, request.prompt, { ...options, candidates, check }) : model.generateImage(request.prompt, options),
  );
}

export async function imageEdits(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, services: Services): Promise<void> {
  const form = await readMultipart(req, { maxFileBytes: services.imageLimits.maxImageBytes, maxBodyBytes: 1 << 20, maxFiles: 2 });
  const body = fromFormFields(form.fields);
  const picked = services.scheduler(body['model']);
  if (form.files.some((f) => f.field === 'mask')) throw badRequest('mask is not supported: the edit follows the prompt over the whole image', 'mask', 'unsupported_parameter');
  const images = form.files.filter((f) => f.field === 'image' || f.field === 'image[]');
  if (images.length === 0) throw badRequest('image is required (a file field named "image")', 'image', 'missing_required_parameter');
  if (images.length > 1) throw badRequest('one image may be edited at a time', 'image');
  if (!canEdit(picked.model)) {
    throw new HttpError(400, `model "${picked.name}" does not edit images (VARGPT-v1.1 edit checkpoints and BLIP3-o do)`, 'invalid_request_error', 'model', 'model_cannot_edit');
  }
  const request = imageRequest(body, picked.model);
  const source = await checkImageBytes((images[0] as { bytes: Buffer }).bytes, services.imageLimits, 'image');
  const preShrink = body['pre_shrink'];
  if (preShrink !== undefined && preShrink !== true && preShrink !== false && preShrink !== 'auto') throw badRequest('pre_shrink must be true, false or "auto"', 'pre_shrink');
  if (preShrink !== undefined && picked.model.family !== 'vargpt-v1.1') throw badRequest('pre_shrink applies to VARGPT-v1.1 only', 'pre_shrink');
  await draw(request, res, ctx, services, picked, 'image_edit', (model, options) => {
    const editOptions: EditImageOptions = preShrink === undefined ? options : { ...options, preShrink: preShrink as boolean | 'auto' };
    return model.editImage(source, request.prompt, editOptions);
  });
}
