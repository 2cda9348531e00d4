/* Orchestrator UI: progressive enhancement only. Every page works without this file.
 * - execution page: polls the JSON API while the execution runs and updates the graph
 *   colours, the status and the history table; state details open in place;
 * - forms marked data-enhance submit in place and show errors next to the button. */
(function () {
  "use strict";
  var POLL_MS = 1500;

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  function getJSON(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); });
  }

  function text(tag, value, className) {
    var el = document.createElement(tag);
    if (className) { el.className = className; }
    el.textContent = value;
    return el;
  }

  var LABELS = { notreached: "not reached", running: "running", succeeded: "succeeded", failed: "failed",
                 caught: "caught", retrying: "retrying", waiting: "waiting", aborted: "aborted" };

  function eventClass(type) {
    var map = [["Failed", "failed"], ["TimedOut", "failed"], ["Aborted", "aborted"], ["Succeeded", "succeeded"],
               ["Redriven", "running"], ["Started", "running"], ["Scheduled", "running"]];
    for (var i = 0; i < map.length; i++) { if (type.slice(-map[i][0].length) === map[i][0]) { return map[i][1]; } }
    return "neutral";
  }

  // Mirrors format_seconds in views.py (never negative; no "1000 ms" or "60.0 s").
  function formatElapsed(seconds) {
    seconds = Math.max(0, seconds);
    if (seconds < 0.9995) { return Math.round(seconds * 1000) + " ms"; }
    if (seconds < 59.95) { return seconds.toFixed(1) + " s"; }
    var total = Math.round(seconds), m = Math.floor(total / 60);
    return m < 60 ? m + " min " + (total % 60) + " s" : Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function historyRow(event, start) {
    var tr = document.createElement("tr");
    tr.className = "event-" + eventClass(event.type) + " new";
    tr.setAttribute("data-event-id", event.id);
    tr.id = "event-" + event.id;
    var when = new Date(event.timestamp);
    tr.appendChild(text("td", String(event.id)));
    tr.appendChild(text("td", when.toISOString().slice(11, 23), "nowrap"));
    tr.appendChild(text("td", "+" + formatElapsed(Math.max(0, (when - start) / 1000)), "nowrap"));
    tr.appendChild(text("td", event.type, "type"));
    var stateCell = document.createElement("td");
    if (event.state) {
      // A nested state's link names its step key (Map[3]/Charge): names repeat across
      // branches, and each Map item has its own details.
      var a = text("a", event.state);
      a.href = "?state=" + encodeURIComponent(event.key || event.state) + "#details";
      stateCell.appendChild(a);
      if (event.key && event.key.indexOf("/") >= 0) {
        // The branch or item, its names unescaped (step keys escape % / [ ] | as %XX).
        var where = event.key.slice(0, event.key.lastIndexOf("/"));
        stateCell.appendChild(text("span", " " + decodeURIComponent(where), "sub mono"));
      }
    }
    tr.appendChild(stateCell);
    var details = document.createElement("td");
    details.className = "event-details";
    var json = JSON.stringify(event.details || {});
    if (json !== "{}") { details.appendChild(text("code", json.length > 120 ? json.slice(0, 117) + "…" : json)); }
    tr.appendChild(details);
    return tr;
  }

  function setNodeStatus(path, status) {
    $all('.state-graph g.node[data-path]').forEach(function (g) {
      if (g.getAttribute("data-path") !== path || g.getAttribute("data-status") === status) { return; }
      g.setAttribute("data-status", status);
      var label = $(".status-label", g);
      if (label) { label.textContent = LABELS[status] || status; }
    });
  }

  function liveExecution(body) {
    var id = body.getAttribute("data-execution-id");
    if (body.getAttribute("data-status") !== "RUNNING") { return; }
    var api = "/api/executions/" + encodeURIComponent(id);
    var seen = parseInt(body.getAttribute("data-history-length"), 10) || 0;
    var waiting = body.getAttribute("data-waiting") || "";
    var startEl = $(".facts time");
    var start = startEl ? new Date(startEl.getAttribute("datetime")) : new Date();
    var note = $("#live-note");
    if (note) { note.hidden = false; }
    var busy = false;

    function tick() {
      if (busy || document.hidden) { return; }
      busy = true;
      getJSON(api).then(function (d) {
        Object.keys(d.states || {}).forEach(function (path) { setNodeStatus(path, d.states[path]); });
        var badge = $("#execution-status");
        if (badge) { badge.textContent = d.status; badge.className = "badge big status-" + d.status.toLowerCase(); }
        var nowWaiting = (d.waiting_tasks || []).map(function (w) { return w.step_key; }).join("\n");
        if (d.status !== "RUNNING" || nowWaiting !== waiting) {
          // Ended, or a task now waits for an answer: the server renders the new actions.
          window.location.reload();
          return null;
        }
        if (d.history_length > seen) {
          return getJSON(api + "/history?after=" + seen).then(function (events) {
            var tbody = $("#history tbody");
            events.forEach(function (e) { if (tbody) { tbody.appendChild(historyRow(e, start)); } seen = Math.max(seen, e.id); });
          });
        }
        return null;
      }).catch(function () { /* the next poll tries again */ })
        .then(function () { busy = false; });
    }
    window.setInterval(tick, POLL_MS);
  }

  function detailsInPlace() {
    var panel = $("#details");
    if (!panel || !window.fetch) { return; }
    $all(".state-graph a.node-link").forEach(function (a) {
      a.addEventListener("click", function (ev) {
        if (ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.button !== 0) { return; }
        var href = a.getAttribute("href");
        var url = new URL(href, window.location.href);
        url.hash = "";
        var fragment = new URL(url.href);
        fragment.searchParams.set("fragment", "details");
        ev.preventDefault();
        fetch(fragment.href, { credentials: "same-origin" }).then(function (r) {
          if (!r.ok && r.status !== 404) { throw new Error("HTTP " + r.status); }
          return r.text();
        }).then(function (html) {
          panel.innerHTML = html;
          enhanceForms(panel);
          $all(".state-graph g.node.selected").forEach(function (g) { g.classList.remove("selected"); });
          var g = $("g.node", a);
          if (g) { g.classList.add("selected"); }
          window.history.replaceState(null, "", url.pathname + url.search + "#details");
          if (window.innerWidth <= 1000) { panel.scrollIntoView({ behavior: "smooth", block: "start" }); }
        }).catch(function () { window.location.href = href; });
      });
    });
  }

  function enhanceForms(root) {
    $all("form[data-enhance]", root).forEach(function (form) {
      if (form.getAttribute("data-enhanced")) { return; }
      form.setAttribute("data-enhanced", "1");
      form.addEventListener("submit", function (ev) {
        var question = form.getAttribute("data-confirm");
        if (question && !window.confirm(question)) { ev.preventDefault(); return; }
        var error = $(".form-error", form);
        var bad = $all("textarea[data-json]", form).filter(function (area) {
          try { if (area.value.trim()) { JSON.parse(area.value); } return false; } catch (e) { return true; }
        });
        if (bad.length) {
          ev.preventDefault();
          if (error) { error.textContent = "That is not valid JSON."; error.hidden = false; }
          bad[0].focus();
          return;
        }
        if (!window.fetch) { return; }
        ev.preventDefault();
        var button = $("button[type=submit]", form);
        if (button) { button.disabled = true; }
        fetch(form.action, {
          method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin",
          headers: { Accept: "application/json" }
        }).then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (body) { return { ok: r.ok, body: body }; });
        }).then(function (res) {
          if (res.ok && res.body.redirect) { window.location.assign(res.body.redirect); return; }
          var message = res.body && res.body.error ? res.body.error.message : "The action failed.";
          if (res.body && res.body.error && res.body.error.details && res.body.error.details.length) {
            message += " " + res.body.error.details.join("; ");
          }
          if (error) { error.textContent = message; error.hidden = false; }
          if (button) { button.disabled = false; }
        }).catch(function () { form.submit(); });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var body = document.body;
    enhanceForms(document);
    if (body.getAttribute("data-page") === "execution") {
      detailsInPlace();
      liveExecution(body);
    }
  });
}());
