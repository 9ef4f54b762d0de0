/**
 * The ONE HTTP server of `moe serve` (express 5): every page and endpoint it serves over HTTP
 * (/metrics, the dashboard) is a router mounted here, on one port. `--http-port` /
 * MOE_HTTP_PORT choose the port (0: any free one), `--http-host` / MOE_HTTP_HOST the interface
 * (default 127.0.0.1: nothing is exposed beyond this machine unless asked).
 */
import type { Server } from 'node:http';
import express, { type Express, type Router } from 'express';

export const DEFAULT_HTTP_HOST = '127.0.0.1';

export interface HttpServerOptions {
  host?: string;
  port: number;
}

export class HttpServer {
  private constructor(
    readonly app: Express,
    private readonly server: Server,
    /** host:port it listens on (the port the OS picked when 0 was asked). */
    readonly address: string,
  ) {}

  /** Listens; routers are mounted with `mount`, before or after. */
  static async start(options: HttpServerOptions): Promise<HttpServer> {
    const app = express();
    app.disable('x-powered-by');
    const host = options.host ?? DEFAULT_HTTP_HOST;
    const server = await new Promise<Server>((resolve, reject) => {
      const s = app.listen(options.port, host, (error?: Error) => (error ? reject(error) : resolve(s)));
    }).catch((error: Error) => {
      throw new Error(`serve: cannot listen for HTTP on ${host}:${options.port}: ${error.message} (choose another with --http-port or MOE_HTTP_PORT)`);
    });
    const bound = server.address();
    const port = typeof bound === 'object' && bound ? bound.port : options.port;
    return new HttpServer(app, server, `${host}:${port}`);
  }

  /** Serves `router` under `path` ("/" for routes that name their own paths). */
  mount(path: string, router: Router): void {
    this.app.use(path, router);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
