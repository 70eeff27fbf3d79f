// Every page: show times in the reader's own time zone and language (the server writes UTC).
const format = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

for (const el of document.querySelectorAll("time[datetime]")) {
  const moment = new Date(el.dateTime);
  if (Number.isNaN(moment.getTime())) continue;
  el.title = moment.toLocaleString();
  if (!el.hasAttribute("data-relative")) el.textContent = format.format(moment);
}
