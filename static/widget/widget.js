/*
 * The chat widget, running inside the iframe the loader injects (or standalone at
 * /widget/KEY/). It speaks the WebSocket protocol of chat/protocol.py (docs/protocol.md):
 * one handler per server frame type in `frameHandlers`, every message placed by its `seq`.
 *
 * postMessage with the embedding page (only when the server validated its origin):
 *   to the page   {source: "helpdesk-widget", type: "widget.ready", color}
 *                 {source: "helpdesk-widget", type: "widget.close"}
 *                 {source: "helpdesk-widget", type: "widget.unread", count}
 *   from the page {source: "helpdesk-loader", type: "widget.opened" | "widget.closed"}
 *                 {source: "helpdesk-loader", type: "widget.identify", identity: {id, name,
 *                  email, hash, jwt}}   (signed by the site's backend: see visitor.identify)
 *                 {source: "helpdesk-loader", type: "widget.logout"}
 */
(function () {
  "use strict";

  const PING_EVERY_MS = 25000;
  const SILENCE_LIMIT_MS = 2 * PING_EVERY_MS + 10000; // no frame at all for this long: dead socket
  const TYPING_EVERY_MS = 3000;
  const TYPING_SHOWN_MS = 4000;
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const RETRY_AFTER_SERVER_ERROR_MS = 3000;
  const CONNECTING_BANNER_DELAY_MS = 800;
  const NOTICE_SHOWN_MS = 6000;
  const GAP_WAIT_MS = 1000; // a hole in the seqs may last this long before we sync (protocol §5.2)
  const CLOSE_BAD_TOKEN = 4401;
  const CLOSE_FORBIDDEN = 4403;
  const DEFAULT_COLOR = "#2563eb";

  const config = readConfig();
  const text = document.getElementById("widget-strings").dataset;
  const embedded = config.parentOrigin !== "" && window.parent !== window;
  const keys = {
    token: `helpdesk:token:${config.siteKey}`,
    seen: `helpdesk:seen:${config.siteKey}`,
    rated: `helpdesk:rated:${config.siteKey}`,
  };
  const els = {
    status: document.getElementById("status"),
    close: document.getElementById("close"),
    banner: document.getElementById("banner"),
    messages: document.getElementById("messages"),
    typing: document.getElementById("typing"),
    notice: document.getElementById("notice"),
    handoff: document.getElementById("handoff"),
    endChat: document.getElementById("end-chat"),
    csat: document.getElementById("csat"),
    csatQuestion: document.getElementById("csat-question"),
    csatScale: document.getElementById("csat-scale"),
    csatComment: document.getElementById("csat-comment"),
    csatSend: document.getElementById("csat-send"),
    csatDone: document.getElementById("csat-done"),
    offline: document.getElementById("offline"),
    offlineEmail: document.getElementById("offline-email"),
    consent: document.getElementById("consent"),
    consentBox: document.getElementById("consent-box"),
    composer: document.getElementById("composer"),
    body: document.getElementById("body"),
    send: document.getElementById("send"),
    notifyMe: document.getElementById("notify-me"),
    transcript: document.getElementById("transcript"),
    attach: document.getElementById("attach"),
    file: document.getElementById("file"),
  };

  const state = {
    socket: null,
    connected: false, // session.ready received on the current socket
    stopped: false, // the server said 4403: never retry
    fatalMessage: "", // the server's reason, sent just before 4403
    attempts: 0,
    lastFrameAt: 0,
    visitorId: null,
    token: null,
    conversationId: null,
    status: null, // "bot" | "waiting" | "assigned" | "closed" | null (no conversation yet)
    lastSeq: 0, // every seq up to this one is on screen: the `after_seq` of the next sync
    rendered: new Map(), // seq → element, for the current conversation
    streams: new Map(), // stream_id → bubble of a bot answer still being written
    endedStreams: new Set(), // stream_ids replaced or ended: late deltas must not revive them
    outbox: [], // {clientId, body}: sent (or to send) but not acknowledged
    lastTypingSentAt: 0,
    open: !embedded, // a standalone widget is always open
    place: null, // the latest queue.position of the current conversation
    leftEmail: false, // the visitor left an address: no need to offer the form again
    identity: null, // what the embedding page says about its signed-in customer
    identifying: false, // visitor.identify sent, no answer yet: messages wait for it
    verified: false,
    identityError: null,
    csat: null, // {conversationId, score}: the survey on screen
    botDelayed: false, // the "taking longer than usual" notice is showing
    unread: 0,
    agentReadSeq: 0, // agents have seen every message up to this seq ("Seen")
    readSent: 0, // the highest seq we told the server the visitor has seen
    fileUrls: new Map(), // attachment URL → blob: URL (fetched with the token)
  };
  const timers = { reconnect: 0, ping: 0, banner: 0, typing: 0, notice: 0, handoff: 0, gap: 0 };

  // --- Configuration -----------------------------------------------------------------------

  function readConfig() {
    const data = document.getElementById("widget-config").dataset;
    return {
      siteKey: data.siteKey,
      siteName: data.siteName,
      greeting: data.greeting || "",
      color: validColor(data.color) ? data.color : DEFAULT_COLOR,
      parentOrigin: data.parentOrigin || "",
      maxChars: parseInt(data.maxChars, 10) || 4000,
      protocolVersion: parseInt(data.protocolVersion, 10) || 1,
      wsPath: data.wsPath || "/ws/widget/v1/",
      consent: data.consent === "1",
      // A signed link (e-mail, notification) names a conversation and its visitor's token.
      resumeToken: data.resumeToken || "",
      resumeConversation: parseInt(data.resumeConversation, 10) || null,
      vapidKey: data.vapidKey || "",
      pushUrl: data.pushUrl || "",
      pageUrl: new URLSearchParams(location.search).get("page") || "",
      uploadUrl: data.uploadUrl || "",
      uploadMaxBytes: parseInt(data.uploadMaxBytes, 10) || 0,
      uploadTypes: data.uploadTypes || "",
    };
  }

  function validColor(color) {
    return typeof color === "string" && /^#([0-9a-f]{3}){1,2}$/i.test(color);
  }

  // WCAG relative luminance: on a light brand colour, dark text reads better than white.
  function isLight(hex) {
    const h = hex.length === 4 ? hex.replace(/[0-9a-f]/gi, "$&$&").slice(1) : hex.slice(1);
    const [r, g, b] = [0, 2, 4].map((i) => {
      const c = parseInt(h.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.179;
  }

  function applyColor() {
    const root = document.documentElement.style;
    root.setProperty("--accent", config.color);
    root.setProperty("--on-accent", isLight(config.color) ? "#111827" : "#ffffff");
  }

  function fill(template, name) {
    return template.replace("{name}", name);
  }

  // --- Storage (may be unavailable in a third-party iframe: then we just forget) ------------

  function load(key) {
    try {
      return window.localStorage.getItem(key);
    } catch (error) {
      return null;
    }
  }

  function save(key, value) {
    try {
      if (value === null) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, value);
    } catch (error) {
      /* storage disabled: the session lasts as long as the page */
    }
  }

  function loadJson(key, fallback) {
    try {
      return JSON.parse(load(key)) || fallback;
    } catch (error) {
      return fallback;
    }
  }

  // --- Connection --------------------------------------------------------------------------

  function socketUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const token = load(keys.token);
    let url = `${scheme}//${location.host}${config.wsPath}?site=${encodeURIComponent(config.siteKey)}`;
    if (token) url += `&token=${encodeURIComponent(token)}`;
    return url;
  }

  function connect() {
    if (state.socket || state.stopped) return;
    clearTimeout(timers.reconnect);
    if (state.attempts === 0) showBannerLater(text.connecting);
    const socket = new WebSocket(socketUrl());
    state.socket = socket;
    socket.addEventListener("message", (event) => {
      if (state.socket === socket) receive(event.data);
    });
    socket.addEventListener("close", (event) => {
      if (state.socket === socket) socketClosed(event.code);
    });
  }

  function socketClosed(code) {
    state.socket = null;
    state.connected = false;
    dropStreams(); // their end is lost with the socket; the stored answer comes with the sync
    clearInterval(timers.ping);
    exposeState();
    if (code === CLOSE_FORBIDDEN) return stop();
    if (code === CLOSE_BAD_TOKEN && load(keys.token)) {
      save(keys.token, null); // expired or from another deployment: start afresh
      return connect();
    }
    scheduleReconnect();
  }

  function scheduleReconnect() {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** state.attempts);
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2; // jitter: no thundering herd
    state.attempts += 1;
    showBanner(text.reconnecting);
    timers.reconnect = setTimeout(connect, delay);
  }

  function reconnectNow() {
    if (state.socket || state.stopped || state.attempts === 0) return; // not in a backoff
    clearTimeout(timers.reconnect);
    connect();
  }

  // Without a close frame (laptop asleep, network gone) a socket can look open for minutes.
  function dropIfSilent() {
    if (!state.socket || Date.now() - state.lastFrameAt < SILENCE_LIMIT_MS) return;
    const socket = state.socket;
    socketClosed(1006);
    socket.close();
  }

  function startPing() {
    clearInterval(timers.ping);
    timers.ping = setInterval(() => {
      dropIfSilent();
      send({ type: "ping" });
    }, PING_EVERY_MS);
  }

  function stop(message) {
    state.stopped = true;
    clearTimeout(timers.reconnect);
    showBanner(message || state.fatalMessage || text.forbidden, true);
    els.body.disabled = true;
    els.send.disabled = true;
    els.handoff.disabled = true;
  }

  function send(frame) {
    if (!state.connected) return false;
    state.socket.send(JSON.stringify(frame));
    return true;
  }

  function receive(raw) {
    state.lastFrameAt = Date.now();
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch (error) {
      return;
    }
    const handler = frame && Object.prototype.hasOwnProperty.call(frameHandlers, frame.type)
      ? frameHandlers[frame.type]
      : null;
    if (handler) handler(frame);
  }

  // --- Server frames -----------------------------------------------------------------------

  const frameHandlers = {
    "session.ready": onSessionReady,
    "message.created": onMessageCreated,
    "message.ack": onMessageAck,
    "sync.done": onSyncDone,
    "conversation.updated": onConversationUpdated,
    "typing.started": onTypingStarted,
    "feedback.recorded": onFeedbackRecorded,
    "message.streaming": onMessageStreaming,
    "message.delta": onMessageDelta,
    "message.stream_ended": onMessageStreamEnded,
    "queue.position": onQueuePosition,
    "visitor.updated": onVisitorUpdated,
    "visitor.identified": onVisitorIdentified,
    "transcript.queued": onTranscriptQueued,
    "attachment.updated": onAttachmentUpdated,
    "receipt.updated": onReceiptUpdated,
    "csat.requested": onCsatRequested,
    "csat.recorded": onCsatRecorded,
    "bot.delayed": onBotDelayed,
    error: onError,
    pong: () => {},
  };

  function onSessionReady(frame) {
    state.connected = true;
    state.attempts = 0;
    hideBanner();
    startPing();
    exposeState();
    if (frame.protocol_version !== config.protocolVersion) {
      console.warn(`Helpdesk widget: server speaks protocol ${frame.protocol_version}`);
    }
    adoptVisitor(frame.visitor || {}, frame.conversation);
    if (state.identity) identify();
    else state.outbox.forEach(transmit);
  }

  function adoptVisitor(visitor, conversation) {
    if (state.visitorId && state.visitorId !== visitor.id) forgetConversation();
    state.visitorId = visitor.id || null;
    if (visitor.token) save(keys.token, visitor.token);
    state.token = visitor.token || null; // for uploads when storage is unavailable
    if (config.resumeConversation) {
      // Opened from a link: show that conversation, whichever is the latest.
      switchConversation(config.resumeConversation);
      config.resumeConversation = null;
      syncConversation();
      exposeState();
      return;
    }
    if (conversation && conversation.conversation_id !== state.conversationId) {
      switchConversation(conversation.conversation_id);
    }
    if (conversation) {
      applyConversation(conversation);
      syncConversation();
    } else {
      showGreeting();
    }
    exposeState();
  }

  // --- Identity: the embedding page's signed-in customer -----------------------------------

  function setIdentity(identity) {
    const clean = cleanIdentity(identity);
    if (!clean) return;
    state.identity = clean;
    state.identityError = null;
    if (state.connected) identify();
    else connect(); // a customer known on another device may have replies waiting
  }

  function cleanIdentity(identity) {
    if (!identity || typeof identity !== "object") return null;
    const pick = (key, max) => (typeof identity[key] === "string" ? identity[key].trim().slice(0, max) : "");
    const frame = { type: "visitor.identify", name: pick("name", 120), email: pick("email", 254) };
    const id = pick("id", 200);
    const hash = pick("hash", 128);
    const jwt = pick("jwt", 4096);
    if (id) frame.external_id = id;
    if (hash) frame.hash = hash;
    if (jwt) frame.jwt = jwt;
    return id || jwt ? frame : null;
  }

  function identify() {
    if (send(state.identity)) state.identifying = true;
  }

  function identifyDone() {
    state.identifying = false;
    exposeState();
    state.outbox.forEach(transmit);
  }

  function onVisitorIdentified(frame) {
    state.verified = frame.verified;
    adoptVisitor(frame.visitor, frame.conversation);
    identifyDone();
  }

  // The page's customer signed out: this browser forgets their token and history.
  function logout() {
    state.identity = null;
    state.verified = false;
    state.token = null;
    save(keys.token, null);
    save(keys.seen, null);
    const socket = state.socket;
    state.socket = null;
    state.connected = false;
    if (socket) socket.close();
    state.visitorId = null;
    forgetConversation();
    showGreeting();
    exposeState();
    if (state.open) connect();
  }

  function onMessageCreated(frame) {
    if (!followConversation(frame.conversation_id)) return;
    if (frame.stream_id) dropStream(frame.stream_id); // the stored answer replaces the streamed one
    if (state.rendered.has(frame.seq)) return;
    const pending = frame.client_id ? pendingBubble(frame.client_id) : null;
    if (pending) {
      dropFromOutbox(frame.client_id);
      confirmBubble(pending, frame.seq);
    } else {
      placeMessage(buildMessage(frame), frame.seq, frame.author === "visitor");
    }
    if (frame.author === "agent") hideTyping();
    if (frame.author !== "visitor") clearBotDelayed();
    if (frame.author === "bot" || frame.author === "agent") countUnread(frame.seq);
    if (frame.author === "visitor") showSeen();
    markSeen();
  }

  // A bot answer being written: a bubble that shows the bot typing, then the text as it comes.
  function onMessageStreaming(frame) {
    if (!followConversation(frame.conversation_id)) return;
    clearBotDelayed();
    streamBubble(frame.stream_id);
  }

  function onMessageDelta(frame) {
    if (!followConversation(frame.conversation_id)) return;
    const bubble = streamBubble(frame.stream_id);
    if (!bubble) return;
    const stick = nearEnd();
    bubble.querySelector(".msg__body").textContent += frame.text;
    bubble.classList.add("msg--writing");
    if (stick) scrollToEnd(true);
  }

  function onMessageStreamEnded(frame) {
    dropStream(frame.stream_id);
  }

  function streamBubble(streamId) {
    if (state.endedStreams.has(streamId)) return null;
    let bubble = state.streams.get(streamId);
    if (bubble) return bubble;
    bubble = element("div", "msg msg--bot msg--streaming");
    bubble.dataset.author = "bot";
    bubble.appendChild(element("div", "msg__author", text.assistant));
    bubble.appendChild(element("div", "msg__body"));
    const dots = element("div", "msg__typing");
    dots.setAttribute("role", "img");
    dots.setAttribute("aria-label", fill(text.typing, text.assistant));
    [0, 1, 2].forEach(() => dots.appendChild(element("span")));
    bubble.appendChild(dots);
    state.streams.set(streamId, bubble);
    const stick = nearEnd();
    const firstPending = els.messages.querySelector(".msg--pending");
    els.messages.insertBefore(bubble, firstPending);
    if (stick) scrollToEnd(true);
    return bubble;
  }

  // Also after a reconnect: the rest of a stream would show a sentence without its start,
  // so the visitor waits for the stored answer instead.
  function dropStream(streamId) {
    const bubble = state.streams.get(streamId);
    if (bubble) bubble.remove();
    state.streams.delete(streamId);
    state.endedStreams.add(streamId);
  }

  function dropStreams() {
    Array.from(state.streams.keys()).forEach(dropStream);
  }

  function onMessageAck(frame) {
    dropFromOutbox(frame.client_id);
    if (state.conversationId !== null && frame.conversation_id !== state.conversationId) {
      switchConversation(frame.conversation_id); // the server started a new one: show that
      syncConversation();
    }
    if (!followConversation(frame.conversation_id)) return;
    const bubble = pendingBubble(frame.client_id);
    if (!bubble) return;
    if (state.rendered.has(frame.seq)) bubble.remove(); // message.created came first
    else confirmBubble(bubble, frame.seq);
  }

  function onSyncDone(frame) {
    if (frame.conversation_id !== state.conversationId) return;
    if (state.rendered.size === 0) showGreeting();
    scrollToEnd(true);
    markSeen();
  }

  function onConversationUpdated(frame) {
    if (followConversation(frame.conversation_id)) applyConversation(frame);
    if (state.status !== "bot") clearBotDelayed();
  }

  // No answer from the bot for a while (its worker may be down): say so, and offer a person.
  function onBotDelayed(frame) {
    if (frame.conversation_id !== state.conversationId || state.status !== "bot") return;
    if (state.lastSeq > frame.seq) return; // something came after all
    state.botDelayed = true;
    showNotice(text.botSlow, true);
    els.handoff.hidden = false;
    els.handoff.disabled = state.stopped;
  }

  function clearBotDelayed() {
    if (!state.botDelayed) return;
    state.botDelayed = false;
    els.notice.hidden = true;
  }

  // Our place in line and the wait; with nobody online, the offer to leave an address.
  function onQueuePosition(frame) {
    if (frame.conversation_id !== state.conversationId) return;
    state.place = frame;
    if (state.status === "waiting") applyConversation({ conversation_id: frame.conversation_id, status: "waiting" });
  }

  function onVisitorUpdated() {
    state.leftEmail = true;
    els.offline.hidden = true;
  }

  function submitOffline(event) {
    event.preventDefault();
    const email = els.offlineEmail.value.trim();
    if (!email || !els.offlineEmail.checkValidity()) {
      els.offlineEmail.focus();
      return;
    }
    send({ type: "visitor.update", email, name: "" });
  }

  function queueLine(place) {
    if (!place.agents_online) return text.nobodyOnline;
    let line = text.queuePosition.replace("{n}", String(place.position));
    if (place.estimated_wait_seconds !== null) {
      const minutes = Math.max(1, Math.round(place.estimated_wait_seconds / 60));
      line += ` · ${text.queueWait.replace("{minutes}", String(minutes))}`;
    }
    return line;
  }

  function onTypingStarted(frame) {
    if (frame.author !== "agent" || frame.conversation_id !== state.conversationId) return;
    els.typing.textContent = fill(text.typing, frame.name);
    els.typing.hidden = false;
    clearTimeout(timers.typing);
    timers.typing = setTimeout(hideTyping, TYPING_SHOWN_MS);
  }

  function onFeedbackRecorded(frame) {
    if (frame.conversation_id !== state.conversationId) return;
    rememberRated(frame.seq);
    const bubble = state.rendered.get(frame.seq);
    const prompt = bubble && bubble.querySelector(".msg__feedback");
    if (prompt) prompt.replaceWith(element("div", "msg__feedback msg__feedback--done", text.thanks));
  }

  function onError(frame) {
    if (frame.code === "bad_token") return; // close code 4401 follows; we recover silently
    if (frame.code === "forbidden") {
      state.fatalMessage = frame.message; // close code 4403 follows
      return;
    }
    if (frame.ref === "visitor.identify") {
      state.identityError = frame.code; // refused: the visitor stays anonymous
      showNotice(frame.message);
      identifyDone();
      return;
    }
    if (frame.code === "not_found" && state.conversationId !== null) {
      forgetConversation(); // not (or no longer) ours: start over rather than loop
      showGreeting();
      state.outbox.forEach(transmit); // now without a conversation_id
      return;
    }
    const entry = frame.ref ? state.outbox.find((e) => e.clientId === frame.ref) : null;
    if (entry && (frame.code === "server_error" || frame.code === "unavailable")) {
      // Nothing was stored: the same client_id again, later, is safe (the server de-duplicates).
      setBubbleNote(pendingBubble(entry.clientId), text.retrying);
      const wait = frame.retry_after ? frame.retry_after * 1000 : RETRY_AFTER_SERVER_ERROR_MS;
      setTimeout(() => transmit(entry), wait);
      return;
    } else if (entry) {
      dropFromOutbox(entry.clientId);
      failBubble(pendingBubble(entry.clientId));
    }
    enableFeedbackButtons();
    if (state.csat) els.csatSend.disabled = state.csat.score === null;
    els.endChat.disabled = false;
    showNotice(frame.message);
  }

  // --- Conversation state ------------------------------------------------------------------

  // True when the frame belongs to the conversation on screen (adopting the first one we hear of).
  function followConversation(conversationId) {
    if (state.conversationId === null) {
      switchConversation(conversationId);
      syncConversation(); // learn its status; history we already have is deduplicated
    }
    return conversationId === state.conversationId;
  }

  function switchConversation(conversationId) {
    if (state.conversationId !== null) clearHistory();
    hideCsat();
    state.conversationId = conversationId;
    state.lastSeq = 0;
    state.agentReadSeq = 0;
    state.readSent = 0;
    exposeState();
  }

  function forgetConversation() {
    clearHistory();
    state.conversationId = null;
    state.lastSeq = 0;
    applyConversation(null);
  }

  function syncConversation() {
    send({ type: "conversation.sync", conversation_id: state.conversationId, after_seq: state.lastSeq });
  }

  function applyConversation(conversation) {
    state.status = conversation ? conversation.status : null;
    if (conversation && typeof conversation.agent_read_seq === "number") {
      state.agentReadSeq = Math.max(state.agentReadSeq, conversation.agent_read_seq);
      showSeen();
    }
    document.body.dataset.status = state.status || "new";
    if (state.place && (!conversation || state.place.conversation_id !== conversation.conversation_id)) {
      state.place = null;
    }
    els.status.textContent = statusLine(conversation);
    els.offline.hidden = state.status !== "waiting" || !state.place || state.place.agents_online || state.leftEmail;
    els.handoff.hidden = state.status === "waiting" || state.status === "assigned";
    els.handoff.disabled = state.stopped;
    if (els.consent) els.consent.hidden = state.conversationId !== null;
    els.endChat.hidden = !state.status || state.status === "closed";
    els.endChat.disabled = state.stopped;
    if (state.status && state.status !== "closed") hideCsat(); // reopened: the survey is moot
    els.transcript.hidden = state.conversationId === null;
    clearTimeout(timers.handoff);
    if (!botLeads()) removeFeedbackPrompts();
  }

  // A brand-new conversation's first answer can arrive before its status does.
  function botLeads() {
    return state.status === null || state.status === "bot";
  }

  function statusLine(conversation) {
    if (!conversation || conversation.status === "bot") return text.assistant;
    if (conversation.status === "waiting") return state.place ? queueLine(state.place) : text.waiting;
    if (conversation.status === "assigned") return fill(text.assigned, conversation.assignee_name || "");
    return text.closed;
  }

  // --- Messages on screen ------------------------------------------------------------------

  function element(tag, className, content) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (content !== undefined) el.textContent = content; // never innerHTML: bodies are untrusted
    return el;
  }

  function buildMessage(message) {
    const bubble = element("div", `msg msg--${message.author}`);
    bubble.dataset.author = message.author;
    if (message.author === "bot" || message.author === "agent") {
      bubble.appendChild(element("div", "msg__author", message.author_name || text.assistant));
    }
    if (message.attachment) {
      bubble.appendChild(buildAttachment(message.attachment));
    } else {
      const body = element("div", "msg__body");
      window.HelpdeskText.setLinkedText(body, message.body);
      bubble.appendChild(body);
    }
    if (message.source && message.source.title) {
      bubble.appendChild(element("div", "msg__source", `${text.source} ${message.source.title}`));
    }
    if (message.citations && message.citations.length) {
      bubble.appendChild(buildCitations(message.citations));
    }
    if (message.ask_feedback && botLeads() && !isRated(message.seq)) {
      bubble.appendChild(buildFeedbackPrompt(message.seq));
    }
    if (message.clarify && message.clarify.length && botLeads()) {
      bubble.appendChild(buildClarifyButtons(message.clarify));
    }
    if (message.created_at) bubble.title = new Date(message.created_at).toLocaleString();
    return bubble;
  }

  // "Sources:" and each cited entry's title, opening onto the entry's text.
  function buildCitations(citations) {
    const sources = element("div", "msg__source msg__sources");
    sources.appendChild(element("div", "msg__sources-label", text.sources || text.source));
    citations.forEach((citation) => {
      const details = element("details", "msg__citation");
      details.appendChild(element("summary", "", citation.title));
      details.appendChild(element("div", "msg__citation-text", citation.answer));
      sources.appendChild(details);
    });
    return sources;
  }

  function buildFeedbackPrompt(seq) {
    const prompt = element("div", "msg__feedback");
    prompt.appendChild(element("span", "msg__feedback-question", text.helpful));
    [
      ["👍", text.yes, true],
      ["👎", text.no, false],
    ].forEach(([symbol, label, helpful]) => {
      const button = element("button", "msg__feedback-button", symbol);
      button.type = "button";
      button.setAttribute("aria-label", label);
      button.title = label;
      button.dataset.helpful = String(helpful);
      button.addEventListener("click", () => sendFeedback(prompt, seq, helpful));
      prompt.appendChild(button);
    });
    return prompt;
  }

  // "Did you mean …?": one button per entry; a click asks the bot that entry's title.
  function buildClarifyButtons(options) {
    const replies = element("div", "msg__clarify");
    options.forEach((option) => {
      const button = element("button", "msg__clarify-button", option.title);
      button.type = "button";
      button.addEventListener("click", () => {
        if (sendMessage(option.title)) replies.remove();
      });
      replies.appendChild(button);
    });
    return replies;
  }

  function showGreeting() {
    if (!config.greeting || els.messages.querySelector(".msg--greeting")) return;
    const bubble = element("div", "msg msg--greeting");
    bubble.appendChild(element("div", "msg__author", text.assistant));
    bubble.appendChild(element("div", "msg__body", config.greeting));
    els.messages.prepend(bubble);
  }

  // Messages sit in seq order; bubbles still waiting for their seq stay at the bottom.
  function placeMessage(bubble, seq, force) {
    bubble.dataset.seq = String(seq);
    state.rendered.set(seq, bubble);
    while (state.rendered.has(state.lastSeq + 1)) state.lastSeq += 1;
    if (hasGap()) watchGap();
    const stick = force || nearEnd();
    const next = Array.from(els.messages.children).find(
      (child) => child !== bubble && (child.classList.contains("msg--pending") || Number(child.dataset.seq) > seq)
    );
    els.messages.insertBefore(bubble, next || null);
    if (stick) scrollToEnd(true);
  }

  // Seqs have no gaps, so a hole below what we hold is a message whose broadcast was lost
  // (its server stopped right after storing it) or is still on its way: give it a second,
  // then sync from the last seq before the hole.
  function hasGap() {
    return state.rendered.size > state.lastSeq;
  }

  function watchGap() {
    if (timers.gap) return;
    timers.gap = setTimeout(() => {
      timers.gap = 0;
      if (hasGap() && state.connected) syncConversation();
    }, GAP_WAIT_MS);
  }

  function confirmBubble(bubble, seq) {
    bubble.classList.remove("msg--pending");
    setBubbleNote(bubble, null);
    placeMessage(bubble, seq, false);
  }

  function failBubble(bubble) {
    if (!bubble) return;
    bubble.classList.remove("msg--pending");
    bubble.classList.add("msg--failed");
    setBubbleNote(bubble, text.failed);
  }

  function setBubbleNote(bubble, note) {
    if (!bubble) return;
    const old = bubble.querySelector(".msg__note");
    if (old) old.remove();
    if (note) bubble.appendChild(element("div", "msg__note", note));
  }

  function pendingBubble(clientId) {
    return Array.from(els.messages.querySelectorAll(".msg--pending")).find(
      (bubble) => bubble.dataset.clientId === clientId
    );
  }

  function clearHistory() {
    state.rendered.forEach((bubble) => bubble.remove());
    state.rendered.clear();
    dropStreams();
    els.messages.querySelectorAll(".msg--failed").forEach((bubble) => bubble.remove());
    hideTyping();
  }

  function nearEnd() {
    const list = els.messages;
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  function scrollToEnd(force) {
    if (force || nearEnd()) els.messages.scrollTop = els.messages.scrollHeight;
  }

  function hideTyping() {
    clearTimeout(timers.typing);
    els.typing.hidden = true;
  }

  // --- Sending -----------------------------------------------------------------------------

  function newClientId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    return `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
  }

  function sendMessage(rawBody) {
    const body = rawBody.trim().slice(0, config.maxChars);
    if (!body || state.stopped) return false;
    if (needsConsent()) {
      showNotice(text.consentNeeded);
      els.consentBox.focus();
      return false;
    }
    const entry = { clientId: newClientId(), body };
    state.outbox.push(entry);
    const bubble = buildMessage({ author: "visitor", body });
    bubble.classList.add("msg--pending");
    bubble.dataset.clientId = entry.clientId;
    els.messages.appendChild(bubble);
    scrollToEnd(true);
    connect(); // the first message opens the socket if opening the panel did not
    transmit(entry);
    return true;
  }

  // Also used to resend after a reconnect: the server stores each client_id once.
  function transmit(entry) {
    if (!state.outbox.includes(entry) || state.identifying) return;
    const frame = { type: "message.create", client_id: entry.clientId, body: entry.body };
    if (state.conversationId !== null) frame.conversation_id = state.conversationId;
    else if (/^https?:\/\//.test(config.pageUrl)) frame.page_url = config.pageUrl.slice(0, 500);
    if (els.consentBox && els.consentBox.checked) frame.consent = true;
    send(frame);
  }

  // The site's consent text must be ticked before a conversation starts.
  function needsConsent() {
    return config.consent && state.conversationId === null && !(els.consentBox && els.consentBox.checked);
  }

  function dropFromOutbox(clientId) {
    state.outbox = state.outbox.filter((entry) => entry.clientId !== clientId);
  }

  function submitComposer(event) {
    if (event) event.preventDefault();
    if (sendMessage(els.body.value)) {
      els.body.value = "";
      growComposer();
    }
    els.body.focus();
  }

  function onComposerKey(event) {
    // Enter sends, Shift+Enter breaks the line; never while an IME is composing (Chinese input).
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
    submitComposer(event);
  }

  function onComposerInput() {
    growComposer();
    const now = Date.now();
    if (state.conversationId === null || state.status === "closed") return;
    if (now - state.lastTypingSentAt < TYPING_EVERY_MS || !els.body.value.trim()) return;
    if (send({ type: "typing.start", conversation_id: state.conversationId })) state.lastTypingSentAt = now;
  }

  function growComposer() {
    els.body.style.height = "auto";
    els.body.style.height = `${Math.min(els.body.scrollHeight, 120)}px`;
  }

  function requestHandoff() {
    if (state.connected && state.conversationId !== null && state.status === "bot") {
      send({ type: "handoff.request", conversation_id: state.conversationId });
      els.handoff.disabled = true; // until conversation.updated (or a while, if it never comes)
      timers.handoff = setTimeout(() => (els.handoff.disabled = state.stopped), 5000);
    } else {
      sendMessage(text.handoffMessage); // no conversation yet (or closed): the bot hands over
    }
  }

  // --- Feedback ----------------------------------------------------------------------------

  function sendFeedback(prompt, seq, helpful) {
    const frame = { type: "feedback.create", conversation_id: state.conversationId, seq, helpful };
    if (!send(frame)) return;
    prompt.querySelectorAll("button").forEach((button) => (button.disabled = true));
  }

  function enableFeedbackButtons() {
    els.messages.querySelectorAll(".msg__feedback button:disabled").forEach((b) => (b.disabled = false));
  }

  function removeFeedbackPrompts() {
    els.messages.querySelectorAll(".msg__feedback:not(.msg__feedback--done)").forEach((p) => p.remove());
  }

  function isRated(seq) {
    return loadJson(keys.rated, []).includes(`${state.conversationId}:${seq}`);
  }

  function rememberRated(seq) {
    const rated = loadJson(keys.rated, []).filter((k) => k !== `${state.conversationId}:${seq}`);
    rated.push(`${state.conversationId}:${seq}`);
    save(keys.rated, JSON.stringify(rated.slice(-50)));
  }

  // --- Rating at close (CSAT) -------------------------------------------------------------

  const FACES = ["😞", "🙁", "😐", "🙂", "😄"];

  function onCsatRequested(frame) {
    if (frame.conversation_id !== state.conversationId) return;
    if (state.csat && state.csat.conversationId === frame.conversation_id) return; // on screen
    state.csat = { conversationId: frame.conversation_id, score: null };
    els.csatQuestion.textContent = frame.question;
    els.csatScale.replaceChildren();
    els.csatScale.dataset.scale = frame.scale;
    for (let score = 1; score <= 5; score += 1) {
      const symbol = frame.scale === "emoji" ? FACES[score - 1] : "★";
      const button = element("button", "csat__choice", symbol);
      button.type = "button";
      button.dataset.score = String(score);
      button.setAttribute("aria-pressed", "false");
      button.setAttribute("aria-label", text.csatScore.replace("{n}", String(score)));
      button.addEventListener("click", () => chooseScore(score));
      els.csatScale.appendChild(button);
    }
    els.csatComment.value = "";
    els.csatSend.disabled = true;
    els.csatDone.hidden = true;
    els.csat.hidden = false;
    scrollToEnd(true);
  }

  function chooseScore(score) {
    if (!state.csat) return;
    state.csat.score = score;
    const stars = els.csatScale.dataset.scale !== "emoji";
    els.csatScale.querySelectorAll(".csat__choice").forEach((button) => {
      const value = Number(button.dataset.score);
      button.setAttribute("aria-pressed", String(value === score));
      button.classList.toggle("csat__choice--on", stars ? value <= score : value === score);
    });
    els.csatSend.disabled = false;
  }

  function submitCsat(event) {
    event.preventDefault();
    if (!state.csat || state.csat.score === null) return;
    const frame = {
      type: "csat.create",
      conversation_id: state.csat.conversationId,
      score: state.csat.score,
      comment: els.csatComment.value.trim().slice(0, 1000),
    };
    if (send(frame)) els.csatSend.disabled = true;
  }

  function onCsatRecorded(frame) {
    if (!state.csat || frame.conversation_id !== state.csat.conversationId) return;
    hideCsat();
    els.csatDone.textContent = text.csatThanks;
    els.csatDone.hidden = false;
  }

  function hideCsat() {
    state.csat = null;
    els.csat.hidden = true;
    els.csatDone.hidden = true;
  }

  function endChat() {
    if (state.conversationId === null || !state.status || state.status === "closed") return;
    if (send({ type: "conversation.close", conversation_id: state.conversationId })) {
      els.endChat.disabled = true;
    }
  }

  // --- Banner and notices ------------------------------------------------------------------

  function showBanner(message, isError) {
    clearTimeout(timers.banner);
    els.banner.textContent = message;
    els.banner.classList.toggle("widget__banner--error", Boolean(isError));
    els.banner.hidden = false;
  }

  function showBannerLater(message) {
    clearTimeout(timers.banner);
    timers.banner = setTimeout(() => showBanner(message), CONNECTING_BANNER_DELAY_MS);
  }

  function hideBanner() {
    clearTimeout(timers.banner);
    if (!state.stopped) els.banner.hidden = true;
  }

  function showNotice(message, sticky) {
    els.notice.textContent = message;
    els.notice.hidden = false;
    clearTimeout(timers.notice);
    if (!sticky) timers.notice = setTimeout(() => (els.notice.hidden = true), NOTICE_SHOWN_MS);
  }

  // --- The embedding page ------------------------------------------------------------------

  function postToParent(message) {
    if (!embedded) return;
    window.parent.postMessage({ source: "helpdesk-widget", ...message }, config.parentOrigin);
  }

  const parentHandlers = {
    "widget.opened": () => setOpen(true),
    "widget.closed": () => setOpen(false),
    "widget.identify": (data) => setIdentity(data.identity),
    "widget.logout": logout,
  };

  function onParentMessage(event) {
    if (!embedded || event.origin !== config.parentOrigin || event.source !== window.parent) return;
    const data = event.data;
    if (!data || data.source !== "helpdesk-loader") return;
    if (Object.prototype.hasOwnProperty.call(parentHandlers, data.type)) parentHandlers[data.type](data);
  }

  function setOpen(open) {
    const opening = open && !state.open;
    state.open = open;
    if (!opening) return;
    connect(); // a first-time visitor gets a socket (and a visitor record) only once they look
    state.unread = 0;
    postToParent({ type: "widget.unread", count: 0 });
    markSeen();
    requestAnimationFrame(() => {
      scrollToEnd(true);
      if (!els.body.disabled) els.body.focus({ preventScroll: true });
    });
  }

  // Bot and agent messages the visitor has not seen yet light up the launcher's badge.
  function seenSeq() {
    const seen = loadJson(keys.seen, {});
    return seen.c === state.conversationId ? seen.s || 0 : 0;
  }

  function countUnread(seq) {
    if (state.open || seq <= seenSeq()) return;
    state.unread += 1;
    postToParent({ type: "widget.unread", count: state.unread });
  }

  function markSeen() {
    sendRead();
    if (!state.open || state.conversationId === null || state.lastSeq <= seenSeq()) return;
    save(keys.seen, JSON.stringify({ c: state.conversationId, s: state.lastSeq }));
  }

  // --- Notifications: push opt-in and the transcript ----------------------------------------

  function pushSupported() {
    return Boolean(
      config.vapidKey && "serviceWorker" in navigator && "PushManager" in window && "Notification" in window
    );
  }

  function keyBytes(base64url) {
    const padded = (base64url + "===".slice((base64url.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  }

  async function subscribePush() {
    const permission = await Notification.requestPermission();
    if (permission !== "granted") throw new Error(text.notifyBlocked);
    const registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    await navigator.serviceWorker.ready;
    const subscription =
      (await registration.pushManager.getSubscription()) ||
      (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(config.vapidKey) }));
    const response = await fetch(config.pushUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: load(keys.token), subscription }),
    });
    if (!response.ok) throw new Error(text.notifyFailed);
  }

  function requestPush() {
    els.notifyMe.disabled = true;
    subscribePush()
      .then(() => {
        els.notifyMe.hidden = true;
        showNotice(text.notifyOn);
      })
      .catch((error) => {
        els.notifyMe.disabled = false;
        showNotice(error.message || text.notifyFailed);
      });
  }

  function requestTranscript() {
    if (state.conversationId === null) return;
    if (!send({ type: "transcript.request", conversation_id: state.conversationId })) {
      showNotice(text.reconnecting);
    }
  }

  function onTranscriptQueued(frame) {
    showNotice(text.transcriptSent.replace("{email}", frame.email));
  }

  function closePanel() {
    postToParent({ type: "widget.close" });
  }

  // --- Read receipts -----------------------------------------------------------------------

  // Tell agents how far the visitor has read: only what is on screen in a visible panel.
  function sendRead() {
    if (!state.open || document.visibilityState !== "visible" || state.conversationId === null) return;
    if (state.lastSeq <= state.readSent) return;
    if (send({ type: "message.read", conversation_id: state.conversationId, seq: state.lastSeq })) {
      state.readSent = state.lastSeq;
    }
  }

  function onReceiptUpdated(frame) {
    if (frame.conversation_id !== state.conversationId || frame.reader !== "agent") return;
    state.agentReadSeq = Math.max(state.agentReadSeq, frame.seq);
    showSeen();
  }

  // "Seen" under the visitor's latest message that an agent has read.
  function showSeen() {
    const old = els.messages.querySelector(".msg__seen");
    let latest = null;
    state.rendered.forEach((bubble, seq) => {
      if (bubble.dataset.author === "visitor" && seq <= state.agentReadSeq) {
        if (!latest || seq > Number(latest.dataset.seq)) latest = bubble;
      }
    });
    if (old && old.parentNode === latest) return;
    if (old) old.remove();
    if (latest) latest.appendChild(element("div", "msg__seen", text.seen));
  }

  // --- Attachments -------------------------------------------------------------------------

  function buildAttachment(attachment) {
    const box = element("div", "msg__attachment");
    box.dataset.attachmentId = attachment.id;
    fillAttachment(box, attachment);
    return box;
  }

  function fillAttachment(box, attachment) {
    box.textContent = "";
    if (attachment.thumbnail_url || (attachment.width && attachment.content_type.startsWith("image/"))) {
      const image = element("img", "msg__image");
      image.alt = attachment.name;
      if (attachment.width && attachment.height) {
        image.width = Math.min(220, attachment.width);
      }
      if (attachment.thumbnail_url) {
        fileUrl(attachment.thumbnail_url).then((url) => (image.src = url), () => (image.alt = `${attachment.name} ✕`));
      }
      image.addEventListener("click", () => openFile(attachment.url));
      box.appendChild(image);
      return;
    }
    const link = element("a", "msg__file");
    link.href = "#";
    link.download = attachment.name;
    link.title = text.download;
    link.appendChild(element("span", "msg__file-name", attachment.name));
    link.appendChild(element("span", "msg__file-size", formatSize(attachment.size)));
    link.addEventListener("click", (event) => {
      if (link.href.startsWith("blob:")) return; // fetched already: let the browser save it
      event.preventDefault();
      fileUrl(attachment.url).then((url) => {
        link.href = url;
        link.click();
      }, () => showNotice(text.uploadFailed));
    });
    box.appendChild(link);
  }

  function onAttachmentUpdated(frame) {
    if (frame.conversation_id !== state.conversationId) return;
    const bubble = state.rendered.get(frame.seq);
    const box = bubble && bubble.querySelector(".msg__attachment");
    if (box) fillAttachment(box, frame.attachment);
  }

  // Files answer only our token, which an <img src> cannot send: fetch, then a blob: URL.
  function fileUrl(url) {
    if (!state.fileUrls.has(url)) {
      const fetched = fetch(url, { headers: authHeaders(), credentials: "omit" })
        .then((response) => (response.ok ? response.blob() : Promise.reject(new Error(String(response.status)))))
        .then((blob) => URL.createObjectURL(blob));
      fetched.catch(() => state.fileUrls.delete(url));
      state.fileUrls.set(url, fetched);
    }
    return state.fileUrls.get(url);
  }

  function openFile(url) {
    fileUrl(url).then((blobUrl) => window.open(blobUrl, "_blank", "noopener"), () => showNotice(text.uploadFailed));
  }

  function authHeaders() {
    const token = load(keys.token) || state.token;
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  function formatSize(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
    return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  }

  function sendFiles(files) {
    Array.from(files || []).forEach(sendFile);
  }

  function sendFile(file) {
    if (state.stopped || !config.uploadUrl || !config.uploadMaxBytes) return;
    if (needsConsent()) {
      showNotice(text.consentNeeded);
      els.consentBox.focus();
      return;
    }
    if (file.size > config.uploadMaxBytes) {
      showNotice(text.tooLarge);
      return;
    }
    const clientId = newClientId();
    // No data-client-id: the message.created echo must not adopt this placeholder (it has
    // no attachment in it); the answer of the upload replaces it instead.
    const bubble = buildMessage({ author: "visitor", body: fill(text.uploading, file.name) });
    bubble.classList.add("msg--pending");
    els.messages.appendChild(bubble);
    scrollToEnd(true);
    const form = new FormData();
    form.append("client_id", clientId);
    if (state.conversationId !== null) form.append("conversation_id", String(state.conversationId));
    if (els.consentBox && els.consentBox.checked) form.append("consent", "true");
    form.append("file", file, file.name);
    fetch(config.uploadUrl, { method: "POST", body: form, headers: authHeaders(), credentials: "omit" })
      .then((response) => response.json().then((data) => ({ ok: response.ok, data })))
      .then(({ ok, data }) => {
        if (!ok) throw new Error(data && data.message ? data.message : text.uploadFailed);
        bubble.remove();
        onMessageCreated(data); // also adopts (and syncs) a conversation the upload started
      })
      .catch((error) => {
        failBubble(bubble);
        showNotice(error && error.message ? error.message : text.uploadFailed);
      });
  }

  function listenForFiles() {
    if (!els.attach || !els.file) return;
    if (!config.uploadMaxBytes) {
      els.attach.hidden = true;
      return;
    }
    els.file.accept = config.uploadTypes;
    els.attach.addEventListener("click", () => els.file.click());
    els.file.addEventListener("change", () => {
      sendFiles(els.file.files);
      els.file.value = "";
    });
    els.body.addEventListener("paste", (event) => {
      const files = event.clipboardData && event.clipboardData.files;
      if (files && files.length) {
        event.preventDefault();
        sendFiles(files);
      }
    });
    const root = document.querySelector(".widget");
    const hasFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files");
    root.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      root.classList.add("widget--dragging");
    });
    root.addEventListener("dragleave", (event) => {
      if (event.target === root || !root.contains(event.relatedTarget)) root.classList.remove("widget--dragging");
    });
    root.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      root.classList.remove("widget--dragging");
      sendFiles(event.dataTransfer.files);
    });
  }

  // --- Start -------------------------------------------------------------------------------

  function exposeState() {
    window.HelpdeskWidget.connected = state.connected;
    window.HelpdeskWidget.conversationId = state.conversationId;
    window.HelpdeskWidget.visitorId = state.visitorId;
    window.HelpdeskWidget.verified = state.verified;
    window.HelpdeskWidget.identityError = state.identityError;
    window.HelpdeskWidget.identifying = state.identifying;
  }

  function start() {
    window.HelpdeskWidget = { connected: false, conversationId: null, identify: setIdentity, logout };
    applyColor();
    els.close.hidden = !embedded;
    els.close.addEventListener("click", closePanel);
    els.composer.addEventListener("submit", submitComposer);
    els.body.addEventListener("keydown", onComposerKey);
    els.body.addEventListener("input", onComposerInput);
    els.handoff.addEventListener("click", requestHandoff);
    els.endChat.addEventListener("click", endChat);
    els.csat.addEventListener("submit", submitCsat);
    els.offline.addEventListener("submit", submitOffline);
    els.transcript.addEventListener("click", requestTranscript);
    els.notifyMe.hidden = !pushSupported() || (window.Notification && Notification.permission === "denied");
    els.notifyMe.addEventListener("click", requestPush);
    document.addEventListener("visibilitychange", markSeen);
    if (config.resumeToken) save(keys.token, config.resumeToken);
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && embedded) closePanel();
    });
    window.addEventListener("message", onParentMessage);
    window.addEventListener("online", reconnectNow);
    document.addEventListener("visibilitychange", markSeen);
    listenForFiles();

    applyConversation(null);
    // Someone with a stored token may have replies waiting: connect now to badge them.
    // A first-time visitor connects when they open the panel (or send).
    const returning = Boolean(load(keys.token) || config.resumeToken);
    if (!returning) showGreeting();
    if (returning || state.open) connect();
    postToParent({ type: "widget.ready", color: config.color });
  }

  start();
})();
