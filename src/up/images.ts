import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep } from '../client/informer.js';
import { adminRequest, type ImageSummary } from '../runtime/admin.js';
import { BUSYBOX_IMAGE, busyboxImage } from '../runtime/images/busybox.js';

/** Interval of the wait for a node's runtime to answer on its admin socket. */
export const ADMIN_POLL_MS = 250;
/** Delay before retrying an import that failed for another reason than the runtime being down. */
export const IMPORT_RETRY_MS = 5_000;

/** DIR/images/busybox.tar, built from the host's busybox-static unless it is there already. */
export async function ensureBusyboxArchive(dataDir: string): Promise<string> {
  const file = join(dataDir, 'images', 'busybox.tar');
  if (existsSync(file)) return file;
  await mkdir(join(dataDir, 'images'), { recursive: true, mode: 0o755 });
  return busyboxImage(file);
}

function runtimeDown(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE';
}

/**
 * Makes sure the runtime behind `adminSocket` holds `ref`, importing `archive` if it does not. Waits
 * for the runtime to come up (the agent starts it) and retries until it succeeds or `signal` aborts;
 * `onError` hears about failures other than the runtime not answering yet. Returns whether the image
 * is there.
 */
export async function preloadImage(
  adminSocket: string,
  archive: string,
  signal: AbortSignal,
  options: { ref?: string; onError?: (err: Error) => void } = {},
): Promise<boolean> {
  const ref = options.ref ?? BUSYBOX_IMAGE;
  while (!signal.aborted) {
    try {
      const { images } = await adminRequest<{ images: ImageSummary[] }>(adminSocket, 'GET', '/v1/images');
      if (images.some((i) => i.repoTags.includes(ref))) return true;
      const imported = await adminRequest<{ images: ImageSummary[] }>(adminSocket, 'POST', '/v1/images/import', { path: archive });
      if (imported.images.some((i) => i.repoTags.includes(ref))) return true;
      throw new Error(`${archive} holds no image tagged ${ref}`);
    } catch (err) {
      if (runtimeDown(err)) {
        await sleep(ADMIN_POLL_MS, signal);
        continue;
      }
      options.onError?.(err as Error);
      await sleep(IMPORT_RETRY_MS, signal);
    }
  }
  return false;
}
