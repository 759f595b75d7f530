// A package to upload from a Blob (a browser's File, or Node's Blob): read
// by slices, hashed incrementally (sha256.js), one chunk in memory at a time.
import { RegistryError } from './errors.js';
import { Sha256 } from './sha256.js';

const hashSliceBytes = 1 << 20;

async function bytesOf(blob, name) {
  try {
    return new Uint8Array(await blob.arrayBuffer());
  } catch (e) {
    throw new RegistryError('file_unreadable', `${name}: ${e.message}`, { cause: e });
  }
}

export function openBlobSource(blob) {
  const name = typeof blob.name === 'string' && blob.name ? blob.name : 'package';
  return {
    name,
    size: blob.size,
    async sha256() {
      const hash = new Sha256();
      for (let at = 0; at < blob.size; at += hashSliceBytes) {
        hash.update(await bytesOf(blob.slice(at, at + hashSliceBytes), name));
      }
      return hash.hex();
    },
    async read(offset, length) {
      return bytesOf(blob.slice(offset, offset + length), name);
    },
    async close() {},
  };
}
