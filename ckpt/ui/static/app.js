// The dashboard: draws the page its URL names (/, /jobs/JOB, /store).

import { renderJob } from "./job.js";
import { renderJobs } from "./jobs.js";
import { renderStore } from "./store.js";
import { api, el, errorBox, put } from "./util.js";

async function showStore() {
  try {
    const store = await api("store");
    const where = document.getElementById("store-location");
    where.textContent = store.location;
    where.title = `ckpt ${store.version}, read-only; looks at the store every ${store.interval}s`;
    document.title = `ckpt: ${store.location}`;
  } catch (err) {
    document.getElementById("app").prepend(errorBox(err, "store"));
  }
}

function route() {
  const main = document.getElementById("app");
  put(main);
  const path = window.location.pathname.replace(/\/+$/, "");
  const nav = (id) => document.getElementById(id).classList.add("current");
  if (path === "" || path === "/") {
    nav("nav-jobs");
    renderJobs(main);
  } else if (path === "/store") {
    nav("nav-store");
    document.getElementById("live").hidden = true; // this page has no live updates
    renderStore(main);
  } else if (path.startsWith("/jobs/")) {
    nav("nav-jobs");
    const name = decodeURIComponent(path.slice("/jobs/".length));
    const commit = new URLSearchParams(window.location.search).get("commit");
    renderJob(main, name, commit);
  } else {
    main.append(el("h1", { text: "Not found" }), el("p", { text: `No page at ${path}.` }));
  }
}

showStore();
route();
