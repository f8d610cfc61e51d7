// The stage value viewer: a small value as collapsible, pretty JSON; a large one page by page,
// never loaded whole (each page is a request for a slice of the value's bytes).

import { api, el, errorBox, jobPath, put, size } from "./util.js";

// Values up to this size are loaded whole and shown as a tree; larger ones are paged.
export const TREE_LIMIT = 1 << 20;
export const PAGE_BYTES = 64 << 10;
const CHILDREN_STEP = 200;
const STRING_LIMIT = 400;

// A JSON value as a tree of <details> elements, children built when first opened.
export function jsonTree(value, key = null, depth = 0) {
  const name = key === null ? null : el("span", { class: "json-key", text: typeof key === "number" ? `${key}: ` : `${JSON.stringify(key)}: ` });
  if (value === null || typeof value !== "object") {
    return el("div", { class: "json-line" }, name, scalar(value));
  }
  const isArray = Array.isArray(value);
  const entries = isArray ? value.map((v, i) => [i, v]) : Object.entries(value);
  const brief = isArray ? `[…] ${entries.length} item${entries.length === 1 ? "" : "s"}` : `{…} ${entries.length} key${entries.length === 1 ? "" : "s"}`;
  const node = el("details", { class: "json-node" }, el("summary", {}, name, el("span", { class: "json-brief", text: brief })));
  let shown = 0;
  const more = el("button", { class: "json-more", type: "button" });
  function grow() {
    const next = entries.slice(shown, shown + CHILDREN_STEP);
    const items = next.map(([k, v]) => jsonTree(v, k, depth + 1));
    more.before(...items);
    shown += next.length;
    more.hidden = shown >= entries.length;
    more.textContent = `show ${Math.min(CHILDREN_STEP, entries.length - shown)} more of ${entries.length - shown}`;
  }
  more.addEventListener("click", grow);
  const body = el("div", { class: "json-children" }, more);
  node.append(body);
  node.addEventListener("toggle", () => {
    if (node.open && shown === 0 && entries.length) grow();
  });
  if (depth < 2 && entries.length <= 50) node.open = true;
  if (!entries.length) more.hidden = true;
  return node;
}

function scalar(value) {
  if (typeof value === "string") {
    const text = JSON.stringify(value);
    if (text.length <= STRING_LIMIT) return el("span", { class: "json-string", text });
    const span = el("span", { class: "json-string", text: text.slice(0, STRING_LIMIT) + "…" });
    const all = el("button", {
      class: "json-more",
      type: "button",
      text: `show all ${value.length.toLocaleString("en-US")} characters`,
      onclick: () => {
        span.textContent = text;
        all.remove();
      },
    });
    return el("span", {}, span, " ", all);
  }
  const kind = value === null ? "null" : typeof value;
  return el("span", { class: `json-${kind}`, text: JSON.stringify(value) });
}

// A page of compact JSON text laid out one token per line where it nests, so that a slice
// cut anywhere in a value still reads; depth starts at 0 on each page.
export function prettyFragment(text) {
  let out = "";
  let depth = 0;
  let inString = false;
  let escaped = false;
  const indent = () => "\n" + "  ".repeat(Math.max(0, depth));
  for (const ch of text) {
    if (inString) {
      out += ch;
      if (escaped) escaped = false;
      else if (ch === "\\") escaped = true;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') {
      inString = true;
      out += ch;
    } else if (ch === "{" || ch === "[") {
      depth++;
      out += ch + indent();
    } else if (ch === "}" || ch === "]") {
      depth--;
      out += indent() + ch;
    } else if (ch === ",") {
      out += ch + indent();
    } else if (ch === ":") {
      out += ": ";
    } else {
      out += ch;
    }
  }
  return out;
}

function hexDump(base64, offset) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const lines = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const row = bytes.slice(i, i + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    const text = [...row].map((b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${(offset + i).toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${text}`);
  }
  return lines.join("\n");
}

// Show stage `stage` (its tree entry `entry`: size, type, encoding) of job `job` at `rev`.
export function valueViewer(job, rev, stage, entry) {
  const box = el("section", { class: "viewer", id: "value-viewer", dataset: { stage } });
  const head = el(
    "div",
    { class: "viewer-head" },
    el("h3", {}, `${stage} `, el("span", { class: "muted", text: `${entry.type}, ${size(entry.size)}` })),
    el("button", { type: "button", class: "close", text: "Close", onclick: () => box.remove() }),
  );
  const body = el("div", { class: "viewer-body" }, el("p", { class: "muted", text: "Loading…" }));
  box.append(head, body);
  const paged = entry.encoding === "raw" || entry.size > TREE_LIMIT;
  if (!paged) {
    api(`${jobPath(job)}/value`, { rev, stage, offset: 0, length: Math.max(1, entry.size) })
      .then((page) => {
        let tree;
        try {
          tree = jsonTree(JSON.parse(page.text));
        } catch (err) {
          tree = el("pre", { class: "json-text", text: page.text });
        }
        put(body, el("div", { class: "json-tree" }, tree));
      })
      .catch((err) => put(body, errorBox(err, `reading ${stage}`)));
    return box;
  }
  const pages = Math.max(1, Math.ceil(entry.size / PAGE_BYTES));
  const where = el("span", { class: "page-where" });
  const text = el("pre", { class: "json-text paged", id: "value-page" });
  const jump = el("input", { type: "number", min: 1, max: pages, value: 1, "aria-label": "Page", class: "page-jump" });
  const prev = el("button", { type: "button", class: "page-prev", text: "‹ Previous" });
  const next = el("button", { type: "button", class: "page-next", text: "Next ›" });
  let current = { offset: 0, length: 0 };
  let starts = [0];

  async function load(offset, index) {
    try {
      const page = await api(`${jobPath(job)}/value`, { rev, stage, offset, length: PAGE_BYTES });
      current = page;
      starts[index] = page.offset;
      if (index + 1 < pages) starts[index + 1] = page.offset + page.length;
      text.textContent = page.encoding === "raw" ? hexDump(page.base64, page.offset) : prettyFragment(page.text);
      where.textContent = ` Page ${index + 1} of ${pages}: bytes ${page.offset.toLocaleString("en-US")}–${(page.offset + page.length).toLocaleString("en-US")} of ${page.size.toLocaleString("en-US")} `;
      jump.value = index + 1;
      prev.disabled = index === 0;
      next.disabled = page.offset + page.length >= page.size;
      current.index = index;
    } catch (err) {
      put(text, errorBox(err, `reading ${stage}`));
    }
  }
  prev.addEventListener("click", () => load(starts[current.index - 1] ?? (current.index - 1) * PAGE_BYTES, current.index - 1));
  next.addEventListener("click", () => load(current.offset + current.length, current.index + 1));
  jump.addEventListener("change", () => {
    const index = Math.min(pages, Math.max(1, Number(jump.value) || 1)) - 1;
    load(starts[index] ?? index * PAGE_BYTES, index);
  });
  put(body, 
    el(
      "p",
      { class: "muted" },
      entry.encoding === "raw"
        ? "Binary data, shown as hex, one page at a time."
        : `A large value: shown ${size(PAGE_BYTES)} at a time, laid out as it comes (the whole value is never loaded into the page).`,
    ),
    el("div", { class: "pager" }, prev, where, jump, next),
    text,
  );
  load(0, 0);
  return box;
}
