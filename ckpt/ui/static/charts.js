// Cost charts of one branch's history (SVG): the cost of each checkpoint's stage as bars,
// and the branch's running total as a line.

import { money, svg } from "./util.js";

const HEIGHT = 180;
const LEFT = 64;
const RIGHT = 16;
const TOP = 14;
const BOTTOM = 46;

// Round `value` up to 1, 2 or 5 times a power of ten.
function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

function frame(width, max, title) {
  const plot = HEIGHT - TOP - BOTTOM;
  const g = svg("g", { class: "axes" });
  for (const share of [0, 0.5, 1]) {
    const yy = TOP + plot * (1 - share);
    g.append(
      svg("line", { class: share ? "grid" : "axis", x1: LEFT, x2: width - RIGHT, y1: yy, y2: yy }),
      svg("text", { class: "tick", x: LEFT - 6, y: yy + 4, "text-anchor": "end", text: money(max * share) }),
    );
  }
  g.append(svg("text", { class: "chart-title", x: LEFT, y: TOP - 3, text: title }));
  return g;
}

function labels(commits, width, step) {
  const g = svg("g", { class: "labels" });
  const every = Math.max(1, Math.ceil(commits.length / Math.max(1, Math.floor((width - LEFT - RIGHT) / 60))));
  commits.forEach((commit, i) => {
    if (i % every) return;
    const cx = LEFT + step * (i + 0.5);
    const text = commit.stage || `[${commit.status}]`;
    g.append(
      svg("text", {
        class: "tick",
        x: cx,
        y: HEIGHT - BOTTOM + 14,
        "text-anchor": "end",
        transform: `rotate(-30 ${cx} ${HEIGHT - BOTTOM + 14})`,
        text: text.length > 14 ? text.slice(0, 13) + "…" : text,
      }),
    );
  });
  return g;
}

// Bars of each commit's `cost`, oldest first.
export function costPerStage(commits, width) {
  const max = niceMax(Math.max(0, ...commits.map((c) => c.cost)));
  const plot = HEIGHT - TOP - BOTTOM;
  const step = (width - LEFT - RIGHT) / Math.max(1, commits.length);
  const bars = svg(
    "g",
    { class: "bars" },
    commits.map((commit, i) => {
      const h = (commit.cost / max) * plot;
      return svg(
        "rect",
        { class: "bar-cost", x: LEFT + step * i + step * 0.15, y: TOP + plot - h, width: Math.max(1, step * 0.7), height: Math.max(0, h), dataset: { commit: commit.id } },
        svg("title", { text: `${commit.stage || commit.status}: ${money(commit.cost)} (${commit.tokens.toLocaleString("en-US")} tokens)` }),
      );
    }),
  );
  return svg(
    "svg",
    { class: "chart", id: "chart-cost", width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: "img", "aria-label": "cost per stage" },
    frame(width, max, "Cost per stage"),
    bars,
    labels(commits, width, step),
  );
}

// A line of each commit's `total_cost`, oldest first.
export function cumulativeCost(commits, width) {
  const max = niceMax(Math.max(0, ...commits.map((c) => c.total_cost)));
  const plot = HEIGHT - TOP - BOTTOM;
  const step = (width - LEFT - RIGHT) / Math.max(1, commits.length);
  const points = commits.map((c, i) => [LEFT + step * (i + 0.5), TOP + plot * (1 - c.total_cost / max)]);
  const path = points.map(([px, py], i) => `${i ? "L" : "M"} ${px.toFixed(1)} ${py.toFixed(1)}`).join(" ");
  const area = points.length
    ? `${path} L ${points[points.length - 1][0].toFixed(1)} ${TOP + plot} L ${points[0][0].toFixed(1)} ${TOP + plot} Z`
    : "";
  return svg(
    "svg",
    { class: "chart", id: "chart-total", width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}`, role: "img", "aria-label": "cumulative cost" },
    frame(width, max, "Cumulative cost"),
    svg("path", { class: "area-total", d: area }),
    svg("path", { class: "line-total", d: path }),
    svg(
      "g",
      { class: "points" },
      commits.map((c, i) =>
        svg(
          "circle",
          { class: "point-total", cx: points[i][0], cy: points[i][1], r: 3 },
          svg("title", { text: `${c.stage || c.status}: total ${money(c.total_cost)}` }),
        ),
      ),
    ),
    labels(commits, width, step),
  );
}
