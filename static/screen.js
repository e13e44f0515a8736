// The big screen: rotating leaderboards, the arrival animation of new finishers, and a
// screen wake lock. Nothing here accumulates: the feed holds at most a fixed number of
// entries (the server's updates drop the rows that leave it, static/patch.js), and the only
// state kept is the set of keys currently shown and the current board's key. Updates change
// rows in place; a board region sent whole (a (re)connect's snapshot, a new board) comes with
// the first board shown, and the rotation puts back the one that was.
(function () {
  "use strict";
  var rotateMs = Math.max(4000, (parseFloat(document.body.dataset.rotate) || 12) * 1000);

  // -- leaderboards that rotate ---------------------------------------------------------
  var current = null;
  function boards() { return document.querySelectorAll(".boards-panel .sboard[data-key]"); }
  function show(key) {
    var list = boards(), found = false;
    for (var i = 0; i < list.length; i++) {
      var on = list[i].dataset.key === key;
      found = found || on;
      list[i].hidden = !on;
    }
    if (!found && list.length) { list[0].hidden = false; key = list[0].dataset.key; }
    current = key;
  }
  function next() {
    var list = boards();
    if (!list.length) return;
    var i = 0;
    for (var j = 0; j < list.length; j++) if (list[j].dataset.key === current) i = j + 1;
    show(list[i % list.length].dataset.key);
  }
  setInterval(next, rotateMs);

  // -- new finishers arrive with a short animation ----------------------------------------
  var seen = null;
  function keys() {
    var out = new Set();
    document.querySelectorAll(".sfeed li[data-key]").forEach(function (li) { out.add(li.dataset.key); });
    return out;
  }
  function markArrivals() {
    var now = keys();
    if (seen !== null) {
      document.querySelectorAll(".sfeed li[data-key]").forEach(function (li) {
        if (seen.has(li.dataset.key) || li.classList.contains("arrive")) return;
        li.classList.add("arrive");  // once: a row kept in place must not flash again
        li.addEventListener("animationend", function () { li.classList.remove("arrive"); }, { once: true });
      });
    }
    seen = now;  // only the keys on screen: bounded by the feed's size
  }

  document.addEventListener("htmx:oobAfterSwap", function (e) {
    var el = e.detail && e.detail.target;
    if (el && el.classList && el.classList.contains("boards-panel")) show(current);
  });
  // after every message, whole regions and rows patched in place alike
  document.addEventListener("htmx:wsAfterMessage", markArrivals);
  document.addEventListener("DOMContentLoaded", function () {
    var first = boards()[0];
    if (first) show(first.dataset.key);
    markArrivals();
  });

  // -- keep the screen awake ----------------------------------------------------------------
  var lock = null;
  function wake() {
    if (!("wakeLock" in navigator) || document.visibilityState !== "visible" || lock) return;
    navigator.wakeLock.request("screen").then(function (l) {
      lock = l;
      l.addEventListener("release", function () { lock = null; });
    }).catch(function () { lock = null; });
  }
  document.addEventListener("visibilitychange", wake);
  document.addEventListener("DOMContentLoaded", wake);
  window.__screen = { wakeLockSupported: "wakeLock" in navigator, lockHeld: function () { return lock !== null; } };
})();
