// A hand-written SVG chart of one service's history: ready spot and on-demand replicas
// stacked (with the target dashed) above, cost per hour against what the same target
// would cost all on-demand below (the gap shaded: the saving). Values are steps: each
// point holds until the next one, the last until the newest sampling.

import { clock, el, hhmm, money, svg } from "./dom.js";

const HEIGHT = 300;
const LEFT = 46;
const RIGHT = 14;
const TOP = { y: 18, h: 150 };
const COST = { y: 200, h: 72 };
const MARK_Y = TOP.y + TOP.h + 4;
const TICK_STEPS = [15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
const MARKED = {
  replica_preempted: "preempted",
  preemption_notice: "preemption notice",
  fallback_to_on_demand: "fallback to on-demand",
};

let drawn = null; // what the last render drew, for the hover readout

/** Segments [from, to) of each point within [start, end]. */
function segments(points, start, end) {
  const out = [];
  points.forEach((point, i) => {
    const from = Math.max(point.at, start);
    const to = Math.min(i + 1 < points.length ? points[i + 1].at : end, end);
    if (to > from) out.push({ from, to, point });
  });
  return out;
}

/** A top for the axis above `value` and a tick step: 1, 2 or 5 times a power of ten. */
function scale(value, minimum, ticks) {
  const raw = Math.max(value, minimum) / ticks;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  return { step, max: Math.ceil(Math.max(value, minimum) / step + 1e-9) * step };
}

/** An area between two step functions of a segment's point, as one SVG path. */
function stepArea(segs, x, y, lower, upper) {
  if (!segs.length) return "";
  const top = segs.map((s) => `${x(s.from)},${y(upper(s.point))} ${x(s.to)},${y(upper(s.point))}`);
  const bottom = segs
    .slice()
    .reverse()
    .map((s) => `${x(s.to)},${y(lower(s.point))} ${x(s.from)},${y(lower(s.point))}`);
  return `M${top.join(" L")} L${bottom.join(" L")} Z`;
}

/** A step line of `value`, drawn only where `shown` holds (elsewhere the line breaks). */
function stepLine(segs, x, y, value, shown = () => true) {
  let d = "";
  let drawing = false;
  for (const s of segs) {
    if (!shown(s.point)) {
      drawing = false;
      continue;
    }
    const v = y(value(s.point));
    d += `${drawing ? " L" : " M"}${x(s.from)},${v} L${x(s.to)},${v}`;
    drawing = true;
  }
  return d.trim();
}

function timeTicks(start, end) {
  const span = end - start;
  const step = TICK_STEPS.find((s) => span / s <= 6) ?? 14400;
  const ticks = [];
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) ticks.push(t);
  return { ticks, label: step < 60 ? clock : hhmm };
}

function yAxis(group, width, panel, axis, format) {
  for (let value = 0; value <= axis.max + 1e-9; value += axis.step) {
    const y = panel.y + panel.h - (panel.h * value) / axis.max;
    group.append(
      svg("line", { class: "grid", x1: LEFT, x2: width - RIGHT, y1: y, y2: y }),
      svg("text", { class: "axis", x: LEFT - 6, y: y + 4, "text-anchor": "end", text: format(value) }),
    );
  }
}

/**
 * Draw `history` (the API's body) over the last `range` seconds into `container`, with
 * `events` marked on the time axis.
 */
export function renderChart(container, history, events, range) {
  const points = history.points;
  const width = Math.max(360, Math.round(container.clientWidth || 640));
  if (!points.length) {
    drawn = null;
    container.replaceChildren(el("p", { class: "empty", text: "No samples yet." }));
    return;
  }
  const end = Math.max(history.sampled_at ?? points[points.length - 1].at, points[points.length - 1].at);
  let start = Math.max(end - range, points[0].at);
  if (end - start < 60) start = end - 60;
  const segs = segments(points, start, end);
  const x = (t) => (LEFT + ((t - start) / (end - start)) * (width - LEFT - RIGHT)).toFixed(1);
  const most = (f) => Math.max(...segs.map((s) => f(s.point)));
  const replicas = scale(most((p) => Math.max(p.ready_spot + p.ready_on_demand, p.target)) + 1, 2, 4);
  replicas.step = Math.max(1, replicas.step);
  const cost = scale(most((p) => Math.max(p.cost_per_hour, p.on_demand_cost_per_hour)), 0.01, 2);
  const yReplicas = (v) => (TOP.y + TOP.h - (v / replicas.max) * TOP.h).toFixed(1);
  const yCost = (v) => (COST.y + COST.h - (v / cost.max) * COST.h).toFixed(1);

  const root = svg("svg", {
    viewBox: `0 0 ${width} ${HEIGHT}`,
    role: "img",
    "aria-label": "ready replicas and cost over time",
    "data-samples": points.length,
  });
  const axes = svg("g");
  yAxis(axes, width, TOP, replicas, (v) => String(Math.round(v)));
  yAxis(axes, width, COST, cost, (v) => money(v));
  const { ticks, label } = timeTicks(start, end);
  for (const t of ticks) {
    const tx = Number(x(t));
    const anchor = tx > width - RIGHT - 24 ? "end" : tx < LEFT + 24 ? "start" : "middle";
    axes.append(svg("text", { class: "axis", x: tx, y: HEIGHT - 6, "text-anchor": anchor, text: label(t) }));
  }
  axes.append(
    svg("text", { class: "panel-title", x: LEFT, y: TOP.y - 6, text: "ready replicas" }),
    svg("text", { class: "panel-title", x: LEFT, y: COST.y - 8, text: "cost per hour" }),
  );
  root.append(axes);

  const spot = (p) => p.ready_spot;
  const total = (p) => p.ready_spot + p.ready_on_demand;
  root.append(
    svg("path", { class: "area-spot", d: stepArea(segs, x, yReplicas, () => 0, spot) }),
    svg("path", { class: "area-od", d: stepArea(segs, x, yReplicas, spot, total) }),
    svg("path", { class: "line-spot", d: stepLine(segs, x, yReplicas, spot) }),
    svg("path", { class: "line-od", d: stepLine(segs, x, yReplicas, total, (p) => p.ready_on_demand > 0) }),
    svg("path", { class: "target", d: stepLine(segs, x, yReplicas, (p) => p.target) }),
    svg("path", {
      class: "saving",
      d: stepArea(segs, x, yCost, (p) => p.cost_per_hour, (p) => Math.max(p.cost_per_hour, p.on_demand_cost_per_hour)),
    }),
    svg("path", { class: "cost-od", d: stepLine(segs, x, yCost, (p) => p.on_demand_cost_per_hour) }),
    svg("path", { class: "cost", d: stepLine(segs, x, yCost, (p) => p.cost_per_hour) }),
  );
  const last = segs[segs.length - 1];
  root.append(svg("circle", { class: "now", cx: x(last.to), cy: yReplicas(total(last.point)), r: 3.5 }));
  for (const event of events) {
    const what = MARKED[event.kind];
    if (!what || event.at < start || event.at > end) continue;
    const ex = Number(x(event.at));
    const title = svg("title", { text: `${clock(event.at)} ${what}: ${event.message}` });
    if (event.kind === "fallback_to_on_demand") {
      const d = `M${ex - 5},${MARK_Y + 8} L${ex + 5},${MARK_Y + 8} L${ex},${MARK_Y} Z`;
      root.append(svg("path", { class: "marker fallback", d }, title));
    } else {
      const d = `M${ex},${TOP.y} V${TOP.y + TOP.h}`;
      root.append(svg("path", { class: "marker preempt", d }, title));
    }
  }
  const overlay = svg("g", { class: "hover" });
  root.append(overlay);
  root.addEventListener("mousemove", (e) => hover(root, overlay, e));
  root.addEventListener("mouseleave", () => overlay.replaceChildren());
  drawn = { segs, start, end, width, x };
  container.replaceChildren(root);
}

function hover(root, overlay, event) {
  if (!drawn) return;
  const box = root.getBoundingClientRect();
  const px = ((event.clientX - box.left) / box.width) * drawn.width;
  const t = drawn.start + ((px - LEFT) / (drawn.width - LEFT - RIGHT)) * (drawn.end - drawn.start);
  const seg = drawn.segs.find((s) => t >= s.from && t <= s.to);
  if (!seg) {
    overlay.replaceChildren();
    return;
  }
  const p = seg.point;
  const text = `${clock(t)}  spot ${p.ready_spot} · on-demand ${p.ready_on_demand} · target ${p.target} · ${money(p.cost_per_hour)}/h (all on-demand ${money(p.on_demand_cost_per_hour)})`;
  const cx = drawn.x(t);
  const label = svg("text", { class: "readout", x: LEFT + 8, y: TOP.y + 14, text });
  overlay.replaceChildren(
    svg("line", { class: "cursor", x1: cx, x2: cx, y1: TOP.y, y2: COST.y + COST.h }),
    svg("rect", { class: "readout-bg", x: LEFT + 2, y: TOP.y + 1, width: Math.min(drawn.width - LEFT - RIGHT - 4, text.length * 6.3 + 12), height: 19, rx: 4 }),
    label,
  );
}
