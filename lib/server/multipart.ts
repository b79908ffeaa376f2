// multipart/form-data bodies (POST /v1/images/edits), read with busboy under the server's limits.
import type { IncomingMessage } from 'node:http';

import busboy from 'busboy';

import { HttpError, badRequest, tooLarge } from './http.js';

export interface FormFile {
  field: string;
  filename: string;
  bytes: Buffer;
}

export interface Form {
  fields: Record<string, string>;
  files: FormFile[];
}

export function readMultipart(req: IncomingMessage, limits: { maxFileBytes: number; maxBodyBytes: number; maxFiles: number }): Promise<Form> {
  const type = String(req.headers['content-type'] ?? '');
  if (!/^multipart\/form-data\b/i.test(type)) {
    return Promise.reject(new HttpError(415, `expected a multipart/form-data body, got "${type}"`, 'invalid_request_error', null, 'unsupported_media_type'));
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limits.maxBodyBytes + limits.maxFileBytes * limits.maxFiles) {
    return Promise.reject(tooLarge(`the request body is ${declared} bytes; over the limit`));
  }
  return new Promise<Form>((resolve, reject) => {
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers, limits: { fileSize: limits.maxFileBytes, files: limits.maxFiles, fields: 64, fieldSize: limits.maxBodyBytes, parts: 64 + limits.maxFiles } });
    } catch (error) {
      reject(badRequest(`malformed multipart body: ${(error as Error).message}`, null, 'invalid_multipart'));
      return;
    }
    const form: Form = { fields: Object.create(null) as Record<string, string>, files: [] };
    let failed = false;
    const fail = (error: HttpError) => {
      if (failed) return;
      failed = true;
      req.unpipe(bb);
      req.resume();
      reject(error);
    };
    bb.on('field', (name, value, info) => {
      if (info.valueTruncated) fail(tooLarge(`form field "${name}" is over the limit of ${limits.maxBodyBytes} bytes`, name));
      else form.fields[name] = value;
    });
    bb.on('file', (name, stream, info) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('limit', () => fail(tooLarge(`${name}: the file is over the limit of ${limits.maxFileBytes} bytes`, name)));
      stream.on('end', () => {
        if (!failed && !stream.truncated) form.files.push({ field: name, filename: info.filename ?? '', bytes: Buffer.concat(chunks) });
      });
    });
    bb.on('filesLimit', () => fail(badRequest(`at most ${limits.maxFiles} file(s) may be sent`, null, 'too_many_files')));
    bb.on('fieldsLimit', () => fail(badRequest('too many form fields', null, 'too_many_fields')));
    bb.on('partsLimit', () => fail(badRequest('too many form parts', null, 'too_many_parts')));
    bb.on('error', (error: Error) => fail(badRequest(`malformed multipart body: ${error.message}`, null, 'invalid_multipart')));
    bb.on('close', () => {
      if (!failed) resolve(form);
    });
    req.on('aborted', () => fail(new HttpError(400, 'the request body was cut short', 'invalid_request_error', null, 'aborted')));
    req.pipe(bb);
  });
}
