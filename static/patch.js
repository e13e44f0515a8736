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

  function apply(text) {
    var box = document.createElement("template");
    box.innerHTML = text;
    var rest = [];
    var ok = true;
    Array.prototype.slice.call(box.content.children).forEach(function (node) {
      var spec = node.tagName === "TEMPLATE" ? node.getAttribute("data-p") : null;
      if (spec === null) {
        rest.push(node.outerHTML);
        return;
      }
      var el = node.content.firstElementChild;
      if (el) el = document.importNode(el, true);
      if (!place(el, spec)) ok = false;
    });
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
