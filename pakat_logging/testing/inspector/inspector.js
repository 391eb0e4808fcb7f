// The inspector page of FakePakatServer: polls the JSON API and shows
// each request as it arrives. Text from requests only ever goes through
// textContent, so a body cannot inject markup into the page.
"use strict";

const API = "/_inspector/api/";
const POLL_EVERY = 500;
const RETRY_EVERY = 2000;
const KEEP = 1000;

const REASONS = {
  200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
  400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
  404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
  415: "Unsupported Media Type", 425: "Too Early",
  429: "Too Many Requests", 500: "Internal Server Error",
  502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
};

const FAILURE_TEXT = {
  off: () => "Answering as usual.",
  503: (f) => "Answering 503 to every request" + retryText(f) + ".",
  429: (f) => "Answering 429 to every request" + retryText(f) + ".",
  hold: (f) => `Holding every answer for ${f.delay} s.`,
  drop: () => "Dropping every connection without an answer.",
};

const state = { cursor: 0, rows: new Map() };
const $ = (selector) => document.querySelector(selector);

function retryText(failure) {
  const after = failure.retry_after;
  return after === undefined ? "" : `, Retry-After ${after} s`;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function pad(number, width) {
  return String(number).padStart(width, "0");
}

function clock(seconds) {
  const at = new Date(seconds * 1000);
  const hms = [at.getHours(), at.getMinutes(), at.getSeconds()];
  return hms.map((n) => pad(n, 2)).join(":") + "." + pad(at.getMilliseconds(), 3);
}

function statusBadge(status) {
  if (status === null) return element("span", "status failed", "dropped");
  const ok = status >= 200 && status < 300;
  const reason = REASONS[status] || "";
  return element("span", "status " + (ok ? "ok" : "failed"), `${status} ${reason}`.trim());
}

function cell(className, text) {
  return text ? element("td", className, text) : element("td", className + " none", "\u2014");
}

function buildRows(call) {
  const row = element("tr", "call fresh");
  row.dataset.id = call.id;
  row.dataset.endpoint = call.endpoint || "other";
  row.dataset.email = (call.email || "").toLowerCase();
  row.dataset.status = call.status === null ? "dropped" : String(call.status);
  row.append(
    element("td", "time", clock(call.time)),
    element("td", "endpoint", call.endpoint || `${call.method} ${call.path}`),
    cell("email", call.email),
    cell("name", call.name),
  );
  const answer = element("td", "answer");
  answer.append(statusBadge(call.status));
  const toggle = element("button", "show-body", "body");
  toggle.type = "button";
  toggle.setAttribute("aria-expanded", "false");
  const actions = element("td", "actions");
  actions.append(toggle);
  row.append(answer, actions);

  const body = element("tr", "body");
  body.hidden = true;
  const holder = element("td");
  holder.colSpan = 6;
  holder.append(
    element("p", "meta", `${call.method} ${call.path} · ma-key ${call.ma_key}`),
    element("pre", "", call.body_text || "(empty body)"),
  );
  body.append(holder);

  toggle.addEventListener("click", () => {
    body.hidden = !body.hidden;
    toggle.setAttribute("aria-expanded", String(!body.hidden));
    applyFilters();
  });
  return { row, body };
}

function matches(row) {
  const endpoint = $("#filter-endpoint").value;
  const email = $("#filter-email").value.trim().toLowerCase();
  if (endpoint && row.dataset.endpoint !== endpoint) return false;
  return !email || row.dataset.email.includes(email);
}

function applyFilters() {
  let shown = 0;
  for (const { row, body } of state.rows.values()) {
    const visible = matches(row);
    row.hidden = !visible;
    body.hidden = !visible || row.querySelector(".show-body").getAttribute("aria-expanded") !== "true";
    if (visible) shown += 1;
  }
  $("#shown").textContent = `showing ${shown} of ${state.rows.size}`;
  $("#empty").hidden = state.rows.size > 0;
}

function forget(id) {
  const rows = state.rows.get(id);
  rows.row.remove();
  rows.body.remove();
  state.rows.delete(id);
}

function addCalls(calls, first) {
  for (const id of [...state.rows.keys()]) {
    if (id < first) forget(id);
  }
  const tbody = $("#rows");
  // Calls come newest first; inserting the oldest first keeps that order.
  for (const call of [...calls].reverse()) {
    if (state.rows.has(call.id)) continue;
    const rows = buildRows(call);
    state.rows.set(call.id, rows);
    tbody.prepend(rows.row, rows.body);
  }
  while (state.rows.size > KEEP) forget(state.rows.keys().next().value);
}

function showCounters(counters) {
  const box = $("#counters");
  box.replaceChildren();
  for (const [name, counts] of Object.entries(counters)) {
    const card = element("div", "counter");
    card.dataset.endpoint = name;
    const split = element("span", "split");
    split.append(
      element("span", "accepted-count", `${counts.accepted} accepted`),
      document.createTextNode(" · "),
      element("span", counts.failed ? "failed-count some" : "failed-count", `${counts.failed} failed`),
    );
    card.append(element("span", "name", name), element("span", "total", String(counts.total)), split);
    box.append(card);
  }
}

function showFailure(failure) {
  for (const button of document.querySelectorAll("[data-mode]")) {
    button.setAttribute("aria-pressed", String(button.dataset.mode === failure.mode));
  }
  $("#failure").classList.toggle("active", failure.mode !== "off");
  const describe = FAILURE_TEXT[failure.mode] || (() => failure.mode);
  $("#failure-state").textContent = describe(failure);
}

async function send(path, data) {
  const answer = await fetch(API + path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(data),
  });
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.message || answer.statusText);
  return body;
}

async function switchFailure(mode) {
  const wanted = { mode };
  if (mode === "429") wanted.retry_after = Number($("#retry-after").value);
  if (mode === "hold") wanted.delay = Number($("#hold").value);
  try {
    showFailure(await send("failure", wanted));
  } catch (error) {
    $("#failure-state").textContent = `Not switched: ${error.message}`;
  }
}

async function clearList() {
  await send("clear", {});
  for (const id of [...state.rows.keys()]) forget(id);
  applyFilters();
}

async function poll() {
  try {
    const answer = await fetch(`${API}calls?after=${state.cursor}`, { cache: "no-store" });
    if (!answer.ok) throw new Error(answer.statusText);
    const data = await answer.json();
    addCalls(data.calls, data.first);
    state.cursor = data.cursor;
    showCounters(data.counters);
    showFailure(data.failure);
    $("#ma-key").textContent = data.ma_key;
    applyFilters();
    setLink("live");
    setTimeout(poll, POLL_EVERY);
  } catch (error) {
    setLink("lost");
    setTimeout(poll, RETRY_EVERY);
  }
}

function setLink(link) {
  const node = $("#link");
  node.dataset.state = link;
  node.textContent = link === "live" ? "live" : "server not answering";
}

function start() {
  $("#base-url").textContent = `${location.origin}/api/v2`;
  for (const button of document.querySelectorAll("[data-mode]")) {
    button.addEventListener("click", () => switchFailure(button.dataset.mode));
  }
  $("#filter-endpoint").addEventListener("change", applyFilters);
  $("#filter-email").addEventListener("input", applyFilters);
  $("#clear").addEventListener("click", clearList);
  poll();
}

start();
