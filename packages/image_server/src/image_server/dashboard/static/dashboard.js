// Copy a generation's file name so it can be passed back as a reference image.
"use strict";

function copyWithSelection(text) {
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch {
    copied = false;
  }
  area.remove();
  return copied;
}

function showResult(button, copied) {
  if (!button.dataset.label) {
    button.dataset.label = button.textContent;
  }
  button.textContent = copied ? "Copied" : "Copy failed";
  button.classList.toggle("ok", copied);
  window.clearTimeout(Number(button.dataset.timer || 0));
  button.dataset.timer = String(window.setTimeout(() => {
    button.textContent = button.dataset.label;
    button.classList.remove("ok");
  }, 1500));
}

document.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("button[data-copy]") : null;
  if (!button) {
    return;
  }
  const text = button.dataset.copy || "";
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(
      () => showResult(button, true),
      () => showResult(button, copyWithSelection(text)),
    );
  } else {
    showResult(button, copyWithSelection(text));
  }
});
