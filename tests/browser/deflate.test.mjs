// permessage-deflate between Chromium and wscodec: examples/echo built with
// `--features deflate` (ECHO_BIN) runs behind a byte-counting TCP proxy; a page
// opens a WebSocket through the proxy with the browser's defaults, and must
// have negotiated permessage-deflate, get its large text and binary messages
// back equal, and the proxy must have seen each take a small fraction of its
// size on the wire in both directions. Run by scripts/browser-test.sh.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const echoBinary = process.env.ECHO_BIN;
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const TIMEOUT = 10_000;
// A large message may take at most 1/MIN_RATIO of its size on the wire, each
// way. Uncompressed it would take more than its size.
const MIN_RATIO = 5;

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
];

/** Starts the echo server on a free port; resolves once it prints its address. */
async function startEcho() {
  const child = spawn(echoBinary, ['127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) {
    const found = line.match(/ws:\/\/127\.0\.0\.1:(\d+)/);
    if (found) return { child, port: Number(found[1]) };
  }
  throw new Error('the echo server exited before printing its address');
}

/**
 * A TCP proxy to `port` that counts the bytes going up (browser to server) and
 * down, and keeps the first bytes each way: the handshake.
 */
async function startProxy(port) {
  const counts = { up: 0, down: 0, headUp: '', headDown: '', connections: 0 };
  const sockets = new Set();
  const server = net.createServer((browser) => {
    counts.connections += 1;
    const upstream = net.connect(port, '127.0.0.1');
    for (const socket of [browser, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    }
    browser.on('data', (chunk) => {
      counts.up += chunk.length;
      if (counts.headUp.length < 4096) counts.headUp += chunk.toString('latin1');
    });
    upstream.on('data', (chunk) => {
      counts.down += chunk.length;
      if (counts.headDown.length < 4096) counts.headDown += chunk.toString('latin1');
    });
    browser.pipe(upstream);
    upstream.pipe(browser);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const close = () => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(resolve));
  };
  return { port: server.address().port, counts, close };
}

/**
 * A trivial page on loopback to run the test in: Chromium blocks a page at
 * about:blank from opening ws://127.0.0.1 (ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS),
 * but not a page that is on loopback itself.
 */
async function startPage() {
  const server = http.createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end('<!doctype html><meta charset="utf-8"><title>permessage-deflate</title>');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** The value of header `name` in the HTTP head at the start of `text`. */
function header(text, name) {
  const head = text.split('\r\n\r\n')[0];
  const line = head.split('\r\n').find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line?.slice(name.length + 1).trim();
}

test('Chromium and wscodec negotiate permessage-deflate and compress both ways', async (t) => {
  assert.ok(echoBinary, 'ECHO_BIN must be examples/echo built with --features deflate');
  const echo = await startEcho();
  t.after(() => echo.child.kill('SIGTERM'));
  const proxy = await startProxy(echo.port);
  t.after(() => proxy.close());
  const browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
  t.after(() => browser.close());
  const page = await browser.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  const site = await startPage();
  t.after(() => site.close());
  await page.goto(site.url);

  const url = `ws://127.0.0.1:${proxy.port}/`;
  const extensions = await page.evaluate(async (url) => {
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    window.ws = ws;
    window.received = [];
    window.waiting = null;
    ws.onmessage = (event) => {
      window.received.push(event.data);
      window.waiting?.();
    };
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error('the WebSocket failed to open'));
    });
    return ws.extensions;
  }, url);
  const offer = header(proxy.counts.headUp, 'Sec-WebSocket-Extensions');
  const answer = header(proxy.counts.headDown, 'Sec-WebSocket-Extensions');
  console.log(`Chromium offered ${JSON.stringify(offer)}, wscodec answered ${JSON.stringify(answer)}, ws.extensions = ${JSON.stringify(extensions)}`);
  assert.match(extensions, /^permessage-deflate\b/);
  assert.match(offer ?? '', /^permessage-deflate\b/);
  assert.match(answer ?? '', /^permessage-deflate\b/);

  // Each message is sent alone and its echo awaited, so what the counters move
  // by is that message, each way.
  const measured = [];
  for (const kind of ['text', 'binary', 'text']) {
    const before = { up: proxy.counts.up, down: proxy.counts.down };
    const result = await page.evaluate(async (kind) => {
      const records = [];
      for (let i = 0; i < 1700; i++) {
        records.push({ id: i, user: `user${i % 7}`, text: 'hello from the chat room' });
      }
      const json = JSON.stringify(records);
      const payload = kind === 'text' ? json : new TextEncoder().encode(json);
      const echoed = new Promise((resolve) => {
        window.waiting = resolve;
      });
      window.ws.send(payload);
      await echoed;
      const echo = window.received.shift();
      let equal;
      if (kind === 'text') {
        equal = echo === payload;
      } else {
        const bytes = new Uint8Array(echo);
        equal = bytes.length === payload.length && bytes.every((b, i) => b === payload[i]);
      }
      return { bytes: kind === 'text' ? new TextEncoder().encode(json).length : payload.length, equal };
    }, kind);
    assert.ok(result.equal, `the echo of the ${kind} message differs`);
    measured.push({
      kind,
      bytes: result.bytes,
      up: proxy.counts.up - before.up,
      down: proxy.counts.down - before.down,
    });
  }
  await page.evaluate(() => new Promise((resolve) => {
    window.ws.onclose = (event) => resolve(event.code);
    window.ws.close(1000);
  }));

  for (const m of measured) {
    console.log(`${m.kind} message of ${m.bytes} bytes: ${m.up} bytes up (Chromium to wscodec), ${m.down} down on the wire`);
  }
  for (const m of measured) {
    assert.ok(m.bytes >= 100_000, `${m.kind}: ${m.bytes} bytes`);
    assert.ok(
      m.up * MIN_RATIO < m.bytes && m.down * MIN_RATIO < m.bytes,
      `a ${m.kind} message of ${m.bytes} bytes took ${m.up} bytes up and ${m.down} down: not compressed (want under 1/${MIN_RATIO} each way)`,
    );
  }
  assert.equal(proxy.counts.connections, 1);
  assert.deepEqual(errors, []);
});
