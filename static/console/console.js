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
  const RETRYABLE = ["server_error", "unavailable"]; // nothing was stored: resend, same client_id
  const RETRY_AFTER_SERVER_ERROR_MS = 3000;
  const GAP_WAIT_MS = 1000; // a hole in the seqs may last this long before we sync (protocol §5.2)
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
    // The same for internal notes (acknowledged by their own note.created).
    noteOutbox: new Map(),
    seenTimer: 0,
    canned: [],
    cannedMatches: [],
    cannedIndex: 0,
    selectedRow: -1,
    pendingG: false,
    leaving: false,
    typingSentAt: 0,
    typingTimer: 0,
    toastTimer: 0,
    baseTitle: "",
    visitorReadSeq: 0, // the visitor has seen every message up to this seq ("Seen")
    readSent: 0, // the highest seq we told the server this agent has seen
    gapTimer: 0,
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
    "notification.created": onNotification,
    "note.created": onNoteCreated,
    "conversation.transferred": onConversationTransferred,
    "inbox.changed": refreshQueue,
    "attachment.updated": onAttachmentUpdated,
    "receipt.updated": onReceiptUpdated,
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
      syncConversation();
      flushOutbox();
    }
  }

  // --- Queue -----------------------------------------------------------------------------

  function refreshQueue() {
    if (document.getElementById("queue")) {
      htmx.trigger("#queue", "refresh");
    }
    if (document.getElementById("supervisor")) {
      htmx.trigger("#supervisor", "refresh");
    }
  }

  function onConversationTransferred(frame) {
    showToast(frame.message);
    refreshQueue();
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

  // Unread notifications (counted while the tab is hidden) win over the queue's length.
  function updateTitle() {
    const queue = document.getElementById("queue");
    const waiting = queue ? Number(queue.dataset.waitingCount) || 0 : 0;
    const unread = window.HelpdeskNotify ? window.HelpdeskNotify.unread() : 0;
    let prefix = waiting > 0 ? "(" + waiting + ") " : "";
    if (unread > 0) {
      prefix = "(" + unread + " new) ";
    }
    document.title = prefix + state.baseTitle;
  }

  // --- Notifications: sound, badge and browser notification live in notify.js -----------

  function onNotification(frame) {
    if (window.HelpdeskNotify) {
      window.HelpdeskNotify.notify(frame);
    }
    if (frame.kind === "queued") {
      refreshQueue();
    }
  }

  // --- Conversation: transcript ----------------------------------------------------------

  function openConversationId() {
    return dom.transcript ? Number(dom.transcript.dataset.conversationId) : 0;
  }

  function heldSeqs() {
    return Array.prototype.map.call(dom.transcript.querySelectorAll(".msg[data-seq]"), function (item) {
      return Number(item.dataset.seq);
    });
  }

  function highestSeq() {
    return Math.max(0, ...heldSeqs());
  }

  // Every seq from 1 to this one is on screen: where a sync starts.
  function contiguousSeq() {
    const held = new Set(heldSeqs());
    let seq = 0;
    while (held.has(seq + 1)) {
      seq += 1;
    }
    return seq;
  }

  // Also subscribes to the conversation's live events; the server first answers with
  // conversation.updated, so a header that went stale while offline is refreshed too.
  function syncConversation() {
    send({ type: "conversation.sync", conversation_id: openConversationId(), after_seq: contiguousSeq() });
  }

  // Seqs have no gaps, so a hole below what we hold is a message whose broadcast was lost
  // (its server stopped right after storing it) or is still on its way: give it a second,
  // then sync from the last seq before the hole.
  function watchGap() {
    if (state.gapTimer || contiguousSeq() === highestSeq()) {
      return;
    }
    const conversationId = openConversationId();
    state.gapTimer = setTimeout(function () {
      state.gapTimer = 0;
      if (state.ready && openConversationId() === conversationId && contiguousSeq() < highestSeq()) {
        syncConversation();
      }
    }, GAP_WAIT_MS);
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
    watchGap();
    if (frame.author === "visitor") {
      hideTyping();
      scheduleSeen();
    }
    if (atEnd || frame.author === "agent") {
      scrollToEnd();
    }
    showSeen();
    sendRead();
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
    let body = item.querySelector(".msg__body");
    if (!body) {
      body = document.createElement("div");
      body.className = "msg__body";
      item.querySelector(".msg__meta").after(body);
    }
    window.HelpdeskText.setLinkedText(body, frame.body);
    body.hidden = Boolean(frame.attachment);
    setAttachment(item, frame.attachment);
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

  // Messages with a seq are kept in seq order, each note right after the message it was
  // written after (its after_seq); pending replies and notes (not stored yet) stay last.
  function placeBySeq(item) {
    const isNote = item.dataset.afterSeq !== undefined && item.dataset.noteId !== undefined;
    const seq = Number(isNote ? item.dataset.afterSeq : item.dataset.seq);
    const before = Array.prototype.find.call(dom.transcript.children, function (other) {
      if (other === item) {
        return false;
      }
      if (other.dataset.noteId !== undefined) {
        return !isNote && Number(other.dataset.afterSeq) >= seq;
      }
      return !other.dataset.seq || Number(other.dataset.seq) > seq;
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

  // --- Conversation: internal notes (agents only) ----------------------------------------

  function findNote(noteId) {
    return dom.transcript.querySelector('.msg--note[data-note-id="' + Number(noteId) + '"]');
  }

  function newNoteItem() {
    return dom.noteTemplate.content.firstElementChild.cloneNode(true);
  }

  function onNoteCreated(frame) {
    if (frame.conversation_id !== openConversationId()) {
      return;
    }
    if (frame.client_id) {
      state.noteOutbox.delete(frame.client_id);
    }
    const atEnd = isScrolledToEnd();
    const item = findNote(frame.note_id) || findByClientId(frame.client_id) || newNoteItem();
    item.className = "msg msg--note";
    item.dataset.noteId = String(frame.note_id);
    item.dataset.afterSeq = String(frame.after_seq);
    if (frame.client_id) {
      item.dataset.clientId = frame.client_id;
    }
    item.querySelector(".msg__author").textContent = frame.author_name || "";
    setTime(item.querySelector(".msg__time"), frame.created_at);
    item.querySelector(".msg__body").textContent = frame.body;
    placeBySeq(item);
    if (atEnd) {
      scrollToEnd();
    }
  }

  // Customer messages that arrive while the page is in front count as read.
  function scheduleSeen() {
    clearTimeout(state.seenTimer);
    state.seenTimer = setTimeout(function () {
      if (document.visibilityState === "visible") {
        postSeen();
      }
    }, 500);
  }

  function postSeen() {
    const url = dom.transcript && dom.transcript.dataset.seenUrl;
    if (url && !state.leaving) {
      fetch(url, { method: "POST", headers: csrfHeaders(), credentials: "same-origin" });
    }
  }

  function csrfHeaders() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}");
    } catch (error) {
      return {};
    }
  }

  function onSyncDone(frame) {
    if (frame.conversation_id === openConversationId()) {
      sendRead();
    }
  }

  // --- Conversation: attachments ---------------------------------------------------------

  function setAttachment(item, attachment) {
    const old = item.querySelector(".msg__attachment");
    if (old) {
      old.remove();
    }
    if (attachment) {
      item.querySelector(".msg__body").after(buildAttachment(attachment));
    }
  }

  function buildAttachment(attachment) {
    const box = document.createElement("div");
    box.className = "msg__attachment";
    box.dataset.attachmentId = attachment.id;
    const link = document.createElement("a");
    link.href = attachment.url;
    if (attachment.thumbnail_url) {
      const image = document.createElement("img");
      image.className = "msg__image";
      image.src = attachment.thumbnail_url;
      image.alt = attachment.name;
      link.appendChild(image);
    } else {
      link.className = "msg__file";
      const name = document.createElement("span");
      name.className = "msg__file-name";
      name.textContent = attachment.name;
      const size = document.createElement("span");
      size.className = "msg__file-size";
      size.textContent = " " + formatSize(attachment.size);
      link.append(name, size);
    }
    if (attachment.width) {
      link.target = "_blank";
      link.rel = "noopener noreferrer";
    } else {
      link.download = attachment.name;
    }
    box.appendChild(link);
    return box;
  }

  function formatSize(bytes) {
    if (bytes < 1024) {
      return bytes + " B";
    }
    return bytes < 1024 * 1024 ? Math.round(bytes / 1024) + " KB" : (bytes / 1048576).toFixed(1) + " MB";
  }

  function onAttachmentUpdated(frame) {
    const item = frame.conversation_id === openConversationId() && findBySeq(frame.seq);
    if (item && item.querySelector(".msg__body")) {
      setAttachment(item, frame.attachment);
    } else if (item) {
      const old = item.querySelector(".msg__attachment");
      old.replaceWith(buildAttachment(frame.attachment));
    }
  }

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  }

  function sendFiles(files) {
    Array.prototype.forEach.call(files || [], sendFile);
  }

  function sendFile(file) {
    const clientId = newClientId();
    addPendingMessage(clientId, "Sending " + file.name + "…");
    const form = new FormData();
    form.append("client_id", clientId);
    form.append("file", file, file.name);
    fetch(dom.form.dataset.uploadUrl, {
      method: "POST",
      body: form,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken() },
    })
      .then(function (response) {
        return response.json().then(function (data) {
          return { ok: response.ok, data: data };
        }, function () {
          return { ok: false, data: { message: "The server answered " + response.status + "." } };
        });
      })
      .then(function (result) {
        if (!result.ok) {
          throw new Error(result.data.message || "The file could not be sent.");
        }
        onMessageCreated(result.data); // fills the pending bubble (same client_id)
      })
      .catch(function (error) {
        const pending = findByClientId(clientId);
        if (pending && pending.classList.contains("msg--pending")) {
          pending.remove();
        }
        showToast(error.message || "The file could not be sent.");
      });
  }

  function listenForFiles() {
    const input = document.getElementById("reply-file");
    const button = document.getElementById("reply-attach");
    if (!input || !button || dom.form.hasAttribute("data-uploads-off")) {
      return;
    }
    button.addEventListener("click", function () {
      input.click();
    });
    input.addEventListener("change", function () {
      sendFiles(input.files);
      input.value = "";
    });
    dom.body.addEventListener("paste", function (event) {
      const files = event.clipboardData && event.clipboardData.files;
      if (files && files.length) {
        event.preventDefault();
        sendFiles(files);
      }
    });
    function hasFiles(event) {
      return event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") >= 0;
    }
    dom.transcript.parentNode.addEventListener("dragover", function (event) {
      if (hasFiles(event)) {
        event.preventDefault();
        dom.transcript.classList.add("transcript--dragging");
      }
    });
    dom.transcript.parentNode.addEventListener("dragleave", function () {
      dom.transcript.classList.remove("transcript--dragging");
    });
    dom.transcript.parentNode.addEventListener("drop", function (event) {
      if (hasFiles(event)) {
        event.preventDefault();
        dom.transcript.classList.remove("transcript--dragging");
        sendFiles(event.dataTransfer.files);
      }
    });
  }

  // --- Conversation: read receipts -------------------------------------------------------

  // This agent has seen what is on screen: only while the page is visible.
  function sendRead() {
    if (!dom.transcript || document.visibilityState !== "visible") {
      return;
    }
    const seq = highestSeq();
    if (seq > state.readSent && send({ type: "message.read", conversation_id: openConversationId(), seq: seq })) {
      state.readSent = seq;
    }
  }

  function onReceiptUpdated(frame) {
    if (frame.conversation_id === openConversationId() && frame.reader === "visitor") {
      state.visitorReadSeq = Math.max(state.visitorReadSeq, frame.seq);
      showSeen();
    }
  }

  // "Seen" under the latest agent message the visitor has read.
  function showSeen() {
    if (!dom.transcript) {
      return;
    }
    let latest = null;
    dom.transcript.querySelectorAll(".msg--agent[data-seq]").forEach(function (item) {
      if (Number(item.dataset.seq) <= state.visitorReadSeq) {
        latest = item;
      }
    });
    const old = dom.transcript.querySelector(".msg__seen");
    if (old && old.parentNode === latest) {
      return;
    }
    if (old) {
      old.remove();
    }
    if (latest) {
      const seen = document.createElement("div");
      seen.className = "msg__seen";
      seen.textContent = "Seen";
      latest.appendChild(seen);
    }
  }

  // --- Conversation: header, typing ------------------------------------------------------

  function onConversationUpdated(frame) {
    const header = document.getElementById("conv-header");
    if (!header || frame.conversation_id !== openConversationId()) {
      return;
    }
    if (typeof frame.visitor_read_seq === "number" && frame.visitor_read_seq > state.visitorReadSeq) {
      state.visitorReadSeq = frame.visitor_read_seq;
      showSeen();
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
    if (state.leaving) {
      return; // transferred away: we are about to go back to the list, and may not see it
    }
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

  function composerMode() {
    const checked = dom.form.querySelector('input[name="mode"]:checked');
    return checked ? checked.value : "reply";
  }

  function setComposerMode(mode) {
    const radio = dom.form.querySelector('input[name="mode"][value="' + mode + '"]');
    if (radio) {
      radio.checked = true;
    }
    dom.form.dataset.mode = mode;
  }

  function submitReply() {
    const body = dom.body.value.trim();
    if (!body) {
      return;
    }
    hideCanned();
    const clientId = newClientId();
    if (composerMode() === "note") {
      state.noteOutbox.set(clientId, body);
      addPendingNote(clientId, body);
      dom.body.value = "";
      sendNote(clientId, body);
      return;
    }
    state.outbox.set(clientId, body);
    addPendingMessage(clientId, body);
    dom.body.value = "";
    sendReply(clientId, body);
  }

  function sendNote(clientId, body) {
    send({ type: "note.create", conversation_id: openConversationId(), client_id: clientId, body: body });
  }

  function addPendingNote(clientId, body) {
    addPending(newNoteItem(), "msg msg--note msg--pending", clientId, body);
  }

  function sendReply(clientId, body) {
    send({ type: "message.create", conversation_id: openConversationId(), client_id: clientId, body: body });
  }

  function flushOutbox() {
    state.outbox.forEach(function (body, clientId) {
      sendReply(clientId, body);
    });
    state.noteOutbox.forEach(function (body, clientId) {
      sendNote(clientId, body);
    });
  }

  function addPendingMessage(clientId, body) {
    addPending(newMessageItem(), "msg msg--agent msg--pending", clientId, body);
  }

  function addPending(item, className, clientId, body) {
    item.className = className;
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
    watchGap();
  }

  // A refused reply is taken out of the transcript and put back in the composer, so the
  // agent loses nothing and it is never resent behind their back.
  function dropRefusedReply(clientId) {
    const body = state.outbox.get(clientId) || state.noteOutbox.get(clientId);
    state.outbox.delete(clientId);
    state.noteOutbox.delete(clientId);
    const pending = findByClientId(clientId);
    if (pending && pending.classList.contains("msg--pending")) {
      pending.remove();
    }
    if (body && dom.body && !dom.body.value.trim()) {
      dom.body.value = body;
    }
  }

  function onReplyKeydown(event) {
    if (!dom.canned.hidden && cannedKeydown(event)) {
      return;
    }
    if (event.key === "Escape") {
      dom.body.blur();
      return;
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitReply();
    }
  }

  // --- Composer: canned replies, typed as /shortcut ---------------------------------------

  function loadCanned() {
    const data = document.getElementById("canned-replies");
    try {
      state.canned = data ? JSON.parse(data.textContent) || [] : [];
    } catch (error) {
      state.canned = [];
    }
  }

  // The "/word" just before the caret, at the start of the box or after a space.
  function slashWord() {
    const upto = dom.body.value.slice(0, dom.body.selectionStart);
    const match = /(^|\s)\/([\w-]*)$/.exec(upto);
    return match ? { start: upto.length - match[2].length - 1, word: match[2].toLowerCase() } : null;
  }

  function updateCanned() {
    const typed = state.canned.length ? slashWord() : null;
    if (!typed) {
      hideCanned();
      return;
    }
    state.cannedMatches = state.canned.filter(function (reply) {
      return reply.shortcut.toLowerCase().indexOf(typed.word) === 0;
    });
    if (!state.cannedMatches.length) {
      hideCanned();
      return;
    }
    state.cannedIndex = Math.min(state.cannedIndex, state.cannedMatches.length - 1);
    renderCanned();
  }

  function renderCanned() {
    dom.canned.textContent = "";
    state.cannedMatches.forEach(function (reply, index) {
      const option = document.createElement("li");
      option.className = "canned__item";
      option.setAttribute("role", "option");
      option.dataset.shortcut = reply.shortcut;
      option.setAttribute("aria-selected", index === state.cannedIndex ? "true" : "false");
      const name = document.createElement("strong");
      name.textContent = "/" + reply.shortcut;
      const text = document.createElement("span");
      text.textContent = " " + (reply.title || reply.body).slice(0, 80);
      option.appendChild(name);
      option.appendChild(text);
      option.addEventListener("mousedown", function (event) {
        event.preventDefault(); // keep the focus (and the caret) in the reply box
        insertCanned(reply);
      });
      dom.canned.appendChild(option);
    });
    dom.canned.hidden = false;
  }

  function hideCanned() {
    if (dom.canned) {
      dom.canned.hidden = true;
      state.cannedMatches = [];
      state.cannedIndex = 0;
    }
  }

  function cannedKeydown(event) {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      const step = event.key === "ArrowDown" ? 1 : -1;
      const count = state.cannedMatches.length;
      state.cannedIndex = (state.cannedIndex + step + count) % count;
      renderCanned();
    } else if (event.key === "Tab" || (event.key === "Enter" && !event.shiftKey && !event.ctrlKey)) {
      insertCanned(state.cannedMatches[state.cannedIndex]);
    } else if (event.key === "Escape") {
      hideCanned();
    } else {
      return false;
    }
    event.preventDefault();
    return true;
  }

  // Replace the typed "/shortcut" with the reply's text (variables filled by the server).
  function insertCanned(reply) {
    const typed = slashWord();
    if (!reply || !typed) {
      hideCanned();
      return;
    }
    const value = dom.body.value;
    const caret = dom.body.selectionStart;
    dom.body.value = value.slice(0, typed.start) + reply.body + value.slice(caret);
    const end = typed.start + reply.body.length;
    dom.body.setSelectionRange(end, end);
    hideCanned();
    dom.body.focus();
  }

  function onReplyInput() {
    updateCanned();
    if (composerMode() === "note") {
      return; // the customer is not told an agent is typing a note
    }
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
    if (clientId && RETRYABLE.indexOf(frame.code) >= 0) {
      // Nothing was stored and the server de-duplicates by client_id: send it again later.
      retryLater(clientId, frame.retry_after ? frame.retry_after * 1000 : RETRY_AFTER_SERVER_ERROR_MS);
      return;
    }
    if (clientId) {
      dropRefusedReply(clientId);
    }
    showToast(frame.message || "Something went wrong.");
  }

  function retryLater(clientId, delay) {
    setTimeout(function () {
      if (state.outbox.has(clientId)) {
        sendReply(clientId, state.outbox.get(clientId));
      } else if (state.noteOutbox.has(clientId)) {
        sendNote(clientId, state.noteOutbox.get(clientId));
      }
    }, delay);
  }

  // The reply an error answers. Errors name it in `ref`; a `conflict` may come without one,
  // but on this socket only message.create can conflict, and the server answers frames in
  // order, so it is the oldest reply still waiting for its ack.
  function refusedClientId(frame) {
    if (frame.ref) {
      return state.outbox.has(frame.ref) || state.noteOutbox.has(frame.ref) ? frame.ref : "";
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

  // --- Keyboard shortcuts (listed on "?") ------------------------------------------------

  function isTyping(target) {
    const tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function listRows() {
    return Array.prototype.slice.call(document.querySelectorAll(".rows .row__link"));
  }

  function selectRow(step) {
    const rows = listRows();
    if (!rows.length) {
      return;
    }
    const current = rows.indexOf(document.activeElement);
    const next = current < 0 ? (step > 0 ? 0 : rows.length - 1) : Math.max(0, Math.min(rows.length - 1, current + step));
    rows[next].focus();
  }

  function clickAction(name) {
    const button = document.querySelector('[data-action="' + name + '"]');
    if (button && !button.disabled) {
      button.click();
    }
  }

  // The last list shown (queue, mine, search), so j/k on a conversation page move to the
  // conversation next to it in that list.
  const LIST_KEY = "helpdesk:list";

  function rememberList() {
    const rows = listRows();
    if (rows.length) {
      try {
        sessionStorage.setItem(LIST_KEY, JSON.stringify(rows.map(function (row) {
          return row.getAttribute("href");
        })));
      } catch (error) {
        // storage may be off; j/k then only move within lists
      }
    }
  }

  function openNeighbour(step) {
    let list = [];
    try {
      list = JSON.parse(sessionStorage.getItem(LIST_KEY) || "[]");
    } catch (error) {
      return;
    }
    const index = list.indexOf(location.pathname);
    const next = index >= 0 ? list[index + step] : "";
    if (next) {
      location.href = next;
    }
  }

  function move(step) {
    if (listRows().length) {
      selectRow(step);
    } else if (dom.transcript) {
      openNeighbour(step);
    }
  }

  const shortcuts = {
    j: function () { move(1); },
    k: function () { move(-1); },
    o: function () {
      if (document.activeElement && document.activeElement.classList.contains("row__link")) {
        document.activeElement.click();
      }
    },
    t: function () { clickAction("take"); },
    c: function () { clickAction("close"); },
    r: function () {
      if (dom.body) {
        setComposerMode("reply");
        dom.body.focus();
      }
    },
    n: function () {
      if (dom.body) {
        setComposerMode("note");
        dom.body.focus();
      }
    },
    "/": function () {
      const box = document.getElementById("search-q");
      if (box) {
        box.focus();
        box.select();
      } else {
        location.href = "/console/search/";
      }
    },
    "?": function () {
      const dialog = document.getElementById("shortcuts");
      if (dialog && !dialog.open) {
        dialog.showModal();
      }
    },
  };

  function onDocumentKeydown(event) {
    if (event.ctrlKey && event.key === "Enter" && event.target === dom.body) {
      event.preventDefault();
      submitReply();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) {
      return;
    }
    if (state.pendingG) {
      state.pendingG = false;
      if (event.key === "q") {
        event.preventDefault();
        location.href = "/console/";
      }
      return;
    }
    if (event.key === "g") {
      state.pendingG = true;
      return;
    }
    const action = shortcuts[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  }

  function paintLabels(root) {
    (root || document).querySelectorAll(".label[data-color]").forEach(function (label) {
      // Set through the CSSOM: the Content-Security-Policy blocks inline style attributes.
      if (/^#[0-9a-fA-F]{3,8}$/.test(label.dataset.color)) {
        label.style.setProperty("--label-color", label.dataset.color);
      }
    });
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
    document.addEventListener("htmx:beforeRequest", function (event) {
      if (event.target.closest && event.target.closest(".transfer__form")) {
        state.leaving = true;
      }
    });
    document.addEventListener("htmx:afterRequest", function (event) {
      // A refused transfer answers 200 with the header and its error; a done one redirects.
      if (state.leaving && event.detail.xhr && event.detail.xhr.status === 200) {
        state.leaving = false;
      }
    });
    document.addEventListener("htmx:afterSettle", function (event) {
      updateTitle();
      rememberList();
      paintLabels(event.target);
    });
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
    dom.body.addEventListener("blur", hideCanned);
    dom.form.addEventListener("change", function (event) {
      if (event.target.name === "mode") {
        setComposerMode(event.target.value);
      }
    });
    listenForFiles();
    document.addEventListener("visibilitychange", sendRead);
  }

  function init() {
    dom.banner = document.getElementById("connection-banner");
    dom.toast = document.getElementById("toast");
    dom.transcript = document.getElementById("transcript");
    dom.template = document.getElementById("msg-template");
    dom.form = document.getElementById("reply-form");
    dom.body = document.getElementById("reply-body");
    dom.typing = document.getElementById("typing");
    dom.noteTemplate = document.getElementById("note-template");
    dom.canned = document.getElementById("canned-list");
    state.baseTitle = document.title.replace(/^\(\d+( new)?\)\s*/, "");
    if (window.HelpdeskNotify) {
      window.HelpdeskNotify.onChange = updateTitle;
    }

    listenToHtmx();
    listenToPage();
    document.addEventListener("keydown", onDocumentKeydown);
    paintLabels(document);
    rememberList();
    loadCanned();
    updateTitle();
    if (dom.transcript) {
      localiseTimes();
      scrollToEnd();
      scheduleSeen(); // what is on screen now counts as read, once the page is in front
      document.addEventListener("visibilitychange", function () {
        if (document.visibilityState === "visible") {
          scheduleSeen();
        }
      });
    }
    if (dom.form && dom.body && dom.transcript) {
      listenToComposer();
    }
    connect();
  }

  init();
})();
