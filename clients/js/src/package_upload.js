// Deploying a package from this machine: its sha256 first, then
// package_upload_begin, the bytes in chunks (package_upload_chunk, base64,
// each at the offset where the previous one ended), then deploy_package with
// the upload_id (docs/protocol.md, "package_upload_begin"). Only one chunk is
// in memory at a time. A chunk that fails with offset_mismatch, or whose
// connection was lost, is resumed from the offset the server reports
// (package_upload_status). The package is a path or a Blob in Node, a Blob or
// a File in browsers: #package-source picks the platform's reader
// (package.json "imports"), so browser bundles carry no Node module.
import { openPackageSource, toBase64 } from '#package-source';
import { RegistryError } from './errors.js';

const resumable = new Set(['offset_mismatch', 'connection_lost', 'timeout']);
const maxResumes = 5;

// Uploads `file` (see above); resolves to the upload_id of the complete,
// verified upload. options: chunkBytes (at most the server's
// max_chunk_bytes), onEvent (the `uploading` deployment_progress events),
// timeoutMs (per chunk).
export async function uploadPackage(client, file, options = {}) {
  const source = await openPackageSource(file);
  try {
    const { size } = source;
    const sha256 = await source.sha256();
    const begun = await client.request('package_upload_begin', { size, sha256 }, { timeoutMs: options.timeoutMs });
    const uploadId = begun.upload_id;
    const chunkBytes = Math.max(1, Math.min(options.chunkBytes ?? begun.max_chunk_bytes, begun.max_chunk_bytes));
    let offset = 0;
    let resumes = 0;
    while (offset < size) {
      const bytes = await source.read(offset, Math.min(chunkBytes, size - offset));
      const params = { upload_id: uploadId, offset, data: toBase64(bytes) };
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
    return uploadId;
  } finally {
    await source.close();
  }
}

// deploy_package of a local package: params are deploy_package's, with `file`
// (a path, Blob or File) in place of `path` / `upload_id`.
export async function deployPackageFile(client, params, options = {}) {
  const { file, ...rest } = params;
  const uploadId = await uploadPackage(client, file, { onEvent: options.onEvent, chunkBytes: options.chunkBytes });
  return client.request('deploy_package', { ...rest, upload_id: uploadId }, options);
}
