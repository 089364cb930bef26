// The REST API, as the dashboard reads it. With SERVE_READ_AUTH a read answers 401: the
// page then asks for the token, keeps it in this tab's sessionStorage (gone when the tab
// closes) and sends it as `Authorization: Bearer`.

const KEY = "spotserve.token";

export class Unauthorized extends Error {}
export class Missing extends Error {}

export function savedToken() {
  return sessionStorage.getItem(KEY);
}

export function saveToken(value) {
  sessionStorage.setItem(KEY, value.trim());
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
}

async function get(path) {
  const headers = { Accept: "application/json" };
  const tokenValue = savedToken();
  if (tokenValue) {
    // A header cannot carry other characters (fetch would throw): such a token is wrong.
    if (!/^[\x21-\x7e]+$/.test(tokenValue)) throw new Unauthorized(path);
    headers.Authorization = `Bearer ${tokenValue}`;
  }
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401) throw new Unauthorized(path);
  if (response.status === 404) throw new Missing(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response;
}

const service = (name) => `/api/v1/services/${encodeURIComponent(name)}`;

export async function services() {
  return (await get("/api/v1/services")).json();
}

export async function controller() {
  return (await get("/api/v1/controller")).json();
}

export async function events(name) {
  return (await get(`${service(name)}/events?limit=150`)).json();
}

export async function history(name, since) {
  return (await get(`${service(name)}/history?since=${Math.max(0, Math.floor(since))}`)).json();
}

/** The market, or null when the local provisioner is not enabled (a 404). */
export async function market() {
  try {
    return await (await get("/api/v1/market")).json();
  } catch (error) {
    if (error instanceof Missing) return null;
    throw error;
  }
}

/**
 * A log's text from `offset` on (or its last `tail` bytes when offset is null), with the
 * byte offsets it starts at and to ask from next time. Null when there is no such log (yet).
 */
export async function log(name, source, offset, tail) {
  const query = new URLSearchParams();
  if (source === "lb") query.set("target", "lb");
  else query.set("replica", source);
  if (offset === null) query.set("tail", String(tail));
  else query.set("offset", String(offset));
  try {
    const response = await get(`${service(name)}/logs?${query}`);
    const next = Number(response.headers.get("X-Log-Offset"));
    const bytes = await response.arrayBuffer();
    return { text: new TextDecoder().decode(bytes), start: next - bytes.byteLength, next };
  } catch (error) {
    if (error instanceof Missing) return null;
    throw error;
  }
}
