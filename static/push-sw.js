// livetrack push alerts: shows each pushed alert as a notification; a tap opens its runner.
"use strict";
self.addEventListener("install", function () { self.skipWaiting(); });
self.addEventListener("activate", function (ev) { ev.waitUntil(self.clients.claim()); });

self.addEventListener("push", function (ev) {
  var msg = {};
  try { msg = ev.data ? ev.data.json() : {}; } catch (e) { msg = { body: ev.data ? ev.data.text() : "" }; }
  var title = msg.title || "livetrack";
  ev.waitUntil(self.registration.showNotification(title, {
    body: msg.body || "",
    tag: msg.tag || undefined,          // one notification per runner and kind, never a pile
    renotify: !!msg.tag,
    timestamp: msg.at || Date.now(),
    data: { url: msg.url || "/me" },
    vibrate: [120, 60, 120],
  }));
});

// Where a tap goes: the alert's page on this site (a runner's card), else My runners; an
// address elsewhere is never opened from here.
function target(raw) {
  var url = null;
  try { url = new URL(raw || "/me", self.location.origin); } catch (e) { url = null; }
  if (!url || url.origin !== self.location.origin) url = new URL("/me", self.location.origin);
  return url.href;
}
function samePage(a, b) { return a.split("#")[0] === b.split("#")[0]; }

// A tap brings forward the page already open at the alert's address (scrolled wherever the
// supporter left it), or opens it.
self.addEventListener("notificationclick", function (ev) {
  ev.notification.close();
  var url = target(ev.notification.data && ev.notification.data.url);
  ev.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (list) {
    for (var i = 0; i < list.length; i++) {
      if (samePage(list[i].url, url) && "focus" in list[i]) return list[i].focus();
    }
    return self.clients.openWindow(url);
  }));
});
