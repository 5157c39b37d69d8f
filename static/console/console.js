/*
 * Agent console: one WebSocket (/ws/console/v1/) keeps the queue and the open conversation
 * live; htmx does the rest. Frames are described in chat/protocol.py and docs/protocol.md.
 */
"use strict";

(function () {
  const SOCKET_PATH = "/ws/console/v1/";
  const CLOSE_FORBIDDEN = 4403; // the server refused us: retrying cannot help
  const PING_EVERY_MS = 25000;
  const BACKOFF_FIRST_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  const TYPING_SEND_EVERY_MS = 3000;
  const TYPING_SHOW_MS = 4000;
  const TOAST_MS = 6000;
  const AUTHORS = ["visitor", "bot", "agent", "system"];

  const state = {
    socket: null,
    ready: false, // true between session.ready and close: frames may be sent
    connectedBefore: false,
    stopped: false, // the page is going away, or the server said never to retry
    attempts: 0,
    reconnectTimer: 0,
    pingTimer: 0,
    agentName: "",
    // client_id → body of replies the server has not acknowledged yet; resent on reconnect.
    outbox: new Map(),
    typingSentAt: 0,
    typingTimer: 0,
    toastTimer: 0,
    baseTitle: "",
  };

  const dom = {};

  // One handler per server frame type.
  const handlers = {
    "session.ready": onSessionReady,
    "queue.changed": refreshQueue,
    "agent.updated": onAgentUpdated,
    "conversation.returned": onConversationReturned,
    "message.created": onMessageCreated,
    "message.ack": onMessageAck,
    "sync.done": onSyncDone,
    "conversation.updated": onConversationUpdated,
    "typing.started": onTypingStarted,
    "error": onErrorFrame,
    "pong": function () {},
  };

  // --- Connection ------------------------------------------------------------------------

  function connect() {
    clearTimeout(state.reconnectTimer);
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + SOCKET_PATH);
    socket.addEventListener("message", onSocketMessage);
    socket.addEventListener("close", onSocketClose);
    state.socket = socket;
  }

  function onSocketMessage(event) {
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (error) {
      return;
    }
    const handler = frame && handlers[frame.type];
    if (handler) {
      handler(frame);
    }
  }

  function onSocketClose(event) {
    state.ready = false;
    state.socket = null;
    clearInterval(state.pingTimer);
    if (state.stopped) {
      return;
    }
    if (event.code === CLOSE_FORBIDDEN) {
      state.stopped = true;
      showBanner("Signed out. Reload the page to sign in again.");
      return;
    }
    scheduleReconnect();
  }

  function scheduleReconnect() {
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** state.attempts);
    state.attempts += 1;
    showBanner("Reconnecting…");
    // Jitter, so a restarted server is not hit by every console at the same instant.
    state.reconnectTimer = setTimeout(connect, delay * (0.75 + Math.random() * 0.5));
  }

  function reconnectNow() {
    if (!state.socket && !state.stopped) {
      connect();
    }
  }

  function send(frame) {
    if (!state.ready || !state.socket) {
      return false;
    }
    state.socket.send(JSON.stringify(frame));
    return true;
  }

  function startPing() {
    clearInterval(state.pingTimer);
    state.pingTimer = setInterval(function () {
      send({ type: "ping" });
    }, PING_EVERY_MS);
  }

  function onSessionReady(frame) {
    const isReconnect = state.connectedBefore;
    state.ready = true;
    state.connectedBefore = true;
    state.attempts = 0;
    state.agentName = frame.agent ? frame.agent.name : "";
    hideBanner();
    startPing();
    if (isReconnect) {
      refreshQueue(); // queue.changed frames sent while we were away are lost
      refreshStatus(); // so may be agent.updated (asleep too long: offline)
    }
    const conversationId = openConversationId();
    if (conversationId) {
      // Also subscribes to the conversation's live events; the server first answers with
      // conversation.updated, so a header that went stale while offline is refreshed too.
      send({ type: "conversation.sync", conversation_id: conversationId, after_seq: highestSeq() });
      flushOutbox();
    }
  }

  // --- Queue -----------------------------------------------------------------------------

  function refreshQueue() {
    if (document.getElementById("queue")) {
      htmx.trigger("#queue", "refresh");
    }
  }

  // --- Presence: the status control in the top bar ---------------------------------------

  function refreshStatus() {
    const control = document.getElementById("agent-status");
    if (control) {
      htmx.ajax("GET", control.getAttribute("action"), { target: "#agent-status", swap: "outerHTML" });
    }
  }

  function onAgentUpdated(frame) {
    const control = document.getElementById("agent-status");
    const select = control && control.querySelector("select");
    const load = control && control.querySelector(".agent-status__load");
    if (!control) {
      return;
    }
    if (select && select.value !== frame.status) {
      select.value = frame.status;
    }
    control.className = "agent-status agent-status--" + frame.status;
    if (load) {
      load.textContent = frame.assigned + " / " + frame.capacity;
    }
  }

  function onConversationReturned(frame) {
    showToast(frame.message);
    refreshQueue();
  }

  function updateTitle() {
    const queue = document.getElementById("queue");
    if (!queue) {
      return;
    }
    const waiting = Number(queue.dataset.waitingCount) || 0;
    document.title = (waiting > 0 ? "(" + waiting + ") " : "") + state.baseTitle;
  }

  // --- Conversation: transcript ----------------------------------------------------------

  function openConversationId() {
    return dom.transcript ? Number(dom.transcript.dataset.conversationId) : 0;
  }

  function highestSeq() {
    let highest = Number(dom.transcript.dataset.lastSeq) || 0;
    dom.transcript.querySelectorAll(".msg[data-seq]").forEach(function (item) {
      highest = Math.max(highest, Number(item.dataset.seq));
    });
    return highest;
  }

  function findBySeq(seq) {
    return dom.transcript.querySelector('.msg[data-seq="' + Number(seq) + '"]');
  }

  function findByClientId(clientId) {
    if (!clientId) {
      return null;
    }
    const items = dom.transcript.querySelectorAll(".msg[data-client-id]");
    return Array.prototype.find.call(items, function (item) {
      return item.dataset.clientId === clientId;
    }) || null;
  }

  function newMessageItem() {
    return dom.template.content.firstElementChild.cloneNode(true);
  }

  function onMessageCreated(frame) {
    if (frame.conversation_id !== openConversationId()) {
      return;
    }
    const atEnd = isScrolledToEnd();
    // The same message may arrive twice (sync after reconnect, echo of our own reply):
    // match on seq, then on our client_id, and fill in the existing bubble.
    const item = findBySeq(frame.seq) || findByClientId(frame.client_id) || newMessageItem();
    fillMessage(item, frame);
    if (frame.client_id) {
      state.outbox.delete(frame.client_id);
    }
    placeBySeq(item);
    if (frame.author === "visitor") {
      hideTyping();
    }
    if (atEnd || frame.author === "agent") {
      scrollToEnd();
    }
  }

  function fillMessage(item, frame) {
    const author = AUTHORS.indexOf(frame.author) >= 0 ? frame.author : "system";
    item.className = "msg msg--" + author;
    item.dataset.seq = String(frame.seq);
    if (frame.client_id) {
      item.dataset.clientId = frame.client_id;
    }
    item.querySelector(".msg__author").textContent = frame.author_name || "";
    setTime(item.querySelector(".msg__time"), frame.created_at);
    window.HelpdeskText.setLinkedText(item.querySelector(".msg__body"), frame.body);
    setConfidence(item, frame.confidence, author);
    setSource(item, frame.source);
  }

  function setConfidence(item, confidence, author) {
    const badge = item.querySelector(".msg__badge");
    if (!badge) {
      return;
    }
    // A system note's 0 means "not applicable" (e.g. the visitor asked for a person).
    const shown = typeof confidence === "number" && (author === "bot" || confidence > 0);
    badge.hidden = !shown;
    badge.textContent = shown ? Math.round(confidence * 100) + "%" : "";
    badge.title = author === "bot" ? "Bot confidence" : "Best bot confidence before the hand-off";
  }

  function setSource(item, source) {
    const line = item.querySelector(".msg__source");
    if (!line) {
      return;
    }
    line.hidden = !source;
    line.textContent = source ? "Source: " + source.title : "";
  }

  function setTime(element, iso) {
    const date = new Date(iso);
    if (!element || isNaN(date.getTime())) {
      return;
    }
    element.dateTime = date.toISOString();
    element.textContent = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    element.title = date.toLocaleString();
  }

  function localiseTimes() {
    document.querySelectorAll("time.msg__time[datetime]").forEach(function (element) {
      setTime(element, element.getAttribute("datetime"));
    });
  }

  // Messages with a seq are kept in seq order; pending replies (no seq yet) stay last.
  function placeBySeq(item) {
    const seq = Number(item.dataset.seq);
    const before = Array.prototype.find.call(dom.transcript.children, function (other) {
      return other !== item && (!other.dataset.seq || Number(other.dataset.seq) > seq);
    });
    if (before) {
      if (item.nextElementSibling !== before) {
        dom.transcript.insertBefore(item, before);
      }
    } else if (item !== dom.transcript.lastElementChild) {
      dom.transcript.appendChild(item);
    }
  }

  function isScrolledToEnd() {
    const list = dom.transcript;
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  function scrollToEnd() {
    dom.transcript.scrollTop = dom.transcript.scrollHeight;
  }

  function onSyncDone(frame) {
    if (frame.conversation_id === openConversationId()) {
      dom.transcript.dataset.lastSeq = String(Math.max(highestSeq(), frame.last_seq));
    }
  }

  // --- Conversation: header, typing ------------------------------------------------------

  function onConversationUpdated(frame) {
    const header = document.getElementById("conv-header");
    if (!header || frame.conversation_id !== openConversationId()) {
      return;
    }
    const unchanged =
      header.dataset.status === frame.status &&
      header.dataset.assignee === (frame.assignee_name || "") &&
      header.dataset.handoffReason === (frame.handoff_reason || "");
    if (!unchanged) {
      refreshHeader();
    }
  }

  function refreshHeader() {
    htmx.ajax("GET", location.pathname, {
      target: "#conv-header",
      select: "#conv-header",
      swap: "outerHTML",
    });
  }

  function onTypingStarted(frame) {
    if (!dom.typing || frame.conversation_id !== openConversationId() || frame.author !== "visitor") {
      return;
    }
    dom.typing.textContent = (frame.name || "The visitor") + " is typing…";
    dom.typing.hidden = false;
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(hideTyping, TYPING_SHOW_MS);
  }

  function hideTyping() {
    if (dom.typing) {
      dom.typing.hidden = true;
    }
  }

  // --- Composer --------------------------------------------------------------------------

  function newClientId() {
    if (window.crypto && typeof crypto.randomUUID === "function") {
      return crypto.randomUUID(); // only in secure contexts (https, localhost)
    }
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) {
      return b.toString(16).padStart(2, "0");
    }).join("");
  }

  function submitReply() {
    const body = dom.body.value.trim();
    if (!body) {
      return;
    }
    const clientId = newClientId();
    state.outbox.set(clientId, body);
    addPendingMessage(clientId, body);
    dom.body.value = "";
    sendReply(clientId, body);
  }

  function sendReply(clientId, body) {
    send({ type: "message.create", conversation_id: openConversationId(), client_id: clientId, body: body });
  }

  function flushOutbox() {
    state.outbox.forEach(function (body, clientId) {
      sendReply(clientId, body);
    });
  }

  function addPendingMessage(clientId, body) {
    const item = newMessageItem();
    item.className = "msg msg--agent msg--pending";
    item.dataset.clientId = clientId;
    item.querySelector(".msg__author").textContent = state.agentName || "You";
    setTime(item.querySelector(".msg__time"), new Date().toISOString());
    window.HelpdeskText.setLinkedText(item.querySelector(".msg__body"), body);
    dom.transcript.appendChild(item);
    scrollToEnd();
  }

  function onMessageAck(frame) {
    state.outbox.delete(frame.client_id);
    if (frame.conversation_id !== openConversationId()) {
      return;
    }
    const pending = findByClientId(frame.client_id);
    if (!pending) {
      return;
    }
    const echoed = findBySeq(frame.seq);
    if (echoed && echoed !== pending) {
      pending.remove(); // never show a message twice
      return;
    }
    pending.classList.remove("msg--pending");
    pending.dataset.seq = String(frame.seq);
    placeBySeq(pending);
  }

  // A refused reply is taken out of the transcript and put back in the composer, so the
  // agent loses nothing and it is never resent behind their back.
  function dropRefusedReply(clientId) {
    const body = state.outbox.get(clientId);
    state.outbox.delete(clientId);
    const pending = findByClientId(clientId);
    if (pending && pending.classList.contains("msg--pending")) {
      pending.remove();
    }
    if (body && dom.body && !dom.body.value.trim()) {
      dom.body.value = body;
    }
  }

  function onReplyKeydown(event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitReply();
    }
  }

  function onReplyInput() {
    const now = Date.now();
    if (!dom.body.value.trim() || now - state.typingSentAt < TYPING_SEND_EVERY_MS) {
      return;
    }
    if (send({ type: "typing.start", conversation_id: openConversationId() })) {
      state.typingSentAt = now;
    }
  }

  // --- Errors, banner, toast -------------------------------------------------------------

  function onErrorFrame(frame) {
    const clientId = refusedClientId(frame);
    if (clientId) {
      dropRefusedReply(clientId);
    }
    showToast(frame.message || "Something went wrong.");
  }

  // The reply an error answers. Errors name it in `ref`; a `conflict` may come without one,
  // but on this socket only message.create can conflict, and the server answers frames in
  // order, so it is the oldest reply still waiting for its ack.
  function refusedClientId(frame) {
    if (frame.ref) {
      return state.outbox.has(frame.ref) ? frame.ref : "";
    }
    if (frame.code === "conflict" && state.outbox.size > 0) {
      return state.outbox.keys().next().value;
    }
    return "";
  }

  function showToast(message) {
    if (!dom.toast || !message) {
      return;
    }
    dom.toast.textContent = message;
    dom.toast.hidden = false;
    clearTimeout(state.toastTimer);
    state.toastTimer = setTimeout(function () {
      dom.toast.hidden = true;
    }, TOAST_MS);
  }

  function showBanner(text) {
    if (dom.banner) {
      dom.banner.textContent = text;
      dom.banner.hidden = false;
    }
  }

  function hideBanner() {
    if (dom.banner) {
      dom.banner.hidden = true;
    }
  }

  // --- Start -----------------------------------------------------------------------------

  function listenToHtmx() {
    // Raised from the HX-Trigger header of take/close when the action was refused.
    document.addEventListener("helpdesk:error", function (event) {
      showToast(event.detail && event.detail.message);
    });
    document.addEventListener("htmx:responseError", function (event) {
      showToast("The server answered " + event.detail.xhr.status + "; nothing changed.");
    });
    document.addEventListener("htmx:sendError", function () {
      showToast("Could not reach the server; try again.");
    });
    document.addEventListener("htmx:afterSettle", updateTitle);
  }

  function listenToPage() {
    window.addEventListener("pagehide", function () {
      state.stopped = true;
    });
    window.addEventListener("pageshow", function (event) {
      if (event.persisted) {
        state.stopped = false; // restored from the back/forward cache: its socket is gone
        reconnectNow();
      }
    });
    window.addEventListener("online", function () {
      if (!state.stopped && !state.socket) {
        state.attempts = 0;
        reconnectNow();
      }
    });
  }

  function listenToComposer() {
    dom.form.addEventListener("submit", function (event) {
      event.preventDefault();
      submitReply();
    });
    dom.body.addEventListener("keydown", onReplyKeydown);
    dom.body.addEventListener("input", onReplyInput);
  }

  function init() {
    dom.banner = document.getElementById("connection-banner");
    dom.toast = document.getElementById("toast");
    dom.transcript = document.getElementById("transcript");
    dom.template = document.getElementById("msg-template");
    dom.form = document.getElementById("reply-form");
    dom.body = document.getElementById("reply-body");
    dom.typing = document.getElementById("typing");
    state.baseTitle = document.title.replace(/^\(\d+\)\s*/, "");

    listenToHtmx();
    listenToPage();
    updateTitle();
    if (dom.transcript) {
      localiseTimes();
      scrollToEnd();
    }
    if (dom.form && dom.body && dom.transcript) {
      listenToComposer();
    }
    connect();
  }

  init();
})();
