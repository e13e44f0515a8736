// livetrack live regions: apply what changed, in place (the hub's patches, see
// livetrack/live/delta.py). A pushed message holds whole regions, which htmx swaps by id, and
// patch steps, one <template data-p="…"> each, applied here in order before htmx sees the rest:
//   data-p=""          replace the element with the template's element's id
//   data-p="after:ID"  put it right after ID (moving it if it is on the page already)
//   data-p="first:ID"  put it first inside ID
//   data-p="drop:ID"   remove ID
// A step whose target is missing means this page missed a state: it reconnects, and the
// server's snapshot brings every region back whole.
(function () {
  "use strict";
  if (!window.htmx) return;
  var socket = null;
  document.addEventListener("htmx:wsBeforeMessage", function (ev) {
    socket = ev.detail.socketWrapper;
  });

  function place(el, spec) {
    var i = spec.indexOf(":");
    var op = i < 0 ? spec : spec.slice(0, i);
    var ref = i < 0 ? "" : spec.slice(i + 1);
    if (op === "drop") {
      var gone = document.getElementById(ref);
      if (gone) gone.remove();
      return true;
    }
    if (!el || !el.id) return false;
    var old = document.getElementById(el.id);
    if (op === "") {
      if (!old) return false;
      old.replaceWith(el);
      return true;
    }
    var anchor = document.getElementById(ref);
    if (!anchor) return false;
    if (old) old.remove();
    if (op === "after") anchor.after(el);
    else if (op === "first") anchor.prepend(el);
    else return false;
    return true;
  }

  // A list marked data-derive: its positions (row order) and gaps (each row's data-ms after
  // the first's) are worked out here, as the server draws them, so that a row arriving above
  // does not resend every row below it. A position is a board's td.pos or the big screen's
  // span.spos.
  function fmt(ms) {
    var s = Math.floor(ms / 1000);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(sec).padStart(2, "0");
  }
  function derive(list) {
    var rows = list.children;
    var ranked = list.getAttribute("data-derive") === "rank";
    var lead = rows.length ? Number(rows[0].getAttribute("data-ms")) : 0;
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var ms = Number(row.getAttribute("data-ms"));
      var gap = row.querySelector("td.gap");
      if (gap) gap.textContent = ms === lead ? "" : "+" + fmt(ms - lead);
      var pos = ranked && row.querySelector("td.pos, span.spos");
      if (!pos) continue;
      pos.textContent = String(i + 1);
      var move = row.hasAttribute("data-prev") ? Number(row.getAttribute("data-prev")) - (i + 1) : 0;
      if (move) {
        var up = move > 0 ? "up" : "down";
        var span = document.createElement("span");
        span.className = "move " + up;
        span.title = up + " " + Math.abs(move) + " since the previous checkpoint";
        span.textContent = (move > 0 ? "\u25B2" : "\u25BC") + Math.abs(move);
        pos.appendChild(span);
      }
    }
  }

  function apply(text) {
    var box = document.createElement("template");
    box.innerHTML = text;
    var rest = [];
    var ok = true;
    var touched = [];
    Array.prototype.slice.call(box.content.children).forEach(function (node) {
      var spec = node.tagName === "TEMPLATE" ? node.getAttribute("data-p") : null;
      if (spec === null) {
        rest.push(node.outerHTML);
        return;
      }
      var el = node.content.firstElementChild;
      if (el) el = document.importNode(el, true);
      if (spec.indexOf("drop:") === 0) {
        var gone = document.getElementById(spec.slice(5));
        var from = gone && gone.parentElement;
        if (from && from.hasAttribute("data-derive") && touched.indexOf(from) < 0) touched.push(from);
      }
      if (!place(el, spec)) ok = false;
      var list = el && el.parentElement;
      if (list && list.hasAttribute("data-derive") && touched.indexOf(list) < 0) touched.push(list);
    });
    touched.forEach(derive);
    if (!ok && socket) socket.reconnect();
    return rest.join("");
  }

  htmx.defineExtension("patch", {
    transformResponse: function (text) {
      return text.indexOf('<template data-p="') < 0 ? text : apply(text);
    },
  });
  // every live region's socket takes patches
  document.querySelectorAll("[ws-connect]").forEach(function (el) {
    var ext = el.getAttribute("hx-ext") || "";
    if (ext.split(",").indexOf("patch") < 0) el.setAttribute("hx-ext", ext ? ext + ",patch" : "patch");
  });
})();
