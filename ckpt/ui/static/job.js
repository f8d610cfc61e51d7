// The job page: status and progress, the commit graph with branches and tags, the cost
// charts, the selected checkpoint's stages and values, and a diff between two revisions.

import { costPerStage, cumulativeCost } from "./charts.js";
import { commitGraph } from "./graph.js";
import {
  api,
  count,
  duration,
  el,
  errorBox,
  etaText,
  jobPath,
  money,
  progressBar,
  put,
  relativeTime,
  shortId,
  size,
  statusBadge,
  subscribe,
} from "./util.js";
import { valueViewer } from "./viewer.js";

const GRAPH_STEP = 200;
const CHART_COMMITS = 100;

export function renderJob(main, name, initialCommit) {
  const path = jobPath(name);
  const state = { status: null, log: null, limit: GRAPH_STEP, selected: initialCommit, follow: !initialCommit, chartBranch: null };

  const title = el("h1", {}, el("span", { class: "job-name", text: name }));
  const headline = el("div", { class: "headline", id: "job-status" });
  const notice = el("div", { id: "job-notice" });
  const graphBox = el("div", { class: "graph-box", id: "graph-box" }, el("p", { class: "muted", text: "Loading history…" }));
  const graphMore = el("div", { class: "graph-more" });
  const detail = el("div", { class: "detail", id: "checkpoint" });
  const viewerSlot = el("div", { id: "viewer-slot" });
  const chartBranch = el("select", { id: "chart-branch", "aria-label": "Branch of the cost charts" });
  const charts = el("div", { class: "charts", id: "charts" });
  const diffOld = el("input", { id: "diff-old", list: "revisions", placeholder: "from: rev", "aria-label": "Compare from" });
  const diffNew = el("input", { id: "diff-new", list: "revisions", placeholder: "to: rev (HEAD)", "aria-label": "Compare to" });
  const revisions = el("datalist", { id: "revisions" });
  const diffResult = el("div", { class: "diff-result", id: "diff-result" });

  main.append(
    el("div", { class: "page-head" }, title, headline),
    notice,
    el(
      "div",
      { class: "job-grid" },
      el("section", { class: "card history" }, el("h2", { text: "History" }), graphBox, graphMore),
      el("section", { class: "card" }, el("h2", { text: "Checkpoint" }), detail, viewerSlot),
    ),
    el(
      "section",
      { class: "card" },
      el("div", { class: "card-head" }, el("h2", { text: "Cost" }), el("label", {}, "Branch ", chartBranch)),
      charts,
    ),
    el(
      "section",
      { class: "card", id: "compare" },
      el("h2", { text: "Compare" }),
      el(
        "form",
        {
          class: "toolbar",
          id: "diff-form",
          onsubmit: (event) => {
            event.preventDefault();
            compare(diffOld.value.trim(), diffNew.value.trim());
          },
        },
        diffOld,
        el("span", { class: "muted", text: "→" }),
        diffNew,
        revisions,
        el("button", { type: "submit", id: "diff-go", text: "Compare" }),
      ),
      diffResult,
    ),
  );

  // -- status -------------------------------------------------------------------

  function drawStatus(doc) {
    state.status = doc;
    const now = Date.now();
    const parts = [
      statusBadge(doc.status),
      el("span", { class: "muted", text: ` on ${doc.branch} ` }),
      progressBar(doc.stages_done.length, doc.total_stages, doc.status),
      el("span", { class: "figure", text: `${money(doc.total_cost)}` }),
      el("span", { class: "figure muted", text: `${count(doc.total_tokens)} tokens` }),
      el("span", { class: "figure muted", text: `updated ${relativeTime(doc.updated, now)}` }),
    ];
    const eta = etaText(doc, now);
    if (eta) parts.push(el("span", { class: "figure", text: `ETA ${eta}` }));
    if (doc.status === "failed") {
      const where = doc.failed_stage ? `at stage ${doc.failed_stage}: ` : "";
      parts.push(el("div", { class: "error failed", text: `Failed ${where}${doc.error || "no error recorded"}` }));
    }
    const next = doc.status === "completed" ? "nothing left to do" : doc.resume_after ? `next run resumes after ${doc.resume_after}` : "next run starts from the first stage";
    parts.push(el("div", { class: "muted small", text: `Stages done: ${doc.stages_done.join(", ") || "none"}; ${next}.` }));
    put(headline, ...parts);
  }

  // -- graph --------------------------------------------------------------------

  async function loadGraph() {
    try {
      state.log = await api(`${path}/log`, { all: 1, limit: state.limit });
    } catch (err) {
      put(graphBox, errorBox(err, "reading the history"));
      return;
    }
    const commits = state.log.commits;
    if (state.follow || !state.selected) {
      const head = commits.find((c) => c.refs.some((r) => r.startsWith("HEAD -> ")));
      state.selected = head ? head.id : commits.length ? commits[0].id : null;
    }
    drawGraph();
    fillRevisions(commits);
    fillBranches(commits);
    if (state.selected) showCheckpoint(state.selected);
    else put(detail, el("p", { class: "muted", text: "No checkpoint yet." }));
  }

  function drawGraph() {
    const commits = state.log.commits;
    put(graphBox, 
      commits.length
        ? commitGraph(commits, {
            selected: state.selected,
            onSelect: (commit) => {
              state.follow = false;
              state.selected = commit.id;
              history.replaceState(null, "", `?commit=${commit.id}`);
              drawGraph();
              showCheckpoint(commit.id);
            },
          })
        : el("p", { class: "muted", text: "No checkpoints." }),
    );
    put(graphMore);
    if (commits.length >= state.limit) {
      graphMore.append(
        el("button", {
          type: "button",
          text: `Show ${GRAPH_STEP} more checkpoints`,
          onclick: () => {
            state.limit += GRAPH_STEP;
            loadGraph();
          },
        }),
      );
    }
  }

  function refNames(commits) {
    const branches = [];
    const tags = [];
    for (const commit of commits) {
      for (const ref of commit.refs) {
        if (ref.startsWith("tag: ")) tags.push(ref.slice(5));
        else branches.push(ref.startsWith("HEAD -> ") ? ref.slice(8) : ref);
      }
    }
    return { branches: branches.sort(), tags: tags.sort() };
  }

  function fillRevisions(commits) {
    const { branches, tags } = refNames(commits);
    const options = ["HEAD", "HEAD~1", ...branches, ...tags];
    put(revisions, 
      ...options.map((value) => el("option", { value })),
      ...commits.slice(0, 50).map((c) => el("option", { value: shortId(c.id), label: `${c.stage || c.status} (${c.branch})` })),
    );
    if (!diffOld.value && !diffResult.childElementCount) {
      const current = state.status ? state.status.branch : null;
      const other = branches.find((b) => b !== current);
      if (other && current) {
        diffOld.value = other;
        diffNew.value = current;
      } else if (commits.length > 1) {
        diffOld.value = "HEAD~1";
        diffNew.value = "HEAD";
      }
    }
  }

  function fillBranches(commits) {
    const { branches } = refNames(commits);
    const current = state.status ? state.status.branch : branches[0];
    if (!state.chartBranch || !branches.includes(state.chartBranch)) state.chartBranch = current;
    put(chartBranch, ...branches.map((b) => el("option", { value: b, text: b, selected: b === state.chartBranch })));
    loadCharts();
  }

  chartBranch.addEventListener("change", () => {
    state.chartBranch = chartBranch.value;
    loadCharts();
  });

  // -- checkpoint ---------------------------------------------------------------

  async function showCheckpoint(id) {
    let doc;
    try {
      doc = await api(`${path}/show`, { rev: id });
    } catch (err) {
      put(detail, errorBox(err, `reading checkpoint ${shortId(id)}`));
      return;
    }
    const c = doc.commit;
    const fields = [
      ["Commit", el("code", { text: c.id })],
      ["Stage", c.stage || `[${c.status}]`],
      ["Branch", c.branch],
      ["Refs", c.refs.join(", ") || "-"],
      ["Date", `${new Date(c.time).toLocaleString()} (${relativeTime(c.time)})`],
      ["Cost", `${money(c.cost)}, ${count(c.tokens)} tokens (total ${money(c.total_cost)}, ${count(c.total_tokens)} tokens)`],
      ["Status", c.status],
      ["Parents", c.parents.map(shortId).join(", ") || "none (first checkpoint)"],
    ];
    if (c.message) fields.push(["Message", c.message]);
    if (c.cut) fields.push(["History", "the checkpoints before this one were removed by retention"]);
    const meta = Object.keys(c.meta).length ? el("details", { class: "meta" }, el("summary", { text: "Metadata" }), el("pre", { text: JSON.stringify(c.meta, null, 2) })) : null;
    const marks = { added: "+", changed: "~" };
    const stages = el(
      "table",
      { class: "stages", id: "stages" },
      el("thead", {}, el("tr", {}, ["", "Stage", "Type", "Size", ""].map((t, i) => el("th", { text: t, class: i === 3 ? "num" : undefined })))),
      el(
        "tbody",
        {},
        doc.stages.map((s) =>
          el(
            "tr",
            { dataset: { stage: s.name } },
            el("td", { class: `change change-${s.change || "none"}`, text: marks[s.change] || "", title: s.change || "unchanged" }),
            el("td", { text: s.name }),
            el("td", { class: "muted", text: s.type }),
            el("td", { class: "num", text: size(s.size) }),
            el(
              "td",
              {},
              el("button", {
                type: "button",
                class: "view",
                text: "View",
                onclick: () => put(viewerSlot, valueViewer(name, c.id, s.name, s)),
              }),
            ),
          ),
        ),
      ),
    );
    const compareParent = c.parents.length
      ? el("button", {
          type: "button",
          text: "Compare with its parent",
          onclick: () => {
            diffOld.value = shortId(c.parents[0]);
            diffNew.value = shortId(c.id);
            compare(diffOld.value, diffNew.value);
            document.getElementById("compare").scrollIntoView({ behavior: "smooth" });
          },
        })
      : null;
    put(detail, 
      el("dl", { class: "fields" }, fields.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)])),
      meta,
      el("h3", { text: `Stages (${doc.stages.length})` }),
      stages,
      compareParent,
    );
    const viewing = viewerSlot.querySelector(".viewer");
    if (viewing && !doc.stages.some((s) => s.name === viewing.dataset.stage)) put(viewerSlot);
  }

  // -- charts -------------------------------------------------------------------

  async function loadCharts() {
    if (!state.chartBranch) {
      put(charts, el("p", { class: "muted", text: "No checkpoints." }));
      return;
    }
    let doc;
    try {
      doc = await api(`${path}/log`, { rev: state.chartBranch, limit: CHART_COMMITS });
    } catch (err) {
      put(charts, errorBox(err, "reading the costs"));
      return;
    }
    const commits = doc.commits.slice().reverse();
    const width = Math.max(360, Math.min(1200, charts.clientWidth || 800) / 2 - 12);
    const note =
      doc.commits.length >= CHART_COMMITS ? el("p", { class: "muted small", text: `The last ${CHART_COMMITS} checkpoints of ${state.chartBranch}.` }) : null;
    put(charts, el("div", { class: "chart-row" }, costPerStage(commits, width), cumulativeCost(commits, width)), note);
  }

  // -- diff ---------------------------------------------------------------------

  async function compare(old, rev) {
    if (!old) {
      put(diffResult, el("p", { class: "error", text: "Give the revision to compare from." }));
      return;
    }
    put(diffResult, el("p", { class: "muted", text: "Comparing…" }));
    let doc;
    try {
      doc = await api(`${path}/diff`, { old, new: rev || undefined, stat: 1 });
    } catch (err) {
      put(diffResult, errorBox(err, "comparing"));
      return;
    }
    const headline = el("p", {}, el("code", { text: shortId(doc.old) }), " → ", el("code", { text: shortId(doc.new) }), ": ");
    if (!doc.changes.length) {
      headline.append("no stage differs.");
      put(diffResult, headline);
      return;
    }
    headline.append(`${doc.changes.length} stage${doc.changes.length === 1 ? "" : "s"} differ.`);
    const marks = { added: "A", changed: "M", removed: "D" };
    const blocks = doc.changes.map((change, index) => {
      const entry = change.new || change.old;
      const sizes = change.old && change.new ? `${size(change.old.size)} → ${size(change.new.size)}` : size(entry.size);
      const body = el("div", { class: "diff-body" }, el("p", { class: "muted", text: "Loading…" }));
      const block = el(
        "details",
        { class: `diff-stage diff-${change.change}`, dataset: { stage: change.stage, change: change.change } },
        el(
          "summary",
          {},
          el("span", { class: `mark mark-${change.change}`, text: marks[change.change] }),
          el("strong", { text: ` ${change.stage} ` }),
          el("span", { class: "muted", text: `${entry.type}, ${sizes}` }),
        ),
        body,
      );
      let loaded = false;
      block.addEventListener("toggle", async () => {
        if (!block.open || loaded) return;
        loaded = true;
        try {
          const one = await api(`${path}/diff`, { old: doc.old, new: doc.new, stage: change.stage });
          const lines = one.changes.length ? one.changes[0].diff : [];
          put(body, diffLines(lines));
        } catch (err) {
          put(body, errorBox(err, `diffing ${change.stage}`));
        }
      });
      if (index < 3) block.open = true;
      return block;
    });
    put(diffResult, headline, ...blocks);
  }

  function diffLines(lines) {
    if (!lines.length) return el("p", { class: "muted", text: "The values differ only in encoding (no JSON lines to compare)." });
    return el(
      "pre",
      { class: "diff" },
      lines.map((line) => {
        let kind = "context";
        if (line.startsWith("+++") || line.startsWith("---")) kind = "file";
        else if (line.startsWith("@@")) kind = "hunk";
        else if (line.startsWith("+")) kind = "add";
        else if (line.startsWith("-")) kind = "del";
        return el("span", { class: `diff-line diff-${kind}`, text: line + "\n" });
      }),
    );
  }

  // -- live ---------------------------------------------------------------------

  let seenFirst = false;
  subscribe(
    `events/${path}`,
    {
      job: (doc) => {
        const drawn = state.status ? state.status.head : doc.head;
        put(notice);
        drawStatus(doc);
        // The first event tells the state as it is (a move only if it differs from what
        // the page was drawn from); each later one is a move.
        if (seenFirst || drawn !== doc.head) loadGraph();
        seenFirst = true;
      },
      gone: () => put(notice, el("div", { class: "error", role: "alert", text: `Job ${name} was deleted.` })),
      error: (doc) => put(notice, errorBox(doc.error, "watching the job")),
    },
    `job ${name}`,
  );
  api(`${path}/status`)
    .then((doc) => {
      if (!state.status) drawStatus(doc);
    })
    .catch((err) => put(notice, errorBox(err, "reading the job")))
    .finally(loadGraph);
}
