// A package to upload, in browsers: a Blob or a File (from an <input
// type=file> or a drop). No Node module is imported on this path, so any
// bundler takes the client (package.json "imports": #package-source).
import { RegistryError } from './errors.js';
import { openBlobSource } from './package_source.blob.js';

export function toBase64(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export async function openPackageSource(source) {
  if (source instanceof Blob) return openBlobSource(source);
  throw new RegistryError('file_unreadable', 'in a browser, a package is a Blob or a File, not a path');
}
