/** The one HTTP server of `moe serve` and its token gate: mount routers on it (`HttpServer.mount`). */
export { DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT, HttpServer, type HttpServerOptions, type MountOptions } from './server';
export { requireHttpToken, TOKEN_COOKIE, TOKEN_HEADER } from './auth';
