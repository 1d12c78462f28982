import { Readable } from 'node:stream';
import tar from 'tar-stream';

/** One entry of a layer built by tests. Xattrs are written as raw `SCHILY.xattr.*` PAX records. */
export type FixtureEntry = {
  name: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
  xattrs?: Record<string, string | Buffer>;
} & (
  | { type: 'file'; content?: string | Buffer }
  | { type: 'directory' }
  | { type: 'symlink' | 'link'; target: string }
  | { type: 'character-device' | 'block-device'; major: number; minor: number }
  | { type: 'fifo' }
);

/** tar-stream's end-of-archive marker: two zero blocks. */
const END_OF_ARCHIVE = 1024;

/**
 * Builds an uncompressed layer tar in memory, as an image builder would write it. tar-stream packs
 * the entries; PAX headers carrying xattrs are written here, since tar-stream's packer only takes
 * text values and no body for them.
 */
export async function buildLayer(entries: readonly FixtureEntry[]): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const e of entries) {
    if (e.xattrs) {
      const body = Buffer.concat(Object.entries(e.xattrs).map(([name, value]) => paxRecord(`SCHILY.xattr.${name}`, Buffer.from(value))));
      parts.push(paxHeaderBlock(`PaxHeaders/${e.name}`.slice(0, 99), body.length), pad(body));
    }
    const header = {
      name: e.name,
      type: e.type,
      mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: e.mtime ?? new Date('2024-01-02T03:04:05Z'),
      linkname: e.type === 'symlink' || e.type === 'link' ? e.target : undefined,
      devmajor: e.type === 'character-device' || e.type === 'block-device' ? e.major : undefined,
      devminor: e.type === 'character-device' || e.type === 'block-device' ? e.minor : undefined,
    };
    const packed = await packOne(header, e.type === 'file' ? Buffer.from(e.content ?? '') : undefined);
    parts.push(packed.subarray(0, packed.length - END_OF_ARCHIVE));
  }
  parts.push(Buffer.alloc(END_OF_ARCHIVE));
  return Buffer.concat(parts);
}

async function packOne(header: Parameters<tar.Pack['entry']>[0], body: Buffer | undefined): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of pack) chunks.push(chunk as Buffer);
  })();
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    if (body === undefined) pack.entry(header, done);
    else pack.entry(header, body, done);
  });
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

/** A ustar header block of type 'x' (PAX extended header for the next entry). */
function paxHeaderBlock(name: string, size: number): Buffer {
  const block = Buffer.alloc(512);
  block.write(name, 0, 100, 'utf8');
  block.write('0000644\0', 100);
  block.write('0000000\0', 108);
  block.write('0000000\0', 116);
  block.write(size.toString(8).padStart(11, '0') + '\0', 124);
  block.write('00000000000\0', 136);
  block.write('x', 156);
  block.write('ustar\0' + '00', 257);
  block.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return block;
}

function pad(body: Buffer): Buffer {
  const rest = body.length % 512;
  return rest === 0 ? body : Buffer.concat([body, Buffer.alloc(512 - rest)]);
}

export function layerStream(tarball: Buffer): Readable {
  return Readable.from([tarball]);
}

/** `<length> <key>=<value>\n`, where the length counts the record's own digits. */
function paxRecord(key: string, value: Buffer): Buffer {
  const rest = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let length = rest.length + 1;
  while (String(length).length + rest.length !== length) length = String(length).length + rest.length;
  return Buffer.concat([Buffer.from(String(length)), rest]);
}
