import { constants, createDeflate, createInflate, type Deflate, type Inflate } from 'node:zlib';
import { SPDY3_HEADER_DICTIONARY } from './spdy-dictionary.js';
import { SpdyProtocolError } from './spdy-frames.js';

/** A header block larger than this once inflated ends the session (it would only be a zlib bomb). */
const MAX_HEADER_BLOCK_BYTES = 256 * 1024;

/**
 * One direction's header compression. SPDY/3 compresses every header block of a session with one
 * zlib stream, primed with the SPDY dictionary and sync-flushed after each block, so each side keeps
 * one deflater for what it sends and one inflater for what it receives for the session's life.
 * Calls must be made in frame order; each resolves with that block's bytes.
 */
class ZlibSession {
  private chunks: Buffer[] = [];
  private size = 0;
  private failure: Error | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly zlib: Deflate | Inflate) {
    // Output arrives on 'data' before the flush's callback runs; collect it per block.
    zlib.on('data', (chunk: Buffer) => {
      this.size += chunk.length;
      if (this.size <= MAX_HEADER_BLOCK_BYTES) this.chunks.push(chunk);
    });
    zlib.on('error', (err: Error) => (this.failure = err));
  }

  process(block: Buffer): Promise<Buffer> {
    const result = this.queue.then(
      () =>
        new Promise<Buffer>((resolve, reject) => {
          if (this.failure) return reject(new SpdyProtocolError(`header compression: ${this.failure.message}`));
          this.zlib.write(block);
          this.zlib.flush(constants.Z_SYNC_FLUSH, (err?: Error | null) => {
            const size = this.size;
            const out = Buffer.concat(this.chunks);
            this.chunks = [];
            this.size = 0;
            const failure = err ?? this.failure;
            if (failure) reject(new SpdyProtocolError(`header compression: ${failure.message}`));
            else if (size > MAX_HEADER_BLOCK_BYTES) reject(new SpdyProtocolError(`header block of ${size} bytes exceeds ${MAX_HEADER_BLOCK_BYTES}`));
            else resolve(out);
          });
        }),
    );
    this.queue = result.catch(() => undefined);
    return result;
  }

  close(): void {
    this.zlib.destroy();
  }
}

export class HeaderCompressor extends ZlibSession {
  constructor() {
    super(createDeflate({ dictionary: SPDY3_HEADER_DICTIONARY }));
  }
}

export class HeaderDecompressor extends ZlibSession {
  constructor() {
    super(createInflate({ dictionary: SPDY3_HEADER_DICTIONARY }));
  }
}
