// <queue-status>: a customer's place in an Amazon Connect queue, live from queuecast.
//
//   <script type="module" src="https://queuecast.example/static/queue-status.js"></script>
//   <queue-status server="wss://queuecast.example" contact="…" token="…" lang="en"></queue-status>
//
// No dependencies, no build step. Styles are constructable stylesheets (allowed under a strict
// `style-src`), text goes in with textContent only. docs/widget.md is the manual.

const TAG = "queue-status";
const RECONNECT_BASE_MS = 500;
const RECONNECT_CAP_MS = 30000;
const PING_EVERY_MS = 25000;
const PONG_WITHIN_MS = 10000;
const FATAL_ERRORS = new Set(["bad_id", "bad_instance", "forbidden", "unauthorized", "invalid_token"]);

// ---- strings -------------------------------------------------------------------------------
// Templates: {n} a formatted number, {ordinal} an ordinal, {duration} a formatted duration,
// {time} a relative time. Plural/ordinal variants are keyed by Intl.PluralRules categories.
const STRINGS = {
  en: {
    title: "Your place in the queue",
    connecting: "Finding your place in line…",
    position: "You are {ordinal} in line",
    next: "You're next",
    ordinal: { one: "{n}st", two: "{n}nd", few: "{n}rd", other: "{n}th" },
    ahead: { one: "{n} person ahead of you", other: "{n} people ahead of you" },
    aheadNone: "Nobody is ahead of you",
    waitLabel: "Estimated wait",
    about: "about {duration}",
    lessThanMinute: "less than a minute",
    waitUnknown: "not known yet",
    updating: "updating…",
    live: "Live",
    reconnecting: "Reconnecting…",
    retry: "Try again",
    updated: "Updated {time}",
    connectingAgent: "Connecting you to an agent",
    connectingAgentDetail: "Thank you for waiting. Please stay on the line.",
    left: "You have left the queue",
    leftDetail: "This conversation is no longer waiting for an agent.",
    error: "We can't show your place in line right now.",
    announcePosition: "You are {ordinal} in line. Estimated wait: {wait}.",
    announceNext: "You're next. Estimated wait: {wait}.",
    announceWait: "Estimated wait is now {wait}.",
  },
  es: {
    title: "Su lugar en la cola",
    connecting: "Buscando su lugar en la cola…",
    position: "Está en el puesto {ordinal}",
    next: "Es su turno a continuación",
    ordinal: { other: "{n}.º" },
    ahead: { one: "{n} persona delante de usted", other: "{n} personas delante de usted" },
    aheadNone: "No hay nadie delante de usted",
    waitLabel: "Espera estimada",
    about: "aproximadamente {duration}",
    lessThanMinute: "menos de un minuto",
    waitUnknown: "aún no se conoce",
    updating: "actualizando…",
    live: "En directo",
    reconnecting: "Reconectando…",
    retry: "Reintentar",
    updated: "Actualizado {time}",
    connectingAgent: "Le estamos conectando con un agente",
    connectingAgentDetail: "Gracias por esperar. No cuelgue, por favor.",
    left: "Ha salido de la cola",
    leftDetail: "Esta conversación ya no está esperando a un agente.",
    error: "Ahora mismo no podemos mostrar su lugar en la cola.",
    announcePosition: "Está en el puesto {ordinal}. Espera estimada: {wait}.",
    announceNext: "Es su turno a continuación. Espera estimada: {wait}.",
    announceWait: "La espera estimada es ahora {wait}.",
  },
  de: {
    title: "Ihr Platz in der Warteschlange",
    connecting: "Ihr Platz wird ermittelt…",
    position: "Sie sind an {ordinal} Stelle",
    next: "Sie sind als Nächstes dran",
    ordinal: { other: "{n}." },
    ahead: { one: "{n} Person vor Ihnen", other: "{n} Personen vor Ihnen" },
    aheadNone: "Niemand ist vor Ihnen",
    waitLabel: "Geschätzte Wartezeit",
    about: "etwa {duration}",
    lessThanMinute: "weniger als eine Minute",
    waitUnknown: "noch unbekannt",
    updating: "wird aktualisiert…",
    live: "Live",
    reconnecting: "Verbindung wird wiederhergestellt…",
    retry: "Erneut versuchen",
    updated: "Aktualisiert {time}",
    connectingAgent: "Sie werden mit einem Mitarbeiter verbunden",
    connectingAgentDetail: "Danke für Ihre Geduld. Bitte bleiben Sie in der Leitung.",
    left: "Sie haben die Warteschlange verlassen",
    leftDetail: "Dieses Gespräch wartet nicht mehr auf einen Mitarbeiter.",
    error: "Ihr Platz in der Warteschlange kann gerade nicht angezeigt werden.",
    announcePosition: "Sie sind an {ordinal} Stelle. Geschätzte Wartezeit: {wait}.",
    announceNext: "Sie sind als Nächstes dran. Geschätzte Wartezeit: {wait}.",
    announceWait: "Die geschätzte Wartezeit beträgt jetzt {wait}.",
  },
};

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, key) => (key in values ? values[key] : whole));
}

/** Text for one language tag, through Intl; `overrides` are the host page's strings. */
class Texts {
  constructor(tag, overrides) {
    const base = tag.toLowerCase().split("-")[0];
    const builtIn = STRINGS[tag] || STRINGS[base] || STRINGS.en;
    const shared = QueueStatusElement.strings[tag] || QueueStatusElement.strings[base] || {};
    this.s = { ...STRINGS.en, ...builtIn, ...shared, ...(overrides || {}) };
    const known = STRINGS[tag] || STRINGS[base] || QueueStatusElement.strings[tag] || QueueStatusElement.strings[base];
    this.lang = known || overrides ? tag : "en";
    const safe = (make) => {
      try { return make(this.lang); } catch { return make("en"); }
    };
    this.number = safe((l) => new Intl.NumberFormat(l));
    this.cardinal = safe((l) => new Intl.PluralRules(l));
    this.ordinalRules = safe((l) => new Intl.PluralRules(l, { type: "ordinal" }));
    this.relative = safe((l) => new Intl.RelativeTimeFormat(l, { numeric: "auto" }));
    const unit = (u) => safe((l) => new Intl.NumberFormat(l, { style: "unit", unit: u, unitDisplay: "long", maximumFractionDigits: 1 }));
    this.minutes = unit("minute");
    this.hours = unit("hour");
  }

  variant(table, rules, n) {
    if (typeof table === "string") return table;
    return table[rules.select(n)] ?? table.other;
  }

  ordinal(n) {
    return fill(this.variant(this.s.ordinal, this.ordinalRules, n), { n: this.number.format(n) });
  }

  position(n) {
    return n === 1 ? this.s.next : fill(this.s.position, { ordinal: this.ordinal(n) });
  }

  ahead(n) {
    if (n <= 0) return this.s.aheadNone;
    return fill(this.variant(this.s.ahead, this.cardinal, n), { n: this.number.format(n) });
  }

  /** "about 2 minutes", "less than a minute": the wait in plain words. */
  wait(seconds) {
    if (seconds == null) return this.s.waitUnknown;
    if (seconds < 60) return this.s.lessThanMinute;
    const minutes = Math.round(seconds / 60);
    const duration = minutes < 60 ? this.minutes.format(minutes) : this.hours.format(Math.round(minutes / 6) / 10);
    return fill(this.s.about, { duration });
  }

  updated(secondsAgo) {
    const ago = secondsAgo < 10 ? 0 : secondsAgo < 60 ? -Math.floor(secondsAgo / 10) * 10 : -Math.floor(secondsAgo / 60);
    const unit = secondsAgo < 60 ? "second" : "minute";
    return fill(this.s.updated, { time: this.relative.format(ago, unit) });
  }
}

// ---- styles --------------------------------------------------------------------------------
const CSS = `
:host {
  --qs-font: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  --qs-bg: #ffffff;
  --qs-fg: #172033;
  --qs-muted: #5b6478;
  --qs-accent: #4f46e5;
  --qs-accent-soft: #eef0ff;
  --qs-success: #0f8a5f;
  --qs-success-soft: #e6f6ef;
  --qs-warning: #b45309;
  --qs-warning-soft: #fff4e0;
  --qs-border: #e3e6ee;
  --qs-radius: 18px;
  --qs-shadow: 0 1px 2px rgb(16 24 40 / 6%), 0 8px 24px rgb(16 24 40 / 8%);
  --qs-padding: clamp(16px, 4vw, 24px);
  --qs-max-width: 420px;
  display: block;
  max-width: var(--qs-max-width);
  font-family: var(--qs-font);
  color: var(--qs-fg);
  line-height: 1.4;
}
:host([hidden]) { display: none; }
@media (prefers-color-scheme: dark) {
  :host(:not([theme="light"])) {
    --qs-bg: #161b29; --qs-fg: #eef1f8; --qs-muted: #a3abc0; --qs-accent: #8b93ff;
    --qs-accent-soft: #252b48; --qs-success: #4cd49c; --qs-success-soft: #173328;
    --qs-warning: #fbbf63; --qs-warning-soft: #3a2c14; --qs-border: #2a3145;
    --qs-shadow: 0 8px 24px rgb(0 0 0 / 35%);
  }
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
.card {
  background: var(--qs-bg);
  border: 1px solid var(--qs-border);
  border-radius: var(--qs-radius);
  box-shadow: var(--qs-shadow);
  padding: var(--qs-padding);
  display: grid;
  gap: 16px;
}
.head { display: flex; align-items: center; justify-content: space-between; gap: 12px; }
.title { margin: 0; font-size: 0.875rem; font-weight: 600; color: var(--qs-muted); letter-spacing: 0.01em; }
.pill {
  display: inline-flex; align-items: center; gap: 6px; padding: 3px 10px; border-radius: 999px;
  font-size: 0.75rem; font-weight: 600; white-space: nowrap;
  background: var(--qs-success-soft); color: var(--qs-success);
}
.pill::before { content: ""; width: 7px; height: 7px; border-radius: 50%; background: currentColor; }
.pill[data-kind="live"]::before { animation: pulse 2s ease-in-out infinite; }
.pill[data-kind="stale"], .pill[data-kind="reconnecting"] { background: var(--qs-warning-soft); color: var(--qs-warning); }
.pill[data-kind="connecting"] { background: var(--qs-accent-soft); color: var(--qs-accent); }
@keyframes pulse { 50% { opacity: 0.35; } }
.main { display: flex; align-items: center; gap: 16px; }
.badge {
  flex: none; width: 64px; height: 64px; border-radius: 50%;
  display: grid; place-items: center; font-size: 1.625rem; font-weight: 700;
  background: var(--qs-accent-soft); color: var(--qs-accent);
  font-variant-numeric: tabular-nums;
  transition: transform 300ms ease;
}
.badge.bump { transform: scale(1.12); }
.position { margin: 0; font-size: clamp(1.25rem, 5vw, 1.5rem); font-weight: 700; line-height: 1.2; }
.ahead { margin: 4px 0 0; color: var(--qs-muted); font-size: 0.9375rem; }
.wait { display: grid; gap: 8px; padding-top: 16px; border-top: 1px solid var(--qs-border); }
.wait-row { display: flex; align-items: baseline; justify-content: space-between; gap: 12px; flex-wrap: wrap; }
.wait-label { color: var(--qs-muted); font-size: 0.875rem; }
.wait-value { font-size: 1.125rem; font-weight: 650; }
.bar { height: 6px; border-radius: 999px; background: var(--qs-accent-soft); overflow: hidden; }
.bar > span {
  display: block; height: 100%; width: 100%; border-radius: inherit; background: var(--qs-accent);
  transform-origin: left center; transition: transform 1s linear;
}
.foot { display: flex; align-items: center; justify-content: space-between; gap: 12px; min-height: 1.5em; }
.updated { margin: 0; color: var(--qs-muted); font-size: 0.8125rem; }
button {
  font: inherit; font-size: 0.8125rem; font-weight: 600; color: var(--qs-accent);
  background: transparent; border: 1px solid currentColor; border-radius: 999px; padding: 4px 12px;
  cursor: pointer;
}
button:hover { background: var(--qs-accent-soft); }
button:focus-visible { outline: 3px solid var(--qs-accent); outline-offset: 2px; }
.final { display: flex; align-items: center; gap: 16px; }
.final .icon {
  flex: none; width: 56px; height: 56px; border-radius: 50%; display: grid; place-items: center;
  background: var(--qs-success-soft); color: var(--qs-success);
}
.final[data-outcome="left"] .icon, .final[data-outcome="error"] .icon { background: var(--qs-accent-soft); color: var(--qs-muted); }
.final svg { width: 28px; height: 28px; }
.final-title { margin: 0; font-size: 1.25rem; font-weight: 700; line-height: 1.25; }
.final-detail { margin: 4px 0 0; color: var(--qs-muted); font-size: 0.9375rem; }
.skeleton { height: 64px; border-radius: 12px; background: linear-gradient(90deg, var(--qs-accent-soft), var(--qs-bg), var(--qs-accent-soft)); background-size: 200% 100%; animation: shimmer 1.4s linear infinite; }
@keyframes shimmer { to { background-position: -200% 0; } }
.sr-only { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
@media (prefers-reduced-motion: reduce) {
  .pill::before, .skeleton { animation: none !important; }
  .bar > span, .badge { transition: none !important; }
}
`;

let sheet = null;
function styleSheet() {
  if (!sheet) {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
  }
  return sheet;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function icon(paths) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("fill", "none");
  svg.setAttribute("stroke", "currentColor");
  svg.setAttribute("stroke-width", "2.2");
  svg.setAttribute("stroke-linecap", "round");
  svg.setAttribute("stroke-linejoin", "round");
  svg.setAttribute("aria-hidden", "true");
  for (const d of paths) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}
const ICONS = {
  connecting: ["M22 16.9v3a2 2 0 0 1-2.2 2 19.8 19.8 0 0 1-8.6-3.1 19.5 19.5 0 0 1-6-6A19.8 19.8 0 0 1 2.1 4.2 2 2 0 0 1 4.1 2h3a2 2 0 0 1 2 1.7c.1.9.4 1.8.7 2.7a2 2 0 0 1-.5 2.1L8 9.8a16 16 0 0 0 6 6l1.3-1.3a2 2 0 0 1 2.1-.4c.9.3 1.8.6 2.7.7a2 2 0 0 1 1.7 2z"],
  left: ["M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4", "M16 17l5-5-5-5", "M21 12H9"],
  error: ["M12 8v5", "M12 16.5v.01", "M10.3 3.9 1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0z"],
};

function el(tag, className, part) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (part) node.setAttribute("part", part);
  return node;
}

function wsBase() {
  const url = new URL(import.meta.url);
  return `${url.protocol === "https:" ? "wss:" : "ws:"}//${url.host}`;
}

// ---- the element ---------------------------------------------------------------------------
export class QueueStatusElement extends HTMLElement {
  /** Strings a host page adds for every widget: `QueueStatusElement.strings.fr = {...}`. */
  static strings = {};

  static defineStrings(lang, strings) {
    QueueStatusElement.strings[lang] = { ...(QueueStatusElement.strings[lang] || {}), ...strings };
    for (const node of document.querySelectorAll(TAG)) {
      node._textsCache = null;
      node._render();
    }
  }

  static get observedAttributes() {
    return ["server", "contact", "instance", "token", "lang", "callback-after", "deflect-position"];
  }

  constructor() {
    super();
    this._root = this.attachShadow({ mode: "open" });
    this._root.adoptedStyleSheets = [styleSheet()];
    this._strings = null;
    this._ws = null;
    this._timer = null; // reconnect timer
    this._tick = null; // 1 s render tick
    this._pingTimer = null;
    this._pongTimer = null;
    this._attempt = 0;
    this._connected = false;
    this._token = null; // set through the `token` property: never in the DOM
    this._build();
    this._reset();
  }

  // -- public API ----------------------------------------------------------------------------

  /** A copy of what the widget shows now. */
  get state() {
    const s = this._s;
    return Object.freeze({
      contact: s.contact, queue: s.queue, status: s.status, position: s.position, ewt: s.ewt,
      remaining: this._remaining(), stale: s.stale, seq: s.seq, at: s.at, enqueued: s.enqueued,
      reason: s.reason, outcome: s.outcome, connection: s.connection, lang: this._texts().lang,
    });
  }

  /**
   * The access token, kept in memory: set it here rather than as the `token` attribute, so it
   * is never in the DOM, where session-replay and analytics scripts record attributes. Setting
   * a new one re-authenticates, as the attribute does. Reading it gives whether one is set.
   */
  get token() { return Boolean(this._token || this.getAttribute("token")); }
  set token(value) {
    const old = this._currentToken();
    this._token = value || null;
    this._tokenChanged(old, this._currentToken());
  }

  _currentToken() { return this._token || this.getAttribute("token"); }

  /** Host-supplied strings for this widget only (merged over the language's strings). */
  get strings() { return this._strings; }
  set strings(value) { this._strings = value; this._textsCache = null; this._render(); }

  /** Drop the connection and open a new one now (backoff reset). Nothing once ended. */
  reconnect() {
    if (this._s.status === "ended" || !this.isConnected) return;
    this._attempt = 0;
    this._closeSocket();
    this._clearTimer();
    this._open();
  }

  // -- lifecycle -----------------------------------------------------------------------------

  connectedCallback() {
    this._onOnline = () => { if (this._s.connection === "reconnecting") this.reconnect(); };
    window.addEventListener("online", this._onOnline);
    this._started = true;
    this._render();
    if (!this._ws && !this._timer) this._open();
  }

  disconnectedCallback() {
    window.removeEventListener("online", this._onOnline);
    this._started = false;
    this._stop("idle");
  }

  attributeChangedCallback(name, old, value) {
    if (old === value) return;
    if (name === "lang") { this._textsCache = null; this._render(); return; }
    if (name === "token") {
      if (!this._token) this._tokenChanged(old, value);
      return;
    }
    if (name === "callback-after" || name === "deflect-position") return;
    if (!this._started) return; // the initial attributes: connectedCallback opens
    // server, contact or instance: start again from scratch.
    this._stop("idle");
    this._reset();
    this._render();
    this._open();
  }

  _tokenChanged(old, value) {
    if (old === value) return;
    if (this._started && this._s.status === "error") {
      // Refused before (e.g. unauthorized): a new token is worth a new attempt.
      this._s.status = this._s.seq ? "waiting" : "connecting";
      this._s.reason = null;
      this._attempt = 0;
      this._render();
      this._open();
      return;
    }
    // A new token re-authenticates on the same socket (e.g. after `token-expired`).
    if (value && this._ws && this._ws.readyState === WebSocket.OPEN) {
      this._send({ op: "auth", token: value });
      this._subscribe();
    }
  }

  // -- connection ----------------------------------------------------------------------------

  _open() {
    const contact = this.getAttribute("contact");
    if (!contact || this._s.status === "ended") return;
    this._s.contact = contact;
    const base = (this.getAttribute("server") || wsBase()).replace(/\/+$/, "");
    let ws;
    try {
      ws = new WebSocket(`${base}/ws`);
    } catch (error) {
      this._fail("bad_server", String(error));
      return;
    }
    this._ws = ws;
    this._setConnection(this._s.connection === "idle" ? "connecting" : "reconnecting");
    ws.onopen = () => {
      if (ws !== this._ws) return;
      const token = this._currentToken();
      if (token) this._send({ op: "auth", token });
      this._subscribe();
      this._schedulePing();
    };
    ws.onmessage = (message) => { if (ws === this._ws) this._onMessage(message.data); };
    ws.onclose = () => { if (ws === this._ws) this._onClose(); };
    ws.onerror = () => {}; // a close follows; the reconnect happens there
  }

  _subscribe() {
    const message = { op: "subscribe", contact: this.getAttribute("contact") };
    const instance = this.getAttribute("instance");
    if (instance) message.instance = instance;
    if (this._s.seq > 0) message.since = this._s.seq;
    this._send(message);
  }

  _send(message) {
    if (this._ws && this._ws.readyState === WebSocket.OPEN) this._ws.send(JSON.stringify(message));
  }

  _schedulePing() {
    clearTimeout(this._pingTimer);
    this._pingTimer = setTimeout(() => {
      this._send({ op: "ping" });
      clearTimeout(this._pongTimer);
      // No answer at all: the socket is dead without knowing it; start again.
      this._pongTimer = setTimeout(() => this._ws && this._ws.close(), PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  _onMessage(data) {
    clearTimeout(this._pongTimer);
    this._schedulePing();
    let message;
    try { message = JSON.parse(data); } catch { return; }
    if (!message || typeof message !== "object") return;
    if (this._s.connection !== "open") { this._setConnection("open"); }
    this._attempt = 0;
    if (message.type === "error") { this._onError(message); return; }
    if (!["snapshot", "update", "ended"].includes(message.type)) return;
    if (message.contact !== this.getAttribute("contact")) return;
    // Never show an older state after a newer one. The same seq comes again only when the
    // server marks the state stale (it cannot reach its bus) or fresh again: same values.
    if (message.seq < this._s.seq) return;
    if (message.seq === this._s.seq && (message.type === "ended" || message.stale === this._s.stale)) return;
    this._apply(message);
  }

  _onError(message) {
    this._emit("error", { code: message.code, message: message.message });
    if (message.code === "token_expired") {
      this._emit("token-expired", { contact: this._s.contact });
      return;
    }
    if (FATAL_ERRORS.has(message.code)) { this._fail(message.code, message.message); return; }
    if (message.code === "unavailable") this._ws && this._ws.close(); // retry with backoff
  }

  _onClose() {
    this._ws = null;
    clearTimeout(this._pingTimer);
    clearTimeout(this._pongTimer);
    if (this._s.status === "ended" || this._s.status === "error" || !this.isConnected) return;
    this._setConnection("reconnecting");
    // Capped exponential backoff with full jitter: a restarted server is not stampeded.
    const ceiling = Math.min(RECONNECT_CAP_MS, RECONNECT_BASE_MS * 2 ** this._attempt);
    this._attempt += 1;
    this._clearTimer();
    this._timer = setTimeout(() => { this._timer = null; this._open(); }, Math.random() * ceiling);
  }

  _closeSocket() {
    const ws = this._ws;
    this._ws = null;
    clearTimeout(this._pingTimer);
    clearTimeout(this._pongTimer);
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  }

  _clearTimer() {
    clearTimeout(this._timer);
    this._timer = null;
  }

  _stop(connection) {
    this._closeSocket();
    this._clearTimer();
    clearInterval(this._tick);
    this._tick = null;
    this._s.connection = connection;
  }

  _fail(code, message) {
    this._s.status = "error";
    this._s.reason = code;
    this._stop("closed");
    this._render();
    this._announce(this._texts().s.error);
    this._emit("failed", { code, message });
  }

  _setConnection(connection) {
    if (this._s.connection === connection) return;
    this._s.connection = connection;
    this._render();
    this._emit("connection", { connection });
  }

  // -- state ---------------------------------------------------------------------------------

  _reset() {
    this._s = {
      contact: this.getAttribute("contact"), queue: null, status: "connecting", position: null,
      ewt: null, stale: false, seq: 0, at: null, enqueued: null, reason: null, outcome: null,
      connection: "idle", received: 0, countFrom: null, countAt: 0, countTotal: null,
      lastPosition: null,
    };
    this._announced = { position: null, wait: null };
    this._fired = new Set();
  }

  _remaining() {
    const s = this._s;
    if (s.countFrom == null) return null;
    const scale = Number.parseFloat(this.getAttribute("time-scale")) || 1; // simulations only
    const elapsed = ((performance.now() - s.countAt) / 1000) * Math.max(0, scale);
    return Math.max(0, Math.round(s.countFrom - elapsed));
  }

  _apply(event) {
    const s = this._s;
    const texts = this._texts();
    const previousPosition = s.position;
    s.seq = event.seq;
    s.at = event.at;
    s.queue = event.queue;
    s.enqueued = event.enqueued ?? s.enqueued;
    s.received = Date.now();
    if (event.type === "ended") {
      s.status = "ended";
      s.reason = event.reason;
      s.stale = false;
      // A CONNECTED_TO_AGENT event says so; from a poll alone, next in line and gone means
      // an agent most likely took the contact.
      s.outcome = event.reason === "connected_to_agent"
        || (event.reason === "left_queue" && s.lastPosition === 1) ? "connecting" : "left";
      s.position = null;
      this._stop("closed");
      this._render();
      this._announce(s.outcome === "connecting" ? texts.s.connectingAgent : texts.s.left);
      this._emit("ended", { contact: s.contact, reason: s.reason, outcome: s.outcome, lastPosition: s.lastPosition, seq: s.seq });
      return;
    }
    s.status = "waiting";
    s.stale = Boolean(event.stale);
    s.position = event.position;
    if (event.position != null) s.lastPosition = event.position;
    if (event.ewt !== s.ewt || s.countFrom == null) {
      // A new estimate restarts the count-down at exactly the estimate; an unchanged one
      // keeps counting, so the wait never jumps back up more than the estimate requires.
      s.countFrom = event.ewt;
      s.countAt = performance.now();
      s.countTotal = event.ewt;
    }
    s.ewt = event.ewt;
    this._ensureTick();
    this._render(previousPosition !== null && previousPosition !== s.position);
    this._maybeAnnounce();
    this._emit("update", { contact: s.contact, queue: s.queue, position: s.position, ewt: s.ewt, stale: s.stale, seq: s.seq, type: event.type });
    this._thresholds();
  }

  _thresholds() {
    const s = this._s;
    const callbackAfter = Number.parseFloat(this.getAttribute("callback-after"));
    const deflectPosition = Number.parseFloat(this.getAttribute("deflect-position"));
    if (!this._fired.has("callback-offer") && s.ewt != null && Number.isFinite(callbackAfter) && s.ewt >= callbackAfter) {
      this._fired.add("callback-offer");
      this._emit("callback-offer", { contact: s.contact, ewt: s.ewt, position: s.position, threshold: callbackAfter });
    }
    if (!this._fired.has("deflect") && s.position != null && Number.isFinite(deflectPosition) && s.position >= deflectPosition) {
      this._fired.add("deflect");
      this._emit("deflect", { contact: s.contact, ewt: s.ewt, position: s.position, threshold: deflectPosition });
    }
  }

  _maybeAnnounce() {
    // Only what a listener needs: a new position, or an estimate that reads differently.
    const s = this._s;
    const texts = this._texts();
    const wait = texts.wait(s.ewt);
    if (s.position !== this._announced.position) {
      const template = s.position === 1 ? texts.s.announceNext : texts.s.announcePosition;
      this._announce(fill(template, { ordinal: s.position == null ? "" : texts.ordinal(s.position), wait }));
    } else if (wait !== this._announced.wait) {
      this._announce(fill(texts.s.announceWait, { wait }));
    } else {
      return;
    }
    this._announced = { position: s.position, wait };
  }

  _announce(text) {
    // Re-set even when equal so that assistive tech hears a repeated message.
    this._live.textContent = "";
    requestAnimationFrame(() => { this._live.textContent = text; });
  }

  _emit(name, detail) {
    this.dispatchEvent(new CustomEvent(`${TAG}:${name}`, { detail, bubbles: true, composed: true }));
  }

  _ensureTick() {
    if (!this._tick) this._tick = setInterval(() => this._render(), 1000);
  }

  _texts() {
    if (!this._textsCache) {
      const tag = this.getAttribute("lang") || this.closest("[lang]")?.getAttribute("lang") || navigator.language || "en";
      this._textsCache = new Texts(tag, this._strings);
    }
    return this._textsCache;
  }

  // -- rendering -----------------------------------------------------------------------------

  _build() {
    const card = el("section", "card", "card");
    card.setAttribute("aria-labelledby", "qs-title");
    const head = el("div", "head", "header");
    this._title = el("h2", "title", "title");
    this._title.id = "qs-title";
    this._pill = el("span", "pill", "status");
    head.append(this._title, this._pill);

    this._skeleton = el("div", "skeleton");
    this._skeleton.setAttribute("aria-hidden", "true");
    this._connectingText = el("p", "ahead", "connecting");

    this._main = el("div", "main");
    this._badge = el("div", "badge", "badge");
    this._badge.setAttribute("aria-hidden", "true");
    const words = el("div");
    this._position = el("p", "position", "position");
    this._ahead = el("p", "ahead", "ahead");
    words.append(this._position, this._ahead);
    this._main.append(this._badge, words);

    this._wait = el("div", "wait", "wait");
    const row = el("div", "wait-row");
    this._waitLabel = el("span", "wait-label", "wait-label");
    this._waitValue = el("span", "wait-value", "wait-value");
    row.append(this._waitLabel, this._waitValue);
    const bar = el("div", "bar", "progress");
    bar.setAttribute("aria-hidden", "true");
    this._barFill = el("span");
    bar.append(this._barFill);
    this._wait.append(row, bar);

    this._final = el("div", "final", "final");
    this._finalIcon = el("div", "icon");
    const finalWords = el("div");
    this._finalTitle = el("p", "final-title", "final-title");
    this._finalDetail = el("p", "final-detail", "final-detail");
    finalWords.append(this._finalTitle, this._finalDetail);
    this._final.append(this._finalIcon, finalWords);

    const foot = el("div", "foot", "footer");
    this._updated = el("p", "updated", "updated");
    this._retry = el("button", "", "retry");
    this._retry.type = "button";
    this._retry.addEventListener("click", () => this.reconnect());
    foot.append(this._updated, this._retry);
    this._foot = foot;

    this._live = el("p", "sr-only", "announcer");
    this._live.setAttribute("aria-live", "polite");
    this._live.setAttribute("aria-atomic", "true");

    card.append(head, this._skeleton, this._connectingText, this._main, this._wait, this._final, foot);
    this._root.append(card, this._live);
    this._card = card;
  }

  _render(bump = false) {
    if (!this._card) return;
    const s = this._s;
    const t = this._texts();
    this.setAttribute("data-status", s.status);
    this._title.textContent = t.s.title;
    const waiting = s.status === "waiting";
    const final = s.status === "ended" || s.status === "error";
    this._skeleton.hidden = s.status !== "connecting";
    this._connectingText.hidden = s.status !== "connecting";
    this._connectingText.textContent = t.s.connecting;
    this._main.hidden = !waiting;
    this._wait.hidden = !waiting;
    this._final.hidden = !final;
    this._foot.hidden = final;

    let kind = "connecting";
    let label = t.s.connecting.replace(/…$/, "");
    if (final) { kind = ""; label = ""; }
    else if (s.connection === "reconnecting") { kind = "reconnecting"; label = t.s.reconnecting; }
    else if (waiting && s.stale) { kind = "stale"; label = t.s.updating; }
    else if (waiting) { kind = "live"; label = t.s.live; }
    this._pill.hidden = !kind;
    this._pill.dataset.kind = kind;
    this._pill.textContent = label;

    this._retry.hidden = s.connection !== "reconnecting";
    this._retry.textContent = t.s.retry;

    if (waiting) {
      const position = s.position;
      this._badge.textContent = position == null ? "–" : t.number.format(position);
      if (bump) {
        this._badge.classList.add("bump");
        setTimeout(() => this._badge.classList.remove("bump"), 300);
      }
      this._position.textContent = position == null ? t.s.connecting : t.position(position);
      this._ahead.textContent = position == null ? "" : t.ahead(position - 1);
      const remaining = this._remaining();
      this._waitLabel.textContent = t.s.waitLabel;
      this._waitValue.textContent = s.stale ? `${t.wait(remaining)} · ${t.s.updating}` : t.wait(remaining);
      const share = s.countTotal ? Math.min(1, remaining / s.countTotal) : 0;
      this._barFill.style.transform = `scaleX(${share.toFixed(4)})`;
      const ago = s.received ? Math.max(0, (Date.now() - s.received) / 1000) : 0;
      this._updated.textContent = t.updated(ago);
    }
    if (final) {
      const outcome = s.status === "error" ? "error" : s.outcome;
      this._final.dataset.outcome = outcome;
      this._finalIcon.replaceChildren(icon(ICONS[outcome] || ICONS.left));
      this._finalTitle.textContent = outcome === "connecting" ? t.s.connectingAgent : outcome === "error" ? t.s.error : t.s.left;
      this._finalDetail.textContent = outcome === "connecting" ? t.s.connectingAgentDetail : outcome === "error" ? "" : t.s.leftDetail;
      this._finalDetail.hidden = outcome === "error";
    }
  }
}

if (!customElements.get(TAG)) customElements.define(TAG, QueueStatusElement);
