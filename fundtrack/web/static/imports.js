// Import history: revert a batch through the API's revertImport mutation.
(function () {
  "use strict";
  var api = window.fundtrackApi;
  var MUTATION = "mutation($input: RevertImportInput!) { revertImport(input: $input) { " +
    "batch { id status revertedAt } counts errors { code message } } }";
  var status = document.getElementById("revert-status");
  api.bindToken();
  document.querySelectorAll("button.revert").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var id = btn.getAttribute("data-batch");
      if (!api.token()) { status.textContent = "Reverting needs an API token: enter it above."; return; }
      if (!window.confirm("Revert batch " + id + "? What it replaced comes back.")) { return; }
      btn.disabled = true;
      api.query(MUTATION, {input: {id: btn.getAttribute("data-gid")}}).then(function (out) {
        var p = out.data && out.data.revertImport;
        if (!p || (p.errors && p.errors.length)) {
          btn.disabled = false;
          status.textContent = "Batch " + id + " not reverted: " + (p ? p.errors.map(function (e) { return e.message; }).join("; ") : api.errors(out));
          return;
        }
        var cell = document.querySelector("#batch-" + id + " td.status");
        cell.textContent = p.batch.status;
        btn.remove();
        status.textContent = "Batch " + id + " reverted.";
      });
    });
  });
}());
