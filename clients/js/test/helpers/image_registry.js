// A minimal image registry (the Docker Registry HTTP API V2, read-only) on a
// loopback port, for a real pull by Podman in the tests: images of one layer
// (a gzipped tar), their manifest (schema 2) and config made here. Blobs are
// sent in small pieces with a pause between them so that the engine reports
// progress along the way. Podman reaches it over plain HTTP when a
// registries.conf marks the address insecure (registriesConf()).
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { gunzipSync, gzipSync } from 'node:zlib';

const sha256 = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class ImageRegistry {
  #server = null;
  #blobs = new Map(); // digest -> Buffer
  #manifests = new Map(); // "name:tag" -> Buffer
  pieces = 16; // a blob is sent in this many pieces

  get address() {
    return `127.0.0.1:${this.#server.address().port}`;
  }

  // Serves `layer` (a tar.gz) as the one layer of NAME:TAG.
  add(name, tag, layer) {
    const config = Buffer.from(
      JSON.stringify({
        architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
        os: 'linux',
        config: { Cmd: ['/bin/sh'] },
        rootfs: { type: 'layers', diff_ids: [sha256(gunzipSync(layer))] },
      }),
    );
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: sha256(config) },
        layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layer.length, digest: sha256(layer) }],
      }),
    );
    this.#blobs.set(sha256(config), config);
    this.#blobs.set(sha256(layer), layer);
    this.#manifests.set(`${name}:${tag}`, manifest);
    return { layerDigest: sha256(layer), layerBytes: layer.length };
  }

  // A layer no engine has yet: one file of `size` random bytes (which gzip
  // cannot shrink), as a gzipped ustar archive.
  static randomLayer(size) {
    const header = Buffer.alloc(512);
    header.write('payload.bin', 0);
    header.write('0000644\0', 100); // mode
    header.write('0000000\0', 108); // uid
    header.write('0000000\0', 116); // gid
    header.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
    header.write(`${Math.floor(Date.now() / 1000).toString(8).padStart(11, '0')}\0`, 136);
    header.write('        ', 148); // the checksum counts itself as spaces
    header.write('0', 156); // a regular file
    header.write('ustar\0' + '00', 257);
    let sum = 0;
    for (const b of header) sum += b;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    const padding = Buffer.alloc((512 - (size % 512)) % 512);
    return gzipSync(Buffer.concat([header, randomBytes(size), padding, Buffer.alloc(1024)]));
  }

  async start() {
    this.#server = createServer((req, res) => this.#serve(req, res).catch(() => res.destroy()));
    await new Promise((r) => this.#server.listen(0, '127.0.0.1', r));
    return this;
  }

  async #serve(req, res) {
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/v2/' || url.pathname === '/v2') return res.end('{}');
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    const body = !m ? null : m[2] === 'manifests' ? this.#manifests.get(`${m[1]}:${m[3]}`) : this.#blobs.get(m[3]);
    if (!body) {
      res.statusCode = 404;
      return res.end(JSON.stringify({ errors: [{ code: m?.[2] === 'blobs' ? 'BLOB_UNKNOWN' : 'MANIFEST_UNKNOWN', message: 'unknown' }] }));
    }
    res.setHeader('Content-Length', body.length);
    res.setHeader('Docker-Content-Digest', sha256(body));
    res.setHeader(
      'Content-Type',
      m[2] === 'manifests' ? 'application/vnd.docker.distribution.manifest.v2+json' : 'application/octet-stream',
    );
    if (req.method === 'HEAD') return res.end();
    if (m[2] === 'manifests') return res.end(body);
    const piece = Math.ceil(body.length / this.pieces);
    for (let at = 0; at < body.length; at += piece) {
      if (!res.write(body.subarray(at, at + piece))) await new Promise((r) => res.once('drain', r));
      await sleep(60);
    }
    res.end();
  }

  // A registries.conf that lets Podman pull from this registry over HTTP.
  registriesConf() {
    return `[[registry]]\nlocation = "${this.address}"\ninsecure = true\n`;
  }

  async dispose() {
    if (!this.#server) return;
    this.#server.closeAllConnections();
    await new Promise((r) => this.#server.close(r));
    this.#server = null;
  }
}
