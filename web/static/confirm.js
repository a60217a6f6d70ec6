// Destructive forms carry data-confirm="question". Ask it in the browser's dialog and, if the
// answer is yes, send confirm=yes so the server skips its own confirmation page (web/confirm.py).
// Without JavaScript the server asks instead, so nothing here is needed for the form to work.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (!question) return;
  if (!window.confirm(question)) {
    event.preventDefault();
    return;
  }
  var input = form.querySelector("input[name=confirm]");
  if (!input) {
    input = document.createElement("input");
    input.type = "hidden";
    input.name = "confirm";
    form.appendChild(input);
  }
  input.value = "yes";
});
