// Shared helpers of the dashboard: building elements, calling the API, formatting numbers.

const SVG_NS = "http://www.w3.org/2000/svg";

// el("a", {href: "/", class: "x", text: "hi", onclick: fn}, child, ...) -> an element.
export function el(tag, attrs = {}, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

// The same for SVG elements; attributes are set as attributes.
export function svg(tag, attrs = {}, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

function fill(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.setAttribute("class", value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// An error answered by the API: its kind (not-found, damaged, ...), message and status.
export class ApiFailure extends Error {
  constructor(kind, message, status) {
    super(message);
    this.kind = kind;
    this.status = status;
  }
}

// GET (or POST) an API path with query parameters; the parsed document, or an ApiFailure.
export async function api(path, params = {}, method = "GET") {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) query.append(key, item);
  }
  const text = query.toString();
  const url = `/api/${path}${text ? "?" + text : ""}`;
  let answer;
  try {
    answer = await fetch(url, { method, headers: { Accept: "application/json" } });
  } catch (err) {
    throw new ApiFailure("offline", "the dashboard's server cannot be reached (is `ckpt ui` still running?)", 0);
  }
  let doc = null;
  try {
    doc = await answer.json();
  } catch (err) {
    throw new ApiFailure("internal", `unexpected answer (${answer.status}) from ${url}`, answer.status);
  }
  if (!answer.ok) {
    const error = (doc && doc.error) || {};
    throw new ApiFailure(error.kind || "error", error.message || `error ${answer.status}`, answer.status);
  }
  return doc;
}

export function jobPath(name) {
  return `jobs/${encodeURIComponent(name)}`;
}

export function jobUrl(name, commit) {
  return `/jobs/${encodeURIComponent(name)}` + (commit ? `?commit=${encodeURIComponent(commit)}` : "");
}

// A box telling what went wrong; damage points at the store page's verify report.
export function errorBox(error, what = "") {
  const kind = error.kind || "internal";
  const box = el("div", { class: `error ${kind}`, role: "alert", dataset: { kind } });
  if (kind === "damaged") {
    box.append(
      el("strong", { text: "The store is damaged. " }),
      `${what ? what + ": " : ""}${error.message}. `,
      el("a", { href: "/store", text: "The store page's verify report" }),
      " names the jobs it breaks and the last good checkpoints.",
    );
  } else {
    box.append(`${what ? what + ": " : ""}${error.message}`);
  }
  return box;
}

// -- numbers, sizes and times, written as the command line writes them ------------

export function money(amount) {
  if (amount > 0 && amount < 0.01) return `$${amount.toFixed(4)}`;
  return "$" + amount.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

export function count(n) {
  return Number(n).toLocaleString("en-US");
}

export function size(bytes) {
  if (bytes === null || bytes === undefined) return "-";
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes / 1024;
  for (const unit of ["KiB", "MiB", "GiB"]) {
    if (value < 1024) return `${value.toFixed(1)} ${unit}`;
    value /= 1024;
  }
  return `${value.toFixed(1)} TiB`;
}

export function ratio(value) {
  return value === null || value === undefined ? "-" : `${value.toFixed(2)}x`;
}

export function relativeTime(iso, now = Date.now()) {
  if (!iso) return "-";
  let seconds = (now - Date.parse(iso)) / 1000;
  const future = seconds < 0;
  seconds = Math.abs(seconds);
  if (seconds < 10) return "just now";
  const steps = [
    [60, 1, "second"],
    [3600, 60, "minute"],
    [86400, 3600, "hour"],
    [14 * 86400, 86400, "day"],
    [60 * 86400, 7 * 86400, "week"],
    [365 * 86400, 30 * 86400, "month"],
  ];
  let [unitSeconds, name] = [365 * 86400, "year"];
  for (const [limit, unit, label] of steps) {
    if (seconds < limit) {
      [unitSeconds, name] = [unit, label];
      break;
    }
  }
  const n = Math.floor(seconds / unitSeconds);
  const text = `${n} ${name}${n === 1 ? "" : "s"}`;
  return future ? `in ${text}` : `${text} ago`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  seconds = Math.round(seconds);
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${seconds % 60}s`;
  const hours = Math.floor(seconds / 3600);
  if (hours < 48) return `${hours}h ${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

// What is left of a run's estimate, counting the time since its last checkpoint.
export function etaText(job, now = Date.now()) {
  if (job.status !== "active" || job.eta_seconds === null || job.eta_seconds === undefined) return "";
  const since = job.updated ? (now - Date.parse(job.updated)) / 1000 : 0;
  const left = job.eta_seconds - Math.max(0, since);
  return left >= 1 ? `~${duration(left)}` : "soon";
}

export function shortId(id) {
  return id ? id.slice(0, 12) : "-";
}

export function statusBadge(status, title) {
  return el("span", { class: `status status-${status}`, text: status, title });
}

// A progress bar of `done` out of `total` (total unknown: the count, and a full bar once the
// job completed).
export function progressBar(done, total, status) {
  const known = Boolean(total) || status === "completed";
  const fraction = total ? Math.min(1, done / total) : known ? 1 : 0;
  const bar = el("span", { class: `bar bar-${status}${known ? "" : " bar-unknown"}` });
  const inner = el("span", { class: "bar-fill" });
  inner.style.width = `${(fraction * 100).toFixed(1)}%`;
  bar.append(inner);
  return el(
    "span",
    { class: "progress", title: total ? `${done} of ${total} stages (${Math.round(fraction * 100)}%)` : `${done} stages` },
    bar,
    el("span", { class: "progress-text", text: total ? `${done}/${total}` : `${done}` }),
  );
}

// The "live" mark in the header: connected or not.
export function setLive(connected, what) {
  const mark = document.getElementById("live");
  if (!mark) return;
  mark.classList.toggle("on", connected);
  mark.title = connected ? `Live updates: watching ${what}` : "Live updates: reconnecting…";
}

// An EventSource on `path` with a handler per event name; reconnects on its own.
export function subscribe(path, handlers, what) {
  const source = new EventSource(`/api/${path}`);
  source.addEventListener("open", () => setLive(true, what));
  source.addEventListener("error", () => setLive(false, what));
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
  }
  return source;
}

// Replace the children of `node` (null, undefined and false are left out).
export function put(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}
