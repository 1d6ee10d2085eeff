// The service worker: keeps the app shell so the app opens with no signal. Network first (a new release is seen at
// once when online), the cached copy when offline. API answers are never cached: they carry tracking tokens and
// change all the time.
const CACHE = "jaklapor-shell-v3";
const SHELL = [
  "/",
  "/lacak",
  "/laporan-saya",
  "/shared/style.css",
  "/app/main.js",
  "/app/api.js",
  "/app/i18n.js",
  "/app/map.js",
  "/app/mine.js",
  "/app/outbox.js",
  "/app/photos.js",
  "/app/report.js",
  "/app/track.js",
  "/app/feedback.js",
  "/shared/dom.js",
  "/shared/i18n.js",
  "/shared/map.js",
  "/shared/photos.js",
  "/app/icon.svg",
  "/app/manifest.webmanifest",
  "/shared/vendor/leaflet/leaflet.js",
  "/shared/vendor/leaflet/leaflet.css",
  "/shared/vendor/leaflet/images/marker-icon.png",
  "/shared/vendor/leaflet/images/marker-icon-2x.png",
  "/shared/vendor/leaflet/images/marker-shadow.png",
  "/app/vendor/exifr/mini.esm.js",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((key) => key !== CACHE).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  );
});

function isShell(url) {
  return url.origin === self.location.origin && (url.pathname.startsWith("/app/") || url.pathname.startsWith("/shared/") || SHELL.includes(url.pathname));
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || !isShell(url)) return; // the API (and everything else): straight to the network
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(url.pathname, copy));
        }
        return response;
      })
      .catch(() => caches.match(url.pathname).then((cached) => cached || Response.error())),
  );
});
