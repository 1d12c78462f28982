import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import tar from 'tar-stream';
import { BUSYBOX_IMAGE, busyboxApplets, busyboxImage } from './busybox.js';
import { importArchive } from './import.js';
import { ImageStore } from './store.js';

/** path → symlink target ('' for other entries) of a layer tar. */
async function entries(stream: Readable): Promise<Map<string, string>> {
  const extract = tar.extract();
  const out = new Map<string, string>();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, body, next) => {
      out.set(header.name.replace(/\/$/, ''), header.type === 'symlink' ? (header.linkname ?? '') : '');
      body.on('end', next);
      body.resume();
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  stream.pipe(extract);
  await done;
  return out;
}

describe('the busybox image atoll up preloads', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-busybox-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('builds an archive that imports into an image store as atoll.local/busybox:latest, with every applet', async () => {
    const file = await busyboxImage(join(dir, 'busybox.tar'));

    const store = new ImageStore(join(dir, 'root', 'images'));
    const [image] = await importArchive(store, file);
    assert.ok(image);
    assert.deepEqual(image.repoTags, [BUSYBOX_IMAGE]);
    assert.deepEqual(image.config.config?.Cmd, ['sh']);
    assert.match(image.config.config?.Env?.[0] ?? '', /^PATH=.*\/usr\/sbin.*:\/bin$/);
    assert.equal((await store.status(BUSYBOX_IMAGE))?.id, image.id);

    const [layer] = store.layerStreams(image);
    const files = await entries(await layer!.open());
    assert.equal(files.get('bin/busybox'), '');
    assert.equal(files.get('bin/sh'), 'busybox');
    assert.equal(files.get('usr/sbin/httpd'), '../../bin/busybox');
    assert.equal(files.get('var/www/index.html'), '');
    for (const applet of await busyboxApplets()) assert.ok(files.has(applet), `${applet} is linked`);
    assert.ok(files.has('etc/passwd') && files.has('tmp') && files.has('root'));
  });
});
