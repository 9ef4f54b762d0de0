export { HttpServer, DEFAULT_HTTP_HOST, type HttpServerOptions } from './http-server';
