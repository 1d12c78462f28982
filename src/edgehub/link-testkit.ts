import net from 'node:net';

/**
 * Test support for EdgeHub: a TCP forwarder on loopback standing in for the node's link to the
 * cloud. `cut()` blackholes it as a real partition does: connections stay open but nothing passes,
 * and new ones never reach the server. `heal()` drops the stalled connections (as their TCP
 * timeouts would) and forwards again.
 */
export class Link {
  private cutOff = false;
  private readonly sockets = new Set<net.Socket>();
  private constructor(
    private readonly server: net.Server,
    private readonly target: URL,
  ) {}

  static async start(target: string): Promise<Link> {
    const server = net.createServer();
    const link = new Link(server, new URL(target));
    server.on('connection', (s) => link.accept(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return link;
  }

  get url(): string {
    return `https://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  private accept(client: net.Socket): void {
    this.track(client);
    client.on('error', () => undefined);
    if (this.cutOff) return;
    const upstream = net.connect(Number(this.target.port), this.target.hostname);
    this.track(upstream);
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('data', (d) => this.cutOff || upstream.write(d));
    upstream.on('data', (d) => this.cutOff || client.write(d));
  }

  private track(s: net.Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
  }

  cut(): void {
    this.cutOff = true;
  }

  heal(): void {
    for (const s of this.sockets) s.destroy();
    this.cutOff = false;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
