// WebSockets over HTTP/2 (RFC 8441) between Chromium and examples/broadcast:
// the server (H2_BROADCAST_BIN, built with --features http2,deflate) runs with
// --tls-cert/--tls-key (TLS_CERT, TLS_KEY: a self-signed certificate for
// 127.0.0.1). The browser loads the page over HTTPS, which ALPN makes HTTP/2,
// and the page opens wss:// to the same origin. Chromium sends that WebSocket
// as an extended CONNECT on the HTTP/2 connection it already holds when the
// server advertised SETTINGS_ENABLE_CONNECT_PROTOCOL, and over a new HTTP/1.1
// connection otherwise. The server numbers its connections: the page's
// responses carry X-Broadcast-Connection, and the WebSocket's welcome says
// {"transport":"h2"|"http/1.1","connection":N,"deflate":...}. Run by
// scripts/browser-test.sh.
//
// The browser contexts ignore certificate errors (ignoreHTTPSErrors); with
// that, Chromium 156 still uses HTTP/2 for the page and opens the WebSocket
// on the page's connection, so trusting the certificate by its key's hash
// (--ignore-certificate-errors-spki-list) is not needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const serverBinary = process.env.H2_BROADCAST_BIN;
const cert = process.env.TLS_CERT;
const key = process.env.TLS_KEY;
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const TIMEOUT = 10_000;

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

/** Starts broadcast over TLS with `extra` flags; resolves once it prints its URL. */
async function startServer(extra = []) {
  const args = ['127.0.0.1:0', '--tls-cert', cert, '--tls-key', key, ...extra];
  const child = spawn(serverBinary, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) {
    const found = line.match(/https:\/\/127\.0\.0\.1:\d+\//);
    if (found) return { child, url: found[0] };
  }
  throw new Error('the server exited before printing its URL');
}

async function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = once(child, 'exit');
  child.kill('SIGINT');
  const [code] = await exited;
  return code;
}

function launch() {
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
}

/**
 * A person: their own browser context (so their own connections), on the
 * page. Resolves with what the server and the browser say about the page's
 * connection and the WebSocket's: the page's X-Broadcast-Connection and
 * HTTP version, the welcome, ws.extensions.
 */
async function open(browser, url, name) {
  const context = await browser.newContext({
    viewport: { width: 900, height: 560 },
    ignoreHTTPSErrors: true, // the certificate is self-signed
  });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  const welcome = new Promise((resolve) => {
    page.on('websocket', (ws) => {
      ws.on('framereceived', ({ payload }) => {
        const event = typeof payload === 'string' ? JSON.parse(payload) : null;
        if (event?.type === 'welcome') resolve(event);
      });
    });
  });
  const response = await page.goto(url);
  assert.equal(response.status(), 200);
  await page.locator('#status[data-state="open"]').waitFor();
  const pageConnection = Number(response.headers()['x-broadcast-connection']);
  const pageProtocol = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
  const extensions = await page.evaluate(() => socket.extensions);
  await page.locator('#name').fill(name);
  await page.locator('#name').blur(); // commits the name: sends "/name NAME"
  await page.locator('#log li.notice', { hasText: `anonymous is now ${name}` }).waitFor();
  return { page, errors, pageConnection, pageProtocol, welcome: await welcome, extensions };
}

/**
 * The check this test is about: the WebSocket came as an extended CONNECT on
 * the HTTP/2 connection that served the page. Over HTTP/1.1 it would come on
 * a connection of its own (the page's responses say Connection: close).
 */
function onPagesH2Connection(person) {
  return (
    person.pageProtocol === 'h2' &&
    person.welcome.transport === 'h2' &&
    Number.isInteger(person.pageConnection) &&
    person.welcome.connection === person.pageConnection
  );
}

async function send(page, text) {
  await page.locator('#message').fill(text);
  await page.locator('#send').click();
}

function message(page, text) {
  return page.locator('#log li.message', { hasText: text });
}

/** Closes the page's WebSocket with 1000 and resolves with its close event. */
function closeSocket(page) {
  return page.evaluate(() => new Promise((resolve) => {
    const ws = socket;
    socket = null; // the page then does not reconnect
    ws.addEventListener('close', (e) => resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean }));
    ws.close(1000, 'bye');
  }));
}

test('Chromium opens the chat WebSocket on the page\'s HTTP/2 connection, chats both ways with deflate, and closes cleanly', async (t) => {
  assert.ok(serverBinary && cert && key, 'H2_BROADCAST_BIN, TLS_CERT and TLS_KEY must be set');
  const server = await startServer();
  t.after(() => stopServer(server.child));
  const browser = await launch();
  t.after(() => browser.close());

  const alice = await open(browser, server.url, 'Alice');
  const bob = await open(browser, server.url, 'Bob');
  for (const person of [alice, bob]) {
    console.log(`page over ${person.pageProtocol} on connection ${person.pageConnection}; welcome ${JSON.stringify(person.welcome)}; ws.extensions ${JSON.stringify(person.extensions)}`);
    assert.equal(person.pageProtocol, 'h2', 'the page came over HTTP/2');
    assert.equal(person.welcome.transport, 'h2', 'the WebSocket is an extended CONNECT');
    assert.equal(person.welcome.connection, person.pageConnection, 'on the page\'s connection');
    assert.ok(onPagesH2Connection(person));
    assert.equal(person.welcome.deflate, true, 'the server negotiated permessage-deflate');
    assert.match(person.extensions, /^permessage-deflate\b/, 'and Chromium agreed');
  }
  assert.notEqual(alice.pageConnection, bob.pageConnection, 'two contexts, two connections');

  // Both ways, short and long (a long line is compressed both ways).
  await alice.page.locator('#log li.notice', { hasText: 'anonymous is now Bob' }).waitFor();
  await send(alice.page, 'Hello Bob, over HTTP/2');
  await message(bob.page, 'Hello Bob, over HTTP/2').waitFor();
  const long = `Hi Alice: ${'all of this fits in one stream of one connection. '.repeat(200)}`;
  await send(bob.page, long);
  await message(alice.page, 'Hi Alice: all of this').waitFor();
  await message(bob.page, 'Hi Alice: all of this').and(bob.page.locator('.mine')).waitFor();
  assert.equal(await message(alice.page, 'Hi Alice').locator('.text').textContent(), long);

  // Our close: the server answers it, Chromium sees a clean 1000, and the
  // room hears that Bob left.
  const closed = await closeSocket(bob.page);
  assert.deepEqual(closed, { code: 1000, reason: '', wasClean: true }, 'the server echoes the code (RFC 6455 §5.5.1)');
  await alice.page.locator('#log li.notice', { hasText: 'Bob left · 1 online' }).waitFor();

  // The server's close (shutdown): 1001, clean, on the HTTP/2 stream.
  // (The listener is in place before the signal goes.)
  await alice.page.evaluate(() => {
    const ws = socket;
    window.serverClose = new Promise((resolve) => {
      ws.addEventListener('close', (e) => resolve({ code: e.code, wasClean: e.wasClean }));
    });
  });
  assert.equal(await stopServer(server.child), 0, 'the server shuts down cleanly');
  assert.deepEqual(await alice.page.evaluate(() => window.serverClose), { code: 1001, wasClean: true });
  for (const person of [alice, bob]) assert.deepEqual(person.errors, []);
});

test('without SETTINGS_ENABLE_CONNECT_PROTOCOL Chromium falls back to HTTP/1.1, and the check notices', async (t) => {
  assert.ok(serverBinary && cert && key, 'H2_BROADCAST_BIN, TLS_CERT and TLS_KEY must be set');
  const server = await startServer(['--no-h2-websocket']);
  t.after(() => stopServer(server.child));
  const browser = await launch();
  t.after(() => browser.close());

  const carol = await open(browser, server.url, 'Carol');
  console.log(`page over ${carol.pageProtocol} on connection ${carol.pageConnection}; welcome ${JSON.stringify(carol.welcome)}`);
  assert.equal(carol.pageProtocol, 'h2', 'the page still came over HTTP/2');
  assert.equal(carol.welcome.transport, 'http/1.1', 'the WebSocket fell back to HTTP/1.1');
  assert.notEqual(carol.welcome.connection, carol.pageConnection, 'on a connection of its own');
  assert.equal(onPagesH2Connection(carol), false, 'the check of the first test fails here');
  assert.equal(carol.welcome.deflate, true);
  await send(carol.page, 'still chatting');
  await message(carol.page, 'still chatting').waitFor();
  assert.deepEqual(await closeSocket(carol.page), { code: 1000, reason: '', wasClean: true });
  assert.deepEqual(carol.errors, []);
});
