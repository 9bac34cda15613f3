// Refreshes a running job's progress section (the page works without this: it has a
// <noscript> refresh). Stops, and reloads the whole page, once the job has finished.
(function () {
  "use strict";
  var section = document.querySelector("[data-live-url]");
  if (!section) { return; }
  var url = section.getAttribute("data-live-url");
  var seconds = Math.max(1, parseInt(section.getAttribute("data-live-seconds"), 10) || 5);
  var finished = ["done", "failed", "canceled"];
  var shown = null;  // replace only when something changed, so screen readers announce news only
  function tick() {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "text/html"}}).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      var status = response.headers.get("X-Job-Status");
      return response.text().then(function (html) {
        if (finished.indexOf(status) >= 0) { window.location.reload(); return; }
        if (html !== shown) {  // the first answer always lands: a ping may have come since the page loaded
          section.innerHTML = html;
          shown = html;
        }
        window.setTimeout(tick, seconds * 1000);
      });
    }).catch(function () {
      window.setTimeout(tick, seconds * 4000);  // server restarting or offline: try again, slower
    });
  }
  window.setTimeout(tick, seconds * 1000);
}());
