// Progressive enhancement only: every page works without this script.
document.addEventListener("DOMContentLoaded", () => {
  // A language choice submits itself; the button stays for people without scripts.
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    const button = select.form.querySelector("button");
    if (button) button.hidden = true;
    select.addEventListener("change", () => select.form.submit());
  });
  // Ask before a destructive action.
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
  // Pages that follow live work refresh themselves, unless someone is typing.
  const live = document.querySelector("[data-refresh-seconds]");
  if (live) {
    const seconds = Number(live.dataset.refreshSeconds) || 5;
    setInterval(() => {
      const active = document.activeElement;
      if (active && ["INPUT", "TEXTAREA", "SELECT"].includes(active.tagName)) return;
      window.location.reload();
    }, seconds * 1000);
  }
});
