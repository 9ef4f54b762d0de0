/**
 * The one HTTP server of `moe serve`: an Express 5 app that modules mount their routes on (the
 * dashboard, Bull Board, health; Prometheus `/metrics` the same way). Routes are behind the
 * cluster token when one is set, unless mounted as public (a health probe: it says only "ready").
 *
 *   const http = new HttpServer({ host, port, token, log });
 *   http.mount('/metrics', metricsRouter);                 // any express Router or handler
 *   http.mount('/healthz', healthHandler, { public: true });
 *   await http.listen();                                   // then http.url
 *
 * Routes may be mounted before or after `listen`: they sit in routers placed ahead of the 404.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express, { type ErrorRequestHandler, type RequestHandler, type Router } from 'express';
import { envToken } from '@moe/comm';
import { requireHttpToken } from './auth';

export interface HttpServerOptions {
  /** Interface to bind. Default 127.0.0.1: the dashboard shows the cluster, so bind others deliberately. */
  host?: string;
  /** Port to bind; 0 picks a free one. Default 8080. */
  port?: number;
  /** Cluster token required on every route not mounted public. Default: MOE_CLUSTER_TOKEN; "": none. */
  token?: string;
  log?: (line: string) => void;
}

export interface MountOptions {
  /** Served without the cluster token (health probes). Default false. */
  public?: boolean;
}

export const DEFAULT_HTTP_PORT = 8080;
export const DEFAULT_HTTP_HOST = '127.0.0.1';

export class HttpServer {
  readonly app = express();
  private readonly publicRoutes = express.Router();
  private readonly routes = express.Router();
  private server?: Server;
  private readonly log: (line: string) => void;
  /** http://host:port once listening. */
  url = '';
  /** Whether routes not mounted public require the cluster token. */
  readonly tokenRequired: boolean;

  constructor(private readonly options: HttpServerOptions = {}) {
    this.log = options.log ?? (() => {});
    const token = options.token === undefined ? envToken() : options.token || undefined;
    this.tokenRequired = token !== undefined;
    this.app.disable('x-powered-by');
    this.app.use(this.publicRoutes);
    this.app.use(requireHttpToken(token, this.log));
    this.app.use(this.routes);
    this.app.use((req, res) => {
      res.status(404).json({ error: `no route ${req.method} ${req.path} on this server` });
    });
    const onError: ErrorRequestHandler = (error: Error, req, res, _next) => {
      this.log(`http: ${req.method} ${req.path} failed: ${error.message}`);
      if (!res.headersSent) res.status(500).json({ error: error.message });
    };
    this.app.use(onError);
  }

  /** Serves `handler` (an express Router, or one handler) under `path`. */
  mount(path: string, handler: Router | RequestHandler, options: MountOptions = {}): this {
    (options.public ? this.publicRoutes : this.routes).use(path, handler);
    return this;
  }

  /** Binds and serves; resolves with the URL (the port the OS picked when 0 was asked). */
  async listen(): Promise<string> {
    const host = this.options.host ?? DEFAULT_HTTP_HOST;
    const wanted = this.options.port ?? DEFAULT_HTTP_PORT;
    const server = this.app.listen(wanted, host);
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', (error: Error) =>
        reject(new Error(`http: cannot bind ${host}:${wanted}: ${error.message} (choose another with --http-port or MOE_HTTP_PORT)`)),
      );
    });
    this.server = server;
    const port = (server.address() as AddressInfo).port;
    this.url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    return this.url;
  }

  /** Stops accepting, ends open connections (a dashboard keeps some alive), resolves when closed. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}
