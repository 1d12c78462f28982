import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { buildIndex, buildTestImage, busyboxRootfs, dummyImage, writeDockerSaveArchive, writeOciArchive, type TestImage } from '../../../test/support/images.js';
import { DigestMismatchError, ImageError } from './errors.js';
import { buildImageArchive, importArchive, writeTar } from './import.js';
import { MediaType } from './manifest.js';
import { ImageStore } from './store.js';

async function sha256OfStream(stream: NodeJS.ReadableStream): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

describe('importArchive and buildImageArchive', () => {
  let dir: string;
  let image: TestImage;
  let n = 0;
  const newStore = (): ImageStore => new ImageStore(join(dir, `store-${n++}`));
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-import-'));
    image = await buildTestImage({ format: 'oci', gzip: true, extraLayers: [1000] });
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('builds an OCI layout from a rootfs directory, reproducibly, and imports it under its name', async () => {
    const rootfs = await busyboxRootfs(join(dir, 'rootfs'));
    const config = { Cmd: ['/bin/sh'], Env: ['PATH=/bin'], WorkingDir: '/', User: '0:0' };
    const file = await buildImageArchive({ ref: 'atoll.local/busybox:latest', files: rootfs, config, output: join(dir, 'busybox.tar') });
    const again = await buildImageArchive({ ref: 'atoll.local/busybox:latest', files: rootfs, config, output: join(dir, 'busybox-2.tar') });
    assert.deepEqual(await readFile(file), await readFile(again), 'same tree, same bytes');
    const store = newStore();
    const [img] = await importArchive(store, file);
    assert.ok(img);
    assert.deepEqual(img.repoTags, ['atoll.local/busybox:latest']);
    assert.deepEqual(img.config.config?.Cmd, ['/bin/sh']);
    assert.equal(img.config.config?.User, '0:0');
    assert.deepEqual(img.layers.map((l) => l.mediaType), [MediaType.ociLayer]);
    const [layer] = store.layerStreams(img);
    assert.equal(await sha256OfStream(await layer!.open()), img.diffIds[0]);
    assert.equal((await store.status('atoll.local/busybox'))?.id, img.id);
    // atoll.local names no registry: a pull (pull policy Always) is answered by the import, offline.
    assert.equal((await store.pull('atoll.local/busybox:latest')).id, img.id);
    await assert.rejects(store.pull('atoll.local/missing:1'), (err: Error) => err.name === 'NotFoundError' && /atoll images import/.test(err.message));
  });

  it('imports an OCI image layout (plain and gzipped) with names from either annotation', async () => {
    const other = await buildTestImage({ format: 'oci', cmd: ['/bin/true'] });
    const third = await dummyImage({ os: 'linux', architecture: 'amd64' });
    const file = join(dir, 'layout.tar');
    await writeOciArchive(file, [
      { image, name: 'registry.example/team/app:1.0' },
      { image: other, refName: 'quay.io/x/y:2' },
      { image: third, refName: 'latest' },
    ]);
    const gz = join(dir, 'layout.tar.gz');
    await writeFile(gz, gzipSync(await readFile(file)));
    for (const archive of [file, gz]) {
      const store = newStore();
      const images = await importArchive(store, archive);
      assert.deepEqual(images.map((i) => i.repoTags), [['registry.example/team/app:1.0'], ['quay.io/x/y:2'], []]);
      assert.deepEqual(images[0]!.repoDigests, [`registry.example/team/app@${image.manifest.digest}`]);
      assert.equal(images[0]!.id, image.config.digest);
      for (const s of store.layerStreams(images[0]!)) assert.equal(await sha256OfStream(await s.open()), s.diffId);
      assert.equal((await store.list()).length, 3);
    }
  });

  it('resolves an index inside an OCI layout to this platform', async () => {
    const arm = await dummyImage({ os: 'linux', architecture: 'arm64' });
    const index = buildIndex([
      { image: arm, platform: { os: 'linux', architecture: 'arm64' } },
      { image, platform: { os: 'linux', architecture: 'amd64' } },
    ]);
    const file = join(dir, 'multi.tar');
    const top = JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: index.mediaType, digest: index.digest, size: index.data.length, annotations: { 'io.containerd.image.name': 'example.com/multi:1' } }],
    });
    const blobs = [index, ...[arm, image].flatMap((i) => [i.manifest, i.config, ...i.layers])];
    await writeTar(file, [['oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')], ['index.json', Buffer.from(top)], ...blobs.map((b): [string, Buffer] => [`blobs/sha256/${b.digest.slice(7)}`, b.data])]);
    const [img] = await importArchive(newStore(), file, { platform: { os: 'linux', architecture: 'amd64' } });
    assert.equal(img!.id, image.config.digest);
    assert.deepEqual(img!.repoDigests, [`example.com/multi@${index.digest}`]);
  });

  it('imports a docker save archive, storing layer.tar files as uncompressed layers', async () => {
    const plain = await buildTestImage({ format: 'docker', gzip: false, extraLayers: [500] });
    const file = join(dir, 'saved.tar');
    await writeDockerSaveArchive(file, plain, ['busybox:saved', 'example.com:5000/team/busybox:v2']);
    const store = newStore();
    const [img] = await importArchive(store, file);
    assert.ok(img);
    assert.equal(img.id, plain.config.digest);
    assert.deepEqual(img.repoTags, ['docker.io/library/busybox:saved', 'example.com:5000/team/busybox:v2']);
    assert.deepEqual(img.repoDigests, []);
    assert.equal(img.manifestMediaType, MediaType.dockerManifest);
    assert.deepEqual(img.layers.map((l) => [l.digest, l.mediaType]), plain.layers.map((l) => [l.diffId, MediaType.dockerLayer]));
    for (const s of store.layerStreams(img)) assert.equal(await sha256OfStream(await s.open()), s.diffId);
    assert.ok(await store.content.has(img.manifestDigest), 'the synthesised manifest is stored');
  });

  it('refuses a docker save layer that does not match its diff_id', async () => {
    const plain = await buildTestImage({ format: 'docker', gzip: false });
    const tampered: TestImage = { ...plain, layers: plain.layers.map((l) => ({ ...l, data: Buffer.concat([l.data, Buffer.alloc(512)]) })) };
    const file = join(dir, 'tampered.tar');
    await writeDockerSaveArchive(file, tampered, ['busybox:bad']);
    const store = newStore();
    await assert.rejects(importArchive(store, file), (err: unknown) => {
      assert.ok(err instanceof DigestMismatchError, String(err));
      assert.equal(err.expected, plain.layers[0]!.diffId);
      return true;
    });
    assert.deepEqual(await store.list(), []);
  });

  it('refuses an OCI blob whose bytes do not match its name', async () => {
    const file = join(dir, 'badblob.tar');
    const wrong = `blobs/sha256/${image.layers[0]!.digest.slice(7)}`;
    await writeTar(file, [
      ['oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')],
      ['index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] }))],
      [wrong, Buffer.from('not the layer')],
    ]);
    await assert.rejects(importArchive(newStore(), file), (err: unknown) => err instanceof DigestMismatchError && err.message.includes(wrong));
  });

  it('names what is wrong with an archive that is neither format, or missing', async () => {
    const file = join(dir, 'neither.tar');
    await writeTar(file, [['hello.txt', Buffer.from('hi')]]);
    await assert.rejects(importArchive(newStore(), file), (err: unknown) => err instanceof ImageError && /neither an OCI image layout.*nor a docker save/.test(err.message));
    await assert.rejects(importArchive(newStore(), join(dir, 'absent.tar')), (err: unknown) => err instanceof ImageError && err.code === 'NotFound');
    const junk = join(dir, 'junk.tar');
    await writeFile(junk, Buffer.alloc(2048, 7));
    await assert.rejects(importArchive(newStore(), junk), (err: unknown) => err instanceof ImageError && /not a readable tar archive/.test(err.message));
  });
});
