// The job list's filters apply as soon as one changes. A file, not an onchange= attribute:
// the Content-Security-Policy (web/security.py) runs no inline script.
document.querySelectorAll("form.filters select").forEach((select) => {
  select.addEventListener("change", () => select.form.submit());
});
