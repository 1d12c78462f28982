import { Duplex } from 'node:stream';
import { HeaderCompressor, HeaderDecompressor } from './spdy-compression.js';
import {
  FrameReader,
  GOAWAY_OK,
  GOAWAY_PROTOCOL_ERROR,
  RST_CANCEL,
  RST_PROTOCOL_ERROR,
  RST_REFUSED_STREAM,
  SpdyProtocolError,
  dataFrame,
  decodeHeaderBlock,
  encodeHeaderBlock,
  goawayFrame,
  pingFrame,
  rstStreamFrame,
  synReplyFrame,
  synStreamFrame,
  type Frame,
  type SpdyHeaders,
} from './spdy-frames.js';

/** The largest DATA frame this side sends (what Go's io.Copy hands the peer per write). */
const MAX_DATA_FRAME_BYTES = 32 * 1024;
/** How long `openStream` waits for the peer's SYN_REPLY (client-go's createStreamResponseTimeout). */
export const STREAM_REPLY_TIMEOUT_MS = 30_000;
/** After `close`, how long the peer gets to hang up before the connection is cut. */
export const CLOSE_GRACE_MS = 10_000;

export type SpdyRole = 'client' | 'server';

/**
 * One SPDY stream: a Duplex whose writes become DATA frames and whose end() sends FIN (half-close),
 * and whose readable side carries the peer's DATA until the peer's FIN. It never emits 'error': a
 * peer reset (`peerReset` tells the status) or a lost connection destroys it, so watch 'close'.
 */
export class SpdyStream extends Duplex {
  /** The RST_STREAM status the peer ended this stream with. */
  peerReset: number | undefined;
  /** Set once the peer's half is over (its FIN arrived); kept for the session's bookkeeping. */
  remoteEnded = false;
  resetSent = false;

  constructor(
    private readonly session: SpdySession,
    readonly id: number,
    readonly headers: SpdyHeaders,
  ) {
    super({ allowHalfOpen: true });
  }

  /** Accepts a stream the peer opened (SYN_REPLY); nothing may be written to it before. */
  accept(): void {
    this.session.reply(this);
  }

  /** Ends both halves at once with RST_STREAM. */
  reset(status = RST_CANCEL): void {
    if (this.destroyed) return;
    this.resetSent = true;
    this.session.sendReset(this.id, status);
    this.destroy();
  }

  override _read(): void {
    this.session.unblock(this);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    void this.session.sendData(this, chunk, false).then(() => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    void this.session.sendData(this, Buffer.alloc(0), true).then(() => callback());
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.session.detach(this);
    callback(error);
  }
}

/**
 * A SPDY/3.1 session over an upgraded connection, either side. The client opens streams with
 * `openStream(headers)`, which resolves once the server replied (SYN_REPLY); the server hears of
 * each through `onStream`, where it must `accept()` or `reset()` it. Frames are handled in order;
 * header blocks share one zlib context per direction (spdy-compression.ts).
 *
 * Like moby/spdystream, which Kubernetes' clients and kubelet use, the session does no SPDY flow
 * control: it neither sends nor obeys WINDOW_UPDATE. Backpressure is TCP's: writes wait for the
 * socket to drain, and a stream whose reader falls behind pauses the whole connection.
 *
 * `close()` resets the streams still open (as kubelet does, so a Go peer's shutdown does not wait on
 * them), sends GOAWAY and ends the connection; `closed` resolves once the socket closed, whichever
 * side ended it.
 */
export class SpdySession {
  /** Peer-opened streams go here; set it before the first frame is handled (synchronously after construction). */
  onStream: ((stream: SpdyStream) => void) | undefined;
  readonly closed: Promise<void>;
  private readonly streams = new Map<number, SpdyStream>();
  private readonly waiting = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  private readonly blocked = new Set<SpdyStream>();
  private readonly reader = new FrameReader();
  private readonly deflater = new HeaderCompressor();
  private readonly inflater = new HeaderDecompressor();
  private inbound: Promise<void> = Promise.resolve();
  private outbound: Promise<void> = Promise.resolve();
  private nextStreamId: number;
  private lastPeerStreamId = 0;
  private goingAway = false;
  private peerGoneAway = false;
  private isClosed = false;
  private failed = false;

  constructor(
    private readonly socket: Duplex,
    readonly role: SpdyRole,
    head: Buffer = Buffer.alloc(0),
  ) {
    this.nextStreamId = role === 'client' ? 1 : 2;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve(this.onSocketClose())));
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    // The peer sends no more frames: finish what is queued and hang up too.
    socket.once('end', () => void this.outbound.then(() => this.socket.end()));
    if (head.length > 0) this.receive(head);
  }

  /** Opens a stream (SYN_STREAM) and resolves once the peer replied; rejects when it refused or never answered. */
  async openStream(headers: SpdyHeaders, timeoutMs = STREAM_REPLY_TIMEOUT_MS): Promise<SpdyStream> {
    if (this.isClosed || this.goingAway || this.peerGoneAway) throw new Error('the SPDY session is closing; no new streams');
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = new SpdyStream(this, id, headers);
    this.streams.set(id, stream);
    const replied = new Promise<void>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    void this.send(async () => synStreamFrame(id, await this.deflater.process(encodeHeaderBlock(headers))));
    const timer = setTimeout(() => this.waiting.get(id)?.reject(new Error(`no reply to SPDY stream ${id} within ${timeoutMs} ms`)), timeoutMs);
    try {
      await replied;
      return stream;
    } catch (err) {
      stream.reset();
      throw err;
    } finally {
      clearTimeout(timer);
      this.waiting.delete(id);
    }
  }

  close(): Promise<void> {
    if (!this.goingAway && !this.isClosed) {
      this.goingAway = true;
      for (const stream of [...this.streams.values()]) if (!(stream.writableFinished && stream.remoteEnded)) stream.reset();
      void this.send(goawayFrame(this.lastPeerStreamId, GOAWAY_OK)).then(() => this.socket.end());
      const timer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
      void this.closed.then(() => clearTimeout(timer));
    }
    return this.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  // What follows serves SpdyStream.

  reply(stream: SpdyStream): void {
    void this.send(async () => synReplyFrame(stream.id, await this.deflater.process(encodeHeaderBlock({}))));
  }

  sendReset(streamId: number, status: number): void {
    void this.send(rstStreamFrame(streamId, status));
  }

  /**
   * Resolves once the frames are handed to the socket and it has room again (or is gone). Data for
   * a stream the peer reset is dropped: the peer discards it anyway.
   */
  sendData(stream: SpdyStream, data: Buffer, fin: boolean): Promise<void> {
    if (stream.peerReset !== undefined || stream.resetSent) return Promise.resolve();
    if (data.length === 0) return this.send(dataFrame(stream.id, data, fin));
    let sent = Promise.resolve();
    for (let offset = 0; offset < data.length; offset += MAX_DATA_FRAME_BYTES) {
      const end = offset + MAX_DATA_FRAME_BYTES;
      sent = this.send(dataFrame(stream.id, data.subarray(offset, end), fin && end >= data.length));
    }
    return sent;
  }

  unblock(stream: SpdyStream): void {
    if (this.blocked.delete(stream) && this.blocked.size === 0 && !this.isClosed) this.socket.resume();
  }

  /** A stream is gone: forget it, and tell the peer unless both halves ended or someone reset it. */
  detach(stream: SpdyStream): void {
    this.streams.delete(stream.id);
    this.unblock(stream);
    const clean = stream.writableFinished && stream.remoteEnded;
    if (!clean && !stream.resetSent && stream.peerReset === undefined && !this.isClosed) {
      stream.resetSent = true;
      this.sendReset(stream.id, RST_CANCEL);
    }
  }

  private send(frame: Buffer | (() => Promise<Buffer>)): Promise<void> {
    const sent = this.outbound.then(async () => {
      if (this.isClosed) return;
      const bytes = typeof frame === 'function' ? await frame() : frame;
      if (this.isClosed || this.socket.writableEnded) return;
      if (!this.socket.write(bytes)) await this.drained();
    });
    this.outbound = sent.catch((err: Error) => this.fail(err));
    return this.outbound;
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  private receive(chunk: Buffer): void {
    if (this.failed) return;
    let frames: Frame[];
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      return this.fail(err as Error);
    }
    for (const frame of frames) {
      this.inbound = this.inbound.then(() => (this.isClosed || this.failed ? undefined : this.handle(frame))).catch((err: Error) => this.fail(err));
    }
  }

  private async handle(frame: Frame): Promise<void> {
    switch (frame.type) {
      case 'data': {
        const stream = this.streams.get(frame.streamId);
        // Data for a stream already reset or ended on this side is dropped, as spdystream does.
        if (!stream || stream.destroyed || stream.remoteEnded) return;
        if (frame.data.length > 0 && !stream.push(frame.data)) {
          this.blocked.add(stream);
          this.socket.pause();
        }
        if (frame.fin) this.remoteFin(stream);
        return;
      }
      case 'syn_stream': {
        // Every header block goes through the inflater, even a refused stream's, to keep the zlib context in step.
        const headers = decodeHeaderBlock(await this.inflater.process(frame.block));
        return this.onPeerStream(frame.streamId, headers, frame.fin, frame.unidirectional || frame.associatedId !== 0);
      }
      case 'syn_reply': {
        decodeHeaderBlock(await this.inflater.process(frame.block));
        this.waiting.get(frame.streamId)?.resolve();
        const stream = this.streams.get(frame.streamId);
        if (stream && frame.fin) this.remoteFin(stream);
        return;
      }
      case 'headers': {
        decodeHeaderBlock(await this.inflater.process(frame.block));
        const stream = this.streams.get(frame.streamId);
        if (stream && frame.fin) this.remoteFin(stream);
        return;
      }
      case 'rst_stream': {
        const stream = this.streams.get(frame.streamId);
        if (!stream) return;
        stream.peerReset = frame.status;
        this.waiting.get(frame.streamId)?.reject(new Error(`the peer reset SPDY stream ${frame.streamId} (status ${frame.status})`));
        // After the peer's FIN a reset only stops our half (kubelet resets every stream as it hangs
        // up); what arrived stays readable. Before it, the stream is cut off.
        if (!stream.remoteEnded) stream.destroy();
        else if (!stream.writableEnded) stream.end();
        return;
      }
      case 'ping':
        // Pings the peer started carry its parity (odd from a client); answer those with the same id.
        if (frame.id % 2 === (this.role === 'server' ? 1 : 0)) void this.send(pingFrame(frame.id));
        return;
      case 'goaway':
        this.peerGoneAway = true;
        for (const [id, waiter] of this.waiting) if (id > frame.lastGoodStreamId) waiter.reject(new Error(`the peer went away before SPDY stream ${id}`));
        return;
      default:
        // SETTINGS and WINDOW_UPDATE matter only to flow control, which this session does not do.
        return;
    }
  }

  private onPeerStream(id: number, headers: SpdyHeaders, fin: boolean, unsupported: boolean): void {
    const peerParity = this.role === 'server' ? 1 : 0;
    if (id % 2 !== peerParity || id <= this.lastPeerStreamId) return this.sendReset(id, RST_PROTOCOL_ERROR);
    this.lastPeerStreamId = id;
    if (this.goingAway || unsupported || !this.onStream) return this.sendReset(id, RST_REFUSED_STREAM);
    const stream = new SpdyStream(this, id, headers);
    this.streams.set(id, stream);
    if (fin) this.remoteFin(stream);
    this.onStream(stream);
  }

  private remoteFin(stream: SpdyStream): void {
    stream.remoteEnded = true;
    stream.push(null);
  }

  /** Ends the session on a broken frame (GOAWAY PROTOCOL_ERROR) or a failing socket. */
  private fail(err: Error): void {
    if (this.isClosed || this.failed) return;
    this.failed = true;
    if (!(err instanceof SpdyProtocolError)) return void this.socket.destroy();
    this.socket.end(goawayFrame(this.lastPeerStreamId, GOAWAY_PROTOCOL_ERROR));
    const timer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    void this.closed.then(() => clearTimeout(timer));
  }

  /**
   * The connection is gone. Streams whose peer half already ended keep what they buffered for their
   * reader (their write half just completes); the others are cut off.
   */
  private onSocketClose(): void {
    this.isClosed = true;
    for (const waiter of this.waiting.values()) waiter.reject(new Error('the SPDY connection closed'));
    for (const stream of [...this.streams.values()]) {
      if (stream.remoteEnded && !stream.writableEnded) stream.end();
      else if (!stream.remoteEnded) stream.destroy();
    }
    this.deflater.close();
    this.inflater.close();
  }
}
