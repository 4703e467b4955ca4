// The floors of the ingest benchmark (bench/ingest.bench.ts), each run as its own process so its CPU
// is counted apart from the load generator's: `node bench/floor-server.js bare|express|express-first`. Each
// reads a JSON body and answers 202 with a small JSON body; none stores anything.
//   bare:          node:http, the body collected and JSON.parse'd by hand.
//   express:       Express 5 with express.json() and a route that does nothing else.
//   express-first: Express 5 whose first middleware reads the body, JSON.parse's it and answers with
//                  writeHead/end, as the api's webhook lane does: what any route inside Express costs at
//                  least (Express's own entry, before a middleware runs, and Node's HTTP).
// Prints `listening <port>` on stdout once bound (port 0: the OS picks one).
'use strict';
const http = require('node:http');

const kind = process.argv[2];
const ANSWER_OBJECT = { event_id: '00000000-0000-0000-0000-000000000000', status: 'accepted' };
const ANSWER = JSON.stringify(ANSWER_OBJECT);

/** Collects the body, parses it as JSON and answers 202 (400 when it is not JSON), with Node's own response API. */
function readParseAnswer(req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    try {
      JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400).end();
      return;
    }
    res.writeHead(202, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(ANSWER) }).end(ANSWER);
  });
}

function bare() {
  return http.createServer(readParseAnswer);
}

function expressApp() {
  const express = require('express');
  const app = express();
  app.use(express.json());
  app.post('/api/v1/webhook/:id', (_req, res) => void res.status(202).json(ANSWER_OBJECT));
  return http.createServer(app);
}

function expressFirst() {
  const express = require('express');
  const app = express();
  app.disable('x-powered-by');
  app.use((req, res, next) => (req.method === 'POST' ? readParseAnswer(req, res) : next()));
  return http.createServer(app);
}

const servers = { bare, express: expressApp, 'express-first': expressFirst };
const server = Object.hasOwn(servers, kind) ? servers[kind]() : null;
if (!server) {
  process.stderr.write('usage: node bench/floor-server.js bare|express|express-first\n');
  process.exit(2);
}
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
