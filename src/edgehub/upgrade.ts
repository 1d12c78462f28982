import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { ApiError } from '../api/errors.js';
import { dialUpgrade, forwardedRequest, respondOnSocket, spliceUpgrade, type UpgradeTarget } from '../apiserver/upgrade-proxy.js';
import type { TlsCredentials } from './health.js';
import type { EdgeHubMetrics } from './metrics.js';

/**
 * Upgrade requests through EdgeHub: exec, attach and port-forward (WebSocket or SPDY), which a
 * kubelet or kubectl in front of EdgeHub sends as it would to the API server. Each is relayed byte
 * for byte to the healthy cloud endpoint on a TLS connection of its own with the node's credentials;
 * the local client's token ends here, as every credential ends at a proxy. Nothing reads the
 * upgraded protocol.
 *
 * There is no cache to answer from, so offline such a request gets a 503 Status. Relayed streams are
 * cut when the cloud is marked unhealthy (behind a silent link they would hang forever) and when
 * EdgeHub closes, because upgraded sockets leave the HTTP server's bookkeeping.
 */
export class UpgradeRelay {
  private readonly streams = new Set<Duplex>();

  constructor(
    private readonly credentials: TlsCredentials,
    private readonly metrics: EdgeHubMetrics,
  ) {}

  /**
   * Relays `req` (with the socket and head of the server's 'upgrade' event) to `upstream`, the
   * healthy cloud endpoint; undefined while there is none, which gets a 503.
   */
  async relay(req: IncomingMessage, client: Duplex, head: Buffer, upstream: string | undefined): Promise<void> {
    if (upstream === undefined) {
      this.metrics.upgraded('offline');
      return this.refuse(client, unavailable(`edgehub: the node is offline (the cloud is unreachable) and ${describe(req)} was refused: exec, attach and port-forward need the cloud`));
    }
    this.track(client);
    const target: UpgradeTarget = {
      url: new URL(req.url ?? '/', upstream),
      tls: { ca: this.credentials.caPem, cert: this.credentials.certPem, key: this.credentials.keyPem },
    };
    let response;
    try {
      response = await dialUpgrade(target, forwardedRequest(req, target.url), head);
    } catch (err) {
      this.metrics.upgraded('unreachable');
      const why = err instanceof Error ? err.message : String(err);
      return this.refuse(client, unavailable(`edgehub: the cloud is unreachable (${why}); ${describe(req)} could not be relayed`));
    }
    this.metrics.proxied('to_cloud', head.length);
    this.metrics.proxied('from_cloud', response.rawHead.length + response.rest.length);
    if (client.destroyed) return void response.socket.destroy();
    this.track(response.socket);
    spliceUpgrade(client, response);
    // Counted only once piped: a 'data' listener added earlier would start the flow before the pipe.
    client.on('data', (chunk: Buffer) => this.metrics.proxied('to_cloud', chunk.length));
    response.socket.on('data', (chunk: Buffer) => this.metrics.proxied('from_cloud', chunk.length));
    this.metrics.upgraded('relayed');
  }

  /** Answers an upgrade request with `err`'s Status and closes the connection. */
  refuse(client: Duplex, err: ApiError): void {
    client.on('error', () => client.destroy());
    respondOnSocket(client, err.code, JSON.stringify(err.toStatus()));
  }

  /** Ends every relayed stream. */
  cut(): void {
    for (const s of this.streams) s.destroy();
  }

  private track(s: Duplex): void {
    this.streams.add(s);
    s.on('error', () => s.destroy());
    s.on('close', () => this.streams.delete(s));
  }
}

/** The request without its query (which may carry commands), for messages. */
function describe(req: IncomingMessage): string {
  return `${req.method ?? 'GET'} ${new URL(req.url ?? '/', 'http://edgehub').pathname}`;
}

function unavailable(message: string): ApiError {
  return new ApiError(503, 'ServiceUnavailable', message);
}
