// The ticket page, live: the ticket's stream socket, threads, typing, optimistic send, the live panel.
//
// The page works without this file (every action is a form). With it:
// - the socket opens with a single-use token minted for the signed-in session, and after a drop
//   it reconnects with a fresh token and `after_seq` = the highest seq this page holds, so the
//   server sends exactly what was missed; a message already on the page is never added twice; and
//   with `changed_since`, so edits and deletions made while it was away (asleep for hours) come too;
// - a sent message shows at once, marked delivered when the server echoes it with its seq; one
//   not echoed is sent again when the socket reconnects (or by its Send again button), with the
//   same `idempotency_key`, so the server stores it once however often it is sent;
// - message bodies arrive as `body_html`, rendered and sanitised by the server; text typed here is
//   only ever shown as text.

const page = document.getElementById("ticket-page");
const data = JSON.parse(document.getElementById("ticket-data").textContent);
const threads = document.getElementById("threads");
const liveStatus = document.getElementById("live-status");
const typingLine = document.getElementById("typing");
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
const timeFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

const SEND_TIMEOUT_MS = 10000;
const TYPING_EVERY_MS = 1500;
const TYPING_SHOWN_MS = 4000;
const RESYNC_COVERS_MS = 15 * 60 * 1000;
const SETTLED_MS = 30000;
const RENDER_MARGIN_MS = 5000;

let lastSeq = data.last_seq;
// Server time (ms) before which this page has heard every change: sent as `changed_since`, so a
// socket back from a long sleep is told the edits and deletions of the time it was away. From the
// page's own making (a minute's margin) until a socket has been live long enough to say more.
const renderedAt = Date.parse(data.rendered_at ?? "");
let heardUntil = Number.isNaN(renderedAt) ? null : renderedAt - 60000;
let tokenTime = null; // {server, local}: the `Date` of the last token's answer, and performance.now() then
let socket = null;
let attempts = 0;
let stopped = false;
let nextRef = 1;
const pending = new Map(); // ref -> {el, body, parent, internal, frame, timer, refused}
const typists = new Map(); // user id -> timer

// --- connection ---------------------------------------------------------------------------

function showLive(state, text) {
  liveStatus.dataset.state = state;
  liveStatus.textContent = text;
}

function stop(text) {
  stopped = true;
  showLive("lost", text);
}

async function connect() {
  if (stopped) return;
  showLive("connecting", attempts ? "Reconnecting…" : "Connecting…");
  let path;
  try {
    const response = await fetch(data.token_url, {
      method: "POST", credentials: "same-origin", redirect: "manual",
      headers: { "X-CSRFToken": csrf, Accept: "application/json" },
    });
    if (response.type === "opaqueredirect" || response.status === 401) {
      stop("Signed out: sign in again to see new messages.");
      return;
    }
    if (response.status === 403 || response.status === 404) {
      stop("You can no longer see this ticket.");
      return;
    }
    if (!response.ok) throw new Error(`stream token: ${response.status}`);
    path = (await response.json()).url;
    const date = Date.parse(response.headers.get("Date") ?? "");
    tokenTime = Number.isNaN(date) ? null : { server: date, local: performance.now() };
  } catch {
    retry();
    return;
  }
  // Only the path is taken from the answer: the token goes to this page's own host and nowhere else.
  const given = new URL(path, location.href);
  const url = new URL(`${given.pathname}${given.search}`, location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("after_seq", String(lastSeq));
  url.searchParams.set("with_ticket", "1"); // the ticket as it is once the socket listens: no change missed
  if (heardUntil !== null) url.searchParams.set("changed_since", new Date(heardUntil).toISOString());
  let ws;
  try {
    ws = new WebSocket(url);
  } catch {
    retry();
    return;
  }
  socket = ws;
  const opened = tokenTime;
  let openedLocal = null;
  ws.addEventListener("open", () => {
    attempts = 0;
    openedLocal = performance.now();
    showLive("live", "Live");
    for (const item of pending.values()) if (!item.refused) resend(item); // the server stores each once
  });
  ws.addEventListener("message", (event) => {
    try {
      handle(JSON.parse(event.data));
    } catch (error) {
      console.error("bad stream event", error);
    }
  });
  ws.addEventListener("close", (event) => {
    if (socket === ws) socket = null;
    // A socket live long enough to have sent what changed while the page was away (that comes just
    // after it opens) heard everything until now, less what a resync had yet to catch (15 minutes).
    // The page's clock may stand still while the machine sleeps: that only reaches further back.
    // The Date header counts whole seconds.
    if (opened !== null && openedLocal !== null && performance.now() - openedLocal >= SETTLED_MS) {
      const heard = opened.server - 1000 + performance.now() - opened.local - RESYNC_COVERS_MS;
      heardUntil = heardUntil === null ? heard : Math.max(heardUntil, heard);
    }
    if (event.code === 1008) stop("You can no longer see this ticket.");
    else retry();
  });
}

function retry() {
  if (stopped) return;
  showLive("lost", "Reconnecting…");
  const delay = Math.min(10000, 400 * 2 ** attempts) * (0.75 + Math.random() / 2);
  attempts += 1;
  setTimeout(connect, delay);
}

function isOpen() {
  return socket !== null && socket.readyState === WebSocket.OPEN;
}

// --- events -------------------------------------------------------------------------------

function handle(event) {
  switch (event.type) {
    case "message.created":
      received(event.message, event.ref);
      break;
    case "message.updated":
      updated(event.message);
      break;
    case "message.deleted":
      if (event.ref !== undefined && pending.has(event.ref)) forget(pending.get(event.ref)); // sent again, deleted since
      removeMessage(event.message.id);
      break;
    case "ticket.updated":
      applyTicket(event.ticket);
      break;
    case "typing":
      showTyping(event.user_id);
      break;
    case "attachment.updated":
      document.getElementById(`a-${event.attachment.id}`)?.replaceWith(attachmentItem(event.attachment));
      // the composer's list of files not sent yet (uploads.js) follows their scans too
      document.dispatchEvent(new CustomEvent("tms:attachment-updated", { detail: event.attachment }));
      break;
    case "attachment.deleted":
      removeAttachment(event.attachment.id);
      document.dispatchEvent(new CustomEvent("tms:attachment-deleted", { detail: event.attachment }));
      break;
    case "changes.truncated": // a socket told only the newest edits and deletions: is this page older?
      if (mayMiss(Date.parse(event.changed_at))) document.getElementById("stale-notice").hidden = false;
      break;
    case "error":
      refused(event);
      break;
    default:
      break; // kinds this page does not show
  }
}

// Whether a change made at `changedAt` (server time) may be missing from this page. The page shows
// every change made before it was rendered (less a few seconds for one still committing then), and
// every change before `heardUntil` once a socket has vouched for that.
function mayMiss(changedAt) {
  if (Number.isNaN(changedAt)) return true;
  const shown = Number.isNaN(renderedAt) ? -Infinity : renderedAt - RENDER_MARGIN_MS;
  return changedAt >= Math.max(shown, heardUntil ?? -Infinity);
}

function received(message, ref) {
  lastSeq = Math.max(lastSeq, message.seq);
  stopTyping(message.author_id);
  const mine = ref !== undefined && pending.get(ref);
  if (document.getElementById(`m-${message.id}`)) { // already on the page: never twice
    if (mine) forget(mine); // sent again after it had arrived (a replayed answer)
    return;
  }
  const match = mine || [...pending.values()].find((p) => message.author_id === data.me.id && p.body === message.body
    && (p.parent || null) === (message.parent_id || null) && p.internal === message.internal);
  if (match) {
    delivered(match, message);
    return;
  }
  const el = messageElement(message);
  el.classList.add("msg--arrived");
  place(el, message.parent_id);
  const nearBottom = window.innerHeight + window.scrollY > document.body.scrollHeight - 300;
  if (nearBottom) el.scrollIntoView({ block: "nearest" });
}

function updated(message) {
  const el = document.getElementById(`m-${message.id}`);
  if (el) el.querySelector(".msg-body").innerHTML = message.body_html; // sanitised on the server
}

// A deleted reply goes; a deleted thread's first message leaves a line in its place while the
// thread has replies, so they stay where they were.
function removeMessage(id) {
  const el = document.getElementById(`m-${id}`);
  const item = el?.closest("li");
  if (!item) return;
  if (!item.matches("li.thread[data-root]") || !item.querySelector(":scope > ol.replies > li")) {
    item.remove();
    return;
  }
  const gone = Object.assign(document.createElement("p"), { className: "msg-deleted muted small", id: el.id,
    textContent: "This message was deleted." });
  el.replaceWith(gone);
}

function refused(event) {
  const item = event.ref !== undefined ? pending.get(event.ref) : undefined;
  if (!item) return;
  // Busy, rate limited or not stored: sending again may work. Anything else would be refused again,
  // as would a requester's message on a ticket closed meanwhile (409 too; the page offers Reopen).
  const busy = event.code === 409 && (data.staff || page.dataset.status !== "closed");
  const retryable = busy || event.code === 429 || event.code >= 500;
  item.refused = !retryable;
  clearTimeout(item.timer);
  failed(item, event.message || "The message was refused.", retryable);
}

// --- messages -----------------------------------------------------------------------------

function personName(id) {
  if (id === data.me.id) return "You";
  return data.people[id]?.name ?? "Support team";
}

function nameAuthor(el) {
  const id = el.dataset.author;
  el.querySelector(".author").textContent = personName(id);
  const role = data.people[id]?.role;
  const roleBadge = el.querySelector(".badge-role");
  if (roleBadge) {
    roleBadge.hidden = !(role === "agent" || role === "admin");
    roleBadge.textContent = role ?? "";
  }
  learn(id);
}

// Someone the page did not know (a new agent on the ticket): ask for the names once, then rename.
let learning = null;
function learn(id) {
  if (!id || data.people[id] || learning) return;
  learning = fetch(data.participants_url, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((response) => (response.ok ? response.json() : {}))
    .then((people) => {
      for (const [key, person] of Object.entries(people)) data.people[key] ??= person;
      for (const el of document.querySelectorAll("article.msg[data-author]")) if (el.dataset.author) nameAuthor(el);
      for (const el of document.querySelectorAll("[data-person]")) el.textContent = data.people[el.dataset.person]?.name ?? el.textContent;
    })
    .catch(() => {})
    .finally(() => { learning = null; });
}

function messageElement(message) {
  const el = document.getElementById("message-template").content.firstElementChild.cloneNode(true);
  fill(el, message);
  return el;
}

function fill(el, message) {
  el.id = `m-${message.id}`;
  el.dataset.id = message.id;
  el.dataset.seq = message.seq;
  el.dataset.author = message.author_id ?? "";
  el.dataset.parent = message.parent_id ?? "";
  el.classList.toggle("msg--internal", Boolean(message.internal));
  el.classList.toggle("msg--reply", Boolean(message.parent_id));
  nameAuthor(el);
  const noteBadge = el.querySelector(".badge-note"); // only staff pages have one
  if (noteBadge) noteBadge.hidden = !message.internal;
  const link = el.querySelector(".msg-head a");
  link.href = `#m-${message.id}`;
  const time = link.querySelector("time");
  const moment = new Date(message.created_at);
  time.dateTime = message.created_at;
  time.title = moment.toLocaleString();
  time.textContent = timeFormat.format(moment);
  el.querySelector(".msg-body").innerHTML = message.body_html; // sanitised on the server
  showAttachments(el, message.attachments);
  const reply = el.querySelector("[data-reply-to]");
  reply.dataset.replyTo = message.id;
  reply.href = `${data.ticket_url}?reply_to=${message.id}#composer`;
  reply.setAttribute("aria-label", `Reply to ${personName(message.author_id)}, ${time.title}`);
}

// --- files on messages (the server's template, templates/media/message_attachments.html, in script) --

const FILE_STATES = { pending: "scanning", clean: "clean", rejected: "refused", infected: "infected", scan_failed: "not scanned" };

function fileSize(size) {
  for (const [limit, unit] of [[1024 ** 3, "GB"], [1024 ** 2, "MB"], [1024, "KB"]]) {
    if (size >= limit) {
      const value = size / limit;
      return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${unit}`;
    }
  }
  return `${size} B`;
}

function attachmentItem(file) {
  const item = document.createElement("li");
  item.className = "attachment";
  item.id = `a-${file.id}`;
  item.dataset.attachment = file.id;
  item.dataset.status = file.status;
  const url = `${data.attachments_url}${file.id}`;
  const clean = file.status === "clean";
  if (clean && file.thumbnail_url) {
    const link = Object.assign(document.createElement("a"), { href: url });
    link.append(Object.assign(document.createElement("img"), { className: "thumb", alt: "", src: `${url}/thumbnail` }));
    item.append(link);
  }
  const name = document.createElement(clean ? "a" : "span");
  name.className = "file-name";
  name.textContent = file.filename;
  if (clean) name.href = url;
  const size = Object.assign(document.createElement("span"), { className: "muted small", textContent: fileSize(file.size) });
  const state = Object.assign(document.createElement("span"), {
    className: `badge badge-file-${file.status}`, textContent: FILE_STATES[file.status] ?? file.status });
  item.append(name, " ", size, " ", state);
  if (file.status_reason && !clean) {
    item.append(" ", Object.assign(document.createElement("span"), { className: "muted small", textContent: file.status_reason }));
  }
  if (file.uploader_id === data.me.id || data.me.role === "admin") item.append(" ", deleteForm(file));
  return item;
}

// A requester's file sent in a message stays while the ticket is closed (the server says 409): no Delete then.
function deleteForm(file) {
  const frozen = !data.staff && file.message_id ? " when-open" : "";
  const form = Object.assign(document.createElement("form"), {
    className: `file-delete${frozen}`, method: "post", action: `${data.ticket_url}/attachments/${file.id}/delete` });
  form.dataset.confirm = `Delete ${file.filename}? Nobody will be able to download it again.`;
  form.append(Object.assign(document.createElement("input"), { type: "hidden", name: "csrf_token", value: csrf }));
  const button = Object.assign(document.createElement("button"), { type: "submit", className: "link small", textContent: "Delete" });
  button.setAttribute("aria-label", `Delete ${file.filename}`);
  form.append(button);
  return form;
}

function removeAttachment(id) {
  const item = document.getElementById(`a-${id}`);
  const box = item?.closest(".msg-attachments");
  item?.remove();
  if (box && !box.querySelector("li.attachment")) box.hidden = true;
}

// A file's Delete: asked once (app.js), then sent by script (the page stays live); without the script the form reloads.
async function deleteAttachment(form) {
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const response = await fetch(form.action, {
      method: "POST", credentials: "same-origin", body: new FormData(form),
      headers: { "X-CSRFToken": csrf, Accept: "application/json" } });
    if (response.ok) {
      removeAttachment(form.closest("li.attachment").dataset.attachment);
      return;
    }
    const answer = await response.json().catch(() => null);
    window.alert(answer?.message ?? `The file could not be deleted (${response.status}).`);
  } catch {
    window.alert("The file could not be deleted: the connection failed.");
  }
  button.disabled = false;
}

function showAttachments(el, files) {
  const box = el.querySelector(".msg-attachments");
  if (!box) return;
  const visible = (files ?? []).filter((file) => data.staff || !file.internal);
  box.hidden = visible.length === 0;
  const list = Object.assign(document.createElement("ul"), { className: "attachments" });
  list.setAttribute("aria-label", "Files");
  list.append(...visible.map(attachmentItem));
  box.replaceChildren(list);
}

function place(el, parentId) {
  document.getElementById("no-messages")?.remove();
  const parent = parentId ? document.getElementById(`m-${parentId}`) : null;
  const thread = parent?.closest("li.thread[data-root]");
  if (thread) {
    const item = document.createElement("li");
    item.append(el);
    thread.querySelector(":scope > ol.replies").append(item);
    return;
  }
  const item = document.getElementById("thread-template").content.firstElementChild.cloneNode(true);
  item.dataset.root = el.dataset.id ?? "";
  item.prepend(el);
  threads.append(item);
}

// --- sending ------------------------------------------------------------------------------

function send(form) {
  const textarea = form.querySelector("textarea[name=body]");
  const body = textarea.value;
  if (!isOpen()) return false; // the form posts itself: the same message, the plain way
  if (!body.trim()) {
    fieldError(form, textarea, "Write something first.");
    return true;
  }
  clearFieldError(form);
  const parent = form.querySelector("input[name=parent_id]")?.value || null;
  const internal = Boolean(form.querySelector("input[type=checkbox][name=internal]")?.checked);
  const ref = `r${Date.now().toString(36)}-${nextRef++}`;
  // Sent before the page lays itself out again: the echo cannot be handled before this task ends.
  const frame = { type: "message", body, internal, ref, idempotency_key: newKey() };
  if (parent) frame.parent_id = parent;
  const files = [...form.querySelectorAll("input[name=attachment_ids]")].map((input) => input.value);
  if (files.length) frame.attachment_ids = files; // uploaded already (uploads.js): sent with the message
  socket.send(JSON.stringify(frame));
  form.dispatchEvent(new CustomEvent("uploads:sent"));
  const el = messageElement({
    id: `pending-${ref}`, seq: "", author_id: data.me.id, parent_id: parent, internal,
    created_at: new Date().toISOString(), body_html: "",
  });
  el.removeAttribute("id");
  const paragraph = document.createElement("p");
  paragraph.textContent = body; // what was typed, as text, until the server's rendering replaces it
  el.querySelector(".msg-body").replaceChildren(paragraph);
  el.querySelector(".msg-actions").hidden = true;
  el.classList.add("msg--pending");
  el.querySelector("[data-state]").textContent = "Sending…";
  el.dataset.pending = ref;
  place(el, parent);
  el.scrollIntoView({ block: "nearest" });
  const item = { el, body, parent, internal, ref, frame, refused: false };
  item.timer = setTimeout(() => failed(item, "Not confirmed yet.", true), SEND_TIMEOUT_MS);
  pending.set(ref, item);
  textarea.value = "";
  if (form.classList.contains("thread-composer")) form.remove();
  return true;
}

// 128 random bits: unique to this message among everything its sender ever sends.
function newKey() {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function resend(item) {
  if (!isOpen()) {
    failed(item, "Not sent yet: it goes as soon as the connection is back.", false);
    return;
  }
  socket.send(JSON.stringify(item.frame));
  item.refused = false;
  item.el.classList.remove("msg--failed");
  item.el.querySelector("[data-resend]")?.remove();
  item.el.querySelector("[data-state]").textContent = "Sending…";
  clearTimeout(item.timer);
  item.timer = setTimeout(() => failed(item, "Not confirmed yet.", true), SEND_TIMEOUT_MS);
}

function forget(item) {
  clearTimeout(item.timer);
  pending.delete(item.ref);
  const holder = item.el.parentElement; // the thread or reply item `place` made for it
  if (holder?.matches("li")) holder.remove();
  else item.el.remove();
}

function delivered(item, message) {
  clearTimeout(item.timer);
  pending.delete(item.ref);
  const el = item.el;
  fill(el, message);
  el.classList.remove("msg--pending", "msg--failed");
  el.querySelector("[data-resend]")?.remove();
  el.querySelector(".msg-actions").hidden = false;
  el.dataset.delivered = "true";
  delete el.dataset.pending;
  const thread = el.parentElement;
  if (thread?.matches("li.thread")) thread.dataset.root = message.id;
  el.querySelector("[data-state]").textContent = "Delivered";
}

function failed(item, text, retryable) {
  item.el.classList.add("msg--failed");
  item.el.querySelector("[data-state]").textContent = text;
  if (!retryable || item.el.querySelector("[data-resend]")) return;
  const button = Object.assign(document.createElement("button"), { type: "button", className: "link small",
    textContent: "Send again" });
  button.dataset.resend = "";
  button.addEventListener("click", () => resend(item));
  item.el.querySelector("[data-state]").after(" ", button);
}

function fieldError(form, textarea, text) {
  clearFieldError(form);
  const error = document.createElement("p");
  error.className = "field-error";
  error.id = `${textarea.id}-error`;
  error.textContent = text;
  textarea.after(error);
  textarea.setAttribute("aria-invalid", "true");
  textarea.focus();
}

function clearFieldError(form) {
  form.querySelectorAll(".field-error").forEach((el) => el.remove());
  form.querySelector("textarea")?.removeAttribute("aria-invalid");
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.classList.contains("file-delete")) {
    event.preventDefault();
    deleteAttachment(form);
    return;
  }
  if (!(form.id === "composer" || form.classList.contains("thread-composer"))) return;
  if (send(form)) event.preventDefault();
});

// Internal notes look different while being written, and the button says what it will do.
document.addEventListener("change", (event) => {
  const box = event.target;
  if (box.name !== "internal") return;
  const form = box.closest("form");
  form.classList.toggle("is-internal", box.checked);
  const button = form.querySelector("button[type=submit]");
  button.textContent = box.checked ? "Add internal note" : "Send reply";
});

// Reply in a thread: a small composer opens under it (without the script, the link does it by reload).
let composerCount = 0;
document.addEventListener("click", (event) => {
  const link = event.target.closest("[data-reply-to]");
  if (link) {
    event.preventDefault();
    openThreadComposer(link.dataset.replyTo);
    return;
  }
  const cancel = event.target.closest("[data-cancel]");
  if (cancel) cancel.closest("form").remove();
});

function openThreadComposer(messageId) {
  const message = document.getElementById(`m-${messageId}`);
  const thread = message?.closest("li.thread[data-root]");
  if (!thread) return;
  let form = thread.querySelector(":scope > form.thread-composer");
  if (!form) {
    form = document.getElementById("thread-composer-template").content.firstElementChild.cloneNode(true);
    composerCount += 1;
    const id = `thread-body-${composerCount}`;
    form.action = data.reply_url;
    form.querySelector("label").htmlFor = id;
    form.querySelector("textarea").id = id;
    thread.append(form);
  }
  form.querySelector("input[name=parent_id]").value = messageId;
  lockInternal(form, message.classList.contains("msg--internal"));
  form.querySelector("textarea").setAttribute("aria-label", `body, replying to ${personName(message.dataset.author)}`);
  form.querySelector("textarea").focus();
}

// A reply to an internal note is a note too: a public one would show the requester the note's id.
// The hidden field carries it when the form posts itself (a disabled checkbox is not sent).
function lockInternal(form, locked) {
  const box = form.querySelector("input[type=checkbox][name=internal]");
  if (!box) return; // a requester's composer: they see no notes to reply to
  if (box.disabled && !locked) box.checked = false;
  if (locked) box.checked = true;
  box.disabled = locked;
  form.querySelector("input[type=hidden][name=internal]").disabled = !locked;
  form.querySelector("[data-hint-open]").hidden = locked;
  form.querySelector("[data-hint-note]").hidden = !locked;
  form.classList.toggle("is-internal", box.checked);
  form.querySelector("button[type=submit]").textContent = box.checked ? "Add internal note" : "Send reply";
}

// --- typing -------------------------------------------------------------------------------

let lastTypingSent = 0;
document.addEventListener("input", (event) => {
  if (event.target.name !== "body" || !isOpen()) return;
  // Typing is seen by everyone on the ticket: writing an internal note must not tell the requester.
  if (event.target.form?.querySelector("input[type=checkbox][name=internal]")?.checked) return;
  const now = Date.now();
  if (now - lastTypingSent < TYPING_EVERY_MS) return;
  lastTypingSent = now;
  socket.send(JSON.stringify({ type: "typing" }));
});

function showTyping(userId) {
  if (!userId || userId === data.me.id) return;
  clearTimeout(typists.get(userId));
  typists.set(userId, setTimeout(() => stopTyping(userId), TYPING_SHOWN_MS));
  renderTyping();
}

function stopTyping(userId) {
  if (!typists.has(userId)) return;
  clearTimeout(typists.get(userId));
  typists.delete(userId);
  renderTyping();
}

function renderTyping() {
  const names = [...typists.keys()].map((id) => data.people[id]?.name ?? "Someone");
  typingLine.textContent = names.length === 0 ? ""
    : names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`;
}

// --- the ticket itself --------------------------------------------------------------------

const panel = document.getElementById("panel-form");
let panelDirty = false;
// Typing counts too: a text box fires "change" only when it loses focus, and a live update would overwrite it.
for (const kind of ["change", "input"]) panel?.addEventListener(kind, () => { panelDirty = true; });

function badge(el, kind, value, suffix) {
  if (!el) return;
  const span = el.querySelector(".badge");
  span.className = `badge badge-${value}`;
  span.replaceChildren(Object.assign(document.createElement("span"), { className: "visually-hidden", textContent: `${kind} ` }),
    document.createTextNode(suffix ? `${value} ${suffix}` : value));
}

function applyTicket(ticket) {
  page.dataset.status = ticket.status;
  badge(document.getElementById("ticket-status"), "status", ticket.status);
  badge(document.getElementById("ticket-priority"), "priority", ticket.priority, "priority");
  badge(document.getElementById("facts-status"), "status", ticket.status);
  badge(document.getElementById("facts-priority"), "priority", ticket.priority);
  const assignee = document.getElementById("facts-assignee");
  if (assignee) {
    assignee.dataset.person = ticket.assignee_id ?? "";
    assignee.textContent = ticket.assignee_id ? (data.people[ticket.assignee_id]?.name ?? "An agent") : "Not assigned yet";
    learn(ticket.assignee_id);
  }
  showClosing(ticket);
  if ((ticket.assignee_id ?? "") !== data.assigned_to) {
    // The card explains the assignment the page was made with: say it is out of date, not why.
    const why = document.querySelector(".card.why");
    if (why && !why.querySelector(".why-stale")) {
      why.append(Object.assign(document.createElement("p"), { className: "why-stale alert alert-info small",
        textContent: "The assignee changed since this page was loaded; reload to see why." }));
    }
  }
  if (!panel) return;
  const version = `v${ticket.version}`;
  if (panel.dataset.version === version) return;
  if (panelDirty) {
    document.getElementById("changed-notice").hidden = false;
    return;
  }
  const values = { status: ticket.status, priority: ticket.priority, assignee_id: ticket.assignee_id ?? "", team_id: ticket.team_id ?? "" };
  const texts = { category: ticket.category ?? "", tags: [...(ticket.tags ?? [])].sort().join(", ") };
  for (const [name, value] of Object.entries(texts)) {
    const input = panel.querySelector(`input[name=${name}]`);
    if (input) input.value = value;
    const was = panel.querySelector(`input[name=was_${name}]`);
    if (was) was.value = value;
  }
  for (const [name, value] of Object.entries(values)) {
    const select = panel.querySelector(`select[name=${name}]`);
    const known = select && [...select.options].some((o) => o.value === value);
    if (select && !known && (name === "assignee_id" || name === "team_id")) {
      // An agent or team added since the page loaded: show it, or the next save would undo the change.
      select.add(new Option(name === "assignee_id" ? (data.people[value]?.name ?? "An agent") : "A team added since", value));
    }
    if (select && [...select.options].some((o) => o.value === value)) select.value = value;
    const was = panel.querySelector(`input[name=was_${name}]`);
    if (was) was.value = value;
  }
  panel.dataset.version = version;
  panel.querySelector("fieldset").disabled = ticket.status === "closed";
}

// When it was closed, and how it was solved: shown once it is closed, live as on a reload.
function showClosing(ticket) {
  const when = ticket.closed_at ? timeFormat.format(new Date(ticket.closed_at)) : "";
  const closedAt = document.getElementById("closed-at");
  if (closedAt) closedAt.textContent = when ? `Closed ${when}.` : "Closed.";
  const facts = document.getElementById("facts-closed");
  if (facts) facts.textContent = when;
  const resolution = document.getElementById("resolution-shown"); // "resolution" is the close form's box
  if (resolution) {
    resolution.hidden = !ticket.resolution;
    document.getElementById("resolution-text").textContent = ticket.resolution ?? "";
  }
}

connect();
