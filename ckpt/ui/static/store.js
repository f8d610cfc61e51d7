// The store page: `ckpt stats` figures and the latest verify report, with the jobs it breaks
// and the last good checkpoint of each broken branch.

import {
  api,
  count,
  el,
  errorBox,
  jobUrl,
  put,
  ratio,
  relativeTime,
  shortId,
  size,
} from "./util.js";

export function renderStore(main) {
  const figures = el("div", { class: "figures", id: "stats" }, el("p", { class: "muted", text: "Reading every object…" }));
  const perJob = el("div", { id: "stats-jobs" });
  const report = el("div", { id: "verify-report" });
  const progress = el("span", { class: "muted", id: "verify-progress" });
  const quick = el("button", { type: "button", id: "verify-quick", text: "Verify", onclick: () => start(false) });
  const full = el("button", { type: "button", id: "verify-full", text: "Verify --full (hash every object)", onclick: () => start(true) });
  main.append(
    el("div", { class: "page-head" }, el("h1", { text: "Store" })),
    el("section", { class: "card" }, el("h2", { text: "Size" }), figures, perJob),
    el(
      "section",
      { class: "card", id: "verify" },
      el("div", { class: "card-head" }, el("h2", { text: "Verify" }), el("span", { class: "toolbar" }, quick, full, progress)),
      report,
    ),
  );

  api("stats")
    .then(drawStats)
    .catch((err) => put(figures, errorBox(err, "reading the store's figures")));

  function figure(label, value, note) {
    return el("div", { class: "figure-box" }, el("div", { class: "figure-value", text: value }), el("div", { class: "figure-label", text: label }), note ? el("div", { class: "muted small", text: note }) : null);
  }

  function drawStats(s) {
    const kinds = Object.entries(s.objects_by_kind)
      .filter(([, n]) => n)
      .map(([k, n]) => `${count(n)} ${k}s`)
      .join(", ");
    put(figures, 
      figure("objects", count(s.objects), kinds),
      figure("logical", size(s.logical_bytes), "every checkpoint in full"),
      figure("unique", size(s.unique_bytes), "after dedup, uncompressed"),
      figure("stored", size(s.stored_bytes), "on the backend"),
      figure("dedup", ratio(s.dedup_ratio), "logical / unique"),
      figure("compression", ratio(s.compression_ratio), "unique / stored"),
      figure("unreachable", size(s.unreachable_bytes), `${count(s.unreachable_objects)} objects, which ckpt gc removes`),
      s.unreadable_objects ? figure("unreadable", count(s.unreadable_objects), "objects: see verify below") : null,
    );
    if (!s.jobs.length) {
      put(perJob);
      return;
    }
    const jobs = s.jobs.slice().sort((a, b) => b.stored_bytes - a.stored_bytes);
    put(perJob, 
      el(
        "table",
        { class: "jobs-size" },
        el("thead", {}, el("tr", {}, ["Job", "Commits", "Objects", "Logical", "Stored", "Exclusive"].map((t, i) => el("th", { text: t, class: i ? "num" : undefined })))),
        el(
          "tbody",
          {},
          jobs.slice(0, 500).map((j) =>
            el(
              "tr",
              {},
              el("td", {}, el("a", { href: jobUrl(j.job), text: j.job })),
              el("td", { class: "num", text: count(j.commits) }),
              el("td", { class: "num", text: count(j.objects) }),
              el("td", { class: "num", text: size(j.logical_bytes) }),
              el("td", { class: "num", text: size(j.stored_bytes) }),
              el("td", { class: "num", text: size(j.exclusive_bytes), title: "what deleting the job and running gc would free" }),
            ),
          ),
        ),
      ),
      jobs.length > 500 ? el("p", { class: "muted small", text: `The 500 largest of ${count(jobs.length)} jobs.` }) : null,
    );
  }

  // -- verify -------------------------------------------------------------------

  let polling = null;

  async function start(isFull) {
    try {
      draw(await api("verify", { full: isFull ? 1 : 0 }, "POST"));
    } catch (err) {
      put(report, errorBox(err, "starting verify"));
    }
  }

  async function poll() {
    polling = null;
    try {
      draw(await api("verify"));
    } catch (err) {
      put(report, errorBox(err, "reading the verify report"));
    }
  }

  function draw(run) {
    quick.disabled = full.disabled = run.running;
    if (run.running) {
      progress.textContent = ` ${run.full ? "Full verify" : "Verify"} running: ${count(run.jobs_done)} of ${count(run.jobs_total)} jobs…`;
      if (!polling) polling = setTimeout(poll, 700);
      return;
    }
    progress.textContent = run.finished ? ` Last run ${relativeTime(run.finished)}${run.full ? " (full)" : ""}.` : "";
    if (run.error) {
      put(report, el("div", { class: "error", role: "alert", text: `Verify could not run: ${run.error}` }));
    } else if (run.report) {
      put(report, drawReport(run.report));
    } else {
      put(report, el("p", { class: "muted", text: "Not verified yet." }));
    }
  }

  function drawReport(r) {
    const out = el("div", { class: `report ${r.ok ? "ok" : "broken"}`, dataset: { ok: r.ok } });
    const scope = `${count(r.objects_checked)} objects (${size(r.bytes_checked)} read)${r.full ? ", every object hashed" : ", stage values checked to exist"}`;
    if (r.ok) {
      out.append(el("p", { class: "ok-line", text: `No problems found. Checked ${scope}.` }));
      return out;
    }
    out.append(
      el("p", { class: "error", role: "alert", text: `${r.problems.length} problem${r.problems.length === 1 ? "" : "s"} found. Checked ${scope}.` }),
      el(
        "ul",
        { class: "problems" },
        r.problems.map((p) =>
          el(
            "li",
            { dataset: { kind: p.kind } },
            el("span", { class: "problem-kind", text: p.kind }),
            " ",
            el("code", { text: p.subject }),
            el("div", { text: p.message }),
            p.jobs.length ? el("div", {}, "Breaks ", p.jobs.map((j, i) => [i ? ", " : "", el("a", { href: jobUrl(j), text: j })])) : null,
            p.commits.length ? el("div", { class: "muted small", text: `Checkpoints: ${p.commits.slice(0, 8).map(shortId).join(", ")}${p.commits.length > 8 ? ` and ${p.commits.length - 8} more` : ""}` }) : null,
          ),
        ),
      ),
    );
    const broken = Object.values(r.jobs).filter((h) => h.broken_commits.length);
    if (broken.length) {
      out.append(el("h3", { text: "Broken jobs and where to roll back" }));
      for (const health of broken) {
        const branches = el("ul", {}, el("li", { class: "muted", text: "Reading its branches…" }));
        out.append(
          el(
            "div",
            { class: "broken-job", dataset: { job: health.job } },
            el("strong", {}, el("a", { href: jobUrl(health.job), text: health.job })),
            ` — ${health.broken_commits.length} broken checkpoint${health.broken_commits.length === 1 ? "" : "s"}`,
            branches,
          ),
        );
        rollbacks(health).then((rows) => put(branches, rows));
      }
    }
    return out;
  }

  // Per broken branch (one whose head is not its last good checkpoint, as `ckpt verify`
  // shows them), the last good checkpoint and the command that rolls back to it.
  async function rollbacks(health) {
    const rows = [];
    const path = `jobs/${encodeURIComponent(health.job)}`;
    let current = null;
    try {
      current = (await api(`${path}/status`)).branch;
    } catch (err) {
      current = null;
    }
    for (const [branch, good] of Object.entries(health.last_good)) {
      let head = null;
      try {
        head = (await api(`${path}/show`, { rev: branch })).commit.id;
      } catch (err) {
        head = null; // an unreadable head is broken
      }
      if (good && head === good) continue;
      rows.push(
        el(
          "li",
          { dataset: { branch } },
          `branch ${branch}: `,
          good
            ? [
                el("a", { href: jobUrl(health.job, good), text: `last good checkpoint ${shortId(good)}` }),
                "; roll back with ",
                el("code", {
                  text:
                    (branch === current ? "" : `ckpt switch ${health.job} ${branch} && `) +
                    `ckpt checkout ${health.job} ${shortId(good)}`,
                }),
              ]
            : "no intact checkpoint left",
        ),
      );
    }
    return rows;
  }

  // The latest report, or a first (quick) run when this dashboard has none yet.
  api("verify")
    .then((run) => (run.report || run.running || run.error ? draw(run) : start(false)))
    .catch((err) => put(report, errorBox(err, "reading the verify report")));
}
