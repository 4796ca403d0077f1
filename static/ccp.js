// CCP's only script (the CSP allows no inline code): send the CSRF token with every htmx request, close dialogs.
(function () {
  "use strict";
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRFToken"] = csrfToken();
  });
  // Any element with data-close-modal empties the dialog slot (the dialog is server-rendered markup).
  document.addEventListener("click", function (event) {
    var closer = event.target.closest("[data-close-modal]");
    if (closer) {
      event.preventDefault();
      var slot = document.getElementById("modal");
      if (slot) { slot.innerHTML = ""; }
    }
  });
  document.addEventListener("keydown", function (event) {
    var slot = document.getElementById("modal");
    if (event.key === "Escape" && slot && slot.firstElementChild) { slot.innerHTML = ""; }
  });
})();
