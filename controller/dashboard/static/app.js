// The dashboard: reads the API every few seconds and redraws. The selected service is in
// the URL's fragment (#service=NAME), so a link or a reload keeps it.

import * as api from "./api.js";
import { renderChart } from "./chart.js";
import { clock, el } from "./dom.js";
import {
  defaultLogSource,
  renderEvents,
  renderHead,
  renderLogSources,
  renderMarket,
  renderReplicas,
  renderServices,
  renderTokens,
  renderZones,
} from "./views.js";

const POLL_MS = 3000;
const CONTROLLER_EVERY_MS = 30000;
const LOG_TAIL_BYTES = 16384;
const LOG_LINES = 400;

const $ = (id) => document.getElementById(id);
const state = {
  selected: null,
  range: 3600,
  logSource: null, // picked by the operator; null: the default for the service
  logKey: null,
  logOffset: null,
  sampledAt: null,
  controllerAt: 0,
  timer: null,
  running: false,
  again: false,
  waitingForToken: false,
};

function fromHash() {
  const match = /^#service=(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

function select(name) {
  if (name === state.selected) return;
  location.hash = `service=${encodeURIComponent(name)}`;
}

function setLive(ok, text) {
  $("live-dot").className = `live-dot ${ok ? "on" : "off"}`;
  $("refreshed").textContent = text;
  $("forget-token").hidden = !api.savedToken();
}

async function refreshController() {
  if (Date.now() - state.controllerAt < CONTROLLER_EVERY_MS) return;
  const info = await api.controller();
  state.controllerAt = Date.now();
  $("controller").textContent = `${info.role} · ${info.database} · clouds: ${info.clouds.join(", ")}`;
}

async function refreshLog(service) {
  const source = state.logSource ?? defaultLogSource(service);
  renderLogSources($("log-source"), service, source);
  const pre = $("log");
  const key = `${service.name}\u0000${source}`;
  if (key !== state.logKey) {
    state.logKey = key;
    state.logOffset = null;
    pre.textContent = "";
  }
  const got = await api.log(service.name, source, state.logOffset, LOG_TAIL_BYTES);
  if (got === null) {
    if (state.logOffset === null) pre.replaceChildren(el("span", { class: "muted", text: "No log yet." }));
    return;
  }
  let text = got.text;
  if (state.logOffset === null) {
    pre.textContent = "";
    // A tail starts mid-line unless it starts at the file's beginning.
    if (got.start > 0 && text.includes("\n")) text = text.slice(text.indexOf("\n") + 1);
  } else if (got.next < state.logOffset) {
    state.logOffset = null; // the file shrank (a replica id reused): read its tail again
    return;
  }
  state.logOffset = got.next;
  if (!text) return;
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
  pre.append(text);
  const lines = pre.textContent.split("\n");
  if (lines.length > LOG_LINES) pre.textContent = lines.slice(-LOG_LINES).join("\n");
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

async function refreshDetail(service, market) {
  $("detail").hidden = false;
  renderHead({ name: $("detail-name"), status: $("detail-status"), reason: $("detail-reason") }, service);
  const since = state.sampledAt === null ? 0 : state.sampledAt - state.range;
  const [events, history] = await Promise.all([api.events(service.name), api.history(service.name, since)]);
  state.sampledAt = history.sampled_at;
  const source = state.logSource ?? defaultLogSource(service);
  renderZones($("zones"), $("zone-legend"), service, market, source, pickLog);
  renderReplicas($("replicas").tBodies[0], service, Date.now() / 1000, pickLog);
  renderTokens($("tokens-card"), $("tokens").tBodies[0], service);
  renderChart($("chart"), history, events, state.range);
  renderEvents($("events"), events, $("notable").checked);
  await refreshLog(service);
}

async function refresh() {
  const services = await api.services();
  const wanted = fromHash() ?? state.selected;
  const chosen = services.find((s) => s.name === wanted) ?? services[0] ?? null;
  if (chosen?.name !== state.selected) {
    state.selected = chosen?.name ?? null;
    state.logSource = null;
    state.sampledAt = null;
  }
  renderServices($("services").tBodies[0], $("no-services"), services, state.selected, select);
  const market = await api.market();
  renderMarket($("market-card"), $("market-driver"), $("market").tBodies[0], market);
  if (chosen) await refreshDetail(chosen, market);
  else $("detail").hidden = true;
  await refreshController();
}

/** One refresh at a time; asking during one runs another right after it. */
async function poll() {
  clearTimeout(state.timer);
  if (document.hidden) {
    state.timer = setTimeout(poll, POLL_MS); // nobody looks: ask nothing
    return;
  }
  if (state.running) {
    state.again = true;
    return;
  }
  state.running = true;
  try {
    await refresh();
    setLive(true, `updated ${clock(Date.now() / 1000)}`);
  } catch (error) {
    if (error instanceof api.Unauthorized) {
      askForToken();
      return;
    }
    setLive(false, `controller unreachable, retrying (${error.message})`);
  } finally {
    state.running = false;
  }
  if (state.again) {
    state.again = false;
    poll();
  } else {
    state.timer = setTimeout(poll, POLL_MS);
  }
}

function pickLog(source) {
  state.logSource = source;
  poll();
}

function askForToken() {
  const dialog = $("login");
  const refused = api.savedToken() !== null;
  api.forgetToken();
  $("login-error").hidden = !refused;
  $("login-error").textContent = refused ? "That token was refused." : "";
  setLive(false, "waiting for the token");
  state.waitingForToken = true;
  if (!dialog.open) dialog.showModal();
  $("token").focus();
}

function start() {
  const dialog = $("login");
  dialog.addEventListener("cancel", (e) => e.preventDefault());
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const value = $("token").value.trim();
    if (!value) return;
    api.saveToken(value);
    $("token").value = "";
    dialog.close();
    state.waitingForToken = false;
    state.controllerAt = 0;
    poll();
  });
  $("forget-token").addEventListener("click", () => {
    api.forgetToken();
    poll();
  });
  $("log-source").addEventListener("change", (e) => pickLog(e.target.value));
  $("notable").addEventListener("change", () => poll());
  $("ranges").addEventListener("click", (e) => {
    const seconds = Number(e.target.dataset?.seconds);
    if (!seconds) return;
    state.range = seconds;
    state.sampledAt = null;
    for (const b of $("ranges").children) b.classList.toggle("on", b === e.target);
    poll();
  });
  window.addEventListener("hashchange", () => poll());
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !state.waitingForToken) poll();
  });
  poll();
}

start();
