/**
 * The cluster token in front of the HTTP server: when `MOE_CLUSTER_TOKEN` is set, every request
 * not mounted as public must carry it, as gRPC calls do. A program sends the header `x-moe-token`
 * (or `Authorization: Bearer <token>`); a browser logs in once with `?token=<token>` (or the form
 * served on refusal), which sets an HttpOnly cookie and redirects to the same page without it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';

export const TOKEN_HEADER = 'x-moe-token';
export const TOKEN_COOKIE = 'moe_token';

/** Compared as digests, so neither the length nor the content leaks through timing. */
function sameToken(given: string, expected: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

function cookie(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

/** The token a request offers: header, bearer, cookie; undefined when none. */
function offered(req: Request): string | undefined {
  const header = req.headers[TOKEN_HEADER];
  if (typeof header === 'string' && header) return header;
  const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
  if (bearer) return bearer[1]!.trim();
  return cookie(req, TOKEN_COOKIE);
}

const LOGIN_PAGE = (message: string) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>moe: cluster token</title>
<style>body{font:15px system-ui,sans-serif;margin:4rem auto;max-width:28rem;color:#222}input{font:inherit;padding:.3rem;width:100%;box-sizing:border-box;margin:.5rem 0}</style></head>
<body><h1>moe dashboard</h1><p>${message}</p>
<form method="get"><label>Cluster token (MOE_CLUSTER_TOKEN)<input type="password" name="token" autofocus></label><button>Log in</button></form></body></html>`;

/**
 * Middleware that lets through requests carrying `token` (every request when `token` is
 * undefined) and refuses the others with 401: a login form for a browser, JSON for a program.
 */
export function requireHttpToken(token: string | undefined, log: (line: string) => void): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    if (token === undefined) return next();
    const login = typeof req.query.token === 'string' ? req.query.token : undefined;
    if (login !== undefined && req.method === 'GET') {
      if (!sameToken(login, token)) {
        log(`http: refused a login with a wrong cluster token from ${req.ip} (${req.method} ${req.path})`);
        res.status(401).type('html').send(LOGIN_PAGE('Wrong token. Enter the cluster token this scheduler runs with.'));
        return;
      }
      // The cookie replaces the token in the address, so it leaves the URL bar and the history.
      res.cookie(TOKEN_COOKIE, token, { httpOnly: true, sameSite: 'strict', path: '/' });
      const rest = new URLSearchParams(req.query as Record<string, string>);
      rest.delete('token');
      res.redirect(303, `${req.baseUrl}${req.path}${rest.size ? `?${rest}` : ''}`);
      return;
    }
    const given = offered(req);
    if (given !== undefined && sameToken(given, token)) return next();
    log(`http: refused ${req.method} ${req.path} from ${req.ip}: ${given === undefined ? 'no' : 'a wrong'} cluster token`);
    if (req.accepts(['json', 'html']) === 'html') {
      res.status(401).type('html').send(LOGIN_PAGE('This scheduler requires its cluster token.'));
    } else {
      res.status(401).json({ error: `cluster token required: send it in the ${TOKEN_HEADER} header (MOE_CLUSTER_TOKEN)` });
    }
  };
}
