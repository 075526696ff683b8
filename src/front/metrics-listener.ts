/**
 * `aivaultd --metrics-open <host:port>`: a scrape-only listener on loopback that serves GET /metrics
 * without a token (for a local Prometheus that cannot hold one) and nothing else — every other path is
 * 404, every other method 405, non-loopback peers are refused. Its own uWS app, so it shares no route with
 * the HTTP listener (whose /metrics keeps requiring an operator token). Main thread; no secret here.
 */
import { AivaultError } from '../core/errors.js';
import { App, closeListenSocket, localPort, type HttpResponse, type ListenSocket } from './uws.js';
import { isLoopbackHost, isLoopbackPeer } from './http-passthrough.js';
import type { DaemonMetrics } from './metrics.js';

export interface MetricsListener {
  readonly host: string;
  readonly port: number;
  stopListening(): void;
}

export async function startMetricsListener(
  metrics: DaemonMetrics,
  addr: { readonly host: string; readonly port: number },
): Promise<MetricsListener> {
  if (!isLoopbackHost(addr.host)) {
    throw new AivaultError(
      'usage',
      `--metrics-open ${addr.host}:${addr.port}: the open metrics listener is loopback only (use --http with an operator token elsewhere)`,
    );
  }
  const plain =
    (status: string, text: string) =>
    (res: HttpResponse): void => {
      res.writeStatus(status).writeHeader('content-type', 'text/plain').end(text);
    };
  const app = App()
    .get('/metrics', (res) => {
      let aborted = false;
      res.onAborted(() => (aborted = true));
      const peer = Buffer.from(res.getRemoteAddressAsText()).toString('utf8');
      if (!isLoopbackPeer(peer)) {
        plain('403 Forbidden', 'loopback only\n')(res);
        return;
      }
      metrics.scrape().then(
        (body) => {
          if (aborted) return;
          res.cork(() =>
            res
              .writeStatus('200 OK')
              .writeHeader('content-type', metrics.contentType)
              .writeHeader('cache-control', 'no-store')
              .end(body),
          );
        },
        () => {
          if (!aborted) res.cork(() => plain('500 Internal Server Error', 'metrics unavailable\n')(res));
        },
      );
    })
    .any('/metrics', plain('405 Method Not Allowed', 'GET only\n'))
    .any('/*', plain('404 Not Found', 'this listener serves GET /metrics only\n'));
  const ls = await new Promise<ListenSocket | false>((resolve) => app.listen(addr.host, addr.port, resolve));
  if (!ls)
    throw new AivaultError('daemon_unavailable', `cannot listen on ${addr.host}:${addr.port} (in use?)`);
  let open: ListenSocket | undefined = ls;
  return {
    host: addr.host,
    port: localPort(ls),
    stopListening() {
      if (open) closeListenSocket(open);
      open = undefined;
    },
  };
}
