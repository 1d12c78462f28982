import { readFileSync } from 'node:fs';
import https from 'node:https';
import { parse } from 'yaml';

export interface ApiResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json<T = Record<string, unknown>>(): T;
}

export interface RequestOptions {
  body?: unknown;
  /** Sent as-is instead of JSON-encoding `body`. */
  raw?: string | Buffer;
  contentType?: string;
  accept?: string;
  token?: string;
  /** Send no client certificate. */
  anonymous?: boolean;
}

/**
 * A small HTTPS client for the Kubernetes API with the admin credentials of a kubeconfig, for tests
 * and benchmarks that need exact control over requests (malformed bodies, content types, headers).
 */
export class ApiClient {
  readonly agent: https.Agent;
  private readonly anonymousAgent: https.Agent;
  readonly base: URL;
  readonly ca: string;
  readonly cert: string;
  readonly key: string;

  constructor(kubeconfigPath: string, maxSockets = 16) {
    const cfg = parse(readFileSync(kubeconfigPath, 'utf8')) as {
      clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
      users: { user: { 'client-certificate-data': string; 'client-key-data': string } }[];
    };
    const decode = (s: string) => Buffer.from(s, 'base64').toString();
    this.base = new URL(cfg.clusters[0]!.cluster.server);
    this.ca = decode(cfg.clusters[0]!.cluster['certificate-authority-data']);
    this.cert = decode(cfg.users[0]!.user['client-certificate-data']);
    this.key = decode(cfg.users[0]!.user['client-key-data']);
    this.agent = new https.Agent({ keepAlive: true, maxSockets, ca: this.ca, cert: this.cert, key: this.key });
    this.anonymousAgent = new https.Agent({ keepAlive: true, maxSockets, ca: this.ca });
  }

  request(method: string, path: string, opts: RequestOptions = {}): Promise<ApiResponse> {
    const data = opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
    const headers: Record<string, string | number> = {};
    if (data !== undefined) {
      headers['Content-Type'] = opts.contentType ?? 'application/json';
      headers['Content-Length'] = Buffer.byteLength(data);
    }
    if (opts.accept) headers['Accept'] = opts.accept;
    if (opts.token) headers['Authorization'] = `Bearer ${opts.token}`;
    return new Promise((resolve, reject) => {
      const req = https.request(
        { host: this.base.hostname, port: this.base.port, path, method, headers, agent: opts.anonymous || opts.token ? this.anonymousAgent : this.agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const body = Buffer.concat(chunks).toString();
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: <T>() => JSON.parse(body) as T });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  }

  /** Opens a watch and collects its events until `close()`. */
  watch(path: string): { events: { type: string; object: Record<string, any> }[]; close(): void; ended: Promise<void> } {
    const events: { type: string; object: Record<string, any> }[] = [];
    let request: ReturnType<typeof https.request>;
    const ended = new Promise<void>((resolve, reject) => {
      request = https.request({ host: this.base.hostname, port: this.base.port, path, agent: new https.Agent({ ca: this.ca, cert: this.cert, key: this.key }) }, (res) => {
        let buf = '';
        res.on('data', (d: Buffer) => {
          buf += d.toString();
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            events.push(JSON.parse(buf.slice(0, nl)));
            buf = buf.slice(nl + 1);
          }
        });
        res.on('end', () => resolve());
        res.on('error', () => resolve());
      });
      request.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve() : reject(e)));
      request.end();
    });
    return { events, close: () => request.destroy(), ended };
  }

  close(): void {
    this.agent.destroy();
    this.anonymousAgent.destroy();
  }
}
