import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { checkHostPath, HostPathError } from './host-path.js';

const root = await mkdtemp(join(tmpdir(), 'atoll-hostpath-'));
const dir = join(root, 'dir');
const file = join(root, 'file');
const socket = join(root, 'sock');
let server: Server;

before(async () => {
  await mkdir(dir);
  await writeFile(file, 'x');
  server = createServer();
  await new Promise<void>((resolve) => server.listen(socket, resolve));
});
after(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await rm(root, { recursive: true, force: true });
});

function refused(path: string, type: string, message: string) {
  return assert.rejects(checkHostPath({ path, type }), new HostPathError(message));
}

describe('checkHostPath', () => {
  it('accepts paths of the asked type, and anything for an empty type', async () => {
    await checkHostPath({ path: dir, type: 'Directory' });
    await checkHostPath({ path: file, type: 'File' });
    await checkHostPath({ path: socket, type: 'Socket' });
    await checkHostPath({ path: '/dev/null', type: 'CharDevice' });
    await checkHostPath({ path: join(root, 'missing'), type: '' });
    await checkHostPath({ path: join(root, 'missing') });
  });

  it('creates what the ...OrCreate types ask for, and accepts what is there', async () => {
    const newDir = join(root, 'made/deep/dir');
    await checkHostPath({ path: newDir, type: 'DirectoryOrCreate' });
    assert.ok((await stat(newDir)).isDirectory());
    assert.equal((await stat(newDir)).mode & 0o777, 0o755 & ~process.umask());
    const newFile = join(root, 'made/file');
    await checkHostPath({ path: newFile, type: 'FileOrCreate' });
    assert.ok((await stat(newFile)).isFile());
    await checkHostPath({ path: dir, type: 'DirectoryOrCreate' });
    await checkHostPath({ path: file, type: 'FileOrCreate' });
  });

  it('refuses mismatches with the kubelet messages', async () => {
    await refused(file, 'Directory', `hostPath type check failed: ${file} is not a directory, it's a File`);
    await refused(file, 'DirectoryOrCreate', `hostPath type check failed: ${file} is not a directory, it's a File`);
    await refused(dir, 'File', `hostPath type check failed: ${dir} is not a file, it's a Directory`);
    await refused(dir, 'FileOrCreate', `hostPath type check failed: ${dir} is not a file, it's a Directory`);
    await refused(file, 'Socket', `hostPath type check failed: ${file} is not a socket file, it's a File`);
    await refused(file, 'CharDevice', `hostPath type check failed: ${file} is not a character device, it's a File`);
    await refused('/dev/null', 'BlockDevice', "hostPath type check failed: /dev/null is not a block device, it's a CharDevice");
    await refused(join(root, 'missing'), 'Directory', `hostPath ${join(root, 'missing')} doesn't exist`);
    await refused(dir, 'Folder', 'Folder is an invalid volume type');
    await refused('/a/../etc', 'Directory', "invalid HostPath `/a/../etc`: must not contain '..'");
  });

  it('does not create a FileOrCreate file’s parent directory', async () => {
    await assert.rejects(checkHostPath({ path: join(root, 'no-parent/file'), type: 'FileOrCreate' }), /could not be created: .*ENOENT/);
  });
});
