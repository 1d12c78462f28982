import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ApiError } from '../api/errors.js';
import { writeFileAtomic } from '../apiserver/auth/atomic-file.js';
import type { ObjectSource } from './contracts.js';

/** A kept token not reissued for this long belongs to a pod long gone; it is removed. */
export const KEPT_TOKEN_MAX_AGE_MS = 7 * 24 * 3600_000;

interface KeptToken {
  token: string;
  expirationTimestamp: string;
}

/**
 * Service-account tokens that survive an offline restart. A TokenRequest is a create, which EdgeHub
 * cannot answer while the cloud is unreachable (503), and the projected volumes holding tokens live
 * on a tmpfs a reboot empties; without the last token the node could not start its pods again. So
 * each issued token is kept in `dir` (mode 0600, as EdgeHub keeps cached Secrets) and handed out
 * again, expired or not, only while the cloud cannot be asked: a pod cut off from the cloud cannot use
 * it against the cloud either, and the volume's next refresh after reconnect replaces it.
 */
export function keepingTokens(source: ObjectSource, dir: string): ObjectSource {
  return {
    configMap: (namespace, name) => source.configMap(namespace, name),
    secret: (namespace, name) => source.secret(namespace, name),
    async serviceAccountToken(pod, serviceAccount, request) {
      const key = createHash('sha256').update(JSON.stringify([pod.metadata.uid, serviceAccount, request.audiences, request.expirationSeconds])).digest('hex');
      const file = join(dir, `${key}.json`);
      try {
        const issued = await source.serviceAccountToken(pod, serviceAccount, request);
        await mkdir(dir, { recursive: true, mode: 0o700 });
        await writeFileAtomic(file, JSON.stringify({ token: issued.token, expirationTimestamp: issued.expirationTimestamp } satisfies KeptToken), 0o600);
        await pruneOld(dir);
        return issued;
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 503)) throw err;
        const kept = await readKept(file);
        if (!kept) throw err;
        return kept;
      }
    },
  };
}

async function readKept(file: string): Promise<KeptToken | undefined> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as Partial<KeptToken>;
    return typeof parsed.token === 'string' && typeof parsed.expirationTimestamp === 'string' ? { token: parsed.token, expirationTimestamp: parsed.expirationTimestamp } : undefined;
  } catch {
    return undefined;
  }
}

async function pruneOld(dir: string): Promise<void> {
  const cutoff = Date.now() - KEPT_TOKEN_MAX_AGE_MS;
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    const st = await stat(path).catch(() => undefined);
    if (st && st.mtimeMs < cutoff) await rm(path, { force: true });
  }
}
