// The chat page: one WebSocket to /ws/ROOM?name=NAME, reconnected with
// exponential backoff whenever it closes; a new name is sent as "/name NEW".
// User text only ever goes into the page through textContent, never as HTML.
'use strict';

const DEFAULT_ROOM = 'lobby';
const ROOM_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
const MAX_LOG_ENTRIES = 500;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10000;
// A connection that stayed open this long resets the backoff.
const STABLE_MS = 5000;

const $ = (id) => document.getElementById(id);
const ui = {
  roomForm: $('room-form'),
  room: $('room'),
  status: $('status'),
  statusText: $('status-text'),
  log: $('log'),
  sendForm: $('send-form'),
  name: $('name'),
  message: $('message'),
  send: $('send'),
};

let socket = null;
let attempt = 0;
let openedAt = 0;
let retryTimer = null;
let myName = '';

function currentRoom() {
  const room = decodeURIComponent(location.hash.slice(1));
  return ROOM_PATTERN.test(room) ? room : DEFAULT_ROOM;
}

function storedName() {
  try {
    return localStorage.getItem('chat.name') || '';
  } catch {
    return '';
  }
}

function storeName(name) {
  try {
    localStorage.setItem('chat.name', name);
  } catch {
    // Storage may be disabled; the name then lasts as long as the page.
  }
}

function setStatus(state, detail) {
  ui.status.dataset.state = state;
  ui.statusText.textContent = detail ? `${state} · ${detail}` : state;
  ui.send.disabled = state !== 'open';
}

function timeOf(millis) {
  return new Date(millis).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function append(item) {
  const log = ui.log;
  const main = log.parentElement;
  const atBottom = main.scrollHeight - main.scrollTop - main.clientHeight < 40;
  log.append(item);
  while (log.children.length > MAX_LOG_ENTRIES) log.firstElementChild.remove();
  if (atBottom) main.scrollTop = main.scrollHeight;
}

function span(className, text) {
  const element = document.createElement('span');
  element.className = className;
  element.textContent = text;
  return element;
}

function addMessage(event) {
  const item = document.createElement('li');
  item.className = event.name === myName ? 'message mine' : 'message';
  item.append(span('time', timeOf(event.time)), span('name', event.name), span('text', event.text));
  append(item);
}

function addNotice(text, millis = Date.now()) {
  const item = document.createElement('li');
  item.className = 'notice';
  item.append(span('time', timeOf(millis)), document.createTextNode(text));
  append(item);
}

function online(count) {
  return `${count} online`;
}

function onEvent(event) {
  switch (event.type) {
    case 'message':
      addMessage(event);
      break;
    case 'welcome':
      myName = event.name;
      addNotice(`You joined #${event.room} as ${event.name} · ${online(event.members.length)}: ${event.members.join(', ')}`, event.time);
      break;
    case 'rename':
      addNotice(`${event.from} is now ${event.name}`, event.time);
      break;
    case 'join':
      addNotice(`${event.name} joined · ${online(event.members)}`, event.time);
      break;
    case 'leave': {
      const why = event.reason ? ` (${event.reason})` : '';
      addNotice(`${event.name} left${why} · ${online(event.members)}`, event.time);
      break;
    }
    default:
      break; // a newer server's event: ignore
  }
}

function connect() {
  clearTimeout(retryTimer);
  const room = currentRoom();
  const name = ui.name.value.trim();
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const url = `${scheme}://${location.host}/ws/${room}?name=${encodeURIComponent(name)}`;
  setStatus('connecting', attempt ? `attempt ${attempt + 1}` : '');
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  socket = ws;

  ws.onopen = () => {
    if (socket !== ws) return;
    openedAt = Date.now();
    setStatus('open', `#${room}`);
  };
  ws.onmessage = (message) => {
    if (socket !== ws) return;
    if (typeof message.data !== 'string') {
      addNotice(`binary message, ${message.data.byteLength} bytes`);
      return;
    }
    try {
      onEvent(JSON.parse(message.data));
    } catch (error) {
      console.warn('unreadable message', message.data, error);
    }
  };
  ws.onclose = (close) => {
    if (socket !== ws) return; // replaced on purpose: no reconnect
    socket = null;
    const why = close.code === 1006 ? 'connection lost' : `${close.code}${close.reason ? ' ' + close.reason : ''}`;
    // Said once per lost connection, not for every failed retry.
    if (openedAt) addNotice(`Disconnected (${why})`);
    if (openedAt && Date.now() - openedAt > STABLE_MS) attempt = 0;
    openedAt = 0;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt) * (0.75 + Math.random() / 2);
    attempt += 1;
    setStatus('closed', `${why} · retrying in ${(delay / 1000).toFixed(1)} s`);
    retryTimer = setTimeout(connect, delay);
  };
}

// Replaces the connection (new room or name) at once, without backoff.
function reconnect() {
  const old = socket;
  socket = null;
  if (old) old.close(1000, 'switching');
  attempt = 0;
  connect();
}

ui.sendForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = ui.message.value;
  if (!text.trim() || !socket || socket.readyState !== WebSocket.OPEN) return;
  socket.send(text);
  ui.message.value = '';
  ui.message.focus();
});

ui.name.addEventListener('change', () => {
  const name = ui.name.value.trim();
  storeName(name);
  if (socket && socket.readyState === WebSocket.OPEN) {
    myName = name || 'anonymous';
    socket.send(`/name ${name}`);
  }
  // Otherwise the next connection carries it.
});

ui.roomForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const room = ui.room.value.trim();
  if (ROOM_PATTERN.test(room) && room !== currentRoom()) location.hash = room;
});

window.addEventListener('hashchange', () => {
  ui.room.value = currentRoom();
  ui.log.replaceChildren();
  reconnect();
});

ui.name.value = storedName();
ui.room.value = currentRoom();
connect();
