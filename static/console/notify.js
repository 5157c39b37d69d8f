/*
 * Console notifications: what an agent hears about (the server's `notification.created`
 * frames, handed over by console.js) and Web Push for when the console is not open.
 *
 * - Sound: a short vendored chime (static/console/notify.wav), if the agent wants it.
 * - Unread badge: while the tab is hidden, each notification counts; the count shows in
 *   the title and on the favicon until the tab is visible again.
 * - Browser notification (Notification API, shown through the service worker) while the
 *   tab is hidden. Push notifications carry the same tag, so one replaces the other.
 * - Web Push: registers /sw.js (scope /, covering /console/) and subscribes with the
 *   server's VAPID key once the agent allowed notifications.
 */
"use strict";

(function () {
  const config = (document.getElementById("notify-config") || { dataset: {} }).dataset;
  const state = { unread: 0, audio: null, favicon: null, registration: null };
  const api = { notify: notify, unread: () => state.unread, onChange: null };
  window.HelpdeskNotify = api;

  function hidden() {
    return document.visibilityState !== "visible";
  }

  function notify(frame) {
    if (frame.sound) {
      playSound();
    }
    if (!hidden()) {
      return;
    }
    state.unread += 1;
    changed();
    showBrowserNotification(frame);
  }

  function playSound() {
    if (!config.soundUrl) {
      return;
    }
    if (!state.audio) {
      state.audio = new Audio(config.soundUrl);
    }
    state.audio.currentTime = 0;
    // Browsers refuse to play before the first click on the page; that is fine.
    state.audio.play().catch(function () {});
  }

  function changed() {
    drawFavicon(state.unread);
    if (typeof api.onChange === "function") {
      api.onChange();
    }
  }

  function markRead() {
    if (!hidden() && state.unread) {
      state.unread = 0;
      changed();
    }
  }

  // --- Favicon badge ---------------------------------------------------------------------

  function faviconLink() {
    if (!state.favicon) {
      state.favicon = document.querySelector("link[rel~='icon']");
      if (!state.favicon) {
        state.favicon = document.createElement("link");
        state.favicon.rel = "icon";
        document.head.appendChild(state.favicon);
      }
    }
    return state.favicon;
  }

  function drawFavicon(count) {
    const link = faviconLink();
    if (!count) {
      link.href = "data:,";
      return;
    }
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 32;
    const g = canvas.getContext("2d");
    if (!g) {
      return;
    }
    g.fillStyle = "#dc2626";
    g.beginPath();
    g.arc(16, 16, 16, 0, 2 * Math.PI);
    g.fill();
    g.fillStyle = "#ffffff";
    g.font = "bold 20px sans-serif";
    g.textAlign = "center";
    g.textBaseline = "middle";
    g.fillText(count > 9 ? "9+" : String(count), 16, 17);
    link.href = canvas.toDataURL("image/png");
  }

  // --- Browser notifications -------------------------------------------------------------

  function showBrowserNotification(frame) {
    if (!("Notification" in window) || Notification.permission !== "granted") {
      return;
    }
    const options = { body: frame.body, tag: frame.tag, data: { url: frame.url } };
    if (state.registration) {
      state.registration.showNotification(frame.title, options).catch(function () {});
      return;
    }
    const shown = new Notification(frame.title, options);
    shown.onclick = function () {
      window.focus();
      location.href = frame.url;
    };
  }

  // --- Web Push --------------------------------------------------------------------------

  function pushSupported() {
    return Boolean(
      config.vapidKey && "serviceWorker" in navigator && "PushManager" in window && "Notification" in window
    );
  }

  function keyBytes(base64url) {
    const padded = (base64url + "===".slice((base64url.length + 3) % 4))
      .replace(/-/g, "+")
      .replace(/_/g, "/");
    const raw = atob(padded);
    return Uint8Array.from(raw, function (c) {
      return c.charCodeAt(0);
    });
  }

  function setState(text) {
    const element = document.getElementById("notify-state");
    if (element) {
      element.textContent = text;
    }
  }

  async function subscribe() {
    const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    state.registration = registration;
    await navigator.serviceWorker.ready;
    let subscription = await registration.pushManager.getSubscription();
    if (!subscription) {
      subscription = await registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: keyBytes(config.vapidKey),
      });
    }
    const response = await fetch(config.subscribeUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": config.csrf },
      body: JSON.stringify(subscription),
    });
    if (!response.ok) {
      throw new Error("subscribe answered " + response.status);
    }
    document.documentElement.dataset.pushSubscribed = "true";
    setState("Desktop notifications are on.");
  }

  function enable() {
    Notification.requestPermission().then(function (permission) {
      if (permission === "granted") {
        subscribe().catch(function (error) {
          setState("Could not turn on push: " + error.message);
        });
      } else {
        setState("Notifications are blocked in this browser's site settings.");
      }
    });
  }

  function init() {
    document.addEventListener("visibilitychange", markRead);
    window.addEventListener("focus", markRead);
    const button = document.getElementById("notify-enable");
    if (!pushSupported()) {
      setState(config.vapidKey ? "This browser cannot show notifications." : "Web Push is off on this server.");
      return;
    }
    if (Notification.permission === "granted") {
      subscribe().catch(function (error) {
        setState("Could not turn on push: " + error.message);
      });
    } else if (button && Notification.permission === "default") {
      button.hidden = false;
      button.addEventListener("click", function () {
        button.hidden = true;
        enable();
      });
    } else {
      setState("Notifications are blocked in this browser's site settings.");
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
