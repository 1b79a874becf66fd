'use strict';
// The ping/pong server a Node.js user would otherwise write: the `ws` package with a
// `jsonwebtoken` check in verifyClient, one process, no cluster. It answers like the aiohttp
// echo baseline (a pong envelope per ping) so the benchmark's worker drives both unchanged.
//
//   REP_JWT_SECRET=... node server.js --host 127.0.0.1 --port 8765

const crypto = require('node:crypto');
const http = require('node:http');
const { WebSocketServer } = require('ws');
const jwt = require('jsonwebtoken');

const SUBPROTOCOL = 'rep.v1';
const VERSION = '1.0';
const PATH = '/ws';

function parseArgs(argv) {
  const options = { host: '127.0.0.1', port: null };
  for (let i = 0; i < argv.length; i += 1) {
    const name = argv[i];
    const value = argv[i + 1];
    if ((name === '--host' || name === '--port') && value !== undefined) {
      options[name.slice(2)] = value;
      i += 1;
    } else {
      throw new Error(`unknown argument ${name}; usage: server.js --host H --port P`);
    }
  }
  const port = Number(options.port);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new Error('--port P is required (1-65535)');
  }
  return { host: options.host, port };
}

// Counter ids under a random node prefix, and a timestamp string rebuilt once per
// millisecond: the same cheap envelope the Python baselines build.
const node = crypto.randomBytes(4).toString('hex');
let counter = 0;
let stampMs = -1;
let stamp = '';

function timestamp() {
  const ms = Date.now();
  if (ms !== stampMs) {
    stampMs = ms;
    stamp = new Date(ms).toISOString();
  }
  return stamp;
}

function envelope(type, payload, correlationId) {
  const metadata = { version: VERSION, source: 'server' };
  if (correlationId !== undefined) {
    metadata.correlation_id = correlationId;
  }
  counter += 1;
  return { id: `${node}-${counter}`, type, timestamp: timestamp(), payload, metadata };
}

function pong(ping) {
  const payload = { timestamp: Date.now() };
  const received = ping.payload;
  if (received !== null && typeof received === 'object' && 'timestamp' in received) {
    payload.echo = received.timestamp;
  }
  return envelope('pong', payload, ping.id);
}

// Authorization: Bearer first, then ?token=, as the reference server looks for it.
function extractToken(req) {
  const header = req.headers.authorization;
  if (typeof header === 'string' && header.startsWith('Bearer ')) {
    const token = header.slice(7).trim();
    if (token) return token;
  }
  const url = new URL(req.url, 'http://localhost');
  return url.searchParams.get('token');
}

function main() {
  const { host, port } = parseArgs(process.argv.slice(2));
  const secret = process.env.REP_JWT_SECRET;
  if (!secret) {
    throw new Error('REP_JWT_SECRET is not set');
  }

  const server = http.createServer((req, res) => {
    const path = new URL(req.url, 'http://localhost').pathname;
    if (req.method === 'GET' && path === '/health') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"status":"ok"}');
    } else if (path === PATH) {
      res.writeHead(426, { 'Content-Type': 'text/plain', Upgrade: 'websocket' });
      res.end('WebSocket upgrade required\n');
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found\n');
    }
  });

  const wss = new WebSocketServer({
    server,
    path: PATH,
    perMessageDeflate: false,
    handleProtocols: (protocols) => (protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false),
    verifyClient: (info, done) => {
      const token = extractToken(info.req);
      if (!token) {
        done(false, 401, 'Unauthorized');
        return;
      }
      try {
        info.req.user = jwt.verify(token, secret, { algorithms: ['HS256'] });
      } catch (error) {
        done(false, 401, 'Unauthorized');
        return;
      }
      done(true);
    },
  });

  let clients = 0;
  wss.on('connection', (ws) => {
    clients += 1;
    const clientId = `${node}-c${clients}`;
    ws.on('error', () => ws.terminate());
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      let message;
      try {
        message = JSON.parse(data);
      } catch (error) {
        ws.send(JSON.stringify(envelope('error', { error: 'Invalid message format' })));
        return;
      }
      if (message !== null && typeof message === 'object' && message.type === 'ping') {
        ws.send(JSON.stringify(pong(message)));
      }
    });
    ws.send(JSON.stringify(envelope('auth', { status: 'connected', clientId })));
  });

  const stop = () => {
    for (const client of wss.clients) client.terminate();
    wss.close();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  server.listen(port, host, () => {
    process.stderr.write(`node ws baseline on http://${host}:${port}${PATH}\n`);
  });
}

try {
  main();
} catch (error) {
  process.stderr.write(`server.js: ${error.message}\n`);
  process.exit(2);
}
