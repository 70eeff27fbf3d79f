// "Copy" buttons beside a secret shown once (a new API key, a webhook's signing secret).
// Without the script the field is still selectable and read-only.

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  if (!field) return;
  field.select();
  let copied = false;
  try {
    await navigator.clipboard.writeText(field.value);
    copied = true;
  } catch {
    copied = document.execCommand?.("copy") ?? false; // a page not served over https has no clipboard API
  }
  const note = button.closest("section")?.querySelector("[data-copied-note]");
  button.textContent = copied ? "Copied" : "Select and copy";
  if (note) {
    note.hidden = false;
    note.textContent = copied ? "Copied to the clipboard." : "Press Ctrl+C (⌘C) to copy the selected text.";
  }
});
