// The timer's console: start guns (with a confirmation step), gun-time fixes and undo,
// chip assignment, and corrections with an audited reason. Needs marshal.js (staff helpers).
(function () {
  "use strict";
  var S = window.livetrackStaff;
  var root = document.getElementById("timer");
  if (!S || !root) return;
  var day = root.dataset.day;
  var offset = root.dataset.offset;

  // "HH:MM[:SS]" on the race's own day in the event's time zone, as ISO-8601 with its
  // offset: the day (and offset) of the nearest element around ``el`` that says one (a
  // runner's history, a race's guns), else the event's.
  function iso(clock, el) {
    if (!/^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(clock)) return null;
    var parts = clock.split(":");
    if (parts.length === 2) parts.push("00");
    var holder = el && el.closest("[data-day]");
    var d = holder ? holder.dataset.day : day;
    var o = holder ? holder.dataset.offset : offset;
    return d + "T" + parts[0].padStart(2, "0") + ":" + parts[1] + ":" + parts[2] + o;
  }

  function post(path, body) {
    return S.api("POST", path, body).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (!res.ok) {
          var err = new Error(data.error || ("error " + res.status));
          err.data = data;
          throw err;
        }
        S.notice("");
        return data;
      });
    }).catch(function (err) { S.notice(err.message); throw err; });
  }

  var current = null;  // the bib whose history is open

  function openHistory(bib) {
    current = bib;
    document.getElementById("lookup-bib").value = bib;
    return S.api("GET", "/api/v1/history/" + encodeURIComponent(bib)).then(function (res) {
      if (res.status === 404) { S.notice("No runner with bib " + bib + "."); return ""; }
      if (!res.ok) { S.notice("Could not load the history (" + res.status + ")."); return ""; }
      return res.text();
    }).then(function (html) {
      var box = document.getElementById("history");
      var keep = box.querySelector(".reason-input");
      var reason = keep ? keep.value : "";
      box.innerHTML = html;  // a server-rendered, autoescaped block
      var again = box.querySelector(".reason-input");
      if (again) again.value = reason;
    });
  }

  function reason() {
    var el = document.querySelector("#history .reason-input");
    var text = el ? el.value.trim() : "";
    if (!text) { S.notice("Give a reason first: it goes into the runner's history."); if (el) el.focus(); }
    return text;
  }

  function refresh() { if (current) openHistory(current); }

  document.getElementById("lookup").addEventListener("submit", function (e) {
    e.preventDefault();
    var bib = document.getElementById("lookup-bib").value.trim();
    if (bib) openHistory(bib);
  });

  root.addEventListener("click", function (e) {
    var t = e.target;
    var gunBtn = t.closest("[data-gun]");
    if (gunBtn) {
      var box = gunBtn.closest(".gun-actions");
      if (!gunBtn.dataset.armed) {  // first press arms, second press fires
        gunBtn.dataset.armed = "1";
        gunBtn.dataset.label = gunBtn.textContent;
        gunBtn.textContent = "Confirm: fire the gun now";
        gunBtn.classList.add("danger");
        setTimeout(function () {
          if (!gunBtn.isConnected) return;
          delete gunBtn.dataset.armed;
          gunBtn.textContent = gunBtn.dataset.label;
          gunBtn.classList.remove("danger");
        }, 5000);
        return;
      }
      var when = Date.now();
      post("/api/v1/races/" + encodeURIComponent(box.dataset.race) + "/gun",
        { wave: box.dataset.wave, time: when }).catch(function () {});
      gunBtn.textContent = "Gun fired";
      return;
    }
    var fix = t.closest("[data-gun-fix]");
    if (fix) {
      var b = fix.closest(".gun-actions");
      var clock = window.prompt("The real gun time (HH:MM:SS, race-day local time):");
      if (!clock) return;
      var at = iso(clock.trim(), fix);
      if (!at) { S.notice("Type the time as HH:MM:SS."); return; }
      post("/api/v1/races/" + encodeURIComponent(b.dataset.race) + "/gun",
        { wave: b.dataset.wave, time: at }).catch(function () {});
      return;
    }
    var undo = t.closest("[data-undo]");
    if (undo) {
      var why = "";
      if (undo.closest("#history")) { why = reason(); if (!why) return; }
      post("/api/v1/corrections", { id: S.uuid(), kind: "undo", target: undo.dataset.undo, reason: why })
        .then(refresh).catch(function () {});
      return;
    }
    var open = t.closest("[data-open]");
    if (open) { openHistory(open.dataset.open); document.getElementById("correct").scrollIntoView(); return; }
    var fixBtn = t.closest("[data-fix]");
    if (fixBtn) {
      var row = fixBtn.closest("tr");
      var kind = fixBtn.dataset.fix;
      var body = { id: S.uuid(), kind: kind, bib: current, point: row.dataset.point, reason: reason() };
      if (!body.reason) return;
      if (kind !== "void") {
        var value = row.querySelector("input[type=time]").value;
        body.time = iso(value, row);
        if (!body.time) { S.notice("Enter the time as HH:MM:SS."); return; }
      }
      post("/api/v1/corrections", body).then(refresh).catch(function (err) {
        // an implausible time (before the gun, faster than the course allows) is stored
        // only when the timer says so
        if (!err.data || !err.data.confirm || !window.confirm(err.message)) return;
        body.confirm = true;
        post("/api/v1/corrections", body).then(refresh).catch(function () {});
      });
      return;
    }
    var st = t.closest("[data-status]");
    if (st) {
      var r = st.dataset.status === "ok" ? document.querySelector("#history .reason-input").value.trim() : reason();
      if (st.dataset.status !== "ok" && !r) return;
      post("/api/v1/status", { id: S.uuid(), bib: current, status: st.dataset.status, reason: r })
        .then(refresh).catch(function () {});
    }
  });

  root.addEventListener("submit", function (e) {
    var form = e.target.closest("form.assign");
    if (!form) return;
    e.preventDefault();
    var bib = form.querySelector("input[name=bib]").value.trim();
    if (!bib) return;
    post("/api/v1/assign", { id: S.uuid(), chip: form.dataset.chip, bib: bib }).catch(function () {});
  });

  // -- decoders' connections (native readers): polled, drawn into the readers table --------
  var links = [];
  function linkText(h) {
    if (h.state === "standby") return "read by another server process";
    var text = "link: " + h.state;
    if (h.clock === "unset") text += " · decoder clock unset";
    if (h.last_error && h.state !== "connected") text += " · " + h.last_error;
    return text;
  }
  function drawLinks() {
    links.forEach(function (h) {
      var row = root.querySelector('tr[data-reader="' + CSS.escape(h.reader) + '"] [data-link]');
      if (!row) return;
      row.textContent = linkText(h);
      row.className = "link link-" + h.state;
      row.hidden = false;
    });
  }
  function pollLinks() {
    S.api("GET", "/api/v1/readers").then(function (res) {
      return res.ok ? res.json() : { readers: [] };
    }).then(function (data) { links = data.readers || []; drawLinks(); }).catch(function () {});
  }
  document.body.addEventListener("htmx:oobAfterSwap", drawLinks);
  document.body.addEventListener("htmx:wsAfterMessage", drawLinks);

  if (!S.token()) { S.signedOut(); return; }
  S.whoami().then(function (g) {
    if (g.role !== "timer") { S.notice("This console needs a timer token; yours is a " + g.role + "'s."); return; }
    document.getElementById("who-label").textContent = g.label || "";
    S.connect(g, root);
    pollLinks();
    setInterval(pollLinks, 5000);
  }).catch(function (err) {
    if (err.message === "signed-out") S.signedOut(); else S.notice("No connection to the server.");
  });
})();
