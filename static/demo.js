// The demo page: lists the emulator's queues, joins one as a simulated customer, shows the
// widget for that contact and logs the DOM events it fires. Talks to the demo-only routes
// (/demo/queues, /demo/join) that `queuecast demo` mounts.

const $ = (selector) => document.querySelector(selector);
let demo = null; // the last /demo/queues answer
let lang = "en";
let widget = null;

async function getJson(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `${response.status} ${response.statusText}`);
  return body;
}

async function refreshQueues() {
  const first = demo === null;
  try {
    demo = await getJson("/demo/queues");
  } catch {
    return;
  }
  if (first) {
    // The wallboard reads its token from the fragment, which never reaches a server log.
    const hash = demo.wallboardToken ? `#token=${encodeURIComponent(demo.wallboardToken)}` : "";
    $("#wallboard").src = `wallboard.html?demo=1&embed=1${hash}`;
    $("#wallboard-link").href = `wallboard.html?demo=1${hash}`;
    $("#tv-link").href = `wallboard.html?demo=1&tv=1${hash}`;
  }
  $("#speed").textContent = String(demo.speed);
  $("#emulator-link").href = `${demo.emulator}/_sim/state`;
  renderQueues();
}

function renderQueues() {
  const list = $("#queue-cards");
  list.querySelectorAll(".skeleton").forEach((node) => node.remove());
  for (const queue of demo.queues) {
    let card = list.querySelector(`[data-queue="${CSS.escape(queue.id)}"]`);
    if (!card) {
      card = document.createElement("li");
      card.className = "queue-card";
      card.dataset.queue = queue.id;
      const name = document.createElement("h3");
      const facts = document.createElement("p");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "join";
      button.addEventListener("click", () => join(queue.name, button));
      name.textContent = queue.name;
      button.textContent = `Join ${queue.name}`;
      button.setAttribute("aria-describedby", `facts-${queue.id}`);
      facts.id = `facts-${queue.id}`;
      facts.className = "facts";
      card.append(name, facts, button);
      list.append(card);
    }
    const agents = queue.agents.total;
    card.querySelector(".facts").textContent = `${queue.waiting} waiting · ${agents} agent${agents === 1 ? "" : "s"}, ${queue.agents.busy} busy`;
  }
}

async function join(queueName, button) {
  const error = $("#join-error");
  error.hidden = true;
  button.disabled = true;
  try {
    const joined = await getJson("/demo/join", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ queue: queueName }),
    });
    showWidget(joined);
    refreshQueues();
  } catch (problem) {
    error.textContent = `Could not join ${queueName}: ${problem.message}`;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
}

function showWidget(joined) {
  const slot = $("#widget-slot");
  widget?.remove();
  $("#widget-placeholder").hidden = true;
  widget = document.createElement("queue-status");
  widget.id = "my-widget";
  widget.setAttribute("contact", joined.contactId);
  widget.setAttribute("instance", joined.instanceId);
  widget.setAttribute("lang", lang);
  widget.setAttribute("callback-after", "600");
  widget.setAttribute("deflect-position", "8");
  widget.setAttribute("time-scale", String(demo?.speed || 1));
  // The property, not the attribute: the token stays out of the DOM (docs/widget.md).
  if (joined.token) widget.token = joined.token;
  for (const name of ["update", "ended", "callback-offer", "deflect", "token-expired", "error"]) {
    widget.addEventListener(`queue-status:${name}`, (event) => logEvent(name, event.detail));
  }
  slot.append(widget);
  $("#event-log").replaceChildren();
  $("#embed-code").textContent = embedCode(joined);
  const wall = $("#wallboard").contentWindow?.queuecastWallboard;
  wall?.highlight(joined.contactId);
}

function embedCode(joined) {
  const origin = location.origin;
  const ws = origin.replace(/^http/, "ws");
  return [
    `<script type="module" src="${origin}/static/queue-status.js"></script>`,
    `<queue-status server="${ws}"`,
    `  contact="${joined.contactId}"`,
    `  lang="${lang}" callback-after="600" deflect-position="8"></queue-status>`,
    joined.token ? `<script>document.querySelector("queue-status").token = "…";</script>` : null,
  ].filter(Boolean).join("\n");
}

function logEvent(name, detail) {
  const log = $("#event-log");
  const item = document.createElement("li");
  item.dataset.event = name;
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  const label = document.createElement("code");
  label.className = "event-name";
  label.textContent = `queue-status:${name}`;
  const body = document.createElement("span");
  body.className = "event-detail";
  const shown = { ...detail };
  delete shown.contact;
  body.textContent = JSON.stringify(shown);
  item.append(time, label, body);
  log.prepend(item);
  while (log.children.length > 40) log.lastElementChild.remove();
}

function setupLanguages() {
  for (const button of document.querySelectorAll(".lang-switch [role=radio]")) {
    button.addEventListener("click", () => {
      lang = button.dataset.lang;
      for (const other of document.querySelectorAll(".lang-switch [role=radio]")) {
        other.setAttribute("aria-checked", String(other === button));
        other.tabIndex = other === button ? 0 : -1;
      }
      widget?.setAttribute("lang", lang);
    });
    button.tabIndex = button.getAttribute("aria-checked") === "true" ? 0 : -1;
  }
  // Arrow keys move between the radio buttons, as a radio group should.
  $(".lang-switch").addEventListener("keydown", (event) => {
    if (!["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"].includes(event.key)) return;
    const buttons = [...document.querySelectorAll(".lang-switch [role=radio]")];
    const index = buttons.indexOf(document.activeElement);
    const next = buttons[(index + (event.key === "ArrowLeft" || event.key === "ArrowUp" ? -1 : 1) + buttons.length) % buttons.length];
    next.focus();
    next.click();
    event.preventDefault();
  });
}

function fitWallboard() {
  // Same origin: size the frame to its content, so the page scrolls as one.
  const frame = $("#wallboard");
  const fit = () => {
    const doc = frame.contentDocument;
    if (doc?.documentElement) frame.style.height = `${Math.max(320, doc.documentElement.scrollHeight)}px`;
  };
  frame.addEventListener("load", () => {
    fit();
    new ResizeObserver(fit).observe(frame.contentDocument.body);
  });
}

setupLanguages();
fitWallboard();
refreshQueues();
setInterval(refreshQueues, 3000);
