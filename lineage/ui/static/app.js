// lineage web UI: the only script, served from /static (the CSP allows no other).
// It never builds HTML from data: every recorded string goes in with textContent.
"use strict";

(function () {
  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  // --- a RUNNING run's page follows the run -------------------------------------------
  function follow(url) {
    var curves = document.getElementById("curves");
    var lastPoints = curves ? Number(curves.getAttribute("data-points")) : -1;
    var knownSteps = document.querySelectorAll("tr[data-step-id]").length;
    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (run) {
          if (!run) { return schedule(); }
          var status = document.getElementById("run-status");
          if (status) { status.textContent = run.status || "-"; status.className = "state state-" + run.status; }
          (run.steps || []).forEach(function (s) {
            var cell = document.querySelector('tr[data-step-id="' + Number(s.id) + '"] [data-state]');
            if (cell) { cell.textContent = s.state; cell.className = "state state-" + s.state; }
          });
          var points = 0;
          Object.keys(run.points || {}).forEach(function (k) { points += Number(run.points[k]); });
          var stepsChanged = Number(run.step_count) !== knownSteps;
          var firstCurves = !curves && points > 0;
          if (stepsChanged || firstCurves || run.status !== "RUNNING") {
            window.location.reload();  // new steps, first curves or the end: redraw all
            return;
          }
          if (curves && points !== lastPoints) {
            lastPoints = points;
            var src = curves.getAttribute("src").replace(/\?v=\d+$/, "");
            curves.setAttribute("src", src + "?v=" + points);
            curves.setAttribute("data-points", String(points));
          }
          schedule();
        })
        .catch(schedule);
    }
    function schedule() { window.setTimeout(tick, 1500); }
    schedule();
  }

  // --- the artifact page's verify status ----------------------------------------------
  function verify(box) {
    fetch(box.getAttribute("data-verify-url"), { credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (answer) {
        box.textContent = "";
        if (!answer.ok) { box.appendChild(el("p", answer.body.error || "could not verify", "bad")); return; }
        var v = answer.body;
        var counts = Object.keys(v.counts).map(function (k) { return v.counts[k] + " " + k; }).join(", ");
        box.appendChild(el("p", (v.ok ? "OK: " : "CHANGED: ") + (counts || "nothing to check"), v.ok ? "ok" : "bad"));
        var table = el("table", null, "list");
        table.id = "verify-table";
        var head = table.createTHead().insertRow();
        ["artifact", "status", "detail"].forEach(function (h) { head.appendChild(el("th", h)); });
        var body = table.createTBody();
        v.artifacts.forEach(function (c) {
          var row = body.insertRow();
          var link = el("a", (c.artifact.name || c.artifact.uri) + " v" + c.artifact.version);
          link.setAttribute("href", "/artifacts/" + Number(c.artifact.id));
          row.insertCell().appendChild(link);
          row.insertCell().appendChild(el("span", c.status, c.status === "ok" || c.status === "skipped" ? "ok" : "bad"));
          row.insertCell().textContent = c.detail || "";
        });
        box.appendChild(table);
      })
      .catch(function () { box.textContent = "could not verify"; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.body.getAttribute("data-live");
    if (live) follow(live);
    var box = document.getElementById("verify");
    if (box) verify(box);
  });
})();
