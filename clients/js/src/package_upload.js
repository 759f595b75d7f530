// Deploying a local package file (Node only: node:fs, node:crypto): its
// sha256 first, then package_upload_begin, the bytes in chunks
// (package_upload_chunk, base64, each at the offset where the previous one
// ended), then deploy_package with the upload_id (docs/protocol.md,
// "package_upload_begin"). Only one chunk is in memory at a time. A chunk that
// fails with offset_mismatch, or whose connection was lost, is resumed from
// the offset the server reports (package_upload_status).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { RegistryError } from './errors.js';

const resumable = new Set(['offset_mismatch', 'connection_lost', 'timeout']);
const maxResumes = 5;

function unreadable(file, e) {
  return new RegistryError('file_unreadable', `${file}: ${e.code === 'ENOENT' ? 'no such file' : e.message}`, {
    cause: e,
  });
}

export async function fileSha256(file) {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file)) hash.update(chunk);
  } catch (e) {
    throw unreadable(file, e);
  }
  return hash.digest('hex');
}

// Uploads `file`; resolves to the upload_id of the complete, verified upload.
// options: chunkBytes (at most the server's max_chunk_bytes), onEvent (the
// `uploading` deployment_progress events), timeoutMs (per chunk).
export async function uploadPackage(client, file, options = {}) {
  let size;
  try {
    ({ size } = await stat(file));
  } catch (e) {
    throw unreadable(file, e);
  }
  const sha256 = await fileSha256(file);
  const begun = await client.request('package_upload_begin', { size, sha256 }, { timeoutMs: options.timeoutMs });
  const uploadId = begun.upload_id;
  const chunkBytes = Math.max(1, Math.min(options.chunkBytes ?? begun.max_chunk_bytes, begun.max_chunk_bytes));
  const fh = await open(file, 'r').catch((e) => {
    throw unreadable(file, e);
  });
  try {
    const buf = Buffer.alloc(Math.min(chunkBytes, size));
    let offset = 0;
    let resumes = 0;
    while (offset < size) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(chunkBytes, size - offset), offset);
      if (bytesRead === 0) throw new RegistryError('file_unreadable', `${file}: shorter than ${size} bytes now`);
      const params = { upload_id: uploadId, offset, data: buf.subarray(0, bytesRead).toString('base64') };
      try {
        const status = await client.request('package_upload_chunk', params, {
          timeoutMs: options.timeoutMs,
          onEvent: options.onEvent,
        });
        offset = status.received;
      } catch (e) {
        if (!(e instanceof RegistryError) || !resumable.has(e.code) || ++resumes > maxResumes) throw e;
        const status = await client.request('package_upload_status', { upload_id: uploadId });
        offset = status.received;
      }
    }
  } finally {
    await fh.close();
  }
  return uploadId;
}

// deploy_package of a local file: params are deploy_package's, with `file`
// (a local path) in place of `path` / `upload_id`.
export async function deployPackageFile(client, params, options = {}) {
  const { file, ...rest } = params;
  const uploadId = await uploadPackage(client, file, { onEvent: options.onEvent, chunkBytes: options.chunkBytes });
  return client.request('deploy_package', { ...rest, upload_id: uploadId }, options);
}
