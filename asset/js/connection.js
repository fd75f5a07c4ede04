// The WebSocket to /chat (docs/chat-protocol.md): reconnects with backoff, keeps the
// connection honest with heartbeats, and owns the outbox — messages that have no ack
// yet. Each carries a `cid`; after a drop every unacked one is sent again with the same
// cid, and the server stores a cid once and acks the retry with `"dup": true`, so a
// message typed offline or in flight during a drop arrives exactly once.

const BACKOFF_FIRST = 500; // ms before the first retry; doubles each failure
const BACKOFF_MAX = 15000;
const HEARTBEAT_EVERY = 20000; // fastIM's cmd 0
const DEAD_AFTER = 45000; // no frame at all for this long: the connection is gone
const IN_FLIGHT_MAX = 16; // unacked messages on the wire at once
// The server allows 20 frames a second in bursts of 40 and closes a connection that
// sends faster (1008); the client stays well under that.
const RATE = 10;
const BURST = 20;
const RETRYABLE = new Set(['busy', 'store_failed']);

/**
 * Messages waiting for their ack, kept in localStorage under a key of the user's, so that
 * a message typed offline survives a reload, a closed tab and a restart of the browser,
 * and is sent on the next open (with its cid: the server stores it once). Several tabs
 * of one user share the key: each adds and removes its own entries by reading, changing
 * and writing the stored list, so one tab never writes over another's.
 */
class Outbox {
  constructor(key) {
    this.key = key;
    // What a tab of an older client kept in sessionStorage comes along once.
    const older = this.read(sessionStorage);
    if (older.length) {
      this.write([...this.read().filter((f) => !older.some((o) => o.cid === f.cid)), ...older]);
      try { sessionStorage.removeItem(key); } catch { /* disabled */ }
    }
    this.items = this.read();
  }

  read(storage = localStorage) {
    try {
      const items = JSON.parse(storage.getItem(this.key) || '[]');
      return Array.isArray(items) ? items.filter((f) => f && typeof f === 'object' && f.cid) : [];
    } catch { return []; }
  }

  write(items) {
    try { localStorage.setItem(this.key, JSON.stringify(items)); } catch { /* full or disabled */ }
  }

  add(frame) {
    this.items.push(frame);
    this.write([...this.read().filter((f) => f.cid !== frame.cid), frame]);
  }

  has(cid) { return this.items.some((f) => f.cid === cid); }

  remove(cid) {
    this.items = this.items.filter((f) => f.cid !== cid);
    const stored = this.read();
    if (stored.some((f) => f.cid === cid)) this.write(stored.filter((f) => f.cid !== cid));
  }
}

class TokenBucket {
  constructor(rate, burst) { this.rate = rate; this.burst = burst; this.tokens = burst; this.at = performance.now(); }

  take() {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

let cidCounter = 0;
const tabTag = Array.from(crypto.getRandomValues(new Uint8Array(5)), (b) => b.toString(36).padStart(2, '0')).join('');

/** A client id for a new message: unique per tab, at most 64 characters. */
export function newCid() {
  cidCounter += 1;
  return `${tabTag}-${Date.now().toString(36)}-${cidCounter}`;
}

/**
 * Events: `state` (detail: {state, retryAt}), `open`, `close`, `frame` (detail: the
 * parsed frame; every frame), `ack`, `rejected` (an error about one of our messages that
 * will not be retried), `unauthorized`.
 *
 * States: connecting, online, offline (waiting to retry at `retryAt`), waiting-network
 * (the browser says it is offline), stopped.
 */
export class ChatConnection extends EventTarget {
  constructor(url, outboxKey) {
    super();
    this.url = url;
    this.ws = null;
    this.state = 'stopped';
    this.attempt = 0;
    this.retryAt = 0;
    this.retryTimer = 0;
    this.heartbeatTimer = 0;
    this.flushTimer = 0;
    this.lastFrameAt = 0;
    this.openedOnce = false;
    this.outbox = new Outbox(outboxKey);
    this.inFlight = new Set();
    this.bucket = new TokenBucket(RATE, BURST);
    this.onBrowserOnline = () => { if (this.state !== 'online' && this.state !== 'connecting') this.open(); };
    // The browser says the network is gone: a socket that was open is as good as dead
    // (and may never report its end), so let it go now and wait for the network; what
    // had no ack is sent again, with its cid, when the connection is back.
    this.onBrowserOffline = () => {
      if (this.state === 'stopped') return;
      clearTimeout(this.retryTimer);
      const hadSocket = this.ws !== null;
      this.detach();
      if (hadSocket) this.emit('close', { code: 1006, opened: this.state === 'online' });
      this.setState('waiting-network');
    };
  }

  start() {
    window.addEventListener('online', this.onBrowserOnline);
    window.addEventListener('offline', this.onBrowserOffline);
    this.open();
  }

  stop() {
    window.removeEventListener('online', this.onBrowserOnline);
    window.removeEventListener('offline', this.onBrowserOffline);
    clearTimeout(this.retryTimer);
    this.detach();
    this.setState('stopped');
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  setState(state) {
    this.state = state;
    this.emit('state', { state, retryAt: this.retryAt });
  }

  /** Connect now (also the "Retry now" button). */
  open() {
    clearTimeout(this.retryTimer);
    this.detach();
    if (navigator.onLine === false) {
      this.setState('waiting-network');
      return;
    }
    this.setState('connecting');
    const ws = new WebSocket(this.url);
    this.ws = ws;
    let opened = false;
    ws.addEventListener('open', () => {
      if (ws !== this.ws) return;
      opened = true;
      this.openedOnce = true;
      this.attempt = 0;
      this.lastFrameAt = Date.now();
      this.setState('online');
      this.heartbeatTimer = setInterval(() => this.heartbeat(), HEARTBEAT_EVERY);
      this.emit('open');
      this.flush();
    });
    ws.addEventListener('message', (event) => {
      if (ws !== this.ws) return;
      this.lastFrameAt = Date.now();
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      if (frame && typeof frame === 'object') this.receive(frame);
    });
    ws.addEventListener('close', (event) => {
      if (ws !== this.ws) return;
      this.detach();
      this.emit('close', { code: event.code, opened });
      if (!opened) this.checkAuth();
      this.scheduleRetry();
    });
  }

  /** Forget the current socket (its late events are ignored) and close it. */
  detach() {
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.flushTimer);
    this.inFlight.clear();
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) {
      try { ws.close(1000); } catch { /* already closing */ }
    }
  }

  scheduleRetry() {
    if (this.state === 'stopped') return;
    if (navigator.onLine === false) {
      this.setState('waiting-network');
      return;
    }
    // Exponential backoff with jitter, so that after a server restart the clients do
    // not all come back in the same millisecond.
    const base = Math.min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** this.attempt);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => this.open(), delay);
    this.setState('offline');
  }

  /** A WebSocket refused before opening says nothing about why; /user/me tells a
   * logged-out user (401) from a server that is down. */
  async checkAuth() {
    try {
      const response = await fetch('/user/me', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (response.status === 401) {
        this.stop();
        this.emit('unauthorized');
      }
    } catch { /* unreachable: keep retrying */ }
  }

  heartbeat() {
    if (!this.ws) return;
    if (Date.now() - this.lastFrameAt > DEAD_AFTER) {
      // Nothing, not even the answer to the last heartbeat: a dead TCP connection
      // (sleeping laptop, lost Wi-Fi) may never report its own end.
      this.detach();
      this.emit('close', { code: 1006, opened: true });
      this.scheduleRetry();
      return;
    }
    this.sendControl({ cmd: 0 });
  }

  receive(frame) {
    if (frame.cmd === 1 && frame.cid !== undefined) {
      this.outbox.remove(frame.cid);
      this.inFlight.delete(frame.cid);
      this.emit('ack', frame);
      this.flush();
    } else if (frame.cmd === 2 && frame.cid !== undefined && frame.cid !== null && this.outbox.has(frame.cid)) {
      this.inFlight.delete(frame.cid);
      if (RETRYABLE.has(frame.error)) {
        // Nothing was stored: the same cid goes again a little later.
        clearTimeout(this.flushTimer);
        this.flushTimer = setTimeout(() => this.flush(), 1000);
      } else {
        this.outbox.remove(frame.cid);
        this.emit('rejected', frame);
      }
    }
    this.emit('frame', frame);
  }

  /** Queue a chat message (it must carry a `cid`); it is sent now or when back online. */
  sendMessage(frame) {
    this.outbox.add(frame);
    this.flush();
  }

  /** Drop a queued message that has not been sent (e.g. its upload was cancelled). */
  forget(cid) { this.outbox.remove(cid); }

  flush() {
    clearTimeout(this.flushTimer);
    if (this.state !== 'online' || !this.ws) return;
    for (const frame of this.outbox.items) {
      if (this.inFlight.has(frame.cid)) continue;
      if (this.inFlight.size >= IN_FLIGHT_MAX) return; // the next ack flushes again
      if (!this.bucket.take()) {
        this.flushTimer = setTimeout(() => this.flush(), 1000 / RATE);
        return;
      }
      const { localTs, ...wire } = frame; // localTs: when it was typed, for this screen only
      this.ws.send(JSON.stringify(wire));
      this.inFlight.add(frame.cid);
    }
  }

  /** Send a frame that is worth nothing later (typing, read marks, sync): only now. */
  sendControl(frame) {
    if (this.state !== 'online' || !this.ws) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }
}
