// Agent queues: j/k move through the tickets, Enter opens one, / jumps to the search box.
const rows = [...document.querySelectorAll("#ticket-list tbody tr")];
let current = -1;

function select(index) {
  if (!rows.length) return;
  current = Math.max(0, Math.min(rows.length - 1, index));
  rows.forEach((row, n) => row.classList.toggle("is-selected", n === current));
  rows[current].querySelector(".title a").focus();
  rows[current].scrollIntoView({ block: "nearest" });
}

rows.forEach((row, n) => {
  row.addEventListener("focusin", () => {
    current = n;
    rows.forEach((other, m) => other.classList.toggle("is-selected", m === n));
  });
  row.addEventListener("click", (event) => {
    if (!event.target.closest("a, button")) location.href = row.dataset.href;
  });
});

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest("input, textarea, select, [contenteditable]")) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  if (event.key === "/") {
    event.preventDefault();
    const search = document.getElementById("q");
    search.focus();
    search.select();
  } else if (event.key === "j") {
    event.preventDefault();
    select(current + 1);
  } else if (event.key === "k") {
    event.preventDefault();
    select(current < 0 ? 0 : current - 1);
  } else if (event.key === "Enter" && current >= 0 && !event.target.closest("a, button")) {
    location.href = rows[current].dataset.href;
  }
});
