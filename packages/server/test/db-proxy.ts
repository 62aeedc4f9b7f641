import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy of the test's own between Gatehouse and a real server, to cut: the shared server is
 * never stopped. `refuse` closes the listener and every connection (a crashed or unreachable host);
 * `blackhole` keeps accepting but forwards nothing (a silent network: only timeouts end a request).
 */
export interface CuttableProxy {
  port: number;
  /** Connections accepted so far, in any mode. */
  accepted(): number;
  refuse(): Promise<void>;
  blackhole(): void;
  /** Forwards again; connections from the outage are closed so no half-delivered stream is reused. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startCuttableProxy(target: { host: string; port: number }, options: { startRefusing?: boolean } = {}): Promise<CuttableProxy> {
  let mode: 'open' | 'blackhole' | 'refuse' = 'open';
  let accepted = 0;
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  };
  const destroyAll = () => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };

  const onConnection = (client: Socket) => {
    accepted++;
    track(client);
    if (mode !== 'open') return; // blackhole: hold the connection, answer nothing
    const upstream = connect(target);
    track(upstream);
    client.on('data', (chunk) => mode === 'open' && upstream.write(chunk));
    upstream.on('data', (chunk) => mode === 'open' && client.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  };

  let server: Server | undefined;
  let port = 0;
  const listen = async () => {
    const listening = createServer(onConnection);
    listening.on('error', () => {});
    await new Promise<void>((resolve) => listening.listen(port, '127.0.0.1', resolve));
    const address = listening.address();
    if (!address || typeof address === 'string') throw new Error('proxy has no port');
    port = address.port;
    server = listening;
  };
  const stopListening = async () => {
    const closing = server;
    server = undefined;
    if (closing) await new Promise((resolve) => closing.close(resolve).unref());
  };

  await listen();
  const proxy: CuttableProxy = {
    get port() {
      return port;
    },
    accepted: () => accepted,
    async refuse() {
      mode = 'refuse';
      const stopped = stopListening();
      destroyAll();
      await stopped;
    },
    blackhole() {
      mode = 'blackhole';
    },
    async restore() {
      if (mode === 'blackhole') destroyAll();
      mode = 'open';
      if (!server) await listen();
    },
    async close() {
      mode = 'refuse';
      const stopped = stopListening();
      destroyAll();
      await stopped;
    },
  };
  if (options.startRefusing) await proxy.refuse();
  return proxy;
}

/** The same database URL, through the proxy. */
export function viaProxy(databaseUrl: string, proxy: CuttableProxy): string {
  const url = new URL(databaseUrl);
  url.hostname = '127.0.0.1';
  url.port = String(proxy.port);
  return url.toString();
}
