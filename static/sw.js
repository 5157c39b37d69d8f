/*
 * The helpdesk's service worker, served at /sw.js so its scope (/) covers the console
 * (/console/) and the widget (/widget/). It shows Web Push notifications:
 *   {kind, title, body, url, tag, scope}
 * and skips one while a page under `scope` is visible (that page tells its user itself).
 * A click focuses a window already showing `url`, or opens it.
 */
"use strict";

self.addEventListener("install", function () {
  self.skipWaiting();
});

self.addEventListener("activate", function (event) {
  event.waitUntil(self.clients.claim());
});

function readPayload(event) {
  try {
    return event.data ? event.data.json() : {};
  } catch (error) {
    return { body: event.data ? event.data.text() : "" };
  }
}

async function someoneIsLooking(scope) {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  return windows.some(function (client) {
    return client.visibilityState === "visible" && new URL(client.url).pathname.startsWith(scope);
  });
}

self.addEventListener("push", function (event) {
  const data = readPayload(event);
  event.waitUntil(
    (async function () {
      if (data.scope && (await someoneIsLooking(data.scope))) {
        return;
      }
      await self.registration.showNotification(data.title || "Helpdesk", {
        body: data.body || "",
        tag: data.tag || undefined,
        renotify: Boolean(data.tag),
        data: { url: data.url || "/", kind: data.kind || "" },
      });
    })()
  );
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  const url = new URL((event.notification.data && event.notification.data.url) || "/", self.location.origin);
  event.waitUntil(
    (async function () {
      const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
      const open = windows.find(function (client) {
        return client.url === url.href && "focus" in client;
      });
      if (open) {
        return open.focus();
      }
      return self.clients.openWindow(url.href);
    })()
  );
});
