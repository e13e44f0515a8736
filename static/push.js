// livetrack supporters: where I stand (with the runner's ETA there) and Web Push alerts.
(function () {
  "use strict";
  var FOLLOW_KEY = "livetrack.follow", STAND_KEY = "livetrack.stand", PUSH_KEY = "livetrack.push";
  function load(key, fallback) {
    try { return JSON.parse(localStorage.getItem(key)) || fallback; } catch (e) { return fallback; }
  }
  function save(key, value) {
    try { localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* private mode */ }
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text) e.textContent = text;
    return e;
  }
  var stands = load(STAND_KEY, {});
  var LEADS = [1, 2, 3, 5, 10];

  // -- where I stand ------------------------------------------------------------------------
  function query(s) {
    if (s && s.checkpoint) return "?checkpoint=" + encodeURIComponent(s.checkpoint);
    if (s && s.distance_m) return "?distance=" + s.distance_m;
    return "";
  }
  function showEta(panel, bib) {
    var out = panel.querySelector(".stand-eta");
    fetch("/api/v1/runners/" + encodeURIComponent(bib) + "/where" + query(stands[bib]))
      .then(function (r) { return r.json(); })
      .then(function (d) {
        var e = d.eta;
        if (!stands[bib]) out.textContent = "Say where you stand to see when they reach you.";
        else if (!e) out.textContent = "No estimate yet: it comes once they are on their way.";
        else if (e.passed) out.textContent = "Passed " + e.label + " at " + e.clock + ".";
        else out.textContent = "At " + e.label + " ~" + e.clock + " (" + e.low + "–" + e.high +
          "), in ~" + e.in_min + " min";
      })
      .catch(function () { out.textContent = ""; });
  }
  function standPanel(box, bib, name) {
    var panel = el("section", { "class": "stand", "data-stand-bib": bib });
    panel.appendChild(el("h2", {}, "Where I stand" + (name ? " for " + name : "")));
    var where = el("select", { "aria-label": "Where I stand" });
    var km = el("input", { type: "number", min: "0.1", step: "0.1", inputmode: "decimal",
      "aria-label": "Distance along the course in km", hidden: "" });
    var lead = el("select", { "aria-label": "Alert me this long before" });
    LEADS.forEach(function (m) { lead.appendChild(el("option", { value: String(m * 60) }, m + " min before")); });
    panel.appendChild(where);
    panel.appendChild(km);
    panel.appendChild(lead);
    panel.appendChild(el("p", { "class": "stand-eta meta", "aria-live": "polite" }));
    box.appendChild(panel);
    fetch("/api/v1/runners/" + encodeURIComponent(bib) + "/where").then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (d) {
      if (!d) { panel.remove(); return; }
      if (d.stands === false) {  // a sprint in rounds: nowhere to stand along it
        if (stands[bib]) { delete stands[bib]; save(STAND_KEY, stands); sync(); }
        panel.remove();
        return;
      }
      where.appendChild(el("option", { value: "" }, "Not set"));
      d.checkpoints.forEach(function (c) { where.appendChild(el("option", { value: c.id }, c.name)); });
      where.appendChild(el("option", { value: "@" }, "A distance along the course…"));
      var s = stands[bib] || {};
      where.value = s.checkpoint || (s.distance_m ? "@" : "");
      km.hidden = where.value !== "@";
      if (s.distance_m) km.value = (s.distance_m / 1000).toFixed(1);
      km.max = (d.length_m / 1000).toFixed(1);
      lead.value = String(s.lead_s || 180);
      showEta(panel, bib);
    });
    function changed() {
      km.hidden = where.value !== "@";
      var metres = Math.round(Number(km.value) * 1000);
      if (where.value === "") delete stands[bib];
      else if (where.value === "@") {
        if (!(metres > 0)) return;
        stands[bib] = { distance_m: metres, lead_s: Number(lead.value) };
      } else stands[bib] = { checkpoint: where.value, lead_s: Number(lead.value) };
      save(STAND_KEY, stands);
      var follows = load(FOLLOW_KEY, []);
      if (stands[bib] && follows.indexOf(bib) < 0) {
        follows.push(bib);
        save(FOLLOW_KEY, follows);
        // standing somewhere for a runner follows them: the page reloads its follows
        document.querySelectorAll("[data-follow='" + bib + "']").forEach(function (b) {
          b.setAttribute("aria-pressed", "true"); b.textContent = "★"; b.classList.add("on");
        });
      }
      showEta(panel, bib);
      sync();
    }
    where.addEventListener("change", changed);
    km.addEventListener("change", changed);
    lead.addEventListener("change", changed);
  }

  // -- push ---------------------------------------------------------------------------------
  var box = document.querySelector("[data-push]");
  var why = null, button = null;
  function say(text) { if (why) why.textContent = text; }
  function unavailable() {
    if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
      if (/iPhone|iPad|iPod/.test(navigator.userAgent) && !navigator.standalone) {
        return "On iPhone, push alerts need this page on your home screen (Share, then Add to " +
          "Home Screen). Until then you get alerts here while the page is open.";
      }
      return "This browser cannot receive push alerts. You get alerts here while the page is open.";
    }
    if (Notification.permission === "denied") {
      return "Notifications are blocked for this site in your browser's settings. You get " +
        "alerts here while the page is open.";
    }
    return "";
  }
  function follows() {
    return load(FOLLOW_KEY, []).map(function (bib) {
      var s = stands[bib] || {}, f = { bib: bib, lead_s: s.lead_s || 180 };
      if (s.checkpoint) f.checkpoint = s.checkpoint;
      else if (s.distance_m) f.distance_m = s.distance_m;
      return f;
    });
  }
  var SENT_KEY = "livetrack.push.sent";
  function put(sub, onlyIfChanged) {
    var body = JSON.stringify({ subscription: sub.toJSON(), follows: follows() });
    var last = load(SENT_KEY, null);
    // every process re-reads the subscriptions when one changes: send only what is new
    // (and again after an hour, in case the server has dropped it)
    if (onlyIfChanged && last && last.body === body && Date.now() - last.at < 3600000) {
      return Promise.resolve(last.answer);
    }
    return fetch("/api/v1/push/subscription", {
      method: "PUT", headers: { "content-type": "application/json" }, body: body,
    }).then(function (r) {
      return r.json().then(function (d) {
        if (!r.ok) throw new Error(d.error || r.status);
        save(SENT_KEY, { body: body, answer: d, at: Date.now() });
        return d;
      });
    });
  }
  function registration() {
    return navigator.serviceWorker.register("/push-sw.js", { scope: "/" }).then(function () {
      return navigator.serviceWorker.ready;
    });
  }
  function sync() {
    if (load(PUSH_KEY, "") !== "on" || unavailable()) return Promise.resolve();
    return registration().then(function (reg) { return reg.pushManager.getSubscription(); })
      .then(function (sub) { return sub ? put(sub, true).then(shown) : null; })
      .catch(function (e) { say("Push alerts could not be updated: " + e.message); });
  }
  function shown(d) {
    if (d.removed) say("Push alerts are off: you follow nobody.");
    else say("Push alerts on for " + d.follows + " runner" + (d.follows === 1 ? "" : "s") +
      ": they come with the phone locked.");
    if (button) button.textContent = "Turn push alerts off";
    if (box) box.setAttribute("data-push-state", d.removed ? "off" : "on");
  }
  // A browser whose push service cannot be reached (no data to it, a blocked network) may
  // never answer a subscription: give up after a while and say so, rather than wait forever.
  var PUSH_WAIT_MS = 20000;
  function within(promise, what) {
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () {
        reject(new Error(what + " did not answer in " + PUSH_WAIT_MS / 1000 + " s"));
      }, PUSH_WAIT_MS);
      promise.then(function (v) { clearTimeout(timer); resolve(v); },
        function (e) { clearTimeout(timer); reject(e); });
    });
  }
  function turnOn() {
    say("Asking for permission…");
    Notification.requestPermission().then(function (p) {
      if (p !== "granted") throw new Error("notifications were not allowed");
      say("Turning push alerts on…");
      return Promise.all([within(registration(), "the page's service worker"),
        fetch("/api/v1/push").then(function (r) {
          if (!r.ok) throw new Error("this server does not send push alerts");
          return r.json();
        })]);
    }).then(function (both) {
      var reg = both[0], key = both[1].key;
      return within(reg.pushManager.getSubscription().then(function (sub) {
        return sub || reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
      }), "the browser's push service");
    }).then(function (sub) {
      save(PUSH_KEY, "on");
      return put(sub).then(shown);
    }).catch(function (e) {
      save(PUSH_KEY, "");
      if (box) box.setAttribute("data-push-state", "unavailable");
      say("Push alerts are unavailable here (" + e.message + "). You get alerts here while " +
        "the page is open.");
    });
  }
  function turnOff() {
    save(PUSH_KEY, "");
    save(SENT_KEY, null);
    registration().then(function (reg) { return reg.pushManager.getSubscription(); })
      .then(function (sub) {
        if (!sub) return;
        return fetch("/api/v1/push/subscription", {
          method: "DELETE", headers: { "content-type": "application/json" },
          body: JSON.stringify({ endpoint: sub.endpoint }),
        }).then(function () { return sub.unsubscribe(); });
      }).then(function () {
        say("Push alerts are off.");
        button.textContent = "Get alerts with the phone locked";
        box.setAttribute("data-push-state", "off");
      });
  }
  if (box) {
    why = el("p", { "class": "push-why meta", "aria-live": "polite" });
    var reason = unavailable();
    if (!reason) {
      button = el("button", { type: "button", "class": "push-on" }, "Get alerts with the phone locked");
      button.addEventListener("click", function () {
        if (box.getAttribute("data-push-state") === "on") turnOff(); else turnOn();
      });
      box.appendChild(button);
    } else box.setAttribute("data-push-state", "unavailable");
    box.appendChild(why);
    say(reason);
    sync();
  }

  // -- panels: one per followed runner on My runners, this runner's on a runner page --------
  var standsBox = document.querySelector("[data-stands]");
  if (standsBox) {
    var one = standsBox.getAttribute("data-stands");
    var bibs = one ? [one] : load(FOLLOW_KEY, []);
    bibs.forEach(function (bib) {
      var card = document.querySelector("[data-bib='" + bib + "']");
      standPanel(standsBox, bib, one ? "" : (card && card.getAttribute("data-name")) || "#" + bib);
    });
    var timer = null;
    document.addEventListener("htmx:wsAfterMessage", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        standsBox.querySelectorAll("[data-stand-bib]").forEach(function (p) {
          showEta(p, p.getAttribute("data-stand-bib"));
        });
      }, 1500);
    });
  }
})();
