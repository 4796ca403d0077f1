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

  // The status widget says whether the instance's upgrade is active (data-active). While it is, controls marked
  // data-needs-idle are disabled (links: aria-disabled, and their clicks stopped) and the data-idle-reason notes
  // shown. The server renders the same state; this keeps it in step when the widget replaces itself (started,
  // polled, ended) without a reload. A slot without data-active (an error message) changes nothing.
  function syncIdle() {
    var widget = document.getElementById("upgrade-status");
    if (!widget || !widget.hasAttribute("data-active")) { return; }
    var active = widget.getAttribute("data-active") === "true";
    document.querySelectorAll("[data-needs-idle]").forEach(function (el) {
      if (el.tagName === "A") {
        if (active) { el.setAttribute("aria-disabled", "true"); el.setAttribute("tabindex", "-1"); }
        else { el.removeAttribute("aria-disabled"); el.removeAttribute("tabindex"); }
      } else {
        el.disabled = active;
      }
    });
    document.querySelectorAll("[data-idle-reason]").forEach(function (el) { el.hidden = !active; });
  }
  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("a[aria-disabled=true]")) {
      event.preventDefault();
      event.stopPropagation();  // capture phase: htmx's own listener on the link never sees it
    }
  }, true);

  // Running times tick between polls: each [data-since] counts on from the seconds the server measured
  // (data-elapsed) when this page first saw that start, on this browser's monotonic clock, so a skewed client
  // clock or a reused (older) widget does not change what it shows. Same format as presenters.format_elapsed.
  var anchors = {};
  function elapsedText(seconds) {
    var total = Math.max(0, Math.floor(seconds)), minutes = Math.floor(total / 60), secs = total % 60;
    if (total < 60) { return total + " s"; }
    if (minutes < 60) { return minutes + " min " + (secs < 10 ? "0" : "") + secs + " s"; }
    var mins = minutes % 60;
    return Math.floor(minutes / 60) + " h " + (mins < 10 ? "0" : "") + mins + " min";
  }
  function tick() {
    var now = performance.now();
    document.querySelectorAll("[data-since]").forEach(function (el) {
      var since = el.getAttribute("data-since"), anchor = anchors[since];
      if (!anchor) {
        anchor = anchors[since] = {base: parseInt(el.getAttribute("data-elapsed"), 10) || 0, at: now};
      }
      el.textContent = elapsedText(anchor.base + (now - anchor.at) / 1000);
    });
  }
  // A growing output tail stays scrolled to its newest line.
  function follow(root) {
    root.querySelectorAll("pre[data-follow]").forEach(function (pre) { pre.scrollTop = pre.scrollHeight; });
  }
  document.addEventListener("htmx:load", function (event) {
    syncIdle();
    tick();
    follow(event.target.parentNode || document);
  });
  document.addEventListener("DOMContentLoaded", function () { syncIdle(); tick(); follow(document); });
  window.setInterval(tick, 1000);
})();
