// Every page: show times in the reader's own time zone and language (the server writes UTC).
const format = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

for (const el of document.querySelectorAll("time[datetime]")) {
  const moment = new Date(el.dateTime);
  if (Number.isNaN(moment.getTime())) continue;
  el.title = moment.toLocaleString();
  if (!el.hasAttribute("data-relative")) el.textContent = format.format(moment);
}

// Every form: one that asks first (`data-confirm`) is sent only if the person agrees.
// Capture phase, so a page's own handler of the form (ticket.js) never sees a refused one.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset?.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);

// Every form the browser posts itself is posted once: a second Enter or click while the first is on
// its way would open a second ticket or send a second reply. Last of all listeners (on window), so
// forms a page's script sends itself (it prevents the default) are left to it. A form posted again
// after 10 s (the first never answered) or after coming back to the page goes again.
const RESUBMIT_AFTER_MS = 10000;
window.addEventListener("submit", (event) => {
  const form = event.target;
  if (event.defaultPrevented || form.method !== "post") return;
  if (form.dataset.sending) {
    event.preventDefault();
    return;
  }
  form.dataset.sending = "true";
  setTimeout(() => delete form.dataset.sending, RESUBMIT_AFTER_MS);
});
window.addEventListener("pageshow", (event) => {
  if (event.persisted) for (const form of document.querySelectorAll("form[data-sending]")) delete form.dataset.sending;
});
