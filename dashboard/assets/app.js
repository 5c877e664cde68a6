// The dashboard's one script: live status on the list, a run's events
// (its answers as they are written, its rounds as they end), and the
// forms, which call the JSON API of this origin. Every string from a run
// goes in as text (textContent), never as markup.
"use strict";

function post(path, body) {
  return fetch(path, {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})
    .then(r => r.json().catch(() => ({})).then(j => ({ok: r.ok, status: r.status, body: j})));
}

function showError(form, ans) {
  const p = form.querySelector(".error");
  const e = ans.body && ans.body.error;
  p.textContent = e ? (e.field ? e.field + ": " : "") + (e.message || JSON.stringify(e)) : "failed: " + ans.status;
  p.hidden = false;
}

// The list: each row's status, every few seconds.
function followList(table) {
  setInterval(() => {
    fetch("/workflows?limit=200", {credentials: "same-origin"}).then(r => r.json()).then(j => {
      for (const w of j.workflows || []) {
        const cell = table.querySelector('tr[data-id="' + CSS.escape(w.id) + '"] .status');
        if (cell && cell.textContent !== w.status) { cell.textContent = w.status; cell.dataset.status = w.status; }
      }
    }).catch(() => {});
  }, 2000);
}

// A run: its answers stream into #live as tokens come; a round, a status
// or the result redraws #content from the server (already escaped).
function followRun(run) {
  const id = run.dataset.id, live = document.getElementById("live");
  let pending = false;
  const redraw = () => {
    if (pending) return;
    pending = true;
    setTimeout(() => {
      fetch("/runs/" + encodeURIComponent(id) + "?fragment=1", {credentials: "same-origin"}).then(r => r.text()).then(html => {
        pending = false;
        const doc = new DOMParser().parseFromString(html, "text/html");
        const fresh = doc.getElementById("content");
        if (fresh) document.getElementById("content").replaceWith(fresh);
        // Answers the server now has are shown there: their live boxes go.
        document.querySelectorAll("#content .answer[data-step]").forEach(a => {
          const box = live && live.querySelector('[data-step="' + CSS.escape(a.dataset.step) + '"]');
          if (box) box.remove();
        });
        wireForms(document);
      });
    }, 150);
  };
  const es = new EventSource("/workflows/" + encodeURIComponent(id) + "/events");
  es.addEventListener("token", ev => {
    const t = JSON.parse(ev.data);
    if (!live || document.querySelector('#content .answer[data-step="' + CSS.escape(t.step) + '"]')) return;
    let box = live.querySelector('[data-step="' + CSS.escape(t.step) + '"]');
    if (!box) {
      box = document.createElement("article");
      box.className = "answer";
      box.dataset.step = t.step;
      const h = document.createElement("h3");
      h.textContent = t.participant ? t.participant + " (round " + t.round + ")" : t.step;
      const p = document.createElement("p");
      p.className = "text";
      box.append(h, p);
      live.append(box);
    }
    const text = box.querySelector(".text");
    if (t.restart) text.textContent = "";
    text.textContent += t.delta || "";
  });
  for (const type of ["status", "progress", "child", "waiting"]) es.addEventListener(type, redraw);
  for (const type of ["result", "failed"]) es.addEventListener(type, () => { es.close(); redraw(); });
}

function wireForms(root) {
  root.querySelectorAll("form.approve:not([data-wired])").forEach(form => {
    form.dataset.wired = "1";
    form.addEventListener("submit", ev => {
      ev.preventDefault();
      const verdict = ev.submitter ? ev.submitter.value : "approve";
      post("/workflows/" + encodeURIComponent(form.dataset.id) + "/" + verdict,
        {reason: form.reason.value, by: form.by.value}).then(ans => ans.ok ? location.reload() : showError(form, ans));
    });
  });
  root.querySelectorAll("form.decide:not([data-wired])").forEach(form => {
    form.dataset.wired = "1";
    form.addEventListener("submit", ev => {
      ev.preventDefault();
      post(form.dataset.action, {decision: form.decision.value, by: form.by.value})
        .then(ans => ans.ok ? location.reload() : showError(form, ans));
    });
  });
  root.querySelectorAll("form.start:not([data-wired])").forEach(form => {
    form.dataset.wired = "1";
    form.addEventListener("submit", ev => {
      ev.preventDefault();
      const body = {};
      let id = "";
      for (const el of form.querySelectorAll("[data-kind]")) {
        const v = el.value.trim(), kind = el.dataset.kind;
        if (kind === "id") { id = v; continue; }
        if (kind === "checkbox") { if (el.checked) body[el.name] = true; continue; }
        if (v === "") continue;
        if (kind === "number") body[el.name] = Number(v);
        else if (kind === "list") body[el.name] = v.split(/[\n,]+/).map(s => s.trim()).filter(Boolean)
          .map(s => s.includes("=") ? {name: s.split("=")[0], model: s.slice(s.indexOf("=") + 1)} : s);
        else if (kind === "json") { try { body[el.name] = JSON.parse(v); } catch (e) { body[el.name] = v; } }
        else body[el.name] = v;
      }
      const headers = {"Content-Type": "application/json"};
      if (id) headers["Idempotency-Key"] = id;
      fetch("/" + form.dataset.workflow, {method: "POST", credentials: "same-origin", headers, body: JSON.stringify(body)})
        .then(r => r.json().then(j => ({ok: r.ok, status: r.status, body: j})))
        .then(ans => ans.ok ? location.assign("/runs/" + encodeURIComponent(ans.body.id)) : showError(form, ans));
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("workflows");
  if (table && table.dataset.live) followList(table);
  const run = document.getElementById("run");
  if (run && run.dataset.live) followRun(run);
  wireForms(document);
});
