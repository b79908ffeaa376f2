// Public value types shared by the API, the chat template and the image code.

// Raw 8-bit pixels, row-major, interleaved: RGB (3 bytes a pixel) or RGBA (4).
export interface RawImage {
  width: number;
  height: number;
  data: Uint8Array | Uint8ClampedArray;
  // Inferred from data.length when left out.
  channels?: 3 | 4;
}

// An image as the caller has it: encoded file bytes (any format sharp reads), a file path, or
// raw pixels. A GeneratedImage is a RawImage, so a drawn image can be passed back in.
export type ImageInput = Uint8Array | ArrayBuffer | string | RawImage;

export type Role = 'system' | 'user' | 'assistant';
export const ROLES: readonly Role[] = ['system', 'user', 'assistant'];

export interface TextPart {
  type: 'text';
  text: string;
}

export interface ImagePart {
  type: 'image';
  image: ImageInput;
}

export type ContentPart = TextPart | ImagePart;

export interface ChatMessage {
  role: Role;
  content: string | readonly ContentPart[];
}
