// The timer console's link panel: the link between the site at the finish and the public
// server, from GET /api/v1/link every two seconds (hidden on a server that has no link).
(function () {
  "use strict";
  var panel = document.getElementById("uplink");
  if (!panel) return;
  function el(name) { return panel.querySelector('[data-uplink="' + name + '"]'); }
  function ago(s) {
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }
  function count(n, one, many) { return n.toLocaleString() + " " + (n === 1 ? one : many); }
  function draw(d) {
    if (!d || d.role === "alone") { panel.hidden = true; return; }
    panel.hidden = false;
    var site = d.role === "site";
    var down = !d.connected;
    panel.classList.toggle("down", down);
    panel.dataset.state = down ? "down" : "up";
    panel.querySelector("h2").textContent =
      site ? "Link to the public server" : "Link from the finish (site)";
    el("state").textContent = down ? "NOT CONNECTED" : "connected";
    var since = d.since_ms ? (d.now_ms - d.since_ms) / 1000 : null;
    el("since").textContent = since === null ? "" : (down ? "down for " : "up for ") + ago(since);
    el("lag-label").textContent = site ? "Records waiting to go up" : "Behind the finish by";
    var lag = count(d.lag_records || 0, "record", "records");
    if (d.lag_records) lag += " · " + ago(d.lag_s || 0);
    // what the other end holds is known only while connected: say so rather than guess
    if (down && !site) lag = "not known while the link is down";
    el("lag").textContent = lag;
    el("down").textContent = count(d.writes_down || 0, "write", "writes") +
      (down && site ? " (last known)" : "");
    var err = d.error ? "Last error: " + d.error : "";
    if (down && d.in_step_ms) err += (err ? " · " : "") + "last in step " + ago((d.now_ms - d.in_step_ms) / 1000) + " ago";
    el("error").textContent = err;
  }
  function poll() {
    var staff = window.livetrackStaff;
    if (!staff || !staff.token()) return;
    staff.api("GET", "/api/v1/link")
      .then(function (res) { return res.ok ? res.json() : null; })
      .then(draw)
      .catch(function () {});
  }
  poll();
  setInterval(poll, 2000);
})();
