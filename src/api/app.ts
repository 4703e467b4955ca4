import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
// The path helper only: the package's index also evaluates the whole UI bundle (≈ 1 s of CPU at start, in every role).
import getSwaggerUiPath from 'swagger-ui-dist/absolute-path';
import type { Config } from '../config';
import type { Db } from '../db/knex';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import { apiKeyAuth } from './auth';
import { dashboardRoutes } from './dashboard';
import { ApiError, errorHandler } from './errors';
import { eventRoutes } from './events';
import { runChecks, type Check } from './health';
import { JsonTooDeepError, jsonDepthExceeds } from './json-depth';
import { dropRequestNulls } from './nulls';
import { eventActionRoutes } from './event-actions';
import { overviewRoutes } from './overview';
import { rateLimits } from './rate-limit';
import { scheduleRoutes } from './schedules';
import { triggerRoutes } from './triggers';
import { validatorSpec } from './validator-spec';
import { Tracing } from '../tracing/tracing';
import { WebhookReceiver, WebhookCaches, webhookLane, webhookRoutes } from './webhooks';
import type { WebhookIngest } from './webhook-ingest';
import { REQUEST_LOG_DEFAULTS, WebhookRequestLog, type SignatureNote } from './webhook-request-log';
import { Lifecycle } from '../events';

/** openapi.yaml sits at the repository root, next to dist/ and src/. */
export const OPENAPI_PATH = path.resolve(__dirname, '..', '..', 'openapi.yaml');

export interface AppDeps {
  config: Config;
  db: Db;
  logger: Logger;
  metrics: Metrics;
  checks: Record<string, Check>;
  role?: string;
  /**
   * The webhook receiver's group commit (platform.ts creates and closes it); without it every webhook
   * request takes the one-transaction-per-request path.
   */
  ingest?: WebhookIngest | null;
  /**
   * Called after a webhook transaction outside the group commit (an Idempotency-Key, a batch, the group
   * commit off) has committed: a relay in the same process then publishes its rows at once (Relay.wakeOutbox).
   */
  outboxWritten?: () => void;
  /**
   * The log of rejected webhook calls (platform.ts creates and closes it); without one the app makes its
   * own, whose last rejections may go unwritten when the process exits.
   */
  requestLog?: WebhookRequestLog | null;
  /** Tests turn this on so every response is checked against openapi.yaml. */
  validateResponses?: boolean;
  /** The process's tracing (platform.ts); without it traceparents are kept and forwarded, no span recorded. */
  tracing?: Tracing;
}

interface RawRequest extends Request {
  rawBody?: Buffer;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

const WEBHOOK_PATH = /^\/webhook\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** See createApp: a webhook request the OpenAPI validator would pass unchanged (path relative to /api/v1). */
export function webhookFastLane(req: RawRequest): boolean {
  return (
    req.method === 'POST' &&
    !req.url.includes('?') &&
    WEBHOOK_PATH.test(req.url) &&
    req.headers['idempotency-key'] === undefined &&
    (req.rawBody?.length ?? 0) > 0 &&
    req.is('application/json') === 'application/json'
  );
}

const DATE_TIME_PARAM = /([?&](?:from|to)=)([^&#]*)/g;

/**
 * The date-time query parameters (`from`, `to`) as people type them: unencoded, `+01:00` offset included.
 * Form decoding would read that `+` as a space, which no date-time contains, so a literal `+` in these
 * two parameters is kept as a plus (`%2B`). (`:` is accepted as is: the spec declares them allowReserved.)
 */
export function keepPlusInDateTimes(url: string): string {
  if (!url.includes('+') || !url.includes('?')) return url;
  return url.replace(DATE_TIME_PARAM, (_m, key: string, value: string) => key + value.replace(/\+/g, '%2B'));
}

/** Long because the middleware order is the point: reading it top to bottom is reading a request's path. */
// eslint-disable-next-line max-lines-per-function -- the middleware in request order, as said above
export function createApp(deps: AppDeps): express.Express {
  const { config, logger, metrics } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  app.set('query parser', 'extended');

  // Request id echoed back (and in every problem document), and the request timed for the metrics.
  // Kept on res.locals rather than in an AsyncLocalStorage: running every request in one turns on the
  // async hooks for every promise of the process, which cost more than the rest of the webhook lane.
  const begin = (req: Request, res: Response): void => {
    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    res.setHeader('X-Request-Id', requestId);
    res.locals.requestId = requestId;
    const started = process.hrtime.bigint();
    res.once('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = req.route
        ? `${req.baseUrl}${String((req.route as { path: string }).path)}`
        : ((res.locals.route as string | undefined) ?? 'unmatched');
      metrics.httpDuration.observe({ method: req.method, route, status: String(res.statusCode) }, seconds);
      const level = res.statusCode >= 500 ? 'error' : 'debug';
      // Checked first: winston would format the line before discarding it (~30 µs on the hot path).
      if (logger.isLevelEnabled(level))
        logger.log(level, 'http', {
          request_id: requestId,
          method: req.method,
          route,
          status: res.statusCode,
          ms: Math.round(seconds * 1000),
        });
    });
  };

  const limits = rateLimits(config);
  const caches = new WebhookCaches();
  const tracing = deps.tracing ?? new Tracing();
  const receiver = new WebhookReceiver({ db: deps.db, config, caches, ingest: deps.ingest, tracing, outboxWritten: deps.outboxWritten });
  // The hottest route first, before anything else looks at the request (see webhookLane). With CORS
  // configured the general stack answers, so its headers are set in one place.
  if (config.corsOrigins.length === 0) {
    app.use(
      webhookLane(receiver, {
        maxBodyBytes: config.webhookMaxBodyBytes,
        limit: limits.forWebhook,
        begin: (req, res) => {
          res.locals.route = '/api/v1/webhook/:trigger_id';
          begin(req, res);
        },
      }),
    );
  }

  app.use((req: Request, res: Response, next: NextFunction) => {
    begin(req, res);
    next();
  });

  if (config.corsOrigins.length > 0) {
    app.use((req, res, next) => {
      const origin = req.get('origin');
      if (origin && (config.corsOrigins.includes('*') || config.corsOrigins.includes(origin))) {
        res.setHeader('Access-Control-Allow-Origin', config.corsOrigins.includes('*') ? '*' : origin);
        res.setHeader('Vary', 'Origin');
        res.setHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type, X-API-Key, Idempotency-Key, X-Request-Id');
        res.setHeader('Access-Control-Allow-Methods', 'GET, POST, PUT, DELETE, OPTIONS');
      }
      if (req.method === 'OPTIONS') return void res.status(204).end();
      next();
    });
  }

  const health = (_req: Request, res: Response) => {
    void runChecks(deps.role ?? 'api', deps.checks).then((report) => res.status(report.status === 'healthy' ? 200 : 503).json(report));
  };
  app.get('/health', health);
  app.get('/health/ready', health);
  app.get('/metrics', (_req, res, next) => {
    metrics.registry
      .metrics()
      .then((text) => res.type(metrics.registry.contentType).send(text))
      .catch(next);
  });

  const specText = fs.readFileSync(OPENAPI_PATH, 'utf8');
  app.get('/openapi.yaml', (_req, res) => res.type('application/yaml').send(specText));
  app.get('/swagger/swagger-initializer.js', (_req, res) =>
    res
      .type('application/javascript')
      .send(`window.onload = () => { window.ui = SwaggerUIBundle({ url: '/openapi.yaml', dom_id: '#swagger-ui' }); };`),
  );
  app.get('/swagger', (req, res, next) =>
    req.path === '/swagger' && !req.originalUrl.endsWith('/') ? res.redirect(301, '/swagger/') : next(),
  );
  app.use('/swagger', express.static(getSwaggerUiPath(), { index: 'index.html', maxAge: '1h' }));
  app.use('/dashboard', dashboardRoutes());

  app.use('/api/v1', limits);
  app.use(
    '/api/v1',
    express.json({
      limit: config.webhookMaxBodyBytes,
      strict: false,
      type: ['application/json', 'application/*+json'],
      verify: (req, _res, buf) => {
        if (jsonDepthExceeds(buf)) throw new JsonTooDeepError();
        (req as RawRequest).rawBody = buf;
      },
    }),
  );

  // Management routes need a key (when keys are configured); the webhook receiver does not.
  const auth = apiKeyAuth(config.apiKeys);
  app.use('/api/v1', (req, res, next) => (req.path.startsWith('/webhook/') ? next() : auth(req, res, next)));

  // The webhook receiver is the hot path, and express-openapi-validator costs ~0.15 ms of CPU per request
  // (it matches the route anew each time). A request it could only pass — POST to a canonical UUID, an
  // application/json body that parsed and is not empty (the spec's body schema is `{}`), no query string,
  // no Idempotency-Key header to check — goes straight to the receiver. Anything else (a non-UUID id, a
  // query, another content type, an empty body, a key) goes through the validator as before, so every
  // error answer is the validator's own.
  const requestLog = deps.requestLog === undefined ? webhookRequestLog(deps.db, config, metrics, logger) : deps.requestLog;
  const webhooks = webhookRoutes({ receiver, requestLog });
  app.use('/api/v1', (req: RawRequest, res, next) => (webhookFastLane(req) ? webhooks(req, res, next) : next()));

  app.use('/api/v1', (req, _res, next) => {
    req.url = keepPlusInDateTimes(req.url);
    next();
  });

  // An explicit null in a management request means "absent" (see nulls.ts); the webhook receiver's
  // payloads are user data and stay as sent.
  app.use('/api/v1', (req, _res, next) => {
    if (!req.path.startsWith('/webhook/') && req.body !== undefined) req.body = dropRequestNulls(req.body);
    next();
  });

  app.use(
    OpenApiValidator.middleware({
      apiSpec: validatorSpec(specText),
      validateRequests: { allowUnknownQueryParameters: false, allErrors: true },
      validateResponses: deps.validateResponses ? { removeAdditional: false } : false,
      validateSecurity: false,
      validateFormats: true,
      ignorePaths: /^\/(?!api\/v1(\/|$))/,
    }),
  );

  app.use('/api/v1', triggerRoutes({ db: deps.db, config, caches, tracing }));
  app.use('/api/v1', webhooks);
  app.use('/api/v1', eventRoutes({ db: deps.db, config }));
  app.use('/api/v1', eventActionRoutes({ db: deps.db, config, metrics, tracing }));
  app.use('/api/v1', scheduleRoutes());
  app.use('/api/v1', overviewRoutes({ db: deps.db, config }));

  app.use((_req, _res, next) => next(new ApiError('NOT_FOUND', 'No such route')));
  app.use(errorHandler(logger, (req, res, err) => requestLog?.note(req, (res.locals as { signature?: SignatureNote }).signature, err)));
  return app;
}

/** The log of rejected webhook calls of one API process, its lifecycle events counted by `metrics`. */
export function webhookRequestLog(db: Db, config: Config, metrics: Metrics, logger: Logger | null): WebhookRequestLog {
  const events = new Lifecycle();
  metrics.subscribe(events);
  return new WebhookRequestLog(db, { ...REQUEST_LOG_DEFAULTS, keepSeconds: config.retentionDeleteAfterSeconds }, events, logger);
}
