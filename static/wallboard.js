// The agent wallboard: one panel per queue, live over queuecast's WebSocket.
//
// URL parameters: queues=ID[:Name],…  (else the queues the service knows to have contacts,
// refreshed; the instance's other queues, by their Connect names, are offered under "Queues"),
// tv=1 (big-screen mode), demo=1 (names and the simulated clock from the demo's /demo/queues),
// server=wss://host (default: this page's host).
//
// The token (a `queues` token) is asked for when the service wants one and kept in this tab's
// sessionStorage, out of URLs, history and other tabs. A token in the fragment (#token=…,
// for kiosks and iframes) is taken into sessionStorage and removed from the address at once;
// the browser may still have recorded the first address in its history, so prefer the prompt.
//
// Each queue subscription sends a snapshot of every waiting contact, then updates and `ended`,
// and the queue's own figures from Amazon Connect (`queue` events: name, waiting, oldest wait,
// agents available). After every (re)connection the list is reconciled with
// GET /v1/queues/{id}, so contacts that left while the socket was down do not linger.
// Rendering is batched per animation frame. Messages of a type it does not know are ignored.

const params = new URLSearchParams(location.search);
const TOKEN_KEY = "queuecast.wallboard.token";

function storedToken() {
  try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
}

function storeToken(token) {
  try { sessionStorage.setItem(TOKEN_KEY, token); } catch { /* private mode: memory only */ }
}

function takeToken() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const given = fragment.get("token");
  if (!given) return storedToken();
  storeToken(given);
  fragment.delete("token");
  const rest = fragment.toString();
  history.replaceState(history.state, "", `${location.pathname}${location.search}${rest ? `#${rest}` : ""}`);
  return given;
}

let TOKEN = takeToken();
let asked = false;

/** The service refused the token (or wants one): ask once per page, keep it for the tab. */
function askForToken() {
  if (asked) return false;
  asked = true;
  const given = window.prompt("This wallboard needs its access token (a queues token):");
  if (!given || !given.trim()) return false;
  TOKEN = given.trim();
  storeToken(TOKEN);
  return true;
}
const WS_BASE = (params.get("server") || `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}`).replace(/\/+$/, "");
const HTTP_BASE = WS_BASE.replace(/^ws/, "http");
const RECONNECT_BASE_MS = 500;
const RECONNECT_CAP_MS = 15000;
const LEAVE_MS = 700;
const ENDED_MS = 2800; // a row whose end reason is known shows it this long before it goes
const FIGURES_STALE_MS = 30000; // no figures for this long (or 3 gaps between them): stale
const TREND_SAMPLE_MS = 5000;
const TREND_WINDOW = 60; // samples: 5 minutes
const FLIP_MAX_ROWS = 80;
const STORAGE_KEY = "queuecast.wallboard.hidden";
const SHOWN_KEY = "queuecast.wallboard.shown"; // queues the user chose that list no contacts
const reducedMotion = matchMedia("(prefers-reduced-motion: reduce)");

const $ = (selector, root = document) => root.querySelector(selector);

// ---- clock: the browser's, or the demo emulator's (simulated, faster) -----------------------
const clock = { offset: 0, speed: 1, anchor: performance.now(), anchorWall: Date.now() };
function now() {
  const elapsed = performance.now() - clock.anchor;
  return clock.anchorWall + clock.offset + elapsed * clock.speed;
}

// ---- formatting ----------------------------------------------------------------------------
function duration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const shortId = (id) => id.slice(0, 8);
// How a wait ended, when the service knows (contact events say connected or disconnected).
const OUTCOMES = {
  connected_to_agent: ["answered", "Answered"],
  disconnected: ["hung-up", "Hung up"],
  left_queue: ["left", "Left queue"],
  transferred: ["moved", "Transferred"],
};
const outcomeOf = (reason) => OUTCOMES[reason] || ["left", "Left"];

// ---- model ---------------------------------------------------------------------------------
/** @type {Map<string, Queue>} */
const queues = new Map();
const hidden = new Set(JSON.parse(localStorage.getItem(STORAGE_KEY) || "[]"));
const shown = new Set(JSON.parse(localStorage.getItem(SHOWN_KEY) || "[]"));
const fixedQueues = (params.get("queues") || "").split(",").map((p) => p.trim()).filter(Boolean);

class Queue {
  constructor(id, name) {
    this.id = id;
    this.name = name || null; // given in the URL (or by the demo): it wins
    this.connectName = null; // as Amazon Connect names it
    this.listed = false; // shown unless hidden: it has contacts, or was asked for by the URL
    this.contacts = new Map(); // contact -> event
    this.leaving = new Map(); // contact -> timeout
    this.endedSeq = new Map(); // contact -> seq of its `ended`
    this.endings = new Map(); // contact -> why it left (an `ended` reason, or "transferred")
    this.figures = null; // the latest `queue` event
    this.figuresAt = 0; // performance.now() when it came
    this.figuresGap = 0; // ms between the last two
    this.seenSinceSync = null;
    this.history = [];
    this.panel = null;
    this.rows = new Map(); // contact -> <tr>
    this.subscribed = false;
  }

  get label() {
    return this.name || this.connectName || `Queue ${shortId(this.id)}`;
  }

  /** Connect's figures; returns whether anything shown changed. */
  applyFigures(event) {
    const known = this.figures;
    if (known && (event.seq < known.seq || (event.seq === known.seq && event.stale === known.stale))) return false;
    const arrived = performance.now();
    if (known) this.figuresGap = arrived - this.figuresAt;
    this.figures = event;
    this.figuresAt = arrived;
    if (event.name && event.name !== this.connectName) {
      this.connectName = event.name;
      relabel(this);
    }
    return true;
  }

  /** The figures, unless none came for a while (`stale` says the service could not read). */
  get figuresStale() {
    if (!this.figures) return true;
    const limit = Math.max(FIGURES_STALE_MS, 3 * this.figuresGap);
    return this.figures.stale || performance.now() - this.figuresAt > limit;
  }

  apply(event) {
    const known = this.contacts.get(event.contact);
    // The same seq again only flips `stale` (the server lost, or regained, its bus).
    if (known && (event.seq < known.seq || (event.seq === known.seq && event.stale === known.stale))) return false;
    if (event.seq <= (this.endedSeq.get(event.contact) || 0)) return false;
    if (this.seenSinceSync) this.seenSinceSync.add(event.contact);
    if (event.type === "ended" || event.queue !== this.id) {
      this.endedSeq.set(event.contact, event.seq);
      if (known) this.endings.set(event.contact, event.type === "ended" ? event.reason : "transferred");
      if (known) this.contacts.delete(event.contact);
      return Boolean(known);
    }
    this.contacts.set(event.contact, event);
    return true;
  }

  /** The authoritative list from HTTP: members not in it (and not heard of since) are gone. */
  reconcile(list) {
    const listed = new Set();
    for (const event of list) {
      listed.add(event.contact);
      this.apply(event);
    }
    for (const contact of [...this.contacts.keys()]) {
      if (!listed.has(contact) && !(this.seenSinceSync && this.seenSinceSync.has(contact))) {
        this.contacts.delete(contact);
      }
    }
    this.seenSinceSync = null;
  }

  sorted() {
    return [...this.contacts.values()].sort((a, b) => (a.position ?? 1e9) - (b.position ?? 1e9) || String(a.enqueued).localeCompare(String(b.enqueued)) || a.contact.localeCompare(b.contact));
  }
}

function ensureQueue(id, name, { listed = true, connectName = null } = {}) {
  let queue = queues.get(id);
  if (!queue) {
    queue = new Queue(id, name);
    queues.set(id, queue);
  } else if (name && !queue.name) {
    queue.name = name;
  }
  if (connectName) queue.connectName = connectName;
  queue.listed ||= listed;
  relabel(queue);
  return queue;
}

/** The queue's name changed: its panel, its table's caption and its choice say so. */
function relabel(queue) {
  if (queue.panel) {
    $(".panel-title", queue.panel).textContent = queue.label;
    $("caption", queue.panel).textContent = `Waiting contacts in ${queue.label}, by position`;
  }
  renderChoices();
}

const isShown = (queue) => !hidden.has(queue.id) && (queue.listed || shown.has(queue.id));
const visibleQueues = () => [...queues.values()].filter(isShown);

// ---- connection ----------------------------------------------------------------------------
let ws = null;
let attempt = 0;
let retryTimer = null;
let retryAt = 0;

function connect() {
  clearTimeout(retryTimer);
  retryTimer = null;
  setConnection("connecting");
  const socket = new WebSocket(`${WS_BASE}/ws`);
  ws = socket;
  socket.onopen = () => {
    if (socket !== ws) return;
    attempt = 0;
    setConnection("live");
    if (TOKEN) socket.send(JSON.stringify({ op: "auth", token: TOKEN }));
    for (const queue of queues.values()) queue.subscribed = false;
    syncSubscriptions();
  };
  socket.onmessage = (message) => { if (socket === ws) onMessage(message.data); };
  socket.onclose = () => {
    if (socket !== ws) return;
    ws = null;
    for (const queue of queues.values()) queue.subscribed = false;
    const ceiling = Math.min(RECONNECT_CAP_MS, RECONNECT_BASE_MS * 2 ** attempt);
    attempt += 1;
    const delay = Math.random() * ceiling; // full jitter
    retryAt = performance.now() + delay;
    setConnection("offline");
    retryTimer = setTimeout(connect, delay);
  };
}

function send(message) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function syncSubscriptions() {
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  for (const queue of queues.values()) {
    const wanted = isShown(queue);
    if (wanted && !queue.subscribed) {
      queue.subscribed = true;
      queue.seenSinceSync = new Set();
      send({ op: "subscribe", queue: queue.id });
      loadQueue(queue);
    } else if (!wanted && queue.subscribed) {
      queue.subscribed = false;
      send({ op: "unsubscribe", queue: queue.id });
    }
  }
}

async function loadQueue(queue) {
  try {
    const response = await fetch(`${HTTP_BASE}/v1/queues/${encodeURIComponent(queue.id)}`, { headers: authHeaders() });
    if (!response.ok) return;
    const body = await response.json();
    queue.reconcile(body.contacts || []);
    if (body.name && body.name !== queue.connectName) {
      queue.connectName = body.name;
      relabel(queue);
    }
    if (body.figures) queue.applyFigures(body.figures);
    markDirty(queue);
  } catch {
    // The socket's own reconnect will try again.
  }
}

// Reconcile every shown queue with the service now and then: a contact nobody watches any
// more leaves its queue's members without an `ended` (it is only shown stale), and only a
// read of the queue drops it from the board.
const RECONCILE_MS = 60000;
setInterval(() => {
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  for (const queue of queues.values()) {
    if (!queue.subscribed) continue;
    queue.seenSinceSync = new Set(); // what arrives meanwhile is newer than the answer
    loadQueue(queue);
  }
}, RECONCILE_MS);

function authHeaders() {
  return TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};
}

function onMessage(data) {
  let event;
  try { event = JSON.parse(data); } catch { return; }
  if (event && event.type === "error" && (event.code === "unauthorized" || event.code === "token_expired")) {
    // No token, a bad one, or an expired one: ask for one (once), then start again with it.
    if (askForToken() && ws) ws.close();
    return;
  }
  if (!event) return;
  if (event.type === "queue") {
    const queue = queues.get(event.queue);
    if (queue && queue.applyFigures(event)) markDirty(queue);
    return;
  }
  if (!["snapshot", "update", "ended"].includes(event.type)) return;
  for (const queue of queues.values()) {
    // A queue the contact belongs to now, or one that lists it (it moved or ended).
    if (queue.id === event.queue || queue.contacts.has(event.contact)) {
      if (queue.apply(event)) markDirty(queue, event);
    }
  }
}

function setConnection(state) {
  const pill = $("#connection");
  pill.dataset.state = state;
  pill.textContent = state === "live" ? "Live" : state === "connecting" ? "Connecting…" : "Offline";
  document.documentElement.dataset.connection = state;
  updateBanner();
}

function updateBanner() {
  const banner = $("#banner");
  const offline = $("#connection").dataset.state === "offline";
  banner.hidden = !offline;
  if (offline) {
    const seconds = Math.max(0, Math.ceil((retryAt - performance.now()) / 1000));
    banner.textContent = `Connection lost. The figures below may be out of date; reconnecting${seconds ? ` in ${seconds} s` : "…"}`;
  }
}

// ---- queue discovery -----------------------------------------------------------------------
async function discover() {
  try {
    const response = await fetch(`${HTTP_BASE}/v1/queues`, { headers: authHeaders() });
    if (response.ok) {
      const body = await response.json();
      for (const summary of body.queues || []) ensureQueue(summary.queue, null, { connectName: summary.name });
      // The instance's other queues: offered under "Queues", shown once picked.
      for (const [id, name] of Object.entries(body.names || {})) ensureQueue(id, null, { listed: false, connectName: name });
    }
  } catch {
    // Offline: the banner says so.
  }
  renderPanels();
  syncSubscriptions();
}

async function loadDemo() {
  try {
    const response = await fetch(`${HTTP_BASE}/demo/queues`);
    if (!response.ok) return;
    const body = await response.json();
    for (const queue of body.queues) ensureQueue(queue.id, queue.name);
    if (body.now && body.speed) {
      clock.anchor = performance.now();
      clock.anchorWall = Date.now();
      clock.offset = Date.parse(body.now) - Date.now();
      clock.speed = body.speed;
    }
  } catch {
    // Not a demo server.
  }
}

// ---- rendering -----------------------------------------------------------------------------
const dirty = new Map(); // queue -> Set of changed contacts
let frame = 0;

function markDirty(queue, event) {
  let changed = dirty.get(queue);
  if (!changed) dirty.set(queue, (changed = new Set()));
  if (event) changed.add(event.contact);
  if (!frame) frame = requestAnimationFrame(flush);
}

function flush() {
  frame = 0;
  const batch = [...dirty];
  dirty.clear();
  for (const [queue, changed] of batch) renderQueue(queue, changed);
}

function renderPanels() {
  const main = $("#panels");
  const visible = visibleQueues();
  for (const queue of queues.values()) {
    if (!isShown(queue)) {
      queue.panel?.remove();
      continue;
    }
    if (!queue.panel) createPanel(queue);
  }
  const order = visible.map((q) => q.panel);
  order.forEach((panel, index) => {
    if (main.children[index] !== panel) main.insertBefore(panel, main.children[index] || null);
  });
  $("#no-queues").hidden = visible.length > 0;
  main.dataset.count = String(visible.length);
  for (const queue of visible) renderQueue(queue, new Set());
}

function createPanel(queue) {
  const panel = $("#panel-template").content.firstElementChild.cloneNode(true);
  const titleId = `panel-${queue.id}`;
  panel.dataset.queue = queue.id;
  panel.setAttribute("aria-labelledby", titleId);
  const title = $(".panel-title", panel);
  title.id = titleId;
  title.textContent = queue.label;
  $(".panel-id", panel).textContent = shortId(queue.id);
  $(".panel-id", panel).title = queue.id;
  $("caption", panel).textContent = `Waiting contacts in ${queue.label}, by position`;
  queue.panel = panel;
}

function renderQueue(queue, changed) {
  const panel = queue.panel;
  if (!panel || !panel.isConnected) return;
  const tbody = $("tbody", panel);
  const sorted = queue.sorted();
  const animate = !reducedMotion.matches && sorted.length <= FLIP_MAX_ROWS;
  const before = animate ? new Map([...queue.rows].map(([c, row]) => [c, row.getBoundingClientRect().top])) : null;

  // Rows of contacts that left fade out, then go; one whose end reason is known says it first.
  for (const [contact, row] of queue.rows) {
    if (!queue.contacts.has(contact) && !queue.leaving.has(contact)) {
      const reason = queue.endings.get(contact);
      queue.endings.delete(contact);
      let delay = reducedMotion.matches ? 0 : LEAVE_MS;
      if (reason !== undefined) {
        showOutcome(row, reason);
        delay = ENDED_MS;
      }
      row.classList.add("leaving");
      row.setAttribute("aria-hidden", "true");
      queue.leaving.set(contact, setTimeout(() => {
        row.remove();
        queue.rows.delete(contact);
        queue.leaving.delete(contact);
      }, delay));
    }
  }

  let cursor = tbody.firstElementChild;
  for (const event of sorted) {
    let row = queue.rows.get(event.contact);
    const fresh = !row;
    if (fresh) {
      row = createRow(event);
      queue.rows.set(event.contact, row);
    }
    fillRow(row, event, !fresh && changed.has(event.contact));
    if (fresh && animate) row.classList.add("entering");
    // Skip rows on their way out; place this one next.
    while (cursor && cursor.classList.contains("leaving")) cursor = cursor.nextElementSibling;
    if (cursor !== row) tbody.insertBefore(row, cursor);
    else cursor = cursor.nextElementSibling;
  }

  if (animate && before) {
    for (const [contact, top] of before) {
      const row = queue.rows.get(contact);
      if (!row || !queue.contacts.has(contact)) continue;
      const delta = top - row.getBoundingClientRect().top;
      if (delta) {
        row.animate([{ transform: `translateY(${delta}px)` }, { transform: "translateY(0)" }], { duration: 350, easing: "cubic-bezier(.2,.7,.2,1)" });
      }
    }
  }
  renderStats(queue, sorted);
}

function createRow(event) {
  const row = document.createElement("tr");
  row.dataset.contact = event.contact;
  for (const name of ["position", "contact", "ewt", "in-queue", "since"]) {
    const cell = document.createElement(name === "position" ? "th" : "td");
    if (name === "position") cell.scope = "row";
    cell.className = `col-${name}${name === "contact" ? "" : " num"}`;
    row.append(cell);
  }
  // An inferred position's mark is the cell's ::after (wallboard.css), with alternative text
  // for assistive tech: no extra nodes in rows that can number 500.
  const contact = row.children[1];
  const code = document.createElement("code");
  code.textContent = shortId(event.contact);
  code.title = event.contact;
  const tag = document.createElement("span");
  tag.className = "tag";
  tag.textContent = "stale";
  contact.append(code, tag);
  if (highlighted.has(event.contact)) row.classList.add("you");
  row.addEventListener("animationend", () => row.classList.remove("entering", "changed"));
  return row;
}

function fillRow(row, event, flash) {
  // Events are replaced, never mutated: the same object means nothing shown has changed (the
  // time in queue is `tick`'s). Rewriting all rows on every event made the browser lay out the
  // whole table for each one (docs/benchmarks.md, "Wallboard rendering").
  if (row.shownEvent === event) return;
  row.shownEvent = event;
  const [position, , ewt, inQueue, since] = row.children;
  const previous = row.dataset.position;
  row.dataset.position = String(event.position ?? "");
  row.dataset.ewt = String(event.ewt ?? "");
  row.dataset.enqueued = event.enqueued || "";
  row.dataset.basis = event.basis || "";
  row.classList.toggle("stale", Boolean(event.stale));
  setText(position, String(event.position ?? "–"));
  setText(ewt, duration(event.ewt));
  setText(inQueue, event.enqueued ? duration((now() - Date.parse(event.enqueued)) / 1000) : "–");
  setText(since, event.enqueued ? timeFormat.format(new Date(event.enqueued)) : "–");
  if (flash && !reducedMotion.matches) {
    if (row.classList.contains("changed")) {
      // Restart the flash from the next frame: forcing a layout here (offsetWidth) would lay out
      // the whole table synchronously, once per changed row.
      row.classList.remove("changed");
      requestAnimationFrame(() => row.classList.add("changed"));
    } else {
      row.classList.add("changed");
    }
    if (previous && Number(previous) > (event.position ?? 0)) row.dataset.moved = "up";
  }
}

/** A leaving row says how the wait ended: answered, hung up, left the queue, transferred. */
function showOutcome(row, reason) {
  const [kind, text] = outcomeOf(reason);
  row.dataset.ended = reason || "";
  row.classList.add("ended", `ended-${kind}`);
  const outcome = document.createElement("span");
  outcome.className = "outcome";
  outcome.textContent = text;
  row.children[1].append(outcome);
}

/** Set a text only when it differs: an unchanged write still invalidates layout. */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** Waiting contacts: Connect's count while its figures are current, else the listed ones. */
function waitingOf(queue) {
  return queue.figures && !queue.figuresStale ? queue.figures.waiting : queue.contacts.size;
}

function renderStats(queue, sorted = queue.sorted()) {
  const panel = queue.panel;
  const set = (name, text) => setText($(`[data-stat="${name}"]`, panel), text);
  const ewts = sorted.map((e) => e.ewt).filter((e) => e != null);
  const listed = sorted.length;
  const figures = queue.figures;
  const stale = Boolean(figures) && queue.figuresStale;
  let waiting = listed;
  let oldest = null;
  if (figures) {
    // Connect's own figures count every caller, tracked or not; the oldest wait counts on
    // from when they came until the next ones (not while they are stale).
    waiting = figures.waiting;
    const since = stale ? 0 : ((performance.now() - queue.figuresAt) / 1000) * clock.speed;
    oldest = figures.waiting ? figures.oldest + since : null;
  } else {
    const enqueued = sorted.map((e) => Date.parse(e.enqueued)).filter(Number.isFinite);
    oldest = enqueued.length ? (now() - Math.min(...enqueued)) / 1000 : null;
  }
  set("waiting", String(waiting));
  set("listed", figures && waiting !== listed ? `${listed} listed` : "");
  set("oldest", duration(oldest));
  set("agents", figures ? String(figures.agentsAvailable) : "–");
  set("ewt-max", ewts.length ? duration(Math.max(...ewts)) : "–");
  set("figures-state", stale ? `Figures not updated since ${timeFormat.format(new Date(figures.at))}` : "");
  set("empty", waiting > 0 ? `${waiting} waiting; none of them is tracked yet.` : "Nobody is waiting.");
  panel.classList.toggle("figures-stale", stale);
  panel.classList.toggle("is-empty", listed === 0);
  panel.dataset.waiting = String(waiting);
  panel.dataset.listed = String(listed);
  renderTrend(queue);
}

function sampleTrends() {
  for (const queue of queues.values()) {
    queue.history.push(waitingOf(queue));
    if (queue.history.length > TREND_WINDOW) queue.history.shift();
    if (queue.panel) renderTrend(queue);
  }
}

function renderTrend(queue) {
  const waiting = waitingOf(queue);
  const history = [...queue.history, waiting];
  const reference = history[Math.max(0, history.length - 13)]; // about a minute ago
  const delta = waiting - reference;
  const trend = $('[data-stat="trend"]', queue.panel);
  trend.textContent = delta > 0 ? `▲ ${delta}` : delta < 0 ? `▼ ${-delta}` : "▬ 0";
  trend.dataset.direction = delta > 0 ? "up" : delta < 0 ? "down" : "flat";
  trend.title = "Change in waiting contacts over the last minute";
  const max = Math.max(4, ...history);
  const points = history.map((value, index) => {
    const x = history.length === 1 ? 100 : (index / (history.length - 1)) * 100;
    const y = 26 - (value / max) * 24;
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  $(".spark polyline", queue.panel).setAttribute("points", points.join(" "));
}

function tick() {
  const current = now();
  for (const queue of visibleQueues()) {
    if (!queue.panel) continue;
    for (const row of queue.rows.values()) {
      const enqueued = row.dataset.enqueued;
      if (enqueued) setText(row.children[3], duration((current - Date.parse(enqueued)) / 1000));
    }
    renderStats(queue);
  }
  $("#clock").textContent = timeFormat.format(new Date(current));
  updateBanner();
}

// ---- controls ------------------------------------------------------------------------------
function renderChoices() {
  const fieldset = $("#queue-choices");
  for (const queue of queues.values()) {
    let input = fieldset.querySelector(`input[value="${CSS.escape(queue.id)}"]`);
    if (!input) {
      const label = document.createElement("label");
      input = document.createElement("input");
      input.type = "checkbox";
      input.value = queue.id;
      input.addEventListener("change", () => {
        if (input.checked) {
          hidden.delete(queue.id);
          if (!queue.listed) shown.add(queue.id);
        } else {
          hidden.add(queue.id);
          shown.delete(queue.id);
        }
        saveChoices();
        renderPanels();
        syncSubscriptions();
      });
      label.append(input, document.createElement("span"));
      fieldset.append(label);
    }
    input.checked = isShown(queue);
    input.nextElementSibling.textContent = queue.label;
  }
}

function saveChoices() {
  localStorage.setItem(STORAGE_KEY, JSON.stringify([...hidden]));
  localStorage.setItem(SHOWN_KEY, JSON.stringify([...shown]));
}

function setTv(on) {
  document.documentElement.classList.toggle("tv", on);
  $("#tv-toggle").setAttribute("aria-pressed", String(on));
}

function setupControls() {
  $("#tv-toggle").addEventListener("click", () => setTv(!document.documentElement.classList.contains("tv")));
  document.addEventListener("keydown", (event) => {
    if (event.key.toLowerCase() === "t" && !event.target.closest("input, textarea, select")) setTv(!document.documentElement.classList.contains("tv"));
  });
  $("#add-queue").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("#add-queue-id");
    const id = input.value.trim();
    if (!id) return;
    hidden.delete(id);
    shown.add(id);
    saveChoices();
    ensureQueue(id);
    input.value = "";
    renderPanels();
    syncSubscriptions();
  });
  if (params.get("tv") === "1") setTv(true);
  if (params.get("embed") === "1") document.documentElement.classList.add("embed");
}

// ---- start ---------------------------------------------------------------------------------
async function start() {
  setupControls();
  for (const entry of fixedQueues) {
    const [id, ...name] = entry.split(":");
    ensureQueue(id, name.join(":") || null);
  }
  if (params.has("demo")) await loadDemo();
  renderPanels();
  connect();
  if (!fixedQueues.length) {
    await discover();
    setInterval(discover, 15000);
  }
  setInterval(tick, 1000);
  setInterval(sampleTrends, TREND_SAMPLE_MS);
  tick();
}

// For the demo page, tests and the curious: the live model, and a way to point at one contact.
const highlighted = new Set();
window.queuecastWallboard = {
  queues,
  reconnect: () => ws && ws.close(),
  highlight(contact) {
    highlighted.add(contact);
    for (const queue of queues.values()) queue.rows.get(contact)?.classList.add("you");
  },
};

start();
