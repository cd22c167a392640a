// examples/axum_chat in a real browser (Debian's Chromium, driven by
// playwright-core): the page is served by axum and its WebSocket upgraded by
// wscodec::axum::WebSocketUpgrade. Two people join; each sees what the other
// says; the browser negotiated permessage-deflate and the chat subprotocol
// with the extractor. Run by scripts/browser-test.sh, which builds the
// example (AXUM_CHAT_BIN); the test starts it on a free loopback port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const serverBinary = process.env.AXUM_CHAT_BIN;
const screenshots = process.env.SCREENSHOT_DIR ?? path.resolve('../../target/browser');
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

/** Starts the example on a free port; resolves once it prints its URL. */
async function startServer() {
  const child = spawn(serverBinary, ['127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) {
    const found = line.match(/http:\/\/127\.0\.0\.1:\d+\//);
    if (found) return { child, url: found[0] };
  }
  throw new Error('axum_chat exited before printing its URL');
}

async function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

/** A person on the page, joined under `name`. */
async function join(browser, url, name) {
  const context = await browser.newContext({ viewport: { width: 800, height: 520 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  await page.goto(url);
  await page.locator('#name').fill(name);
  await page.locator('#join button').click();
  await page.locator('#status[data-state="open"]').waitFor();
  await page.locator('#log li', { hasText: `* ${name} joined` }).waitFor();
  return { page, errors };
}

async function say(page, text) {
  await page.locator('#message').fill(text);
  await page.locator('#send').click();
}

test('Chromium chats through the axum extractor with permessage-deflate negotiated', async (t) => {
  assert.ok(serverBinary, 'AXUM_CHAT_BIN must be examples/axum_chat (features axum, deflate)');
  const server = await startServer();
  t.after(() => stopServer(server.child));
  const browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
  t.after(() => browser.close());

  const alice = await join(browser, server.url, 'alice');
  const bob = await join(browser, server.url, 'bob');
  await alice.page.locator('#log li', { hasText: '* bob joined' }).waitFor();

  // What the browser accepted from the extractor's 101.
  for (const person of [alice, bob]) {
    const status = person.page.locator('#status');
    const extensions = await status.getAttribute('data-extensions');
    console.log(`ws.extensions = ${JSON.stringify(extensions)}`);
    assert.match(extensions, /^permessage-deflate\b/);
    assert.equal(await status.getAttribute('data-protocol'), 'chat.v1');
  }

  // Markup is shown as text; a long line goes through compressed.
  const hello = 'Hello Bob! <b>not bold</b> — ça va?';
  await say(alice.page, hello);
  await bob.page.locator('#log li', { hasText: `alice: ${hello}` }).waitFor();
  assert.equal(await bob.page.locator('#log b').count(), 0);
  const long = 'la '.repeat(2000).trim();
  await say(bob.page, long);
  const received = alice.page.locator('#log li', { hasText: 'bob: la la' });
  await received.waitFor();
  assert.equal(await received.textContent(), `bob: ${long}`);

  await mkdir(screenshots, { recursive: true });
  await alice.page.screenshot({ path: path.join(screenshots, 'axum-chat.png') });

  // Bob leaves with a normal close; Alice is told.
  await bob.page.evaluate(() => ws.close(1000));
  await bob.page.locator('#status[data-state="closed"]').waitFor();
  assert.match(await bob.page.locator('#status').textContent(), /closed · 1000/);
  await alice.page.locator('#log li', { hasText: '* bob left' }).waitFor();

  for (const person of [alice, bob]) assert.deepEqual(person.errors, []);
});
