// POST /v1/chat/completions in the OpenAI shape, with and without streaming. A turn that draws
// answers with content parts: { type: 'text', text } and { type: 'image_url', image_url: { url:
// 'data:image/png;base64,...' } }, the same parts a request sends, so the message can go back
// into the conversation unchanged.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

import type { ChatReply } from '../model.js';
import type { ChatOptions } from '../options.js';
import type { ChatMessage, ContentPart } from '../types.js';
import type { RequestContext, Services } from './context.js';
import { EventStream, anySignal, badRequest, readJson, sendJson } from './http.js';
import { drawingOptions, imageFromUrl, pngBase64, requireDrawing } from './images.js';
import type { Params } from './params.js';
import { optionalBool, optionalInt, optionalNumber, seedParam } from './params.js';

export interface ImageUrlPart {
  type: 'image_url';
  image_url: { url: string };
}

export interface ChatCompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

// Finds stop sequences in streamed text: holds back what could still be the start of one.
export class StopMatcher {
  private pending = '';
  private readonly longest: number;
  stopped = false;
  emitted = '';

  constructor(private readonly stops: readonly string[]) {
    this.longest = stops.reduce((a, s) => Math.max(a, s.length), 0);
  }

  // The text safe to send now.
  push(delta: string): string {
    if (this.stopped) return '';
    if (this.stops.length === 0) return this.take(delta);
    this.pending += delta;
    let cut = -1;
    for (const s of this.stops) {
      const at = this.pending.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.stopped = true;
      const out = this.pending.slice(0, cut);
      this.pending = '';
      return this.take(out);
    }
    const keep = Math.min(this.pending.length, this.longest - 1);
    const out = this.pending.slice(0, this.pending.length - keep);
    this.pending = this.pending.slice(this.pending.length - keep);
    return this.take(out);
  }

  // The rest once the text has ended without a stop sequence.
  flush(): string {
    const out = this.stopped ? '' : this.pending;
    this.pending = '';
    return this.take(out);
  }

  private take(text: string): string {
    this.emitted += text;
    return text;
  }
}

const ROLE_MAP = new Map<unknown, ChatMessage['role']>([
  ['system', 'system'],
  ['developer', 'system'],
  ['user', 'user'],
  ['assistant', 'assistant'],
]);

async function toMessages(value: unknown, services: Services, signal: AbortSignal): Promise<ChatMessage[]> {
  if (!Array.isArray(value) || value.length === 0) throw badRequest('messages must be a non-empty array', 'messages', value === undefined ? 'missing_required_parameter' : 'invalid_value');
  const out: ChatMessage[] = [];
  for (let i = 0; i < value.length; i++) {
    const at = `messages[${i}]`;
    const m = value[i] as Params | null;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw badRequest(`${at} must be an object`, at);
    const role = ROLE_MAP.get(m['role']);
    if (!role) throw badRequest(`${at}.role must be "system", "developer", "user" or "assistant", got ${JSON.stringify(m['role'])}`, `${at}.role`);
    const content = m['content'];
    if (typeof content === 'string') {
      out.push({ role, content });
      continue;
    }
    if ((content === null || content === undefined) && role === 'assistant') {
      out.push({ role, content: '' });
      continue;
    }
    if (!Array.isArray(content)) throw badRequest(`${at}.content must be a string or an array of content parts`, `${at}.content`);
    const parts: ContentPart[] = [];
    for (let j = 0; j < content.length; j++) {
      const pat = `${at}.content[${j}]`;
      const p = content[j] as Params | null;
      if (typeof p !== 'object' || p === null) throw badRequest(`${pat} must be an object`, pat);
      if (p['type'] === 'text') {
        if (typeof p['text'] !== 'string') throw badRequest(`${pat}.text must be a string`, `${pat}.text`);
        parts.push({ type: 'text', text: p['text'] });
      } else if (p['type'] === 'image_url') {
        const iu = p['image_url'] as Params | string | null | undefined;
        const url = typeof iu === 'string' ? iu : typeof iu === 'object' && iu !== null ? iu['url'] : undefined;
        if (typeof url !== 'string') throw badRequest(`${pat}.image_url.url must be a string`, `${pat}.image_url.url`);
        // A drawn image in an assistant turn is marked in the prompt, never read as pixels.
        const image = role === 'assistant' ? new Uint8Array(0) : await imageFromUrl(url, services.imageLimits, `${pat}.image_url.url`, signal);
        parts.push({ type: 'image', image });
      } else if (p['type'] === 'refusal') {
        continue;
      } else {
        throw badRequest(`${pat}.type ${JSON.stringify(p['type'])} is not supported (use "text" or "image_url")`, `${pat}.type`);
      }
    }
    out.push({ role, content: parts });
  }
  return out;
}

function stopParam(o: Params): string[] {
  const v = o['stop'];
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > 4 || list.some((s) => typeof s !== 'string' || s.length === 0)) {
    throw badRequest('stop must be a non-empty string or an array of up to 4 non-empty strings', 'stop');
  }
  return list as string[];
}

// Choices one request may ask for (n): they decode together, in the model's batch (maxBatch).
export const MAX_CHOICES = 8;

function chatOptions(o: Params): { options: ChatOptions; stream: boolean; includeUsage: boolean; stops: string[]; n: number } {
  const n = optionalInt(o, 'n', 1, MAX_CHOICES) ?? 1;
  for (const key of ['tools', 'functions']) {
    if (Array.isArray(o[key]) && (o[key] as unknown[]).length > 0) throw badRequest(`${key} are not supported by this server`, key, 'unsupported_parameter');
  }
  if (o['logprobs'] === true) throw badRequest('logprobs are not supported by this server', 'logprobs', 'unsupported_parameter');
  const rf = o['response_format'] as Params | undefined;
  if (rf !== undefined && rf !== null && (typeof rf !== 'object' || rf['type'] !== 'text')) throw badRequest('response_format: only { "type": "text" } is supported', 'response_format', 'unsupported_parameter');
  const options: ChatOptions = {};
  const max = optionalInt(o, 'max_completion_tokens', 1, 1 << 20) ?? optionalInt(o, 'max_tokens', 1, 1 << 20);
  if (max !== undefined) options.maxNewTokens = max;
  const temperature = optionalNumber(o, 'temperature', (v) => v >= 0 && v <= 2, 'a number in [0, 2]');
  if (temperature !== undefined) options.temperature = temperature;
  const topP = optionalNumber(o, 'top_p', (v) => v > 0 && v <= 1, 'a number in (0, 1]');
  if (topP !== undefined) options.topP = topP;
  const topK = optionalInt(o, 'top_k', 0, 1 << 24);
  if (topK !== undefined) options.topK = topK;
  const rep = optionalNumber(o, 'repetition_penalty', (v) => v > 0, 'a number > 0');
  if (rep !== undefined) options.repetitionPenalty = rep;
  const seed = seedParam(o);
  if (seed !== undefined) options.seed = seed;
  if (optionalBool(o, 'force_image')) options.forceImage = true;
  const image = o['image'];
  if (image !== undefined && image !== null) {
    if (typeof image !== 'object' || Array.isArray(image)) throw badRequest('image must be an object of drawing options', 'image');
    options.image = drawingOptions(image as Params, 'image.');
  }
  const so = o['stream_options'] as Params | undefined | null;
  return { options, stream: optionalBool(o, 'stream') ?? false, includeUsage: so !== null && typeof so === 'object' && so['include_usage'] === true, stops: stopParam(o), n };
}

// A choice whose text met a stop sequence finished with 'stop', even where the model had already
// run to max_tokens before the stop's abort reached it (a fast model outruns the token callbacks).
function finishReason(choice: Choice): 'stop' | 'length' {
  if (choice.matcher.stopped) return 'stop';
  return choice.reply?.stopReason === 'length' ? 'length' : 'stop';
}

// One choice of a completion: its own stop matcher, stopper and reply.
interface Choice {
  index: number;
  matcher: StopMatcher;
  stopper: AbortController;
  reply: ChatReply | null;
}

export async function chatCompletions(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, services: Services): Promise<void> {
  const body = await readJson(req, services.maxBodyBytes);
  const { scheduler, model, name } = services.scheduler(body['model']);
  const { options, stream, includeUsage, stops, n } = chatOptions(body);
  if (options.forceImage) requireDrawing(model, name, 'force_image');
  const messages = await toMessages(body['messages'], services, ctx.signal);
  const id = `chatcmpl-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const events = new EventStream(res);
  const chunk = (index: number, delta: Record<string, unknown>, finish: string | null) => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model: name,
    system_fingerprint: null,
    choices: [{ index, delta, logprobs: null, finish_reason: finish }],
  });
  // Choice i samples with seed + i (a request without a seed gets one drawn per choice), so the
  // choices differ under sampling and each is reproducible.
  const choices: Choice[] = Array.from({ length: n }, (_, index) => ({ index, matcher: new StopMatcher(stops), stopper: new AbortController(), reply: null }));
  let promptTokens = 0;
  const stopBeats = stream ? events.keepAlive() : () => undefined;
  await scheduler.submit(ctx.signal, async (m) => {
    if (stream) for (const c of choices) events.send(chunk(c.index, { role: 'assistant', content: '' }, null));
    await Promise.all(
      choices.map(async (c) => {
        const signal = anySignal([ctx.signal, c.stopper.signal]);
        const onToken = (delta: string) => {
          const text = c.matcher.push(delta);
          if (text && stream) events.send(chunk(c.index, { content: text }, null));
          if (c.matcher.stopped) c.stopper.abort();
        };
        const seed = options.seed !== undefined ? options.seed + c.index : undefined;
        try {
          c.reply = await m.chat(messages, { ...options, ...(seed !== undefined ? { seed } : {}), signal, onToken, onStart: (info) => (promptTokens = info.promptTokens) });
        } catch (error) {
          if (!(c.matcher.stopped && !ctx.signal.aborted)) throw error;
        }
      }),
    );
  }).finally(stopBeats);
  let completionTokens = 0;
  let imageCount = 0;
  const done: Array<{ choice: Choice; text: string; images: ImageUrlPart[] }> = [];
  for (const c of choices) {
    const rest = c.matcher.flush();
    if (rest && stream) events.send(chunk(c.index, { content: rest }, null));
    const text = c.matcher.emitted;
    completionTokens += c.reply ? c.reply.tokens.length : model.tokenizer.encode(text, { addSpecialTokens: false }).length;
    const images: ImageUrlPart[] = [];
    for (const image of c.reply?.images ?? []) images.push({ type: 'image_url', image_url: { url: `data:image/png;base64,${await pngBase64(image)}` } });
    imageCount += images.length;
    done.push({ choice: c, text, images });
  }
  const usage: ChatCompletionUsage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
  services.generated(name, completionTokens, imageCount);
  if (stream) {
    for (const { choice, images } of done) {
      if (images.length > 0) events.send(chunk(choice.index, { content: images }, null));
      events.send(chunk(choice.index, {}, finishReason(choice)));
    }
    if (includeUsage) events.send({ id, object: 'chat.completion.chunk', created, model: name, system_fingerprint: null, choices: [], usage });
    events.send('[DONE]');
    events.end();
    return;
  }
  sendJson(res, 200, {
    id,
    object: 'chat.completion',
    created,
    model: name,
    system_fingerprint: null,
    choices: done.map(({ choice, text, images }) => ({
      index: choice.index,
      message: { role: 'assistant', content: images.length > 0 ? [...(text ? [{ type: 'text' as const, text }] : []), ...images] : text, refusal: null },
      logprobs: null,
      finish_reason: finishReason(choice),
    })),
    usage,
  });
}
