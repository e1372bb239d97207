// The voting page: one blind pair at a time, two questions, keyboard shortcuts; votes go to /api/vote.
"use strict";
const params = new URLSearchParams(location.search);
const token = params.get("token");
const RATER_RE = /^[A-Za-z0-9_.@-]{1,64}$/;
const KEYS = { a: ["quality", "left"], s: ["quality", "tie"], d: ["quality", "right"],
               j: ["alignment", "left"], k: ["alignment", "tie"], l: ["alignment", "right"] };
const $ = (id) => document.getElementById(id);
let rater = params.get("rater") || localStorage.getItem("arena-rater");
let current = null;  // {position, total}
let answers = {};
let shownAt = 0;
let busy = false;

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (token) headers["X-Arena-Token"] = token;
  const response = await fetch(path, { ...options, headers, credentials: "same-origin" });
  const body = await response.json();
  if (!response.ok) {
    const error = new Error(typeof body.error === "string" ? body.error : JSON.stringify(body.error));
    error.status = response.status;
    throw error;
  }
  return body;
}

function imageUrl(position, side) {
  const q = new URLSearchParams({ rater, position, side });
  if (token) q.set("token", token);
  return `/api/image?${q}`;
}

function loadImage(img, url) {
  return new Promise((resolve, reject) => {
    img.onload = resolve;
    img.onerror = () => reject(new Error("an image did not load"));
    img.src = url;
  });
}

function render() {
  for (const row of document.querySelectorAll(".question")) {
    for (const b of row.querySelectorAll("button")) {
      b.setAttribute("aria-pressed", String(answers[row.dataset.q] === b.dataset.a));
    }
  }
  $("submit").disabled = !(answers.quality && answers.alignment) || busy;
}

function setProgress(done, total) {
  $("progress").textContent = `${done} / ${total}`;
  $("progress").dataset.done = done;
}

async function next() {
  busy = true;
  const vote = $("vote");
  vote.dataset.position = "";
  try {
    const n = await api(`/api/next?rater=${encodeURIComponent(rater)}`);
    setProgress(n.position, n.total);
    if (n.done) {
      vote.hidden = true;
      $("done").hidden = false;
      document.body.dataset.state = "done";
      return;
    }
    current = n;
    answers = {};
    $("prompt").textContent = n.prompt;
    await Promise.all(["left", "right"].map((s) => loadImage($(`img-${s}`), imageUrl(n.position, s))));
    vote.hidden = false;
    shownAt = performance.now();
    vote.dataset.position = n.position;  // the pair is on screen
    document.body.dataset.state = "voting";
    $("status").textContent = "";
  } catch (error) {
    $("status").textContent = `Could not load the next pair: ${error.message}`;
  } finally {
    busy = false;
    render();
  }
}

async function submit() {
  if (busy || !current || !(answers.quality && answers.alignment)) return;
  busy = true;
  render();
  const body = { rater, position: current.position, quality: answers.quality, alignment: answers.alignment,
                 elapsed_ms: Math.round(performance.now() - shownAt) };
  try {
    await api("/api/vote", { method: "POST", headers: { "Content-Type": "application/json" },
                             body: JSON.stringify(body) });
  } catch (error) {
    if (error.status !== 409) {  // 409: answered already (another tab, a retry): continue where the server is
      $("status").textContent = `The vote was not saved: ${error.message}. Press Enter to retry.`;
      busy = false;
      render();
      return;
    }
  }
  busy = false;
  await next();
}

function choose(question, answer) {
  if (busy || !current) return;
  answers[question] = answer;
  render();
}

document.addEventListener("keydown", (event) => {
  if (event.target.tagName === "INPUT" || event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key.toLowerCase();
  if (KEYS[key]) {
    choose(...KEYS[key]);
    event.preventDefault();
  } else if (key === "enter") {
    submit();
    event.preventDefault();
  }
});

for (const row of document.querySelectorAll(".question")) {
  for (const b of row.querySelectorAll("button")) b.addEventListener("click", () => choose(row.dataset.q, b.dataset.a));
}
$("submit").addEventListener("click", submit);

function start() {
  if (rater && RATER_RE.test(rater)) {
    localStorage.setItem("arena-rater", rater);
    $("login").hidden = true;
    next();
  } else {
    $("login").hidden = false;
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      rater = $("rater-input").value.trim();
      start();
    });
  }
}
start();
