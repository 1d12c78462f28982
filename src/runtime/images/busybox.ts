import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { promisify } from 'node:util';
import { buildImageArchive } from './import.js';

/**
 * Images made from the host's busybox-static, so that an offline node (and every test) has something
 * to run without a registry: `atoll up` preloads `atoll.local/busybox:latest` built here.
 */

export const BUSYBOX = '/usr/bin/busybox';
/** The applets the small test images link; `busyboxImage` links every applet the binary has. */
export const BUSYBOX_APPLETS = ['sh', 'ls', 'cat', 'echo', 'sleep', 'httpd', 'true', 'false', 'env', 'id', 'hostname', 'mkdir', 'rm', 'wc', 'head', 'ps', 'nc', 'wget', 'date', 'uname', 'touch', 'grep', 'top'];
/** The image `atoll up` preloads on every node. */
export const BUSYBOX_IMAGE = 'atoll.local/busybox:latest';
/** Where `busyboxImage` puts a page for `httpd -f -p 8080 -h /var/www`. */
export const BUSYBOX_WWW = '/var/www';

const BUSYBOX_LIST_TIMEOUT_MS = 10_000;
const execFileAsync = promisify(execFile);

export interface BusyboxRootfsOptions {
  /**
   * Applets to link, either bare names (linked in /bin) or paths as `busybox --list-full` prints them
   * (`usr/sbin/httpd`). Default BUSYBOX_APPLETS.
   */
  applets?: readonly string[];
}

/** A rootfs tree: bin/busybox with applet symlinks, /etc/passwd and /etc/group, /tmp. */
export async function busyboxRootfs(dir: string, options: BusyboxRootfsOptions = {}): Promise<string> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  await mkdir(join(dir, 'etc'), { recursive: true });
  await mkdir(join(dir, 'tmp'), { recursive: true, mode: 0o1777 });
  await copyFile(BUSYBOX, join(dir, 'bin', 'busybox'));
  for (const applet of options.applets ?? BUSYBOX_APPLETS) {
    const path = applet.includes('/') ? posix.normalize(applet) : `bin/${applet}`;
    if (path === 'bin/busybox') continue;
    await mkdir(join(dir, dirname(path)), { recursive: true });
    // Relative, so the link also resolves when the tree is looked at from outside the container.
    await symlink(posix.relative(posix.dirname(path), 'bin/busybox'), join(dir, path));
  }
  await writeFile(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  await writeFile(join(dir, 'etc', 'group'), 'root:x:0:\nnobody:x:65534:\n');
  return dir;
}

/** Every applet of the host's busybox, as paths in the standard layout (`bin/sh`, `usr/sbin/httpd`). */
export async function busyboxApplets(): Promise<string[]> {
  const { stdout } = await execFileAsync(BUSYBOX, ['--list-full'], { timeout: BUSYBOX_LIST_TIMEOUT_MS });
  // Only applets under a bin directory: `linuxrc`, an init for initramfs, has no place in an image.
  const applets = stdout.split('\n').map((l) => l.trim()).filter((l) => /^(usr\/)?s?bin\/[a-z0-9_.[-]+$/.test(l));
  if (!applets.some((a) => a.endsWith('/httpd')) || !applets.some((a) => a.endsWith('/sh'))) {
    throw new Error(`${BUSYBOX} lacks the httpd or sh applet; install Debian's busybox-static`);
  }
  return applets;
}

export interface BusyboxImageOptions {
  /** Default BUSYBOX_IMAGE. */
  ref?: string;
}

/**
 * Writes an OCI image-layout tarball of busybox with every applet, a root home and a page under
 * /var/www for httpd. Like Docker's busybox image it runs `sh` unless told otherwise.
 */
export async function busyboxImage(output: string, options: BusyboxImageOptions = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'atoll-busybox-'));
  try {
    const rootfs = await busyboxRootfs(join(dir, 'rootfs'), { applets: await busyboxApplets() });
    await mkdir(join(rootfs, 'root'), { mode: 0o700 });
    await mkdir(join(rootfs, BUSYBOX_WWW), { recursive: true });
    await writeFile(join(rootfs, BUSYBOX_WWW, 'index.html'), '<!doctype html><title>atoll</title><p>Hello from busybox httpd on an Atoll edge node.</p>\n');
    return await buildImageArchive({
      ref: options.ref ?? BUSYBOX_IMAGE,
      files: rootfs,
      config: { Cmd: ['sh'], Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], WorkingDir: '/', User: '' },
      output,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
