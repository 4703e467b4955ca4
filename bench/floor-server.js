// The two floors of the ingest benchmark (bench/ingest.bench.ts), each run as its own process so its CPU
// is counted apart from the load generator's: `node bench/floor-server.js bare|express`. Both read a JSON
// body and answer 202 with a small JSON body; neither stores anything.
//   bare:    node:http, the body collected and JSON.parse'd by hand.
//   express: Express 5 with express.json() and a route that does nothing else.
// Prints `listening <port>` on stdout once bound (port 0: the OS picks one).
'use strict';
const http = require('node:http');

const kind = process.argv[2];
const ANSWER_OBJECT = { event_id: '00000000-0000-0000-0000-000000000000', status: 'accepted' };
const ANSWER = JSON.stringify(ANSWER_OBJECT);

function bare() {
  return http.createServer((req, res) => {
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
  });
}

function expressApp() {
  const express = require('express');
  const app = express();
  app.use(express.json());
  app.post('/api/v1/webhook/:id', (_req, res) => void res.status(202).json(ANSWER_OBJECT));
  return http.createServer(app);
}

const server = kind === 'bare' ? bare() : kind === 'express' ? expressApp() : null;
if (!server) {
  process.stderr.write('usage: node bench/floor-server.js bare|express\n');
  process.exit(2);
}
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
