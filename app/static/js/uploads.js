// Files from the new-ticket form and the reply composer: pick or drop them, see each one's progress
// and scan state, remove one before sending (an uploaded one is deleted).
//
// Without this file the field is a plain file input posted with its form (the server streams it).
// With it:
// - in the composer (the field has data-upload-url), each file uploads as soon as it is picked,
//   one request per file with the CSRF token in a header, and its id joins the message as
//   `attachment_ids`; its scan state follows the ticket's stream (ticket.js re-dispatches
//   `attachment.updated` as a `tms:attachment-updated` event);
// - on the new-ticket form there is no ticket yet, so the files go with the form itself, in one
//   request whose progress is shown per file; the server stores nothing unless all of it is accepted.
// Sizes and names are checked here first, with the organization's limits, so a file that cannot
// be accepted says so before it is sent; the server checks everything again (413, 415) and its
// refusal is shown the same way, beside the field.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
const STATES = { pending: "scanning", clean: "clean", rejected: "refused", infected: "infected", scan_failed: "not scanned" };

function fileSize(size) {
  for (const [limit, unit] of [[1024 ** 3, "GB"], [1024 ** 2, "MB"], [1024, "KB"]]) {
    if (size >= limit) {
      const value = size / limit;
      return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${unit}`;
    }
  }
  return `${size} B`;
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function answerOf(xhr) {
  try {
    return JSON.parse(xhr.responseText);
  } catch {
    return null;
  }
}

function setUp(field) {
  const input = field.querySelector("input[type=file]");
  const list = field.querySelector(".upload-list");
  const form = field.closest("form");
  const uploadUrl = field.dataset.uploadUrl ?? "";
  const maxSize = Number(field.dataset.maxSize);
  const maxFiles = Number(field.dataset.maxFiles);
  const extensions = new Set((field.dataset.extensions ?? "").split(" ").filter(Boolean));
  const items = [];
  let sending = false;

  field.classList.add("is-enhanced");
  field.querySelector(".drop-hint").hidden = false;

  // --- messages beside the field ------------------------------------------------------------

  function showError(messages) {
    field.querySelectorAll(".field-error").forEach((el) => el.remove());
    const text = messages.filter(Boolean);
    if (!text.length) {
      input.removeAttribute("aria-invalid");
      input.setAttribute("aria-describedby", "file-hint");
      return;
    }
    const error = element("p", "field-error", text.join(" "));
    error.id = "file-error";
    field.querySelector(".hint").after(error);
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", "file-hint file-error");
  }

  function refresh() {
    list.hidden = items.length === 0;
    showError(items.filter((item) => item.problem).map((item) => item.problem));
    const busy = items.some((item) => item.state === "uploading");
    if (busy) form.dataset.uploading = "true";
    else delete form.dataset.uploading;
  }

  // --- one file -----------------------------------------------------------------------------

  function show(item, state, badgeClass, badgeText) {
    item.state = state;
    item.el.dataset.state = state;
    item.badge.className = `badge ${badgeClass}`;
    item.badge.textContent = badgeText;
    item.progress.hidden = state !== "uploading";
  }

  function refuse(item, message) {
    item.problem = message; // said once, beside the field (showError), naming the file
    show(item, "refused", "badge-file-rejected", "refused");
    refresh();
  }

  function add(file) {
    const el = element("li", "upload-item");
    const name = element("span", "file-name", file.name);
    const size = element("span", "muted small", fileSize(file.size));
    const progress = element("progress");
    progress.max = 100;
    progress.value = 0;
    progress.setAttribute("aria-label", `Upload of ${file.name}`);
    const badge = element("span", "badge");
    const message = element("span", "upload-message small");
    const remove = element("button", "button small", "Remove");
    remove.type = "button";
    remove.setAttribute("aria-label", `Remove ${file.name}`);
    el.append(name, " ", size, " ", progress, " ", badge, " ", remove, message);
    const item = { file, el, badge, progress, message, state: "ready", problem: "", id: null, xhr: null };
    remove.addEventListener("click", () => {
      item.xhr?.abort();
      if (item.id) discard(item.id);
      forget(item);
      input.focus();
    });
    items.push(item);
    list.append(el);
    show(item, "ready", "badge-file-ready", uploadUrl ? "waiting" : "ready to send");
    const problem = check(file);
    if (problem) refuse(item, problem);
    else if (uploadUrl) upload(item);
    refresh();
  }

  function forget(item) {
    if (!items.includes(item)) return;
    items.splice(items.indexOf(item), 1);
    item.el.remove();
    refresh();
  }

  // An uploaded file taken off the message is deleted, so it stops counting against the quota.
  function discard(id) {
    fetch(`${uploadUrl}/${id}/delete`, {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf, Accept: "application/json" } })
      .catch(() => {}); // best effort: a failure leaves the upload unsent, as closing the page does
  }

  function check(file) {
    if (items.filter((item) => !item.problem).length > maxFiles) return `At most ${maxFiles} files at once.`;
    if (file.size === 0) return `${file.name} is empty.`;
    if (file.size > maxSize) return `${file.name} is larger than the limit of ${field.dataset.sizeText}.`;
    const dot = file.name.lastIndexOf(".");
    const extension = dot > 0 ? file.name.slice(dot).toLowerCase() : "";
    if (extension && !extensions.has(extension)) {
      return `${file.name} is not an allowed type here: its name ends in ${extension}. Allowed: ${field.dataset.types}.`;
    }
    return "";
  }

  // --- the composer: each file at once, to the ticket -----------------------------------------

  function upload(item) {
    const body = new FormData();
    body.append("file", item.file);
    const xhr = new XMLHttpRequest();
    item.xhr = xhr;
    xhr.open("POST", uploadUrl);
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) item.progress.value = Math.round((100 * event.loaded) / event.total);
    });
    xhr.addEventListener("load", () => {
      item.xhr = null;
      const answer = answerOf(xhr);
      if (xhr.status === 202 && answer?.id) {
        item.id = answer.id;
        const hidden = Object.assign(document.createElement("input"), { type: "hidden", name: "attachment_ids", value: answer.id });
        item.el.append(hidden);
        item.el.dataset.uploadId = answer.id;
        scanned(item, answer);
      } else {
        const said = answer?.errors?.file?.[0] ?? answer?.message;
        refuse(item, said ?? (xhr.status === 400 ? "The page has expired: reload it and try again." : `The upload failed (${xhr.status}).`));
      }
      refresh();
    });
    xhr.addEventListener("error", () => {
      item.xhr = null;
      refuse(item, `${item.file.name} could not be sent: the connection failed. Remove it and try again.`);
    });
    show(item, "uploading", "badge-file-ready", "uploading");
    xhr.send(body);
  }

  function scanned(item, attachment) {
    const refused = ["rejected", "infected", "scan_failed"].includes(attachment.status);
    show(item, attachment.status === "pending" ? "scanning" : attachment.status, `badge-file-${attachment.status}`,
      STATES[attachment.status] ?? attachment.status);
    item.message.textContent = refused && attachment.status_reason ? attachment.status_reason : "";
  }

  document.addEventListener("tms:attachment-updated", (event) => {
    const item = items.find((candidate) => candidate.id === event.detail.id);
    if (item) scanned(item, event.detail);
  });

  document.addEventListener("tms:attachment-deleted", (event) => { // deleted in another tab
    const item = items.find((candidate) => candidate.id === event.detail.id);
    if (item) forget(item);
  });

  form.addEventListener("uploads:sent", () => {
    items.splice(0).forEach((item) => item.el.remove());
    refresh();
  });

  // --- the new-ticket form: the files go with the form, progress per file ----------------------

  function sendForm() {
    const sent = items.filter((item) => !item.problem);
    const body = new FormData(form);
    body.delete("file");
    for (const item of sent) body.append("file", item.file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    sending = true;
    for (const item of sent) show(item, "uploading", "badge-file-ready", "uploading");
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      // The text fields come first, then the files in order: each file is a known stretch of the body.
      const files = sent.reduce((sum, item) => sum + item.file.size, 0);
      let start = event.total - files;
      for (const item of sent) {
        const done = Math.min(Math.max(event.loaded - start, 0), item.file.size);
        item.progress.value = Math.round((100 * done) / Math.max(item.file.size, 1));
        start += item.file.size;
      }
    });
    const finish = () => {
      button.disabled = false;
      sending = false;
      for (const item of sent) if (item.state === "uploading") show(item, "ready", "badge-file-ready", "ready to send");
      refresh();
    };
    xhr.addEventListener("load", () => {
      const answer = answerOf(xhr);
      if (xhr.status === 201 && answer?.url) {
        for (const item of sent) show(item, "scanning", "badge-file-pending", "scanning");
        window.location.assign(answer.url);
        return;
      }
      finish();
      formRefused(answer, xhr.status, sent);
    });
    xhr.addEventListener("error", () => {
      finish();
      formRefused(null, 0, sent);
    });
    xhr.send(body);
  }

  function formRefused(answer, status, sent) {
    form.querySelectorAll(".field-error, .form-alert").forEach((el) => el.remove());
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    const alert = element("div", "alert alert-error form-alert");
    alert.setAttribute("role", "alert");
    alert.append(element("p", "", answer?.message ?? (status === 400 ? "The page has expired: reload it and try again."
      : "The ticket could not be sent: the connection failed. Try again.")));
    form.prepend(alert);
    const errors = answer?.errors ?? {};
    for (const [name, messages] of Object.entries(errors)) {
      if (name === "file") {
        // Name the file the server refused, if it says which; otherwise the field says it.
        const named = sent.find((item) => messages.some((m) => m.startsWith(item.file.name)));
        if (named) refuse(named, messages.join(" "));
        else showError(messages);
        continue;
      }
      const control = form.querySelector(`[name="${CSS.escape(name)}"]`);
      if (!control) continue;
      const error = element("p", "field-error", messages.join(" "));
      error.id = `${name}-error`;
      control.closest(".field")?.append(error);
      control.setAttribute("aria-invalid", "true");
      // Read with the field, as the server-rendered refusal does (its hint, then its error).
      const described = (control.getAttribute("aria-describedby") ?? "").split(" ").filter((id) => id && id !== error.id);
      control.setAttribute("aria-describedby", [...described, error.id].join(" "));
    }
    // Where a keyboard or screen reader user can act on it: the first refused field, else the alert.
    const first = form.querySelector("[aria-invalid=true]");
    if (first) first.focus();
    else {
      alert.tabIndex = -1;
      alert.focus();
    }
  }

  if (!uploadUrl) {
    form.addEventListener("submit", (event) => {
      if (sending) {
        event.preventDefault();
        return;
      }
      if (!items.some((item) => !item.problem)) return; // nothing to carry: the form posts itself
      event.preventDefault();
      sendForm();
    });
  } else {
    form.addEventListener("submit", (event) => {
      if (!form.dataset.uploading) return;
      event.preventDefault();
      event.stopPropagation();
      showError(["Wait for the files to finish uploading, then send."]);
    });
  }

  // --- picking and dropping ---------------------------------------------------------------------

  input.addEventListener("change", () => {
    const files = [...input.files];
    input.value = ""; // the list holds them now: the form must not carry them twice
    files.forEach(add);
  });
  field.addEventListener("dragover", (event) => {
    if (![...(event.dataTransfer?.types ?? [])].includes("Files")) return;
    event.preventDefault();
    field.classList.add("is-dragging");
  });
  field.addEventListener("dragleave", (event) => {
    if (!field.contains(event.relatedTarget)) field.classList.remove("is-dragging");
  });
  field.addEventListener("drop", (event) => {
    event.preventDefault();
    field.classList.remove("is-dragging");
    [...(event.dataTransfer?.files ?? [])].forEach(add);
  });
}

document.querySelectorAll("[data-uploads]").forEach(setUp);
