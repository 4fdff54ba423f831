// billflow invoice page: live status and the copy button. No framework.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var copy = document.getElementById("copy");
  if (copy) {
    copy.addEventListener("click", function () {
      var input = document.getElementById(copy.getAttribute("data-copy-target"));
      var result = document.getElementById("copy-result");
      var done = function (ok) { if (result) { result.textContent = ok ? "Copied." : "Select the invoice and copy it."; } };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(input.value).then(function () { done(true); }, function () { input.select(); done(false); });
      } else {
        input.select();
        done(document.execCommand && document.execCommand("copy"));
      }
    });
  }
  if (!live) { return; }
  var url = live.getAttribute("data-status-url");
  var shown = live.getAttribute("data-status");
  var final = { paid: true, void: true, uncollectible: true };
  function apply(s) {
    var badge = document.getElementById("status-badge");
    badge.textContent = s.status_label;
    badge.className = "badge badge-" + s.status;
    var pay = document.getElementById("pay");
    if (pay) { pay.hidden = !s.payable; }
    var due = document.getElementById("due");
    if (due) {
      due.textContent = s.due;
      due.hidden = !s.payable;
      document.getElementById("due-label").hidden = !s.payable;
    }
    if (s.status === "paid") {
      document.getElementById("paid-rail").textContent = s.rail || "";
      document.getElementById("paid-ref").textContent = s.reference || "";
      document.getElementById("paid-at").textContent = s.paid_at_text || "";
      document.getElementById("paid").hidden = false;
      document.title = "Paid: " + document.title.replace(/^Paid: /, "");
      // When the page showed Paid, for the browser tests' measurement.
      document.body.setAttribute("data-paid-seen-at", String(Date.now()));
    }
    shown = s.status;
    live.setAttribute("data-status", s.status);
  }
  function poll() {
    if (final[shown]) { return; }
    fetch(url, { cache: "no-store", credentials: "omit", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (s) { if (s && (s.status !== shown || s.due !== (document.getElementById("due") || {}).textContent)) { apply(s); } })
      .catch(function () {})
      .then(function () { setTimeout(poll, 1000); });
  }
  setTimeout(poll, 1000);
})();
