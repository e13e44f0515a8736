// Staff consoles: sign-in, the bearer token, the staff socket, and the marshal's page.
//
// The token lives in localStorage and is sent only as "Authorization: Bearer" by fetch (never
// a cookie), so other sites cannot write on a marshal's behalf. The marshal's entries go into
// a queue in localStorage first and are sent in the order typed, each exactly once (the server
// dedups by the UUID made here), so nothing is lost without signal. A service worker
// (/marshal/sw.js) keeps the page itself, so it opens again without signal too; it shows the
// checkpoint this phone last had, from localStorage, and takes entries straight away.
(function () {
  "use strict";
  var TOKEN = "livetrack.token";
  var QUEUE = "livetrack.queue";
  var RECENT = "livetrack.recent";

  function load(key, fallback) {
    try { var v = JSON.parse(localStorage.getItem(key)); return v === null ? fallback : v; }
    catch (e) { return fallback; }
  }
  function save(key, value) { localStorage.setItem(key, JSON.stringify(value)); }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));  // insecure origins lack randomUUID
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function token() { return localStorage.getItem(TOKEN); }

  function api(method, path, body) {
    var headers = { "authorization": "Bearer " + token() };
    if (body !== undefined) headers["content-type"] = "application/json";
    return fetch(path, {
      method: method, headers: headers, credentials: "omit", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body)
    });
  }

  function notice(message) {
    var el = document.getElementById("notice");
    if (!el) return;
    el.textContent = message || "";
    el.hidden = !message;
  }

  function whoami(query) {
    return api("GET", "/api/v1/whoami" + (query || "")).then(function (res) {
      if (res.status === 401) throw new Error("signed-out");
      if (!res.ok) throw new Error("whoami " + res.status);
      return res.json();
    });
  }

  // Subscribe a console to its topics over /ws/staff (the token goes in the first message).
  function connect(grant, root) {
    Object.keys(grant.topics).forEach(function (topic) {
      var id = grant.topics[topic];
      if (document.getElementById(id)) return;
      var slot = document.getElementById("slot-" + topic.split(":")[0]) || root;
      var el = document.createElement("section");
      el.id = id;
      el.className = "panel loading";
      el.textContent = "Loading…";
      slot.appendChild(el);
    });
    var open = false;
    root.addEventListener("htmx:wsOpen", function (e) {
      open = true;
      e.detail.socketWrapper.send(JSON.stringify({ token: token(), topics: Object.keys(grant.topics) }));
    });
    root.addEventListener("htmx:wsClose", function (e) {
      open = false;
      if (e.detail.event && e.detail.event.code === 1008) {
        notice("The server refused this console: " + (e.detail.event.reason || "sign in again"));
      }
    });
    // A socket that survived a short loss of signal is still good: clear the offline badge.
    window.addEventListener("online", function () {
      var badge = document.getElementById("conn");
      if (open && badge) badge.hidden = true;
    });
    root.setAttribute("hx-ext", "ws,patch");  // pushes carry what changed (patch.js)
    root.setAttribute("ws-connect", "/ws/staff");
    htmx.process(root);
  }

  function signedOut() {
    notice("You are not signed in on this device. Open the sign-in link the timer gave you.");
  }

  window.livetrackStaff = {
    uuid: uuid, api: api, token: token, whoami: whoami, connect: connect, notice: notice,
    signedOut: signedOut
  };

  // -- /signin ---------------------------------------------------------------------------
  function signin() {
    var status = document.getElementById("signin-status");
    var form = document.getElementById("signin-form");
    function go() {
      whoami().then(function (g) {
        status.textContent = "Signed in as " + (g.label || g.role) + ".";
        location.replace(g.role === "timer" ? "/timer" : "/marshal");
      }).catch(function (err) {
        if (err.message !== "signed-out") {  // no signal, or the server is down: keep the token
          status.textContent = "Could not reach the server to check your sign-in. Reload this page when you have signal.";
          return;
        }
        localStorage.removeItem(TOKEN);
        status.textContent = "That sign-in link is not valid (or was revoked). Ask the timer for a new one.";
        form.hidden = false;
      });
    }
    var m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    // The token leaves the address bar (and history) before anything else happens.
    history.replaceState(null, "", location.pathname);
    if (m) { localStorage.setItem(TOKEN, decodeURIComponent(m[1])); go(); return; }
    if (token()) { go(); return; }
    status.textContent = "Paste your access token, or open your sign-in link.";
    form.hidden = false;
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      localStorage.setItem(TOKEN, document.getElementById("signin-token").value.trim());
      status.textContent = "Checking…";
      go();
    });
  }

  // -- /marshal --------------------------------------------------------------------------
  function marshal() {
    var root = document.getElementById("marshal");
    var bibEl = document.getElementById("bib");
    var submitEl = document.getElementById("submit");
    var queueEl = document.getElementById("queue");
    var netEl = document.getElementById("net");
    var grant = null;
    var syncing = false;
    var reachable = true;  // the last request got an answer (navigator.onLine can be wrong)
    var bib = "";

    function queue() { return load(QUEUE, []); }

    // "Offline" next to the queue badge: the phone says it has no network, or the last
    // request got no answer at all.
    function showNet() { netEl.hidden = navigator.onLine && reachable; }
    function reached(ok) { reachable = ok; showNet(); }
    // A request's promise, noting whether the server answered (any status) or not.
    function tracked(promise) {
      return promise.then(function (res) { reached(true); return res; },
        function (err) { reached(false); throw err; });
    }

    function showQueue() {
      var n = queue().length;
      queueEl.dataset.count = String(n);
      queueEl.textContent = n ? n + " waiting to send" : "All sent";
      queueEl.classList.toggle("waiting", n > 0);
    }

    function recent() { return load(RECENT, []); }

    function setRecent(id, state) {
      var items = recent();
      items.forEach(function (it) { if (it.id === id) it.state = state; });
      save(RECENT, items);
    }

    function fmt(ms) {
      var d = new Date(ms);
      return [d.getHours(), d.getMinutes(), d.getSeconds()].map(function (x) {
        return String(x).padStart(2, "0");
      }).join(":");
    }

    function showRecent() {
      var list = document.getElementById("recent");
      var items = recent();
      list.textContent = "";
      document.getElementById("recent-empty").hidden = items.length > 0;
      items.slice(0, 15).forEach(function (it) {
        var li = document.createElement("li");
        li.className = "entry entry-" + it.state;
        var what = document.createElement("span");
        what.className = "what";
        what.textContent = (it.kind === "dnf" ? "DNF " : "") + (it.kind === "sweep" ? "Sweep" : "#" + it.bib) +
          (it.kind === "judgement" ? " " + it.outcome : "");
        var meta = document.createElement("span");
        meta.className = "meta";
        meta.textContent = fmt(it.time) + " · " + ({
          queued: "waiting", sent: "sent", undone: "undone", rejected: "refused: " + (it.error || "")
        }[it.state] || it.state);
        li.appendChild(what);
        li.appendChild(meta);
        if ((it.kind === "sighting" || it.kind === "judgement") && (it.state === "queued" || it.state === "sent")) {
          var undo = document.createElement("button");
          undo.type = "button";
          undo.className = "btn small";
          undo.textContent = "Undo";
          undo.addEventListener("click", function () { undoEntry(it.id, it.kind); });
          li.appendChild(undo);
        }
        list.appendChild(li);
      });
    }

    function enqueue(entry, path, body) {
      var q = queue();
      q.push({ id: entry.id, path: path, body: body });
      save(QUEUE, q);
      var items = recent();
      items.unshift(entry);
      save(RECENT, items.slice(0, 50));
      showQueue();
      showRecent();
      sync();
    }

    function sync() {
      if (syncing || !grant) return;
      var q = queue();
      if (!q.length) { showQueue(); return; }
      syncing = true;
      var item = q[0];
      tracked(api("POST", item.path, item.body)).then(function (res) {
        if (res.ok) return finish(item, "sent");
        return res.json().catch(function () { return {}; }).then(function (body) {
          var msg = body.error || ("error " + res.status);
          if (res.status === 401 || res.status === 403) {
            notice("The server refused your entries: " + msg + ". They are kept; ask the timer.");
            return stop();
          }
          if (res.status >= 500) return stop();
          return finish(item, "rejected", msg);  // a bad entry must not block the rest
        });
      }).catch(stop);
    }

    function finish(item, state, error) {
      var q = queue();
      if (q.length && q[0].id === item.id) q.shift();
      save(QUEUE, q);
      var items = recent();
      items.forEach(function (it) {
        if (it.id === item.id && it.state !== "undone") { it.state = state; it.error = error || ""; }
      });
      save(RECENT, items);
      syncing = false;
      notice("");
      showQueue();
      showRecent();
      sync();
    }

    function stop() { syncing = false; showQueue(); }

    function seen(b) {
      b = String(b).trim();
      if (!b || !grant) return;
      var id = uuid();
      var t = Date.now();
      enqueue({ id: id, kind: "sighting", bib: b, time: t, state: "queued" },
        "/api/v1/sightings", [{ id: id, point: grant.point, bib: b, time: t }]);
    }

    // An obstacle judgement: cleared, failed or missed (the latest for a runner counts).
    function judge(b, outcome) {
      b = String(b).trim();
      if (!b || !grant) return;
      var id = uuid();
      var t = Date.now();
      enqueue({ id: id, kind: "judgement", bib: b, outcome: outcome, time: t, state: "queued" },
        "/api/v1/judgements", [{ id: id, point: grant.point, bib: b, outcome: outcome, time: t }]);
    }

    function undoEntry(id, kind) {
      setRecent(id, "undone");
      var q = queue();
      q.push({ id: uuid(), path: "/api/v1/corrections",
               body: { id: uuid(), kind: "undo", target: (kind || "sighting") + ":" + id } });
      save(QUEUE, q);
      showQueue();
      showRecent();
      sync();
    }

    function setBib(v) {
      bib = v.slice(0, 8);
      bibEl.textContent = bib;
      submitEl.disabled = !bib;
    }

    root.querySelector(".keys").addEventListener("click", function (e) {
      var k = e.target.closest("[data-key]");
      if (!k) return;
      var key = k.dataset.key;
      if (key === "back") setBib(bib.slice(0, -1));
      else if (key === "clear") setBib("");
      else setBib(bib + key);
    });
    submitEl.addEventListener("click", function () { seen(bib); setBib(""); });
    document.addEventListener("keydown", function (e) {
      if (e.target.closest && e.target.closest("input, textarea")) return;
      if (/^[0-9]$/.test(e.key)) setBib(bib + e.key);
      else if (e.key === "Backspace") setBib(bib.slice(0, -1));
      else if (e.key === "Enter" && bib) { seen(bib); setBib(""); }
    });
    document.getElementById("live").addEventListener("click", function (e) {
      var s = e.target.closest("[data-seen]");
      if (s) { seen(s.dataset.seen); s.disabled = true; return; }
      var j = e.target.closest("[data-judge]");
      if (j) { judge(j.dataset.judge, j.dataset.outcome); j.disabled = true; return; }
      var d = e.target.closest("[data-dnf]");
      if (d) {
        document.getElementById("dnf-bib").value = d.dataset.dnf;
        document.getElementById("dnf-reason").focus();
      }
    });
    document.getElementById("dnf").addEventListener("submit", function (e) {
      e.preventDefault();
      var b = document.getElementById("dnf-bib").value.trim();
      var reason = document.getElementById("dnf-reason").value.trim();
      if (!b || !reason || !grant) return;
      var id = uuid();
      enqueue({ id: id, kind: "dnf", bib: b, time: Date.now(), state: "queued" },
        "/api/v1/status", { id: id, bib: b, status: "DNF", reason: reason });
      e.target.reset();
    });
    document.getElementById("judge").addEventListener("submit", function (e) {
      e.preventDefault();
      var field = document.getElementById("judge-bib");
      var outcome = e.submitter ? e.submitter.value : "cleared";
      if (!field.value.trim()) return;
      judge(field.value, outcome);
      field.value = "";
    });
    var sweepEl = document.getElementById("sweep");
    sweepEl.addEventListener("click", function () {
      if (!grant) return;
      if (!sweepEl.dataset.armed) {
        sweepEl.dataset.armed = "1";
        sweepEl.textContent = "Tap again to confirm: sweep passed";
        setTimeout(function () { delete sweepEl.dataset.armed; sweepEl.textContent = "Sweep has passed"; }, 4000);
        return;
      }
      delete sweepEl.dataset.armed;
      sweepEl.textContent = "Sweep has passed";
      var id = uuid();
      var t = Date.now();
      enqueue({ id: id, kind: "sweep", bib: "", time: t, state: "queued" },
        "/api/v1/sweeps", { id: id, point: grant.point, time: t });
    });

    window.addEventListener("online", function () { showNet(); sync(); });
    window.addEventListener("offline", showNet);
    // The live lists arrive every few seconds while the socket is up: proof of signal.
    ["htmx:wsOpen", "htmx:wsAfterMessage"].forEach(function (name) {
      document.getElementById("live").addEventListener(name, function () { reached(true); });
    });
    setInterval(sync, 3000);
    showQueue();
    showRecent();
    showNet();
    worker();

    if (!token()) { signedOut(); return; }
    var point = new URLSearchParams(location.search).get("point");
    var last = load("livetrack.grant", null);
    if (last && last.tail === token().slice(-8)) show(last);  // typing works offline from the start

    function show(g) {
      grant = g;
      document.getElementById("who-point").textContent = g.point_name || g.point;
      document.getElementById("who-label").textContent = g.label || "";
      var panel = document.getElementById("judge-panel");
      panel.hidden = !g.obstacle;
      if (g.obstacle) {
        document.getElementById("judge-name").textContent = g.obstacle.name;
        Object.keys(g.obstacle.outcomes).forEach(function (o) {
          var cost = panel.querySelector('[data-cost="' + o + '"]');
          if (cost) cost.textContent = g.obstacle.outcomes[o];
        });
      }
    }

    var live = false;
    var retry = null;
    function init() {
      clearTimeout(retry);
      retry = null;
      tracked(whoami(point ? "?point=" + encodeURIComponent(point) : "")).then(function (g) {
        if (live) return;
        if (!g.point) { notice("This token is not a marshal's (no checkpoint)."); return; }
        live = true;
        g.tail = token().slice(-8);
        save("livetrack.grant", g);
        show(g);
        notice("");
        var wait = document.getElementById("live-wait");
        if (wait) wait.remove();
        connect(g, document.getElementById("live"));
        sync();
      }).catch(function (err) {
        if (live) return;
        if (err.message === "signed-out") { signedOut(); return; }
        if (grant) {
          notice("No connection. Entries are kept on this phone and sent when the signal returns.");
        } else {
          notice("No connection, and this phone has not loaded your checkpoint yet: open this page again when you have signal.");
        }
        var wait = document.getElementById("live-wait");
        if (wait) wait.textContent = "The expected and overdue lists load when the signal returns.";
        retry = setTimeout(init, 5000);
      });
    }
    window.addEventListener("online", function () { if (!live && retry !== null) init(); });
    init();
  }

  // The service worker that lets this page open without signal. Without one (an old browser,
  // or a site served over plain HTTP, except from localhost) the page works as before, only it
  // needs signal to open.
  function worker() {
    if (!("serviceWorker" in navigator)) return;
    function register() {
      try {
        navigator.serviceWorker.register("/marshal/sw.js", { scope: "/marshal" }).catch(function () {});
      } catch (e) { /* not allowed here: the page works without */ }
    }
    if (document.readyState === "complete") register();
    else window.addEventListener("load", register);
  }

  function start() {
    if (document.getElementById("signin")) signin();
    else if (document.getElementById("marshal")) marshal();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
