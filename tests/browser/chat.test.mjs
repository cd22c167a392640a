// The chat page of examples/broadcast in a real browser (Debian's Chromium,
// driven by playwright-core): two people in one room see each other's
// messages, a third in another room does not, and one can switch rooms; the
// page reconnects by itself
// when the server goes away and comes back. Run by scripts/browser-test.sh,
// which starts the server (BROADCAST_URL) and gives the binary (BROADCAST_BIN)
// for the test that stops and restarts its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const url = process.env.BROADCAST_URL;
const serverBinary = process.env.BROADCAST_BIN;
const screenshots = process.env.SCREENSHOT_DIR ?? path.resolve('../../target/browser');
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const TIMEOUT = 10_000;

// Playwright gives every launch a fresh temporary profile (--user-data-dir)
// and deletes it on close.
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

/** A person: their own browser context (storage), on the page, named. */
async function open(browser, name, room = '', base = url) {
  const context = await browser.newContext({ viewport: { width: 900, height: 560 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  await page.goto(room ? `${base}#${room}` : base);
  await page.locator('#status[data-state="open"]').waitFor();
  await page.locator('#name').fill(name);
  await page.locator('#name').blur(); // commits the name: sends "/name NAME"
  await page.locator('#log li.notice', { hasText: `anonymous is now ${name}` }).waitFor();
  return { page, errors };
}

async function send(page, text) {
  await page.locator('#message').fill(text);
  await page.locator('#send').click();
}

function message(page, text) {
  return page.locator('#log li.message', { hasText: text });
}

test('a message sent in one page shows in the other pages of its room, only there; people can switch rooms', async (t) => {
  assert.ok(url, 'BROADCAST_URL must be the server, e.g. http://127.0.0.1:9002/');
  const browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
  t.after(() => browser.close());

  const alice = await open(browser, 'Alice');
  const bob = await open(browser, 'Bob');
  const carol = await open(browser, 'Carol', 'garden');
  await alice.page.locator('#log li.notice', { hasText: 'anonymous is now Bob' }).waitFor();
  assert.match(await carol.page.locator('#status-text').textContent(), /open · #garden/);

  // Markup in a message is shown as text, never interpreted.
  const hello = 'Hello Bob! <b>not bold</b> — ça va?';
  await send(alice.page, hello);
  const received = message(bob.page, hello);
  await received.waitFor();
  assert.equal(await received.locator('.name').textContent(), 'Alice');
  assert.match(await received.locator('.time').textContent(), /\d/);
  assert.equal(await bob.page.locator('#log b').count(), 0);
  // The sender gets its own message back, marked as its own.
  await message(alice.page, hello).and(alice.page.locator('.mine')).waitFor();

  await send(bob.page, 'Hi Alice, loud and clear.');
  await message(alice.page, 'loud and clear').waitFor();
  await message(bob.page, 'loud and clear').waitFor();

  // Another room hears nothing of it.
  await send(carol.page, 'Anyone in the garden?');
  await message(carol.page, 'Anyone in the garden?').waitFor();
  assert.equal(await message(carol.page, 'Hello Bob').count(), 0);
  assert.equal(await message(bob.page, 'garden').count(), 0);

  await mkdir(screenshots, { recursive: true });
  await bob.page.screenshot({ path: path.join(screenshots, 'chat.png') });
  await alice.page.screenshot({ path: path.join(screenshots, 'chat-alice.png') });

  // Bob switches rooms with the room field: he leaves the lobby, joins Carol.
  await bob.page.locator('#room').fill('garden');
  await bob.page.locator('#room-form button').click();
  await bob.page.locator('#status-text', { hasText: 'open · #garden' }).waitFor();
  await bob.page.locator('#log li.notice', { hasText: 'You joined #garden as Bob · 2 online: Carol, Bob' }).waitFor();
  assert.equal(await message(bob.page, 'Hello Bob').count(), 0, 'the log starts afresh');
  await alice.page.locator('#log li.notice', { hasText: 'Bob left · 1 online' }).waitFor();
  await carol.page.locator('#log li.notice', { hasText: 'Bob joined · 2 online' }).waitFor();
  assert.equal(new URL(bob.page.url()).hash, '#garden');

  for (const person of [alice, bob, carol]) assert.deepEqual(person.errors, []);
});

/** Starts the server binary on `address`; resolves once it prints its URL. */
async function startServer(address) {
  const child = spawn(serverBinary, [address], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) {
    const found = line.match(/http:\/\/127\.0\.0\.1:\d+\//);
    if (found) return { child, url: found[0], port: new URL(found[0]).port };
  }
  throw new Error('the server exited before printing its URL');
}

async function stopServer(server) {
  if (server.child.exitCode !== null) return server.child.exitCode;
  const exited = once(server.child, 'exit');
  server.child.kill('SIGINT');
  const [code] = await exited;
  return code;
}

test('the page shows the close and reconnects when the server comes back', async (t) => {
  assert.ok(serverBinary, 'BROADCAST_BIN must be the broadcast example binary');
  let server = await startServer('127.0.0.1:0');
  t.after(() => stopServer(server));
  const browser = await chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
  t.after(() => browser.close());
  const dave = await open(browser, 'Dave', '', server.url);

  // Ctrl-C on the server: every page is told 1001, then retries with backoff.
  assert.equal(await stopServer(server), 0);
  await dave.page.locator('#status[data-state="closed"]').waitFor();
  assert.match(await dave.page.locator('#status-text').textContent(), /closed · 1001 server shutting down · retrying in/);
  assert.ok(await dave.page.locator('#send').isDisabled());
  await mkdir(screenshots, { recursive: true });
  await dave.page.screenshot({ path: path.join(screenshots, 'chat-closed.png') });

  server = await startServer(`127.0.0.1:${server.port}`);
  await dave.page.locator('#status[data-state="open"]').waitFor();
  // It rejoins under the name it chose.
  await dave.page.locator('#log li.notice', { hasText: 'You joined #lobby as Dave' }).waitFor();
  await send(dave.page, 'back again');
  await message(dave.page, 'back again').waitFor();
  assert.deepEqual(dave.errors, []);
});
