// The jobs page: every job with its status, progress, cost, tokens, last activity and ETA;
// sortable, filterable, paged, and kept up to date by the server's event stream.

import {
  api,
  count,
  el,
  errorBox,
  etaText,
  jobUrl,
  money,
  progressBar,
  put,
  relativeTime,
  statusBadge,
  subscribe,
} from "./util.js";

const PAGE_ROWS = 100;
const STATUSES = ["active", "completed", "failed", "expired", "damaged"];

// Sort keys: column -> value of a job to compare.
const SORTS = {
  name: (j) => j.name,
  status: (j) => j.status,
  progress: (j) => (j.total_stages ? j.stages.length / j.total_stages : j.stages.length ? 0.5 : 0),
  cost: (j) => j.cost,
  tokens: (j) => j.tokens,
  updated: (j) => (j.updated ? Date.parse(j.updated) : 0),
  eta: (j) => (j.status === "active" && j.eta_seconds !== null ? j.eta_seconds : Infinity),
  branch: (j) => j.branch,
};

const COLUMNS = [
  ["name", "Name"],
  ["status", "Status"],
  ["progress", "Stages"],
  ["cost", "Cost"],
  ["tokens", "Tokens"],
  ["updated", "Updated"],
  ["eta", "ETA"],
  ["branch", "Branch"],
  [null, "Labels"],
];

export function renderJobs(main) {
  const state = {
    jobs: new Map(),
    changed: new Set(),
    sort: "updated",
    descending: true,
    filter: "",
    status: "",
    page: 0,
  };
  const summary = el("span", { class: "muted", id: "jobs-summary" });
  const search = el("input", {
    type: "search",
    id: "jobs-filter",
    placeholder: "Filter by name or label (key=value)",
    "aria-label": "Filter jobs",
    oninput: () => {
      state.filter = search.value.trim().toLowerCase();
      state.page = 0;
      draw();
    },
  });
  const status = el(
    "select",
    {
      id: "jobs-status",
      "aria-label": "Status",
      onchange: () => {
        state.status = status.value;
        state.page = 0;
        draw();
      },
    },
    el("option", { value: "", text: "Any status" }),
    STATUSES.map((s) => el("option", { value: s, text: s })),
  );
  const notice = el("div", { id: "jobs-notice" });
  const table = el("table", { class: "jobs", id: "jobs-table" });
  const pager = el("div", { class: "pager" });
  main.append(
    el("div", { class: "page-head" }, el("h1", { text: "Jobs" }), summary),
    el("div", { class: "toolbar" }, search, status),
    notice,
    table,
    pager,
  );

  function matches(job) {
    if (state.status && job.status !== state.status) return false;
    if (!state.filter) return true;
    const labels = Object.entries(job.labels || {}).map(([k, v]) => `${k}=${v}`.toLowerCase());
    return job.name.toLowerCase().includes(state.filter) || labels.some((l) => l.includes(state.filter));
  }

  function sorted(jobs) {
    const key = SORTS[state.sort];
    const sign = state.descending ? -1 : 1;
    return jobs.sort((a, b) => {
      const [x, y] = [key(a), key(b)];
      if (x < y) return -sign;
      if (x > y) return sign;
      return a.name < b.name ? -1 : 1;
    });
  }

  function header() {
    return el(
      "thead",
      {},
      el(
        "tr",
        {},
        COLUMNS.map(([key, title]) => {
          if (key === null) return el("th", { text: title });
          const mark = state.sort === key ? (state.descending ? " ▼" : " ▲") : "";
          return el("th", {
            class: key === "cost" || key === "tokens" ? "sortable num" : "sortable",
            text: title + mark,
            dataset: { sort: key },
            "aria-sort": state.sort === key ? (state.descending ? "descending" : "ascending") : "none",
            onclick: () => {
              state.descending = state.sort === key ? !state.descending : key !== "name";
              state.sort = key;
              draw();
            },
          });
        }),
      ),
    );
  }

  function row(job, now) {
    const labels = Object.entries(job.labels || {}).map(([k, v]) => el("span", { class: "label", text: `${k}=${v}` }));
    const cells = [
      el("td", {}, el("a", { href: jobUrl(job.name), text: job.name })),
      el("td", {}, statusBadge(job.status, job.damage || undefined)),
      el(
        "td",
        { class: "stages" },
        job.damage ? el("span", { class: "damage", text: job.damage }) : progressBar(job.stages.length, job.total_stages, job.status),
      ),
      el("td", { class: "num", text: money(job.cost) }),
      el("td", { class: "num", text: count(job.tokens) }),
      el("td", { text: relativeTime(job.updated, now), title: job.updated || "" }),
      el("td", { text: etaText(job, now) }),
      el("td", { text: job.branch }),
      el("td", {}, labels),
    ];
    const classes = [job.status === "damaged" ? "damaged" : "", state.changed.has(job.name) ? "changed" : ""];
    return el("tr", { class: classes.join(" ").trim() || undefined, dataset: { job: job.name } }, cells);
  }

  function draw() {
    const now = Date.now();
    const shown = sorted([...state.jobs.values()].filter(matches));
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_ROWS));
    state.page = Math.min(state.page, pages - 1);
    const slice = shown.slice(state.page * PAGE_ROWS, (state.page + 1) * PAGE_ROWS);
    const active = [...state.jobs.values()].filter((j) => j.status === "active").length;
    summary.textContent =
      `${count(state.jobs.size)} job${state.jobs.size === 1 ? "" : "s"}, ${count(active)} active` +
      (shown.length !== state.jobs.size ? `; ${count(shown.length)} shown` : "");
    const body = el("tbody", {}, slice.map((job) => row(job, now)));
    if (!state.jobs.size) {
      body.append(
        el("tr", {}, el("td", { colspan: COLUMNS.length, class: "muted", text: "No jobs yet: a pipeline creates one with its first save." })),
      );
    } else if (!shown.length) {
      body.append(el("tr", {}, el("td", { colspan: COLUMNS.length, class: "muted", text: "No jobs match." })));
    }
    put(table, header(), body);
    put(pager);
    if (pages > 1) {
      pager.append(
        el("button", { text: "‹ Previous", disabled: state.page === 0, onclick: () => { state.page--; draw(); } }),
        el("span", { text: ` Page ${state.page + 1} of ${pages} ` }),
        el("button", { text: "Next ›", disabled: state.page >= pages - 1, onclick: () => { state.page++; draw(); } }),
      );
    }
  }

  function replace(jobs) {
    state.jobs = new Map(jobs.map((job) => [job.name, job]));
    draw();
  }

  function flash(names) {
    for (const name of names) state.changed.add(name);
    setTimeout(() => {
      for (const name of names) state.changed.delete(name);
      draw();
    }, 2500);
  }

  api("jobs")
    .then((doc) => replace(doc.jobs))
    .catch((err) => put(notice, errorBox(err, "listing the jobs")));

  subscribe(
    "events/jobs",
    {
      jobs: (doc) => {
        put(notice);
        replace(doc.jobs);
      },
      "jobs-changed": (doc) => {
        put(notice);
        for (const job of doc.jobs) state.jobs.set(job.name, job);
        for (const name of doc.removed) state.jobs.delete(name);
        flash(doc.jobs.map((j) => j.name));
        draw();
      },
      error: (doc) => put(notice, errorBox({ kind: doc.error.kind, message: doc.error.message }, "watching the jobs")),
    },
    "the jobs",
  );
  // Relative times and ETAs move on by themselves.
  setInterval(draw, 15000);
}
