/*
 * Message text for the widget and the console: bodies are untrusted, so they are only ever
 * set as text nodes. URLs become links, built as DOM nodes (never innerHTML), only for
 * http, https and mailto, opening in a new tab with rel="noopener nofollow". The same rules
 * as the server's `linkify` template filter (chat/templatetags/helpdesk_text.py).
 */
(function () {
  "use strict";

  const LINK = /\b(?:https?:\/\/|mailto:)[^\s<>"]+/gi;
  const TRAILING = /[.,;:!?'")\]}]+$/; // "see https://x.test/a." ends the sentence, not the URL
  const SCHEMES = ["http:", "https:", "mailto:"];

  function isSafe(url) {
    try {
      return SCHEMES.includes(new URL(url).protocol);
    } catch (error) {
      return false;
    }
  }

  function link(url) {
    const a = document.createElement("a");
    a.setAttribute("href", url); // as written, like the server's filter
    a.textContent = url;
    a.target = "_blank";
    a.rel = "noopener nofollow";
    return a;
  }

  // A fragment of text nodes and links for `text`.
  function linkified(text) {
    const fragment = document.createDocumentFragment();
    const source = String(text == null ? "" : text);
    let last = 0;
    for (const match of source.matchAll(LINK)) {
      const url = match[0].replace(TRAILING, "");
      if (!isSafe(url)) continue;
      fragment.append(document.createTextNode(source.slice(last, match.index)), link(url));
      last = match.index + url.length;
    }
    fragment.append(document.createTextNode(source.slice(last)));
    return fragment;
  }

  // Replace an element's content with `text`, its URLs as links.
  function setLinkedText(el, text) {
    el.replaceChildren(linkified(text));
  }

  window.HelpdeskText = Object.freeze({ linkified, setLinkedText });
})();
