/**
 * Serves the operator dashboard: the files `npm run build` bundles from src/dashboard into
 * dist/dashboard. index.html is revalidated on every load; the assets it names carry a content hash in
 * their file names, so they are cached for a year and never revalidated. A strict Content-Security-Policy
 * applies to everything under /dashboard (and only there: Swagger UI needs inline script).
 */
import fs from 'node:fs';
import path from 'node:path';
import express, { Router } from 'express';

/** dist/dashboard at the repository root, whether this runs compiled (dist/api) or from src/api under ts-node. */
export const DASHBOARD_DIR = path.resolve(__dirname, '..', '..', 'dist', 'dashboard');

export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

export function dashboardRoutes(dir = DASHBOARD_DIR): Router {
  const r = Router();
  r.use((_req, res, next) => {
    res.setHeader('Content-Security-Policy', DASHBOARD_CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    next();
  });
  // Relative asset URLs in index.html need the trailing slash.
  r.get('/', (req, res, next) => (req.originalUrl.split('?')[0]!.endsWith('/') ? next() : res.redirect(301, `${req.baseUrl}/`)));
  r.use(
    express.static(dir, {
      index: 'index.html',
      redirect: false,
      setHeaders(res, file) {
        const immutable = path.basename(path.dirname(file)) === 'assets';
        res.setHeader('Cache-Control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
      },
    }),
  );
  r.use((req, res) => {
    const built = fs.existsSync(path.join(dir, 'index.html'));
    res
      .status(404)
      .type('text/plain')
      .send(built ? 'Not found' : 'The dashboard is not built: run `npm run build`.');
  });
  return r;
}
