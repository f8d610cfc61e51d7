// The commit graph of a job (`ckpt log --graph --all`, drawn in SVG): one row per checkpoint,
// newest first, one lane per line of history, branches and tags as labels.

import { money, relativeTime, svg } from "./util.js";

const ROW = 26;
const LANE = 16;
const PAD = 12;
const RADIUS = 5;
const CHAR = 7.3; // width of one character of the graph's 12px monospace font
const LANE_COLOURS = 8;

// Lanes: each commit takes the lane that waits for it (or a free one); its first parent then
// waits in that lane, other parents in lanes of their own.  Where two lanes wait for one
// commit (a branch forked there), the commit sits in the leftmost and the others join it.
export function layout(commits) {
  const row = new Map(commits.map((c, i) => [c.id, i]));
  const lanes = [];
  const lane = new Map();
  const edges = [];
  let width = 1;
  commits.forEach((commit, index) => {
    let k = lanes.indexOf(commit.id);
    if (k < 0) k = lanes.indexOf(null);
    if (k < 0) k = lanes.push(null) - 1;
    lane.set(commit.id, k);
    for (let j = 0; j < lanes.length; j++) if (lanes[j] === commit.id) lanes[j] = null;
    const parents = commit.cut ? [] : commit.parents.filter((p) => row.has(p));
    parents.forEach((parent, n) => {
      let via = k;
      if (n > 0) {
        via = lanes.indexOf(parent);
        if (via < 0) via = lanes.indexOf(null);
        if (via < 0) via = lanes.push(null) - 1;
      }
      lanes[via] = parent;
      edges.push({ child: index, parent: row.get(parent), via });
    });
    width = Math.max(width, lanes.length, k + 1);
  });
  return { lane, edges, width };
}

function x(laneIndex) {
  return PAD + laneIndex * LANE;
}

function y(rowIndex) {
  return PAD + rowIndex * ROW + ROW / 2;
}

function edgePath(edge, commits, lane) {
  const cx = x(lane.get(commits[edge.child].id));
  const cy = y(edge.child);
  const px = x(lane.get(commits[edge.parent].id));
  const py = y(edge.parent);
  const vx = x(edge.via);
  const parts = [`M ${cx} ${cy}`];
  let top = cy;
  if (vx !== cx) {
    top = cy + ROW / 2;
    parts.push(`C ${cx} ${cy + ROW / 3}, ${vx} ${cy + ROW / 6}, ${vx} ${top}`);
  }
  if (vx === px) {
    parts.push(`L ${px} ${py}`);
  } else {
    const bend = py - ROW / 2;
    if (bend > top) parts.push(`L ${vx} ${bend}`);
    parts.push(`C ${vx} ${bend + ROW / 3}, ${px} ${py - ROW / 3}, ${px} ${py}`);
  }
  return parts.join(" ");
}

function refKind(ref) {
  if (ref.startsWith("HEAD -> ")) return "head";
  if (ref.startsWith("tag: ")) return "tag";
  return "branch";
}

// The graph of `commits` (a `log --all` document's, newest first) as an SVG element;
// `onSelect(commit)` is called when a row is clicked.
export function commitGraph(commits, { selected = null, onSelect = () => {} } = {}) {
  const { lane, edges, width } = layout(commits);
  const textX = x(width - 1) + LANE + 4;
  const longest = Math.max(0, ...commits.map((c) => (c.stage || c.status).length));
  const stageWidth = Math.min(28, Math.max(8, longest)) * CHAR + 12;
  const now = Date.now();
  const rows = svg("g", { class: "rows" });
  let right = 0;
  commits.forEach((commit, index) => {
    const top = PAD + index * ROW;
    const g = svg("g", {
      class: `row${commit.id === selected ? " selected" : ""}`,
      dataset: { commit: commit.id, stage: commit.stage || "" },
      tabindex: 0,
      role: "button",
      "aria-label": `checkpoint ${commit.id.slice(0, 12)} ${commit.stage || commit.status}`,
      onclick: () => onSelect(commit),
      onkeydown: (event) => {
        if (event.key === "Enter" || event.key === " ") onSelect(commit);
      },
    });
    g.append(svg("rect", { class: "row-bg", x: 0, y: top, width: "100%", height: ROW }));
    let cursor = textX;
    const base = top + ROW / 2 + 4;
    g.append(svg("text", { class: "id", x: cursor, y: base, text: commit.id.slice(0, 8) }));
    cursor += 9 * CHAR;
    const what = commit.stage || `[${commit.status}]`;
    g.append(svg("text", { class: `stage status-text-${commit.status}`, x: cursor, y: base, text: what.length > 28 ? what.slice(0, 27) + "…" : what }));
    cursor += stageWidth;
    g.append(svg("text", { class: "cost", x: cursor + 8 * CHAR, y: base, "text-anchor": "end", text: money(commit.cost) }));
    cursor += 9 * CHAR;
    g.append(svg("text", { class: "when", x: cursor, y: base, text: relativeTime(commit.time, now) }));
    cursor += 15 * CHAR;
    for (const ref of commit.refs) {
      const w = ref.length * CHAR + 10;
      g.append(
        svg("rect", { class: `ref-bg ref-${refKind(ref)}`, x: cursor, y: top + 4, width: w, height: ROW - 8, rx: 4 }),
        svg("text", { class: `ref ref-${refKind(ref)}`, x: cursor + 5, y: base, text: ref }),
      );
      cursor += w + 6;
    }
    const note = commit.cut ? "(history before this checkpoint was removed by retention)" : (commit.message || "").split("\n")[0];
    if (note) {
      const shown = note.length > 60 ? note.slice(0, 59) + "…" : note;
      g.append(svg("text", { class: "message", x: cursor, y: base, text: shown }));
      cursor += shown.length * CHAR;
    }
    g.append(svg("title", { text: `${commit.id}\n${commit.time}\n${commit.message || ""}`.trim() }));
    right = Math.max(right, cursor);
    rows.append(g);
  });
  const lines = svg(
    "g",
    { class: "edges" },
    edges.map((edge) => svg("path", { class: `edge lane-${edge.via % LANE_COLOURS}`, d: edgePath(edge, commits, lane) })),
  );
  const nodes = svg(
    "g",
    { class: "nodes" },
    commits.map((commit, index) => {
      const k = lane.get(commit.id);
      const attrs = { class: `node lane-${k % LANE_COLOURS} node-${commit.status}`, dataset: { commit: commit.id, lane: k } };
      if (commit.stage === null) {
        return svg("rect", { ...attrs, x: x(k) - RADIUS, y: y(index) - RADIUS, width: 2 * RADIUS, height: 2 * RADIUS });
      }
      return svg("circle", { ...attrs, cx: x(k), cy: y(index), r: RADIUS });
    }),
  );
  const height = PAD * 2 + commits.length * ROW;
  return svg(
    "svg",
    { class: "graph", id: "graph", width: Math.ceil(right + PAD), height, viewBox: `0 0 ${Math.ceil(right + PAD)} ${height}` },
    rows,
    lines,
    nodes,
  );
}
