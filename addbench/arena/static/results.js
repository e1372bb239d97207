// The results page: ELO and win-rate matrices per question from /api/results.
"use strict";
const token = new URLSearchParams(location.search).get("token");
const fmt = (x, d = 1) => (x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(d));

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function table(head, rows) {
  const t = el("table");
  const tr = el("tr");
  head.forEach((h) => tr.appendChild(el("th", h)));
  t.appendChild(el("thead")).appendChild(tr);
  const body = t.appendChild(el("tbody"));
  for (const r of rows) {
    const row = body.appendChild(el("tr"));
    r.forEach((c) => row.appendChild(el("td", c)));
  }
  return t;
}

function eloTable(elo) {
  return table(["model", "ELO", "95% CI orders", "95% CI games + orders"],
    Object.entries(elo).map(([m, e]) => [m, fmt(e.rating), `[${fmt(e.orders_ci95[0])}, ${fmt(e.orders_ci95[1])}]`,
                                         `[${fmt(e.ci95[0])}, ${fmt(e.ci95[1])}]`]));
}

function winrateTable(cells) {
  const models = [...new Set(cells.map((c) => c.model))].sort();
  const at = Object.fromEntries(cells.map((c) => [`${c.model}\u0000${c.opponent}`, c]));
  return table(["", ...models], models.map((m) => [m, ...models.map((o) => {
    const c = at[`${m}\u0000${o}`];
    return c ? `${fmt(c.rate, 3)} [${fmt(c.lo, 3)}, ${fmt(c.hi, 3)}] (${c.games})` : "–";
  })]));
}

async function load() {
  const headers = token ? { "X-Arena-Token": token } : {};
  const response = await fetch("/api/results", { headers, credentials: "same-origin" });
  const r = await response.json();
  if (!response.ok) throw new Error(JSON.stringify(r.error));
  document.getElementById("summary").textContent =
    `${r.votes} votes (${r.controls} checks), ${r.games} games counted, ${r.excluded_raters.length} rater(s) flagged`;
  const root = document.getElementById("tables");
  for (const [q, block] of Object.entries(r.questions)) {
    const section = root.appendChild(el("section"));
    section.dataset.question = q;
    section.appendChild(el("h2", `Question: ${q}`));
    section.appendChild(el("h3", "ELO"));
    section.appendChild(eloTable(block.elo));
    section.appendChild(el("h3", "Win-rate (row over column)"));
    section.appendChild(winrateTable(block.winrate));
  }
  if (r.mean) {
    const section = root.appendChild(el("section"));
    section.dataset.question = "mean";
    section.appendChild(el("h2", "ELO, mean over questions (ADD's reported number)"));
    section.appendChild(eloTable(r.mean));
  }
  if (!Object.keys(r.questions).length) root.appendChild(el("p", "No counted votes yet."));
  const body = document.querySelector("#raters tbody");
  for (const [name, s] of Object.entries(r.raters)) {
    const row = body.appendChild(el("tr"));
    [name, s.votes, s.controls, s.failed].forEach((c) => row.appendChild(el("td", String(c))));
    row.appendChild(el("td", s.flagged ? "flagged: votes excluded" : "ok", s.flagged ? "flagged" : ""));
  }
  document.body.dataset.state = "ready";
}

load().catch((error) => {
  document.getElementById("status").textContent = `Could not load the results: ${error.message}`;
  document.body.dataset.state = "error";
});
