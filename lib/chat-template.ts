// Prompts come from the checkpoint's own chat template (chat_template.json, a Jinja template run
// by @huggingface/jinja), then the processor step expands each image placeholder to one token per
// vision patch, as upstream's VARGPTLlavaProcessor does (spec §2.2-2.3).
import { Template } from '@huggingface/jinja';

import { InputError } from './errors.js';
import type { ChatMessage, ContentPart, ImageInput, Role } from './types.js';
import { ROLES } from './types.js';

export interface ChatTemplateTokens {
  // The understanding placeholder the template writes per image ("<image>").
  image: string | null;
  // Written after an assistant turn's text where that turn drew an image.
  imageGenStart: string | null;
  imageGenEnd: string | null;
}

export interface RenderedPrompt {
  // The template's output, one placeholder per image.
  prompt: string;
  // The user images, in placeholder order.
  images: ImageInput[];
}

type TemplatePart = { type: 'text'; text: string } | { type: 'image' };
interface TemplateMessage {
  role: Role;
  content: TemplatePart[];
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'string' ? `"${value}"` : typeof value;
}

export class ChatTemplate {
  private readonly template: Template;

  constructor(
    readonly source: string,
    readonly tokens: ChatTemplateTokens,
  ) {
    try {
      this.template = new Template(source);
    } catch (error) {
      throw new InputError(`the chat template does not parse: ${(error as Error).message}`);
    }
  }

  // Checks the conversation and turns it into what the template iterates over. Assistant image
  // parts (images the model drew) are never fed back as pixels -- upstream never does, and the
  // model was not trained to read its own drawings -- they become the text
  // "<|image_gen_start|><|image_gen_end|>" right after that turn's text, which marks where the
  // image was drawn without spending 680 positions on <|image_gen_pad|> tokens.
  normalize(messages: readonly ChatMessage[]): { messages: TemplateMessage[]; images: ImageInput[] } {
    if (!Array.isArray(messages)) throw new InputError(`messages must be an array of { role, content }, got ${describe(messages)}`);
    if (messages.length === 0) throw new InputError('messages is empty: give at least one { role: "user", content }');
    const images: ImageInput[] = [];
    const out: TemplateMessage[] = [];
    messages.forEach((message: unknown, i) => {
      const where = `messages[${i}]`;
      if (typeof message !== 'object' || message === null) throw new InputError(`${where} must be an object { role, content }, got ${describe(message)}`);
      const { role, content } = message as { role?: unknown; content?: unknown };
      if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) {
        throw new InputError(`${where}.role ${describe(role)} is not a known role; use one of ${ROLES.map((r) => `"${r}"`).join(', ')}`);
      }
      const parts: readonly unknown[] =
        typeof content === 'string' ? [{ type: 'text', text: content }] : Array.isArray(content) ? content : [];
      if (typeof content !== 'string' && !Array.isArray(content)) {
        throw new InputError(`${where}.content must be a string or an array of parts, got ${describe(content)}`);
      }
      const rendered: TemplatePart[] = [];
      parts.forEach((part, j) => {
        const at = `${where}.content[${j}]`;
        if (typeof part !== 'object' || part === null) throw new InputError(`${at} must be { type: "text", text } or { type: "image", image }`);
        const p = part as Partial<ContentPart> & { type?: unknown };
        if (p.type === 'text') {
          const text = (p as { text?: unknown }).text;
          if (typeof text !== 'string') throw new InputError(`${at}.text must be a string, got ${describe(text)}`);
          if (this.tokens.image && text.includes(this.tokens.image)) {
            throw new InputError(
              `${at}.text contains the image placeholder "${this.tokens.image}", which only an image part may produce; attach images as { type: "image", image }`,
            );
          }
          rendered.push({ type: 'text', text });
        } else if (p.type === 'image') {
          const image = (p as { image?: unknown }).image;
          if (image === undefined || image === null) throw new InputError(`${at}.image is missing`);
          if (role === 'assistant') {
            rendered.push(...this.drawnImageMarker(rendered));
          } else if (role === 'system') {
            throw new InputError(`${at}: a system message cannot hold an image; put images in user messages`);
          } else {
            if (!this.tokens.image) throw new InputError(`${at}: this model has no image placeholder token, so it cannot read images`);
            rendered.push({ type: 'image' });
            images.push(image as ImageInput);
          }
        } else {
          throw new InputError(`${at}.type ${describe(p.type)} is not "text" or "image"`);
        }
      });
      out.push({ role: role as Role, content: rendered });
    });
    return { messages: out, images };
  }

  // Appends the drawn-image marker to the turn's last text part (so the template's per-part
  // separator does not split "text<|image_gen_start|>"), or adds it as its own part.
  private drawnImageMarker(rendered: TemplatePart[]): TemplatePart[] {
    const { imageGenStart, imageGenEnd } = this.tokens;
    const marker = imageGenStart && imageGenEnd ? `${imageGenStart}${imageGenEnd}` : '';
    if (!marker) return [];
    const last = rendered[rendered.length - 1];
    if (last && last.type === 'text') {
      last.text += marker;
      return [];
    }
    return [{ type: 'text', text: marker }];
  }

  render(messages: readonly ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): RenderedPrompt {
    const normalized = this.normalize(messages);
    let prompt: string;
    try {
      prompt = this.template.render({
        messages: normalized.messages,
        add_generation_prompt: options.addGenerationPrompt ?? true,
      });
    } catch (error) {
      throw new InputError(`the chat template rejected the conversation: ${(error as Error).message}`);
    }
    return { prompt, images: normalized.images };
  }
}

// The processor step: every placeholder becomes `perImage` placeholders (576 for a 336/14 CLIP,
// spec §2.3), after checking the template wrote exactly one per image.
export function expandImagePlaceholders(prompt: string, placeholder: string, images: number, perImage: number): string {
  const found = prompt.split(placeholder).length - 1;
  if (found !== images) {
    throw new InputError(`the prompt holds ${found} image placeholder(s) "${placeholder}" but ${images} image(s) were given`);
  }
  if (perImage < 1 || !Number.isSafeInteger(perImage)) throw new InputError(`invalid image token count ${perImage}`);
  return prompt.split(placeholder).join(placeholder.repeat(perImage));
}

// Tokens per image for a CLIP tower: (image_size / patch_size)^2, plus the CLS row under the
// "full" feature strategy (spec §2.3: N = (H//p)*(W//p) + 1 - 1 for "default").
export function imageTokenCount(imageSize: number, patchSize: number, strategy: 'default' | 'full'): number {
  const side = Math.floor(imageSize / patchSize);
  return side * side + (strategy === 'full' ? 1 : 0);
}
