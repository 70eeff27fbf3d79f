// Reorder assignment rules by dragging them; the order is saved as one form post (`rule_ids`, first
// tried first). The arrow buttons beside each rule do the same without a mouse or without this script.

const list = document.getElementById("rules");
const form = document.getElementById("order-form");
let dragged = null;

function save() {
  form.querySelectorAll("input[name=rule_ids]").forEach((input) => input.remove());
  for (const item of list.querySelectorAll("li[data-rule]")) {
    form.append(Object.assign(document.createElement("input"), { type: "hidden", name: "rule_ids", value: item.dataset.rule }));
  }
  form.submit();
}

if (list && form) {
  list.addEventListener("dragstart", (event) => {
    dragged = event.target.closest("li[data-rule]");
    if (!dragged) return;
    dragged.classList.add("is-dragged");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", dragged.dataset.rule);
  });
  list.addEventListener("dragover", (event) => {
    const over = event.target.closest("li[data-rule]");
    if (!dragged || !over || over === dragged) return;
    event.preventDefault();
    const box = over.getBoundingClientRect();
    const after = event.clientY > box.top + box.height / 2;
    over[after ? "after" : "before"](dragged);
  });
  list.addEventListener("drop", (event) => {
    if (!dragged) return;
    event.preventDefault();
  });
  list.addEventListener("dragend", () => {
    if (!dragged) return;
    dragged.classList.remove("is-dragged");
    dragged = null;
    save();
  });
}
