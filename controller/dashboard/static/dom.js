// Building the page from data without ever parsing data as markup: every value goes in as
// a text node or an attribute value (service names, log lines and event messages come
// from users).

const SVG_NS = "http://www.w3.org/2000/svg";

function build(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.setAttribute("class", value);
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

/** An HTML element; strings among `children` become text nodes. */
export function el(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, the same way. */
export function svg(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** A link only for http(s) URLs: anything else (`javascript:` ...) stays plain text. */
export function link(url, text) {
  if (typeof url === "string" && /^https?:\/\//i.test(url)) {
    return el("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: text ?? url });
  }
  return document.createTextNode(url ?? "–");
}

/** A class name made only of letters, digits, `_` and `-` (statuses are such words). */
export function token(value) {
  return String(value).replace(/[^A-Za-z0-9_-]/g, "");
}

export function pill(status) {
  return el("span", { class: `pill s-${token(status)}`, text: status });
}

export function money(value) {
  if (value === null || value === undefined) return "–";
  return value >= 100 ? `$${value.toFixed(0)}` : `$${value.toFixed(2)}`;
}

/** Dollars per million tokens: cents matter, so never rounded to whole dollars. */
export function perMillion(value) {
  if (value === null || value === undefined) return "–";
  return value >= 1000 ? `$${value.toFixed(0)}` : value >= 0.1 ? `$${value.toFixed(2)}` : `$${value.toFixed(4)}`;
}

export function rate(value) {
  if (!value) return "–";
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

export function percent(fraction) {
  return fraction === null || fraction === undefined ? "–" : `${Math.round(fraction * 100)}%`;
}

export function clock(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleTimeString([], { hour12: false });
}

export function hhmm(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleTimeString([], {
    hour: "2-digit",
    minute: "2-digit",
    hour12: false,
  });
}

export function ago(seconds) {
  if (seconds < 60) return `${Math.max(0, Math.round(seconds))}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${Math.round(seconds % 60)}s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d ${Math.floor((seconds % 86400) / 3600)}h`;
}
