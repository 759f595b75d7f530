// A package to upload, in Node: a file path (or a Blob). What
// package_upload.js reads through: size, sha256 (streamed through
// node:crypto) and chunks by offset, one in memory at a time.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { RegistryError } from './errors.js';
import { openBlobSource } from './package_source.blob.js';

function unreadable(file, e) {
  return new RegistryError('file_unreadable', `${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, {
    cause: e,
  });
}

export function toBase64(bytes) {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

async function fileSha256(file) {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file)) hash.update(chunk);
  } catch (e) {
    throw unreadable(file, e);
  }
  return hash.digest('hex');
}

// source: a path, or a Blob (a File).
export async function openPackageSource(source) {
  if (typeof Blob !== 'undefined' && source instanceof Blob) return openBlobSource(source);
  const file = String(source);
  let size;
  try {
    ({ size } = await stat(file));
  } catch (e) {
    throw unreadable(file, e);
  }
  let fh = null;
  return {
    name: file,
    size,
    sha256: () => fileSha256(file),
    async read(offset, length) {
      fh ??= await open(file, 'r').catch((e) => {
        throw unreadable(file, e);
      });
      const buf = Buffer.alloc(length);
      const { bytesRead } = await fh.read(buf, 0, length, offset);
      if (bytesRead === 0) throw new RegistryError('file_unreadable', `${file}: shorter than ${size} bytes now`);
      return buf.subarray(0, bytesRead);
    },
    async close() {
      await fh?.close();
      fh = null;
    },
  };
}
