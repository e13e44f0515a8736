// "Finish data delayed · last update 2 min ago": on a public server that follows the finish's
// site box, GET /api/v1/freshness says whether its data is behind. Asked once at load (a
// server that follows no site says so, and is not asked again), then every 20 s; the age
// shown counts on between answers without asking.
(function () {
  "use strict";
  var box = document.getElementById("delayed");
  if (!box || !window.fetch) return;
  var state = null, at = 0;
  function ago(s) {
    s = Math.max(0, Math.round(s));
    if (s < 90) return s + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }
  function draw() {
    if (!state || !state.delayed) { box.hidden = true; return; }
    var text = "finish data delayed";
    if (state.age_s !== null && state.age_s !== undefined) {
      text += " · last update " + ago(state.age_s + (Date.now() - at) / 1000);
    }
    box.textContent = text;
    box.hidden = false;
  }
  function ask() {
    fetch("/api/v1/freshness", { cache: "no-store", credentials: "omit" })
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(function (data) {
        if (!data) return;
        state = data; at = Date.now(); draw();
        if (!data.follows) { clearInterval(asking); clearInterval(drawing); }
      })
      .catch(function () {});
  }
  var asking = setInterval(ask, 20000);
  var drawing = setInterval(draw, 10000);
  ask();
})();
