/*
 * Helpdesk widget loader: the one script a website owner pastes.
 *
 *   <script src="https://HOST/static/widget/loader.js" data-site="SITE_KEY" async></script>
 *
 * It injects a launcher bubble and a hidden iframe with the chat (served from HOST), and
 * talks to that iframe with postMessage, always naming the helpdesk origin as the target and
 * checking event.origin on receipt. Messages (all carry a `source` field):
 *
 *   iframe → page  {source: "helpdesk-widget", type: "widget.ready", color}
 *                  {source: "helpdesk-widget", type: "widget.close"}
 *                  {source: "helpdesk-widget", type: "widget.unread", count}
 *   page → iframe  {source: "helpdesk-loader", type: "widget.opened" | "widget.closed"}
 *                  {source: "helpdesk-loader", type: "widget.identify", identity}
 *                  {source: "helpdesk-loader", type: "widget.logout"}
 *
 * A signed-in customer (identity verification, see README): either on the script tag,
 *
 *   <script src=".../loader.js" data-site="KEY" data-user-id="42" data-user-name="Ann"
 *           data-user-email="ann@example.com" data-user-hash="HMAC_SHA256_HEX" async></script>
 *
 * (or data-user-jwt="HS256 JWT"), or from the page's own script at any time:
 *
 *   window.Helpdesk.identify({id: "42", name: "Ann", email: "ann@example.com", hash: "…"});
 *   window.Helpdesk.logout();   // the customer signed out: forget their chat on this browser
 */
(function () {
  "use strict";

  var LOADER_PATH = "/static/widget/loader.js";
  var DEFAULT_COLOR = "#2563eb";
  var STYLE_ID = "helpdesk-widget-style";
  var READY_TIMEOUT_MS = 15000;

  if (window.__helpdeskWidgetLoaded || document.getElementById("helpdesk-launcher")) {
    return; // the snippet was pasted twice: one widget is enough
  }
  window.__helpdeskWidgetLoaded = true;

  var script = document.currentScript || findOwnScript();
  if (!script || !script.getAttribute("data-site")) {
    if (window.console) console.warn("Helpdesk widget: add data-site=\"SITE_KEY\" to the script tag.");
    return;
  }
  var siteKey = script.getAttribute("data-site");
  var helpdeskOrigin = new URL(script.src, location.href).origin;
  var state = { open: false, ready: false, unread: 0, readyTimer: 0, identity: identityFromTag(),
    resume: takeResumeToken() };
  var launcher, frame, badge;

  function identityFromTag() {
    var identity = {};
    ["id", "name", "email", "hash", "jwt"].forEach(function (key) {
      var value = script.getAttribute("data-user-" + key);
      if (value) identity[key] = value;
    });
    return identity.id || identity.jwt ? identity : null;
  }

  // A link from one of our e-mails or notifications ends in #hd-resume=TOKEN: the widget
  // opens on that conversation. The fragment is removed so a reload or a shared URL does not
  // carry it on.
  function takeResumeToken() {
    var match = /(?:^#|&)hd-resume=([A-Za-z0-9_\-:.]+)/.exec(location.hash);
    if (!match) return "";
    if (window.history && history.replaceState) {
      history.replaceState(null, "", location.pathname + location.search);
    }
    return match[1];
  }

  function findOwnScript() {
    var candidates = document.querySelectorAll("script[data-site]");
    for (var i = 0; i < candidates.length; i++) {
      var src = candidates[i].src.split(/[?#]/)[0];
      if (src.slice(-LOADER_PATH.length) === LOADER_PATH) return candidates[i];
    }
    return null;
  }

  // Ids and !important keep the host page's own CSS (button { … }, iframe { … }) off our
  // elements; a <style> element rather than inline styles so the media query can apply.
  var CSS = [
    "#helpdesk-launcher{all:initial;position:fixed!important;right:20px!important;bottom:20px!important;",
    "z-index:2147483000!important;width:56px!important;height:56px!important;border-radius:50%!important;",
    "background:var(--helpdesk-color," + DEFAULT_COLOR + ")!important;color:#fff!important;cursor:pointer!important;",
    "display:flex!important;align-items:center!important;justify-content:center!important;",
    "box-shadow:0 6px 20px rgba(15,23,42,.28)!important;transition:transform .15s ease!important;",
    "box-sizing:border-box!important;padding:0!important;margin:0!important;border:0!important}",
    "#helpdesk-launcher[hidden]{display:none!important}",
    "#helpdesk-launcher:hover{transform:scale(1.06)!important}",
    "#helpdesk-launcher:focus-visible{outline:3px solid #111827!important;outline-offset:3px!important}",
    "#helpdesk-launcher svg{width:28px!important;height:28px!important;fill:none!important;",
    "stroke:currentColor!important;stroke-width:2!important;stroke-linecap:round!important;stroke-linejoin:round!important}",
    "#helpdesk-launcher .helpdesk-badge{all:initial;position:absolute!important;top:-2px!important;right:-2px!important;",
    "min-width:20px!important;height:20px!important;padding:0 5px!important;border-radius:10px!important;",
    "background:#dc2626!important;color:#fff!important;border:2px solid #fff!important;box-sizing:border-box!important;",
    "font:700 11px/16px system-ui,-apple-system,'Segoe UI',Roboto,sans-serif!important;text-align:center!important}",
    "#helpdesk-launcher .helpdesk-badge[hidden]{display:none!important}",
    "#helpdesk-frame{all:initial;position:fixed!important;right:20px!important;bottom:88px!important;",
    "z-index:2147483000!important;width:370px!important;height:560px!important;",
    "max-height:calc(100vh - 108px)!important;border:0!important;border-radius:16px!important;",
    "background:#fff!important;box-shadow:0 12px 40px rgba(15,23,42,.25)!important;display:block!important;",
    "visibility:visible!important;opacity:1!important;transition:opacity .15s ease!important}",
    "#helpdesk-frame[hidden]{display:none!important}",
    "@media (max-width:480px){#helpdesk-frame{right:0!important;bottom:0!important;width:100%!important;",
    "height:100%!important;max-height:none!important;border-radius:0!important}",
    "#helpdesk-launcher.helpdesk-open{display:none!important}}"
  ].join("");

  function svgIcon(paths) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    paths.forEach(function (d) {
      var path = document.createElementNS(ns, "path");
      path.setAttribute("d", d);
      svg.appendChild(path);
    });
    return svg;
  }

  var CHAT_ICON = ["M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-4.9A8 8 0 1 1 21 12z"];
  var CLOSE_ICON = ["M6 6l12 12", "M18 6L6 18"];

  function injectStyle() {
    if (document.getElementById(STYLE_ID)) return;
    var style = document.createElement("style");
    style.id = STYLE_ID;
    style.textContent = CSS;
    // A page with a nonce-based Content-Security-Policy gives our script tag its nonce; the
    // <style> needs the same one to be applied.
    if (script.nonce) style.nonce = script.nonce;
    (document.head || document.documentElement).appendChild(style);
  }

  function buildLauncher() {
    var button = document.createElement("button");
    button.id = "helpdesk-launcher";
    button.type = "button";
    button.setAttribute("aria-label", "Open chat");
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-controls", "helpdesk-frame");
    button.appendChild(svgIcon(CHAT_ICON));
    badge = document.createElement("span");
    badge.className = "helpdesk-badge";
    badge.setAttribute("aria-hidden", "true");
    badge.hidden = true;
    button.appendChild(badge);
    button.addEventListener("click", toggle);
    button.hidden = true; // until the chat says it is ready: never offer a broken panel
    return button;
  }

  function buildFrame() {
    var iframe = document.createElement("iframe");
    iframe.id = "helpdesk-frame";
    iframe.title = "Chat";
    iframe.setAttribute("allow", "");
    iframe.hidden = true;
    iframe.src =
      helpdeskOrigin + "/widget/" + encodeURIComponent(siteKey) + "/?origin=" +
      encodeURIComponent(location.origin) +
      "&page=" + encodeURIComponent((location.origin + location.pathname + location.search).slice(0, 500)) +
      (state.resume ? "&resume=" + encodeURIComponent(state.resume) : "");
    return iframe;
  }

  function setIcon(paths) {
    var old = launcher.querySelector("svg");
    launcher.replaceChild(svgIcon(paths), old);
  }

  function post(type, extra) {
    if (!frame || !frame.contentWindow) return;
    var message = { source: "helpdesk-loader", type: type };
    if (extra) message.identity = extra;
    frame.contentWindow.postMessage(message, helpdeskOrigin);
  }

  // Only strings travel: the widget checks the signature with the helpdesk, not here.
  function identify(identity) {
    if (!identity || typeof identity !== "object") return;
    var clean = {};
    ["id", "name", "email", "hash", "jwt"].forEach(function (key) {
      if (identity[key] !== undefined && identity[key] !== null) clean[key] = String(identity[key]);
    });
    state.identity = clean;
    if (state.ready) post("widget.identify", clean);
  }

  function logout() {
    state.identity = null;
    if (state.ready) post("widget.logout");
  }

  function setOpen(open) {
    state.open = open;
    frame.hidden = !open;
    launcher.classList.toggle("helpdesk-open", open);
    launcher.setAttribute("aria-expanded", String(open));
    launcher.setAttribute("aria-label", open ? "Close chat" : "Open chat");
    setIcon(open ? CLOSE_ICON : CHAT_ICON);
    if (open) {
      showUnread(0);
      frame.focus();
    }
    if (state.ready) post(open ? "widget.opened" : "widget.closed");
  }

  function toggle() {
    setOpen(!state.open);
  }

  function showUnread(count) {
    state.unread = state.open ? 0 : Math.max(0, Number(count) || 0);
    badge.hidden = state.unread === 0;
    badge.textContent = state.unread > 9 ? "9+" : String(state.unread);
    launcher.setAttribute(
      "aria-label",
      state.open ? "Close chat" : state.unread ? "Open chat (" + state.unread + " new)" : "Open chat"
    );
  }

  function applyColor(color) {
    if (typeof color !== "string" || !/^#([0-9a-f]{3}){1,2}$/i.test(color)) return;
    launcher.style.setProperty("--helpdesk-color", color, "important");
    launcher.style.setProperty("color", isLight(color) ? "#111827" : "#ffffff", "important");
  }

  // Relative luminance (WCAG): a light brand colour gets a dark icon.
  function isLight(hex) {
    var h = hex.length === 4 ? hex.replace(/[0-9a-f]/gi, "$&$&").slice(1) : hex.slice(1);
    var channels = [0, 2, 4].map(function (i) {
      var c = parseInt(h.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2] > 0.179;
  }

  var handlers = {
    "widget.ready": function (data) {
      state.ready = true;
      clearTimeout(state.readyTimer);
      applyColor(data.color);
      launcher.hidden = false;
      if (state.identity) post("widget.identify", state.identity);
      if (state.resume && !state.open) {
        state.resume = "";
        setOpen(true);
        return;
      }
      post(state.open ? "widget.opened" : "widget.closed"); // the iframe may have missed a click
    },
    "widget.close": function () {
      setOpen(false);
      launcher.focus();
    },
    "widget.unread": function (data) {
      showUnread(data.count);
    }
  };

  function onMessage(event) {
    if (event.origin !== helpdeskOrigin || event.source !== frame.contentWindow) return;
    var data = event.data;
    if (!data || data.source !== "helpdesk-widget" || !handlers.hasOwnProperty(data.type)) return;
    handlers[data.type](data);
  }

  function mount() {
    if (document.getElementById("helpdesk-launcher")) return;
    injectStyle();
    launcher = buildLauncher();
    frame = buildFrame();
    window.addEventListener("message", onMessage);
    document.body.appendChild(frame);
    document.body.appendChild(launcher);
    state.readyTimer = setTimeout(warnNotReady, READY_TIMEOUT_MS);
  }

  // The usual cause: this page's origin is not among the site's allowed origins, so the
  // helpdesk refuses to be framed here (CSP frame-ancestors) and will not talk to this page.
  // The launcher then stays hidden.
  function warnNotReady() {
    if (window.console) {
      console.warn(
        "Helpdesk widget: no answer from " + helpdeskOrigin + ". Is " + location.origin +
        " in the allowed origins of site " + siteKey + "?"
      );
    }
  }

  // A page may have set window.Helpdesk = {identity: {...}} before this script loaded.
  var early = window.Helpdesk && window.Helpdesk.identity;
  window.Helpdesk = { identify: identify, logout: logout };
  if (early) identify(early);

  if (document.body) {
    mount();
  } else {
    document.addEventListener("DOMContentLoaded", mount);
  }
})();
