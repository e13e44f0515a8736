// The marshal page's service worker: a phone that opened /marshal once with signal can open it
// again without any (a reload, or from the home screen) and keep typing bibs into its queue.
//
// Served by GET /marshal/sw.js, which puts a first line before this file:
//   var CONFIG = {cache: "<this release's cache>", prefix: "<all releases' prefix>",
//                 shell: "/marshal", assets: ["/static/...?v=...", ...]};
//
// What is cached: the page shell (the same for every marshal: it holds no token and no race
// data; the page asks for those with its token from JavaScript) and the static files it loads.
// Nothing else, ever: Cache Storage can be read by any page of this site, so no response to a
// request carrying a token may go there. API calls, POSTs and sockets are left alone: they go
// to the network exactly as without a worker, and fail without signal (the page then keeps its
// entries in its own queue until they can be sent).
"use strict";
/* global CONFIG */

// Weak signal: a shell the network has not delivered within this long comes from the cache
// (the network's copy, when it arrives, refreshes the cache for next time).
var SHELL_WAIT_MS = 4000;

function cacheable(res) {
  return res && res.ok && res.type === "basic" && !res.redirected;
}

function cached(url) {
  return caches.open(CONFIG.cache).then(function (cache) {
    return cache.match(url, { ignoreVary: true });
  });
}

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(CONFIG.cache).then(function (cache) {
      // "reload": past the browser's HTTP cache, so the cache gets this release's files.
      return cache.addAll([CONFIG.shell].concat(CONFIG.assets).map(function (url) {
        return new Request(url, { cache: "reload", credentials: "omit" });
      }));
    }).then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.filter(function (name) {
        return name.indexOf(CONFIG.prefix) === 0 && name !== CONFIG.cache;
      }).map(function (name) { return caches.delete(name); }));
    }).then(function () { return self.clients.claim(); })
  );
});

// The page: network first (fresh when there is signal), the cached shell when the network
// fails, is too slow, or answers with a server error.
function shell(event) {
  var network = fetch(event.request).then(function (res) {
    if (!cacheable(res) || !/^text\/html/.test(res.headers.get("content-type") || "")) return res;
    var copy = res.clone();
    return caches.open(CONFIG.cache)
      .then(function (cache) { return cache.put(CONFIG.shell, copy); })
      .catch(function () {})
      .then(function () { return res; });
  });
  event.waitUntil(network.catch(function () {}));
  return new Promise(function (resolve, reject) {
    var done = false;
    function answer(res) { if (!done) { done = true; resolve(res); } }
    var timer = setTimeout(function () {
      cached(CONFIG.shell).then(function (hit) { if (hit) answer(hit); });
    }, SHELL_WAIT_MS);
    network.then(function (res) {
      clearTimeout(timer);
      if (res.status < 500) { answer(res); return; }
      cached(CONFIG.shell).then(function (hit) { answer(hit || res); }, function () { answer(res); });
    }, function (err) {
      clearTimeout(timer);
      cached(CONFIG.shell).then(function (hit) {
        if (hit) answer(hit);
        else if (!done) { done = true; reject(err); }
      }, function () { if (!done) { done = true; reject(err); } });
    });
  });
}

// Static files: their URLs carry the release's version, so the cached copy is the right one.
function asset(request) {
  return caches.open(CONFIG.cache).then(function (cache) {
    return cache.match(request, { ignoreVary: true }).then(function (hit) {
      return hit || fetch(request).then(function (res) {
        if (cacheable(res)) cache.put(request, res.clone()).catch(function () {});
        return res;
      });
    });
  });
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET" || request.headers.has("authorization")) return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && url.pathname === CONFIG.shell) {
    event.respondWith(shell(event));
  } else if (url.pathname.indexOf("/static/") === 0 && url.pathname !== "/static/marshal-sw.js") {
    event.respondWith(asset(request));
  }
  // Anything else (the API above all) is not answered here: the browser fetches it as usual.
});
