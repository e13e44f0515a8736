// The rounds desk: draws, scratches, lots, undo, photo-finish uploads and hand-timed heats.
// Needs marshal.js (the staff helpers: token, API, staff socket).
(function () {
  "use strict";
  var S = window.livetrackStaff;
  var root = document.getElementById("rdesk");
  if (!S || !root) return;

  function answer(res) {
    return res.json().catch(function () { return {}; }).then(function (data) {
      if (!res.ok) {
        var err = new Error(data.error || ("error " + res.status));
        err.data = data;
        throw err;
      }
      S.notice("");
      return data;
    });
  }
  function post(path, body) {
    return S.api("POST", path, body).then(answer).catch(function (err) {
      S.notice(err.message);
      report(err.data && err.data.problems);
      throw err;
    });
  }
  function report(problems, ok) {
    var list = document.getElementById("lif-report");
    list.textContent = "";
    if (ok) { var li = document.createElement("li"); li.textContent = ok; list.appendChild(li); }
    (problems || []).forEach(function (p) {
      var item = document.createElement("li");
      item.textContent = p;
      list.appendChild(item);
    });
  }
  function raceOf(el) { return el.closest("[data-race]").dataset.race; }

  document.getElementById("lif-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var file = document.getElementById("lif-file").files[0];
    if (!file) return;
    file.text().then(function (text) {
      return fetch("/api/v1/lif?name=" + encodeURIComponent(file.name), {
        method: "POST", body: text, credentials: "omit", cache: "no-store",
        headers: { "authorization": "Bearer " + S.token(), "content-type": "text/plain" }
      });
    }).then(answer).then(function (data) {
      report(data.problems, file.name + ": " + data.imported + " athletes stored for " +
        data.round + " heat " + data.heat);
    }).catch(function (err) {
      S.notice(err.message);
      report(err.data && err.data.problems);
    });
  });

  root.addEventListener("click", function (e) {
    var t = e.target;
    var race;
    if (t.dataset.draw) {
      race = raceOf(t);
      if (!confirm("Draw " + t.dataset.draw + " now?")) return;
      post("/api/v1/rounds/" + race + "/draw", { id: S.uuid(), round: t.dataset.draw });
    } else if (t.dataset.scratch) {
      race = raceOf(t);
      var why = prompt("Scratch #" + t.dataset.scratch + " from " + t.dataset.round + ": why?");
      if (!why) return;
      post("/api/v1/rounds/" + race + "/adjust", { id: S.uuid(), round: t.dataset.round,
        kind: "scratch", bib: t.dataset.scratch, reason: why });
    } else if (t.dataset.lot) {
      race = raceOf(t);
      post("/api/v1/rounds/" + race + "/adjust", { id: S.uuid(), round: t.dataset.round,
        kind: "lot", bib: t.dataset.lot, reason: "won the lots drawn by the referee" });
    } else if (t.dataset.undo) {
      race = raceOf(t);
      var reason = prompt("Undo this adjustment: why?");
      if (!reason) return;
      post("/api/v1/rounds/" + race + "/adjust", { id: S.uuid(), round: t.dataset.round,
        kind: "undo", target: t.dataset.undo, reason: reason });
    }
  });

  // Hand times for a heat whose photo-finish result is in are refused (409) until the timer
  // confirms that they replace it.
  function storeHand(form, replace) {
    var body = { round: form.dataset.round, heat: form.dataset.heat,
      lines: form.elements.lines.value };
    if (replace) body.replace = true;
    return S.api("POST", "/api/v1/rounds/" + raceOf(form) + "/hand", body).then(function (res) {
      if (res.status === 409 && !replace) {
        return res.json().catch(function () { return {}; }).then(function (data) {
          var why = data.error || "This heat has a photo-finish result.";
          if (confirm(why.split(" Nothing was stored")[0] + "\n\nReplace the photo-finish " +
              "result with these hand times?")) return storeHand(form, true);
          S.notice("Hand times not stored: the photo-finish result stands.");
          report([], "hand times not stored: the photo-finish result stands");
        });
      }
      return answer(res).then(function (data) {
        report(data.problems, "hand times stored: " + data.imported + " athletes" +
          (replace ? " (the photo-finish result is replaced)" : ""));
      });
    }).catch(function (err) {
      S.notice(err.message);
      report(err.data && err.data.problems);
    });
  }

  root.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.classList.contains("hand-form")) {
      e.preventDefault();
      storeHand(form, false);
    } else if (form.classList.contains("add-form")) {
      e.preventDefault();
      var f = form.elements;
      var why = prompt("Add #" + f.bib.value + ": why?");
      if (!why) return;
      post("/api/v1/rounds/" + form.dataset.race + "/adjust", { id: S.uuid(),
        round: f.round.value, kind: "add", bib: f.bib.value, heat: f.heat.value,
        lane: f.lane.value, reason: why });
    }
  });

  // A pushed update redraws the desk: keep what the timer is typing (hand times, a bib).
  var typed = {};
  function fieldKey(el) {
    var form = el.closest("form");
    if (!form) return null;
    return [form.className, form.dataset.race || "", form.dataset.round || "",
            form.dataset.heat || "", el.name].join("|");
  }
  document.body.addEventListener("htmx:oobBeforeSwap", function () {
    typed = {};
    root.querySelectorAll("form textarea, form input[name]").forEach(function (el) {
      var key = fieldKey(el);
      if (key && el.value) typed[key] = el.value;
    });
  });
  document.body.addEventListener("htmx:oobAfterSwap", function () {
    root.querySelectorAll("form textarea, form input[name]").forEach(function (el) {
      var key = fieldKey(el);
      if (key && typed[key] !== undefined) el.value = typed[key];
    });
  });

  if (!S.token()) { S.signedOut(); return; }
  S.whoami().then(function (g) {
    if (g.role !== "timer") { S.notice("This desk needs a timer token; yours is a " + g.role + "'s."); return; }
    document.getElementById("who-label").textContent = g.label || "";
    S.connect({ topics: JSON.parse(root.dataset.topics) }, root);
  }).catch(function (err) {
    if (err.message === "signed-out") S.signedOut(); else S.notice("No connection to the server.");
  });
})();
