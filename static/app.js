// livetrack spectator pages: connection badge, clocks and freshness, follows and alerts, map.
(function () {
  "use strict";
  var FOLLOW_KEY = "livetrack.follow";
  var SEEN_KEY = "livetrack.seen";
  var MAX_FOLLOW = 30;
  // The server's cap on topics per socket (the page says it; the server refuses more).
  var MAX_TOPICS = Number(document.body.getAttribute("data-max-topics")) || 64;
  function load(key, fallback) {
    try { return JSON.parse(localStorage.getItem(key)) || fallback; } catch (e) { return fallback; }
  }
  function save(key, value) {
    try { localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* private mode */ }
  }
  // After the server restarts, come back within a few seconds, not htmx's default of up to a
  // minute; the random spread keeps thousands of phones from reconnecting in the same instant.
  if (window.htmx) {
    htmx.config.wsReconnectDelay = function (retries) {
      return Math.min(5000, 500 * Math.pow(2, retries)) * (0.5 + Math.random() / 2);
    };
  }
  // The followed bibs (push.js reads and adds to the same list), and beside them each one's
  // live topic and the id of the element that shows it, both named by the server: a star
  // carries them (data-topic, data-topic-id), and /api/v1/runners/{bib} says them.
  var NAMES_KEY = "livetrack.follow.names";
  var follows = load(FOLLOW_KEY, []);
  var names = load(NAMES_KEY, {});
  var seen = load(SEEN_KEY, {});

  // -- connection badge ---------------------------------------------------------------------
  var downSince = null; // when the live socket went down (this phone's clock)
  var snapshotNext = false; // the next message is a (re)connect's snapshot, not news
  function badge(show) {
    var el = document.getElementById("conn");
    if (el) el.hidden = !show;
    if (!show) downSince = null;
    else if (downSince === null) downSince = Date.now();
  }
  document.addEventListener("htmx:wsOpen", function () { badge(false); snapshotNext = true; });
  document.addEventListener("htmx:wsClose", function () { badge(true); });
  document.addEventListener("htmx:wsError", function () { badge(true); });
  window.addEventListener("offline", function () { badge(true); });
  // Signal back and the socket survived: no wsOpen will come, so clear the badge here (a
  // socket that did die fires wsClose and shows it again).
  window.addEventListener("online", function () { badge(false); });

  // A phone left in a pocket: its socket may have died silently. Coming back after a while,
  // start afresh from the server's current page rather than trust a stale connection.
  var hiddenAt = null;
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { hiddenAt = Date.now(); return; }
    if (hiddenAt && Date.now() - hiddenAt > 60000 && document.querySelector("[ws-connect]")) {
      location.reload();
    }
    hiddenAt = null;
  });

  // -- time: clocks, countdowns and "updated … ago" tick here, from times the server gave ----
  // No frame comes for time passing. The server's clock at page load gives the offset from
  // this phone's clock (which may be minutes out).
  var meta = document.querySelector('meta[name="server-now"]');
  var offset = meta && Number(meta.content) ? Number(meta.content) - Date.now() : 0;
  function serverNow() { return Date.now() + offset; }
  function fmt(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(sec).padStart(2, "0");
  }
  function ago(ms) {
    var s = Math.max(0, Math.round((serverNow() - ms) / 1000));
    if (s < 10) return "just now";
    if (s < 60) return s + " s ago";
    var m = Math.floor(s / 60);
    if (m < 60) return m + " min ago";
    return Math.floor(m / 60) + " h " + (m % 60) + " min ago";
  }
  function put(el, text) { if (el.textContent !== text) el.textContent = text; }

  // When the page's data last changed, in this phone's clock; the gaps between changes say
  // what silence is usual.
  var fresh = document.getElementById("fresh");
  var lastChange = Date.now();
  if (fresh && Number(fresh.getAttribute("data-changed"))) {
    lastChange = Number(fresh.getAttribute("data-changed")) - offset;
  }
  var gaps = [];
  var QUIET_MS = 180000;
  function changed(at) {  // at: when, in this phone's clock
    if (at <= lastChange) return;
    gaps.push(at - lastChange);
    if (gaps.length > 20) gaps.shift();
    lastChange = at;
    var span = fresh && fresh.querySelector("[data-ago]");
    if (span) span.setAttribute("data-ago", String(at + offset));
  }
  // Regions drawn again for time passing (a marshal's lists, the timer's panels) say when
  // their data last changed (data-changed, the server's clock): then a message is not news
  // by itself. Elsewhere every message after a (re)connect's snapshot is.
  function markedChange() {
    var at = 0;
    document.querySelectorAll("[data-changed]:not(#fresh)").forEach(function (el) {
      at = Math.max(at, Number(el.getAttribute("data-changed")) || 0);
    });
    return at ? at - offset : 0;
  }
  function usualQuiet() {
    var g = gaps.slice().sort(function (a, b) { return a - b; });
    var median = g.length >= 3 ? g[Math.floor(g.length / 2)] : 0;
    return Math.max(QUIET_MS, 4 * median);
  }
  function delayNotice() {
    // a signal from the server ("finish data delayed") says it in its own words
    var signal = document.querySelector("[data-delayed]:not([data-delayed=''])");
    if (signal) return signal.getAttribute("data-delayed");
    if (downSince !== null && Date.now() - downSince > 5000) {
      return "Not connected — reconnecting. Nothing new shown since " + ago(lastChange + offset) + ".";
    }
    // any race the page follows that is running (a race's header, the home page's races, a
    // staff panel's); silence before anyone could reach a first mat is expected
    var running = document.querySelectorAll("[data-race-status='running']");
    if (!running.length) return "";
    var quietUntil = 0;
    running.forEach(function (el) {
      quietUntil = Math.max(quietUntil, Number(el.getAttribute("data-quiet-until")) || 0);
    });
    var since = Math.max(lastChange, quietUntil - offset);
    var silent = Date.now() - since;
    if (silent <= usualQuiet()) return "";
    return "No new times for " + Math.floor(silent / 60000) + " min — timing may be delayed.";
  }
  function tick() {
    var now = serverNow();
    document.querySelectorAll("time.race-clock[data-gun]").forEach(function (el) {
      var gun = Number(el.getAttribute("data-gun"));
      if (!gun) return;
      put(el, fmt((Number(el.getAttribute("data-stop")) || now) - gun));
    });
    document.querySelectorAll("[data-ago]").forEach(function (el) {
      var at = Number(el.getAttribute("data-ago"));
      if (at) put(el, ago(at));
    });
    document.querySelectorAll(".due[data-due]").forEach(function (el) {
      var late = !!el.getAttribute("data-seen") && now > Number(el.getAttribute("data-high"));
      el.classList.toggle("overdue", late);
      var mins = Math.round((Number(el.getAttribute("data-due")) - now) / 60000);
      var span = el.querySelector("[data-in]");
      if (span) put(span, mins > 0 ? "in ~" + mins + " min" : "any moment now");
    });
    var stale = document.getElementById("stale");
    if (stale) {
      var notice = delayNotice();
      put(stale, notice);
      stale.hidden = !notice;
    }
  }
  setInterval(tick, 1000);
  document.addEventListener("DOMContentLoaded", tick);

  // -- follows ------------------------------------------------------------------------------
  function isFollowed(bib) { return follows.indexOf(bib) >= 0; }
  function named() {
    return follows.filter(function (bib) { return names[bib]; }).map(function (bib) {
      return { bib: bib, topic: names[bib].topic, id: names[bib].id };
    });
  }
  function refreshStars() {
    document.querySelectorAll("[data-follow]").forEach(function (b) {
      var on = isFollowed(b.getAttribute("data-follow"));
      b.setAttribute("aria-pressed", on ? "true" : "false");
      b.textContent = on ? "★" : "☆";
      b.classList.toggle("on", on);
    });
  }
  // A followed bib whose names this phone does not have (kept by an older release, or added
  // by the push panel): ask the server once, drop the bibs it does not know, and open the
  // page again with the rest.
  function learnNames() {
    var unnamed = follows.filter(function (bib) { return !names[bib]; });
    if (!unnamed.length) return false;
    Promise.all(unnamed.map(function (bib) {
      return fetch("/api/v1/runners/" + encodeURIComponent(bib)).then(function (r) {
        if (r.status === 404) return { bib: bib, gone: true };
        return r.ok ? r.json() : null;
      }, function () { return null; });
    })).then(function (found) {
      var learnt = false;
      found.forEach(function (d) {
        if (d && d.gone) follows = follows.filter(function (b) { return b !== d.bib; });
        else if (d) { names[d.bib] = { topic: d.topic, id: d.topic_id }; learnt = true; }
      });
      save(FOLLOW_KEY, follows);
      save(NAMES_KEY, names);
      if (learnt) location.reload();
    });
    return true;
  }
  document.addEventListener("click", function (ev) {
    var star = ev.target.closest && ev.target.closest("[data-follow]");
    if (star) {
      follows = load(FOLLOW_KEY, []);  // another script (where I stand) may have followed
      var bib = star.getAttribute("data-follow");
      if (isFollowed(bib)) follows = follows.filter(function (b) { return b !== bib; });
      else if (follows.length < MAX_FOLLOW) {
        follows.push(bib);
        names[bib] = { topic: star.getAttribute("data-topic"), id: star.getAttribute("data-topic-id") };
      }
      save(FOLLOW_KEY, follows);
      save(NAMES_KEY, names);
      refreshStars();
      // "My runners" subscribes to exactly the followed runners: open it again with the new set
      if (document.querySelector("[data-mine]")) location.reload();
      return;
    }
    var share = ev.target.closest && ev.target.closest("[data-share]");
    if (share) {
      var data = { title: share.getAttribute("data-share"), url: location.href };
      if (navigator.share) navigator.share(data).catch(function () {});
      else if (navigator.clipboard) navigator.clipboard.writeText(location.href).then(function () {
        share.textContent = "Link copied";
      });
    }
    var notify = ev.target.closest && ev.target.closest(".notify");
    if (notify && window.Notification) {
      Notification.requestPermission().then(function () { notify.hidden = true; });
    }
  });

  function placeholder(f, hidden) {
    if (document.getElementById(f.id)) return null;
    var el = document.createElement("section");
    el.id = f.id;
    el.className = "runner compact";
    if (hidden) el.hidden = true;
    else el.textContent = "Runner " + f.bib + "…";
    return el;
  }

  // Before htmx wires up the page: subscribe the page's socket to the followed runners too.
  function wireFollows() {
    if (learnNames()) return;
    var mine = document.querySelector("[data-mine]");
    if (mine) {
      document.getElementById("mine-empty").hidden = follows.length > 0;
      var btn = document.querySelector(".notify");
      if (btn && window.Notification && Notification.permission === "default") btn.hidden = false;
      if (!follows.length) return;
      named().forEach(function (f) { mine.appendChild(placeholder(f, false)); });
      mine.setAttribute("hx-ext", "ws,patch");
      mine.setAttribute("ws-connect", "/live?topics=" + encodeURIComponent(
        named().map(function (f) { return f.topic; }).join(",")));
      return;
    }
    var ws = document.querySelector("[ws-connect]");
    if (!ws || !follows.length) return;
    var store = document.createElement("div");
    store.hidden = true;
    store.className = "follow-store";
    ws.appendChild(store);
    var url = ws.getAttribute("ws-connect");
    var topics = decodeURIComponent(url.split("topics=")[1] || "").split(",").filter(Boolean);
    named().forEach(function (f) {
      if (topics.indexOf(f.topic) < 0 && topics.length < MAX_TOPICS) {
        topics.push(f.topic);
        var el = placeholder(f, true);
        if (el) store.appendChild(el);
      }
    });
    ws.setAttribute("ws-connect", "/live?topics=" + encodeURIComponent(topics.join(",")));
  }
  wireFollows();
  refreshStars();

  // -- alerts when a followed runner passes a checkpoint ------------------------------------
  function toast(text) {
    var box = document.getElementById("toasts");
    if (!box) {
      box = document.createElement("div");
      box.id = "toasts";
      box.setAttribute("role", "alert");
      box.setAttribute("aria-live", "assertive");
      document.body.appendChild(box);
    }
    var t = document.createElement("div");
    t.className = "toast";
    t.textContent = text;
    box.appendChild(t);
    while (box.children.length > 3) box.removeChild(box.firstChild);
    setTimeout(function () { if (t.parentNode) t.parentNode.removeChild(t); }, 15000);
  }
  // a runner card's live data (last passing, next expected): on its .rn-live part
  function liveOf(card) { return card.querySelector(".rn-live") || card; }
  function checkPassings() {
    named().forEach(function (f) {
      var bib = f.bib;
      var card = document.getElementById(f.id);
      if (!card || !card.hasAttribute("data-bib")) return;
      var el = liveOf(card);
      var last = el.getAttribute("data-last") || "";
      if (!(bib in seen)) { seen[bib] = last; return; }
      if (seen[bib] === last || !last) return;
      seen[bib] = last;
      var msg = card.getAttribute("data-name") + " passed " + el.getAttribute("data-last-name");
      var next = el.getAttribute("data-next-name");
      if (next) {
        var mins = Math.max(1, Math.round((Number(el.getAttribute("data-t1")) - serverNow()) / 60000));
        msg += ". Due at " + next + " in ~" + mins + " min, " +
          el.getAttribute("data-next-clock") + " (" + el.getAttribute("data-next-range") + ")";
      }
      toast(msg);
      if (navigator.vibrate) navigator.vibrate([120, 60, 120]);
      if (window.Notification && Notification.permission === "granted" && document.hidden) {
        try { new Notification(msg); } catch (e) { /* not allowed here */ }
      }
    });
    save(SEEN_KEY, seen);
  }
  document.addEventListener("htmx:wsAfterMessage", function () {
    var marked = markedChange();
    if (marked) changed(marked);
    else if (!snapshotNext) changed(Date.now());
    snapshotNext = false;
    refreshStars();
    checkPassings();
    tick();
  });

  // -- course map ---------------------------------------------------------------------------
  var svg = document.getElementById("course");
  // the map moves dots on the field's own clock: the newest record's time when it was drawn
  var mapOffset = offset;
  function mapClock() {
    var holder = document.querySelector("[data-field] [data-now]");
    if (holder && Number(holder.getAttribute("data-now"))) {
      mapOffset = Number(holder.getAttribute("data-now")) - Date.now();
    }
  }
  document.addEventListener("htmx:wsAfterMessage", mapClock);
  if (svg) {
    mapClock();
    var pts = JSON.parse(svg.getAttribute("data-points"));
    var layer = document.getElementById("dots");
    var showField = document.getElementById("show-field");
    var NS = "http://www.w3.org/2000/svg";
    var at = function (d) {
      for (var i = 1; i < pts.length; i++) {
        if (d <= pts[i][2] || i === pts.length - 1) {
          var seg = pts[i][2] - pts[i - 1][2] || 1;
          var f = Math.min(1, Math.max(0, (d - pts[i - 1][2]) / seg));
          return [pts[i - 1][0] + (pts[i][0] - pts[i - 1][0]) * f,
                  pts[i - 1][1] + (pts[i][1] - pts[i - 1][1]) * f];
        }
      }
      return [pts[0][0], pts[0][1]];
    };
    var where = function (el, now) {
      var d0 = Number(el.getAttribute("data-d0")), t0 = Number(el.getAttribute("data-t0"));
      var d1 = Number(el.getAttribute("data-d1")), t1 = Number(el.getAttribute("data-t1"));
      if (!el.hasAttribute("data-d0")) return null;
      if (!el.hasAttribute("data-d1") || !(t1 > t0)) return at(d0);
      var f = Math.min(0.98, Math.max(0, (now - t0) / (t1 - t0)));
      return at(d0 + (d1 - d0) * f);
    };
    var draw = function () {
      var now = Date.now() + mapOffset;
      var items = [];
      if (!showField || showField.checked) {
        document.querySelectorAll("[data-field] i").forEach(function (el) {
          if (!isFollowed(el.getAttribute("data-bib"))) items.push([el, "dot"]);
        });
      }
      named().forEach(function (f) {
        var el = document.getElementById(f.id);
        if (el && el.getAttribute("data-race") === svg.getAttribute("data-race")) {
          items.push([liveOf(el), "dot mine"]);
        }
      });
      while (layer.children.length > items.length) layer.removeChild(layer.lastChild);
      items.forEach(function (item, i) {
        var xy = where(item[0], now);
        var c = layer.children[i];
        if (!c) { c = document.createElementNS(NS, "circle"); layer.appendChild(c); }
        if (!xy) { c.setAttribute("r", 0); return; }
        c.setAttribute("cx", xy[0].toFixed(1));
        c.setAttribute("cy", xy[1].toFixed(1));
        c.setAttribute("r", item[1] === "dot mine" ? 28 : 16);
        c.setAttribute("class", item[1]);
      });
    };
    setInterval(draw, 500);
    draw();
  }
})();
