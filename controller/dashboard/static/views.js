// Each part of the page drawn from the API's bodies. Pure DOM building: no fetching here.

import { ago, clock, el, link, money, percent, perMillion, pill, rate, token } from "./dom.js";

const ENDED = new Set([
  "PREEMPTED",
  "FAILED",
  "FAILED_PROVISION",
  "FAILED_PROBING",
  "FAILED_INITIAL_DELAY",
]);
const EVENT_CLASS = {
  replica_preempted: "preempt",
  preemption_notice: "preempt",
  fallback_to_on_demand: "fallback",
  launch_refused: "fallback",
  back_to_spot: "good",
  replica_ready: "good",
  replica_failed: "bad",
  launch_failed: "bad",
  orphan_terminated: "bad",
  lb_port_taken: "bad",
  lb_started: "good",
  on_demand_only: "fallback",
};

/** The endpoint does not answer though replicas may be READY: its port is taken. */
function endpointDown(why) {
  return el("span", { class: "pill s-FAILED endpoint-down", title: why, text: "DOWN" });
}

/** The policy runs on on-demand only to keep the service's availability target. */
function onDemandOnly(why) {
  return el("span", { class: "pill s-NOT_READY on-demand-only", title: why, text: "ON-DEMAND ONLY" });
}

function mixBar(spot, onDemand) {
  const total = spot + onDemand;
  const bar = el("span", { class: "mix" });
  if (total) {
    const s = el("span", { class: "spot" });
    const o = el("span", { class: "od" });
    s.style.width = `${(100 * spot) / total}%`;
    o.style.width = `${(100 * onDemand) / total}%`;
    bar.append(s, o);
  }
  return bar;
}

export function renderServices(tbody, empty, services, selected, onSelect) {
  empty.hidden = services.length > 0;
  tbody.replaceChildren(
    ...services.map((s) => {
      const status = pill(s.status);
      if (s.status_reason) status.setAttribute("title", s.status_reason);
      return el(
        "tr",
        {
          class: s.name === selected ? "selected" : null,
          "data-service": s.name,
          onclick: () => onSelect(s.name),
        },
        el("td", { class: "svc-name", text: s.name }),
        el("td", {}, status),
        el("td", { class: "num", text: s.version }),
        el("td", { class: "num", text: `${s.ready_replicas} / ${s.target_replicas}` }),
        el(
          "td",
          {},
          mixBar(s.spot_replicas, s.on_demand_replicas),
          `${s.spot_replicas} spot · ${s.on_demand_replicas} on-demand`,
          s.on_demand_only ? onDemandOnly(s.on_demand_only) : null,
        ),
        el("td", {}, link(s.endpoint), s.endpoint_down ? endpointDown(s.endpoint_down) : null),
        el("td", { class: "num", text: money(s.cost.per_hour) }),
        el("td", { class: "num muted", text: money(s.cost.on_demand_per_hour) }),
        el("td", { class: "num saved", text: percent(s.cost.savings_fraction) }),
        el("td", { class: "num", "data-field": "tokens-per-second", text: rate(s.tokens.tokens_per_second) }),
        el("td", { class: "num", "data-field": "per-million", text: perMillion(s.tokens.usd_per_million_tokens) }),
      );
    }),
  );
}

const MARKET_NAMES = { spot: "Spot", on_demand: "On-demand", unknown: "Unknown replicas", all: "All" };

/** Tokens per market from the answers' OpenAI `usage`; hidden until a token came. */
export function renderTokens(card, tbody, service) {
  const tokens = service.tokens;
  card.hidden = !tokens.tokens_so_far;
  const row = (name, figures, cls) =>
    el(
      "tr",
      { class: cls, "data-market": name },
      el("td", { text: MARKET_NAMES[name] ?? name }),
      el("td", { class: "num", text: rate(figures.tokens_per_second) }),
      el("td", { class: "num muted", text: rate(figures.prompt_tokens_per_second) }),
      el("td", { class: "num muted", text: rate(figures.completion_tokens_per_second) }),
      el("td", { class: "num", text: money(figures.cost_per_hour) }),
      el("td", { class: "num per-million", text: perMillion(figures.usd_per_million_tokens) }),
      el("td", { class: "num", text: figures.tokens_so_far.toLocaleString() }),
    );
  const markets = Object.entries(tokens.markets).sort(([a], [b]) => a.localeCompare(b));
  tbody.replaceChildren(...markets.map(([name, figures]) => row(name, figures, "")), row("all", tokens, "total"));
}

export function renderHead(parts, service) {
  parts.name.textContent = service.name;
  parts.status.textContent = service.status;
  parts.status.className = `pill s-${token(service.status)}`;
  const up = service.uptime_seconds === null ? "" : `up ${ago(service.uptime_seconds)} · `;
  parts.reason.textContent = `${up}version ${service.version} · ${service.policy}${
    service.status_reason ? ` · ${service.status_reason}` : ""
  }`;
}

function zoneKey(cloud, region, zone) {
  return `${cloud}/${region}/${zone}`;
}

function chip(replica, current, onPick) {
  const ended = ENDED.has(replica.status);
  const title = [
    `replica ${replica.id} · ${replica.status}`,
    replica.spot ? "spot" : "on-demand",
    replica.instance_type,
    `${money(replica.price_per_hour)}/h`,
    replica.status_reason,
  ]
    .filter(Boolean)
    .join(" · ");
  return el("button", {
    type: "button",
    class: `chip s-${token(replica.status)}${ended ? " ended" : ""}${current ? " current" : ""}`,
    title,
    "data-replica": replica.id,
    "data-status": replica.status,
    text: `#${replica.id}`,
    onclick: () => onPick(String(replica.id)),
  });
}

/** One card per zone (the market's zones too, so an empty zone shows), a row per market. */
export function renderZones(box, legend, service, market, logSource, onPick) {
  const zones = new Map();
  const usesLocal = !service.replicas.length || service.replicas.some((r) => r.cloud === "local");
  if (market && usesLocal) {
    for (const z of market.zones) zones.set(zoneKey("local", "local", z.zone), { cloud: "local", region: "local", zone: z.zone, replicas: [] });
  }
  for (const r of service.replicas) {
    const key = zoneKey(r.cloud, r.region, r.zone);
    if (!zones.has(key)) zones.set(key, { cloud: r.cloud, region: r.region, zone: r.zone, replicas: [] });
    zones.get(key).replicas.push(r);
  }
  const cards = [...zones.values()]
    .sort((a, b) => a.zone.localeCompare(b.zone))
    .map((z) => {
      const row = (spot) => {
        const mine = z.replicas.filter((r) => r.spot === spot);
        return el(
          "div",
          { class: "market-row" },
          el("span", { class: `market-label ${spot ? "spot" : "od"}`, text: spot ? "SPOT" : "OD", title: spot ? "spot" : "on-demand" }),
          mine.length
            ? el("div", { class: "chips" }, ...mine.map((r) => chip(r, String(r.id) === logSource, onPick)))
            : el("span", { class: "none", text: "–" }),
        );
      };
      return el(
        "div",
        { class: "zone", "data-zone": z.zone },
        el("div", { class: "zone-name" }, el("span", { text: z.zone }), el("span", { class: "muted", text: `${z.cloud}/${z.region}` })),
        row(true),
        row(false),
      );
    });
  box.replaceChildren(...(cards.length ? cards : [el("p", { class: "empty", text: "No replicas." })]));
  const statuses = [...new Set(service.replicas.map((r) => r.status))].sort();
  legend.replaceChildren(
    ...statuses.map((s) => el("span", {}, el("i", { class: `swatch s-${token(s)}` }), s)),
  );
}

const NOTABLE = new Set(["preempt", "fallback", "bad"]);

/** Newest first; `notableOnly`: preemptions (and their notices), fallbacks and failures. */
export function renderEvents(list, events, notableOnly) {
  const shown = notableOnly ? events.filter((e) => NOTABLE.has(EVENT_CLASS[e.kind])) : events;
  if (!shown.length) {
    list.replaceChildren(el("li", { class: "empty", text: notableOnly ? "Nothing notable." : "No events yet." }));
    return;
  }
  list.replaceChildren(
    ...shown
      .slice()
      .reverse()
      .map((e) => {
        const more = e.count > 1 ? `×${e.count}, last ${clock(e.last_at ?? e.at)}` : null;
        return el(
          "li",
          { class: `event ${EVENT_CLASS[e.kind] ?? ""}`, "data-kind": e.kind },
          el("time", { text: clock(e.at) }),
          el(
            "div",
            {},
            el("span", { class: "kind", text: e.kind }),
            e.replica_id !== null ? el("span", { class: "count", text: `replica ${e.replica_id}` }) : null,
            more ? el("span", { class: "count", text: more }) : null,
          ),
          el("div", { class: "msg", text: e.message }),
        );
      }),
  );
}

/** The log sources: each replica (newest first, ended ones last), then the load balancer. */
export function renderLogSources(select, service, chosen) {
  const replicas = service.replicas
    .slice()
    .sort((a, b) => ENDED.has(a.status) - ENDED.has(b.status) || b.id - a.id);
  const options = [
    ...replicas.map((r) => [String(r.id), `replica ${r.id} · ${r.status} · ${r.zone} ${r.spot ? "spot" : "on-demand"}`]),
    ["lb", "load balancer"],
  ];
  const wanted = options.map(([value, text]) => `${value}\u0000${text}`).join("\n");
  if (select.dataset.options !== wanted) {
    select.replaceChildren(...options.map(([value, text]) => el("option", { value, text })));
    select.dataset.options = wanted;
  }
  select.value = chosen;
}

/** The replica whose log to show when none was picked: a ready one, else the newest. */
export function defaultLogSource(service) {
  const ready = service.replicas.filter((r) => r.status === "READY");
  const pick = ready[0] ?? service.replicas.slice().sort((a, b) => b.id - a.id)[0];
  return pick ? String(pick.id) : "lb";
}

export function renderMarket(card, driverText, tbody, market) {
  card.hidden = market === null;
  if (market === null) return;
  const driver = market.driver ?? {};
  driverText.textContent = `· driver: ${driver.mode ?? "manual"}`;
  tbody.replaceChildren(
    ...market.zones.map((z) => {
      const unlimited = z.spot_capacity === null;
      const bar = el("span", { class: `bar${!unlimited && z.spot_in_use >= z.spot_capacity ? " full" : ""}` });
      const fill = el("span");
      fill.style.width = unlimited ? `${Math.min(100, z.spot_in_use * 10)}%` : `${z.spot_capacity ? Math.min(100, (100 * z.spot_in_use) / z.spot_capacity) : 100}%`;
      bar.append(fill);
      return el(
        "tr",
        { "data-zone": z.zone },
        el("td", { class: "svc-name", text: z.zone }),
        el("td", {}, el("span", { class: "capacity" }, bar, `${z.spot_in_use} / ${unlimited ? "unlimited" : z.spot_capacity}`)),
        el("td", { class: "num", text: money(z.spot_price) }),
        el("td", { class: "num", text: money(z.on_demand_price) }),
        el("td", { class: "num", text: `${z.boot_seconds}s` }),
        el("td", { class: "num", text: z.notice_seconds ? `${z.notice_seconds}s` : "–" }),
      );
    }),
  );
}

/** The replicas, newest first, with why each is in its status (hover the status). */
export function renderReplicas(tbody, service, now, onPick) {
  const rows = service.replicas.slice().sort((a, b) => b.id - a.id);
  tbody.replaceChildren(
    ...rows.map((r) => {
      const status = pill(r.status);
      if (r.status_reason) status.setAttribute("title", r.status_reason);
      const launched = r.launched_at ?? r.created_at;
      return el(
        "tr",
        { "data-replica": r.id, class: ENDED.has(r.status) ? "ended" : null, onclick: () => onPick(String(r.id)) },
        el("td", { class: "num", text: r.id }),
        el("td", {}, status),
        el("td", { text: r.zone }),
        el(
          "td",
          {},
          el("span", { class: r.spot ? "spot-text" : "od-text", text: r.spot ? "spot" : "on-demand" }),
          el("span", { class: "muted", text: ` ${r.instance_type}` }),
        ),
        el("td", { class: "num", text: money(r.price_per_hour) }),
        el("td", { class: "num muted", text: `${ago(now - launched)} ago` }),
      );
    }),
  );
}
