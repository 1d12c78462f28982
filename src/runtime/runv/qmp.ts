import { connect, type Socket } from 'node:net';

/**
 * A client for QEMU's monitor protocol (QMP) on a unix socket: JSON objects, one per line.
 *
 * Lifecycle: `connect()` reads QEMU's greeting and negotiates capabilities; then `execute()` runs
 * commands, each tagged with an id that QEMU echoes in its answer, and `onEvent()` sees the
 * asynchronous events. The connection lasts until `close()` or until QEMU goes away, after which
 * every call fails with 'Disconnected' and `closed` is resolved.
 *
 * A QMP monitor serves one client at a time: a second client's connect succeeds but waits, with no
 * greeting, until the first leaves. So a VM keeps one client for its whole life, and a connect that
 * hears no greeting in time says so.
 */

/** How long connect() waits for the socket and QEMU's greeting. */
export const QMP_CONNECT_TIMEOUT_MS = 5_000;
/** How long a command waits for its answer unless the caller says otherwise. */
export const QMP_COMMAND_TIMEOUT_MS = 10_000;
/** A longer line means the stream is not QMP; nothing QEMU sends us comes near this. */
const MAX_LINE_BYTES = 16 * 1024 * 1024;

export type QmpErrorCode = 'CommandFailed' | 'Timeout' | 'Disconnected' | 'Protocol';

/** A failed QMP call. For 'CommandFailed', `errorClass` is QEMU's error class (usually 'GenericError'). */
export class QmpError extends Error {
  override name = 'QmpError';
  constructor(readonly code: QmpErrorCode, message: string, readonly errorClass?: string) {
    super(message);
  }
}

export interface QmpEvent { event: string; data: Record<string, unknown>; timestamp: { seconds: number; microseconds: number } }
export interface QemuVersion { major: number; minor: number; micro: number }

interface Pending { command: string; resolve(value: unknown): void; reject(err: Error): void; timer: NodeJS.Timeout }

export class QmpClient {
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Set<(event: QmpEvent) => void>();
  private failure: QmpError | null = null;
  private buffered = '';
  private greeted: ((version: QemuVersion) => void) | null = null;
  private onClosed!: () => void;
  /** Resolved when the connection is gone, whichever side ended it. */
  readonly closed = new Promise<void>((resolve) => (this.onClosed = resolve));
  private version_: QemuVersion | null = null;

  private constructor(private readonly socket: Socket, readonly path: string) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.receive(chunk));
    socket.on('error', (err) => this.fail(new QmpError('Disconnected', `QMP socket ${path}: ${err.message}`)));
    socket.on('close', () => {
      this.fail(new QmpError('Disconnected', `QMP connection ${path} closed`));
      this.onClosed();
    });
  }

  /** The QEMU version from the greeting. */
  get version(): QemuVersion {
    return this.version_!;
  }

  /** Connects to the monitor at `path`, reads the greeting and leaves capability negotiation mode. */
  static async connect(path: string, timeoutMs = QMP_CONNECT_TIMEOUT_MS): Promise<QmpClient> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(path);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', (err) => reject(new QmpError('Disconnected', `cannot connect to QMP at ${path}: ${err.message}`)));
    });
    const client = new QmpClient(socket, path);
    try {
      client.version_ = await new Promise<QemuVersion>((resolve, reject) => {
        const timer = setTimeout(() => reject(new QmpError('Timeout', `no QMP greeting on ${path} within ${timeoutMs} ms (is another client connected?)`)), timeoutMs);
        client.greeted = (version) => {
          clearTimeout(timer);
          resolve(version);
        };
        void client.closed.then(() => {
          clearTimeout(timer);
          reject(client.failure);
        });
      });
      await client.execute('qmp_capabilities', undefined, timeoutMs);
      return client;
    } catch (err) {
      client.close();
      throw err;
    }
  }

  /** Runs `command` and resolves with its `return` value; QEMU's error becomes a QmpError 'CommandFailed'. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = QMP_COMMAND_TIMEOUT_MS): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    const id = String(this.nextId++);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpError('Timeout', `QMP '${command}' got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (value: unknown) => void, reject, timer });
      this.socket.write(JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id }) + '\n');
    });
  }

  /** Calls `listener` for every event until the returned function is called. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.fail(new QmpError('Disconnected', `QMP client for ${this.path} closed`));
    this.socket.destroy();
  }

  private receive(chunk: string): void {
    this.buffered += chunk;
    let end: number;
    while ((end = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, end).trim();
      this.buffered = this.buffered.slice(end + 1);
      if (line && !this.handle(line)) return;
    }
    if (this.buffered.length > MAX_LINE_BYTES) this.breakProtocol(`a line longer than ${MAX_LINE_BYTES} bytes`);
  }

  /** Handles one message; false when it broke the protocol and the connection is gone. */
  private handle(line: string): boolean {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      return this.breakProtocol(`not JSON: ${line.slice(0, 200)}`);
    }
    if (typeof message !== 'object' || message === null || Array.isArray(message)) return this.breakProtocol(`not a JSON object: ${line.slice(0, 200)}`);
    const m = message as Record<string, unknown>;
    if ('QMP' in m) {
      const version = ((m.QMP as { version?: { qemu?: unknown } } | null)?.version?.qemu ?? null) as QemuVersion | null;
      if (!version || ![version.major, version.minor, version.micro].every(Number.isInteger)) return this.breakProtocol(`a greeting without a QEMU version: ${line.slice(0, 200)}`);
      this.greeted?.(version);
      this.greeted = null;
      return true;
    }
    if (typeof m.event === 'string') {
      const event = { event: m.event, data: (m.data ?? {}) as Record<string, unknown>, timestamp: m.timestamp as QmpEvent['timestamp'] };
      for (const listener of this.listeners) listener(event);
      return true;
    }
    if ('return' in m || 'error' in m) {
      // Every command we send carries an id; an answer without one (or a late one) has nobody waiting.
      const pending = typeof m.id === 'string' ? this.pending.get(m.id) : undefined;
      if (!pending) return true;
      this.pending.delete(m.id as string);
      clearTimeout(pending.timer);
      if ('return' in m) {
        pending.resolve(m.return);
      } else {
        const error = m.error as { class?: unknown; desc?: unknown } | null;
        const errorClass = typeof error?.class === 'string' ? error.class : 'GenericError';
        const desc = typeof error?.desc === 'string' ? error.desc : JSON.stringify(m.error);
        pending.reject(new QmpError('CommandFailed', `QMP '${pending.command}': ${desc}`, errorClass));
      }
      return true;
    }
    return this.breakProtocol(`an unknown message: ${line.slice(0, 200)}`);
  }

  private breakProtocol(what: string): false {
    this.fail(new QmpError('Protocol', `QMP ${this.path} sent ${what}`));
    this.socket.destroy();
    return false;
  }

  private fail(err: QmpError): void {
    this.failure ??= err;
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(this.failure);
      this.pending.delete(id);
    }
  }
}
