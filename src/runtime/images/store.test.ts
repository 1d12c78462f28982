import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildIndex, buildTestImage, dummyImage, type TestImage } from '../../../test/support/images.js';
import { freePort, pushImage, pushIndex, startProxy, startRegistry, type TestProxy, type TestRegistry } from '../../../test/support/registry.js';
import { parseRegistriesConfig } from './config.js';
import { DigestMismatchError, ImageError, ImageInUseError, PullError } from './errors.js';
import { MediaType } from './manifest.js';
import { RegistryClient } from './registry.js';
import { ImageStore, type Image, type ImageStoreOptions } from './store.js';

async function sha256OfStream(stream: NodeJS.ReadableStream): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

function isCode(code: string, message?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ImageError, `expected an ImageError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  };
}

describe('ImageStore pulls from a docker-registry on loopback', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  let origin: TestRegistry;
  let oci: TestImage;
  let docker: TestImage;
  let arm: TestImage;
  let ociDigest: string;

  const newStore = async (options: ImageStoreOptions = {}): Promise<ImageStore> => {
    const root = await mkdtemp(join(tmpdir(), 'atoll-images-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    return new ImageStore(root, options);
  };
  const proxy = async (target: string, faults: Parameters<typeof startProxy>[1] = {}): Promise<TestProxy> => {
    const p = await startProxy(target, faults);
    cleanups.push(() => p.stop());
    return p;
  };

  before(async () => {
    origin = await startRegistry();
    cleanups.push(() => origin.stop());
    oci = await buildTestImage({ format: 'oci', gzip: true, cmd: ['/bin/sh', '-c', 'echo oci'] });
    docker = await buildTestImage({ format: 'docker', gzip: false, cmd: ['/bin/sh', '-c', 'echo docker'] });
    arm = await dummyImage({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    ociDigest = await pushImage(origin, 'test/busybox:oci', oci);
    await pushImage(origin, 'test/busybox:docker', docker);
    const index = buildIndex([
      { image: arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { image: oci, platform: { os: 'linux', architecture: 'amd64' } },
    ]);
    await pushIndex(origin, 'test/multi:1', index, [arm, oci]);
    const dockerArm = await dummyImage({ os: 'linux', architecture: 'arm64' }, 'docker');
    const dockerList = buildIndex(
      [
        { image: dockerArm, platform: { os: 'linux', architecture: 'arm64' } },
        { image: docker, platform: { os: 'linux', architecture: 'amd64' } },
      ],
      'docker',
    );
    await pushIndex(origin, 'test/multi-docker:1', dockerList, [dockerArm, docker]);
  });
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('pulls an OCI image by tag, records it, and yields layers that hash to their diffIDs', async () => {
    const store = await newStore();
    const image = await store.pull(`${origin.host}/test/busybox:oci`);
    assert.equal(image.id, oci.config.digest);
    assert.deepEqual(image.repoTags, [`${origin.host}/test/busybox:oci`]);
    assert.deepEqual(image.repoDigests, [`${origin.host}/test/busybox@${ociDigest}`]);
    assert.equal(image.manifestDigest, oci.manifest.digest);
    assert.deepEqual(image.diffIds, oci.layers.map((l) => l.diffId));
    assert.deepEqual(image.layers.map((l) => l.mediaType), [MediaType.ociLayerGzip]);
    assert.deepEqual(image.config.config?.Cmd, ['/bin/sh', '-c', 'echo oci']);
    assert.equal(image.size, oci.config.data.length + oci.layers.reduce((n, l) => n + l.data.length, 0));
    const streams = store.layerStreams(image);
    assert.equal(streams.length, 1);
    assert.equal(await sha256OfStream(await streams[0]!.open()), oci.layers[0]!.diffId);
    assert.deepEqual(await store.status(`${origin.host}/test/busybox:oci`), image);
    assert.deepEqual(await store.status(image.id.slice(7, 19)), image);
    assert.deepEqual((await store.list()).map((i) => i.id), [image.id]);
  });

  it('pulls by digest (no tag recorded) and a Docker schema2 image with an uncompressed layer', async () => {
    const store = await newStore();
    const byDigest = await store.pull(`${origin.host}/test/busybox@${ociDigest}`);
    assert.deepEqual(byDigest.repoTags, []);
    assert.deepEqual(byDigest.repoDigests, [`${origin.host}/test/busybox@${ociDigest}`]);
    const d = await store.pull(`${origin.host}/test/busybox:docker`);
    assert.equal(d.id, docker.config.digest);
    assert.equal(d.manifestMediaType, MediaType.dockerManifest);
    assert.deepEqual(d.layers.map((l) => l.mediaType), [MediaType.dockerLayer]);
    assert.equal(await sha256OfStream(await store.layerStreams(d)[0]!.open()), docker.layers[0]!.diffId);
  });

  it('resolves an OCI index and a Docker manifest list to linux/amd64, or to the platform asked for', async () => {
    const store = await newStore({ platform: { os: 'linux', architecture: 'amd64' } });
    const image = await store.pull(`${origin.host}/test/multi:1`);
    assert.equal(image.id, oci.config.digest);
    assert.equal(image.manifestDigest, oci.manifest.digest);
    assert.match(image.repoDigests[0]!, /test\/multi@sha256:/);
    assert.notEqual(image.repoDigests[0]!.split('@')[1], oci.manifest.digest, 'repo digest is the index digest');
    const list = await store.pull(`${origin.host}/test/multi-docker:1`);
    assert.equal(list.id, docker.config.digest);
    const armStore = await newStore({ platform: { os: 'linux', architecture: 'arm64' } });
    assert.equal((await armStore.pull(`${origin.host}/test/multi:1`)).id, arm.config.digest);
    const mips = await newStore({ platform: { os: 'linux', architecture: 'mips64' } });
    await assert.rejects(mips.pull(`${origin.host}/test/multi:1`), isCode('NotFound', /no manifest for linux\/mips64.*offers: linux\/arm64\/v8, linux\/amd64/));
  });

  it('downloads layers in parallel, bounded, and never twice', async () => {
    const image = await buildTestImage({ gzip: true, extraLayers: [200_000, 200_000, 200_000, 200_000] });
    await pushImage(origin, 'test/layered:1', image);
    const slow = await proxy(origin.host, { delayBlobMs: 150 });
    const store = await newStore({ parallelDownloads: 3 });
    const progress = new Map<string, number>();
    const pulled = await store.pull(`${slow.host}/test/layered:1`, { onProgress: (p) => progress.set(p.digest, p.bytes) });
    assert.equal(pulled.layers.length, 5);
    assert.equal(slow.maxConcurrentBlobs, 3, 'three layers in flight at once');
    for (const l of image.layers) assert.equal(progress.get(l.digest), l.data.length);
    const before = slow.requests.filter((r) => r.path.includes('/blobs/')).length;
    await store.pull(`${slow.host}/test/layered:1`);
    assert.equal(slow.requests.filter((r) => r.path.includes('/blobs/')).length, before, 'a second pull fetches no blob');
  });

  it('resumes a layer download that was cut midway with a Range request', async () => {
    const image = await buildTestImage({ gzip: false, extraLayers: [500_000] });
    await pushImage(origin, 'test/resume:1', image);
    const flaky = await proxy(origin.host, { cutBlobAfter: 300_000, cutTimes: 1 });
    const store = await newStore({ parallelDownloads: 1 });
    const pulled = await store.pull(`${flaky.host}/test/resume:1`);
    assert.equal(pulled.id, image.config.digest);
    const ranged = flaky.requests.filter((r) => r.range !== undefined);
    assert.equal(ranged.length, 1, JSON.stringify(flaky.requests));
    const from = Number(/^bytes=(\d+)-$/.exec(ranged[0]!.range!)?.[1]);
    assert.ok(from > 0 && from <= 300_000, `resumed from ${from}`);
    for (const s of store.layerStreams(pulled)) assert.equal(await sha256OfStream(await s.open()), s.diffId);
  });

  it('detects a corrupted layer, names both digests, and keeps neither blob nor record', async () => {
    const corrupt = await proxy(origin.host, { corruptBlobs: true });
    const store = await newStore();
    await assert.rejects(store.pull(`${corrupt.host}/test/busybox:oci`), (err: unknown) => {
      assert.ok(err instanceof DigestMismatchError, String(err));
      assert.equal(err.code, 'DataLoss');
      assert.ok(err.expected === oci.config.digest || err.expected === oci.layers[0]!.digest);
      assert.match(err.message, new RegExp(`expected ${err.expected}, got sha256:[a-f0-9]{64}`));
      return true;
    });
    assert.deepEqual(await store.list(), []);
    for await (const blob of store.content.walk()) assert.ok(![oci.config.digest, oci.layers[0]!.digest].includes(blob.digest));
  });

  it('reports an unknown repository or tag as not found, naming it', async () => {
    const store = await newStore();
    await assert.rejects(store.pull(`${origin.host}/nope/nothing:v1`), isCode('NotFound', new RegExp(`tag "v1" not found in ${origin.host}/nope/nothing`)));
    await assert.rejects(store.pull(`${origin.host}/test/busybox:missing`), isCode('NotFound', /tag "missing" not found.*MANIFEST_UNKNOWN/));
  });

  it('reports an unreachable registry naming the host', async () => {
    const port = await freePort();
    const store = await newStore();
    await assert.rejects(store.pull(`127.0.0.1:${port}/a/b:1`), isCode('Unavailable', new RegExp(`registry 127\\.0\\.0\\.1:${port} unreachable: ECONNREFUSED`)));
  });

  it('refuses plain HTTP to a registry that is not on loopback', async () => {
    const client = new RegistryClient({ apiRoot: 'http://10.255.255.1:5000/v2', host: '10.255.255.1:5000', scheme: 'https', repository: 'a', mirror: false });
    await assert.rejects(client.ping(), isCode('Unavailable', /refusing plain HTTP to 10\.255\.255\.1:5000/));
  });

  it('tries the mirror first and falls through to the origin on 404, then on a dead mirror', async () => {
    const mirror = await startRegistry();
    cleanups.push(() => mirror.stop());
    const mirrorProxy = await proxy(mirror.host);
    const dead = await freePort();
    const registries = parseRegistriesConfig(
      `mirrors:\n  "${origin.host}":\n    endpoint: ["http://127.0.0.1:${dead}", "http://${mirrorProxy.host}"]\n`,
      'registries.yaml',
    );
    const store = await newStore({ registries });
    const image = await store.pull(`${origin.host}/test/busybox:oci`);
    assert.equal(image.id, oci.config.digest);
    assert.ok(mirrorProxy.requests.some((r) => r.path === '/v2/test/busybox/manifests/oci'), 'the mirror was asked first');
  });

  it('pulls from a mirror with a rewrite, without touching the origin', async () => {
    const mirror = await startRegistry();
    cleanups.push(() => mirror.stop());
    await pushImage(mirror, 'mirrored/test/busybox:oci', oci);
    const originProxy = await proxy(origin.host);
    const registries = parseRegistriesConfig(
      `mirrors:\n  "${originProxy.host}":\n    endpoint: ["${mirror.host}"]\n    rewrite:\n      "^test/(.*)": "mirrored/test/$1"\n`,
      'registries.yaml',
    );
    const store = await newStore({ registries });
    const image = await store.pull(`${originProxy.host}/test/busybox:oci`);
    assert.deepEqual(image.repoTags, [`${originProxy.host}/test/busybox:oci`], 'stored under the name asked for');
    assert.deepEqual(originProxy.requests, []);
  });

  it('pulls docker.io/library/busybox through a loopback mirror only', async () => {
    const mirror = await startRegistry();
    cleanups.push(() => mirror.stop());
    await pushImage(mirror, 'mirrored/busybox:latest', oci);
    const registries = parseRegistriesConfig(
      `mirrors:\n  docker.io:\n    endpoint: ["http://${mirror.host}"]\n    rewrite:\n      "^library/(.*)": "mirrored/$1"\n`,
      'registries.yaml',
    );
    const store = await newStore({ registries, disableDefaultEndpoint: true });
    const image = await store.pull('busybox');
    assert.deepEqual(image.repoTags, ['docker.io/library/busybox:latest']);
    await assert.rejects(store.pull('busybox:nope'), isCode('NotFound', /tag "nope" not found/));
  });

  it('lists every attempt when all endpoints fail', async () => {
    const deadMirror = await freePort();
    const deadOrigin = await freePort();
    const registries = parseRegistriesConfig(`mirrors:\n  "127.0.0.1:${deadOrigin}":\n    endpoint: ["127.0.0.1:${deadMirror}"]\n`, 'registries.yaml');
    const store = await newStore({ registries });
    await assert.rejects(store.pull(`127.0.0.1:${deadOrigin}/a/b:1`), (err: unknown) => {
      assert.ok(err instanceof PullError, String(err));
      assert.equal(err.code, 'Unavailable');
      assert.equal(err.attempts.length, 2);
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${deadMirror}.*\\n.*127\\.0\\.0\\.1:${deadOrigin}`));
      return true;
    });
  });

  it('removes tags, refuses to remove an image in use, and garbage-collects its blobs', async () => {
    const root = await mkdtemp(join(tmpdir(), 'atoll-images-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    const used = new Set<string>();
    const store = new ImageStore(root, { inUse: (id) => used.has(id) });
    const a = await store.pull(`${origin.host}/test/busybox:oci`);
    await store.pull(`${origin.host}/test/multi:1`);
    assert.deepEqual((await store.status(a.id))!.repoTags.sort(), [`${origin.host}/test/busybox:oci`, `${origin.host}/test/multi:1`]);
    await store.remove(`${origin.host}/test/multi:1`);
    assert.deepEqual((await store.status(a.id))!.repoTags, [`${origin.host}/test/busybox:oci`]);

    used.add(a.id);
    await assert.rejects(store.remove(`${origin.host}/test/busybox:oci`), (err: unknown) => {
      assert.ok(err instanceof ImageInUseError);
      assert.equal(err.code, 'FailedPrecondition');
      assert.match(err.message, /in use by a container/);
      return true;
    });
    assert.ok(await store.status(a.id), 'still there after the refusal');

    const reopened = new ImageStore(root);
    assert.deepEqual(await reopened.status(a.id), await store.status(a.id), 'records persist');

    used.clear();
    await store.remove(`${origin.host}/test/busybox:oci`);
    assert.equal(await store.status(a.id), undefined);
    assert.deepEqual(await readdir(join(root, 'images')), []);
    const left: string[] = [];
    for await (const b of store.content.walk()) left.push(b.digest);
    assert.deepEqual(left, [], 'blobs of the removed image are collected');
    await assert.rejects(store.remove(a.id), isCode('NotFound'));
  });

  it('moves a tag to the newly pulled image', async () => {
    const store = await newStore();
    const first = await store.pull(`${origin.host}/test/busybox:docker`);
    const other = await buildTestImage({ format: 'docker', cmd: ['/bin/true'] });
    await pushImage(origin, 'test/busybox:docker', other);
    const second = await store.pull(`${origin.host}/test/busybox:docker`);
    assert.notEqual(first.id, second.id);
    assert.deepEqual((await store.status(first.id))!.repoTags, []);
    assert.equal((await store.status(`${origin.host}/test/busybox:docker`))!.id, second.id);
    await pushImage(origin, 'test/busybox:docker', docker);
  });

  it('reports used bytes and inodes of the content and snapshot roots', async () => {
    const snapshots = await mkdtemp(join(tmpdir(), 'atoll-snapshots-'));
    cleanups.push(() => rm(snapshots, { recursive: true, force: true }));
    const store = await newStore({ snapshots });
    await store.pull(`${origin.host}/test/busybox:oci`);
    const [content, snaps] = await store.fsInfo();
    assert.equal(content!.mountpoint, store.content.root);
    assert.ok(content!.usedBytes >= oci.layers[0]!.data.length, `content uses ${content!.usedBytes}`);
    assert.ok(content!.inodesUsed >= 3);
    assert.equal(snaps!.mountpoint, snapshots);
    assert.equal(snaps!.inodesUsed, 1);
  });
});

describe('ImageStore authenticates', () => {
  const registries: TestRegistry[] = [];
  const roots: string[] = [];
  let image: TestImage;
  const newStore = async (options: ImageStoreOptions = {}): Promise<ImageStore> => {
    const root = await mkdtemp(join(tmpdir(), 'atoll-images-'));
    roots.push(root);
    return new ImageStore(root, options);
  };
  before(async () => {
    image = await buildTestImage({ gzip: true });
  });
  after(async () => {
    for (const r of registries) await r.stop();
    for (const r of roots) await rm(r, { recursive: true, force: true });
  });

  it('with basic auth (htpasswd): credentials from the pull or from registries.yaml', async () => {
    const reg = await startRegistry({ auth: 'basic' });
    registries.push(reg);
    await pushImage(reg, 'private/busybox:1', image);
    const ref = `${reg.host}/private/busybox:1`;
    await assert.rejects((await newStore()).pull(ref), isCode('Unauthenticated', /requires authentication \(basic\).*no credentials/));
    await assert.rejects((await newStore()).pull(ref, { auth: { username: 'atoll', password: 'wrong' } }), isCode('Unauthenticated', /rejected the credentials/));
    const pulled: Image = await (await newStore()).pull(ref, { auth: reg.credentials! });
    assert.equal(pulled.id, image.config.digest);
    const config = parseRegistriesConfig(`configs:\n  "${reg.host}":\n    auth: {username: atoll, password: atoll-secret}\n`, 'registries.yaml');
    assert.equal((await (await newStore({ registries: config })).pull(ref)).id, image.config.digest);
  });

  it('with bearer tokens: fetched from the realm with basic credentials and cached per scope', async () => {
    const reg = await startRegistry({ auth: 'token' });
    registries.push(reg);
    await pushImage(reg, 'private/busybox:1', image);
    await pushImage(reg, 'private/busybox:2', image);
    const store = await newStore();
    const before = reg.tokenRequests.length;
    await store.pull(`${reg.host}/private/busybox:1`, { auth: reg.credentials! });
    await store.pull(`${reg.host}/private/busybox:2`, { auth: reg.credentials! });
    const asked = reg.tokenRequests.slice(before);
    assert.equal(asked.length, 1, `one token for both pulls: ${JSON.stringify(asked)}`);
    assert.deepEqual(asked[0], { scope: ['repository:private/busybox:pull'], user: 'atoll' });
    await assert.rejects((await newStore()).pull(`${reg.host}/private/busybox:1`), isCode('Unauthenticated', /rejected the credentials|access denied/));
    await assert.rejects(
      (await newStore()).pull(`${reg.host}/private/busybox:1`, { auth: { username: 'atoll', password: 'nope' } }),
      isCode('Unauthenticated', /token server 127\.0\.0\.1:\d+ refused the credentials/),
    );
  });

  it('with anonymous bearer tokens, as Docker Hub gives for public images', async () => {
    const reg = await startRegistry({ auth: 'token', anonymousPull: true });
    registries.push(reg);
    await pushImage(reg, 'public/busybox:1', image);
    const pulled = await (await newStore()).pull(`${reg.host}/public/busybox:1`);
    assert.equal(pulled.id, image.config.digest);
    assert.ok(reg.tokenRequests.some((r) => r.user === undefined && r.scope[0] === 'repository:public/busybox:pull'));
  });
});
