// Upload screen: dry run, show every issue with its location, confirm, show the batch.
(function () {
  "use strict";
  var api = window.fundtrackApi;
  var MUTATION = "mutation($input: ImportReportInput!) { importReport(input: $input) { " +
    "status message fileName sha256 counts issues { severity code location message } issuesTotal " +
    "batch { id importer fileName status publisherRef counts } errors { code message field } } }";
  var form = document.getElementById("upload-form");
  var result = document.getElementById("result");
  var confirmBtn = document.getElementById("confirm");
  var checked = null;
  api.bindToken();

  function send(dryRun) {
    var file = document.getElementById("file").files[0];
    if (!file) { return Promise.resolve(null); }
    var input = {file: null, dryRun: dryRun, strict: document.getElementById("strict").checked};
    var fmt = document.getElementById("format").value;
    if (fmt) { input.format = fmt; }
    result.setAttribute("aria-busy", "true");
    api.text(result, dryRun ? "Checking " + file.name + " …" : "Importing " + file.name + " …");
    return api.upload(MUTATION, {input: input}, "variables.input.file", file).then(function (out) {
      result.removeAttribute("aria-busy");
      show(out, dryRun);
      return out;
    });
  }

  function countsList(counts) {
    var dl = api.el("dl", {"class": "counts"});
    Object.keys(counts || {}).sort().forEach(function (k) {
      if (!counts[k]) { return; }
      dl.appendChild(api.el("dt", {}, k.replace(/_/g, " ")));
      dl.appendChild(api.el("dd", {"data-count": k}, counts[k]));
    });
    return dl;
  }

  function show(out, dryRun) {
    result.textContent = "";
    confirmBtn.hidden = true;
    if (out.errors && !out.data) {
      result.appendChild(api.el("p", {"class": "error", role: "alert", id: "upload-error"}, api.errors(out)));
      return;
    }
    var p = out.data.importReport;
    var ok = p.status === "dry-run" || p.status === "applied" || p.status === "unchanged";
    var head = api.el("p", {id: "upload-status", "data-status": p.status, "class": ok ? "ok" : "error"});
    head.textContent = (dryRun ? "Dry run: " : "Import: ") + p.status + ". " + p.message;
    result.appendChild(head);
    result.appendChild(countsList(p.counts));
    if (p.batch) {
      var b = api.el("p", {id: "batch-summary"});
      b.appendChild(document.createTextNode("Batch " + p.batch.id + " (" + p.batch.importer + ", " +
        (p.batch.publisherRef || "no publisher") + ") is " + p.batch.status + ". "));
      var a = api.el("a", {href: "/imports"}, "See the import history");
      b.appendChild(a);
      result.appendChild(b);
    }
    var issues = p.issues || [];
    var total = p.issuesTotal || issues.length;
    var h = api.el("h3", {}, total + (total === 1 ? " issue" : " issues") +
                   (total > issues.length ? " (the first " + issues.length + " are listed)" : ""));
    result.appendChild(h);
    if (issues.length) {
      var table = api.el("table", {id: "issues"});
      var thead = api.el("thead");
      var tr = api.el("tr");
      ["Severity", "Code", "Where in the file", "What is wrong"].forEach(function (c) {
        tr.appendChild(api.el("th", {scope: "col"}, c));
      });
      thead.appendChild(tr); table.appendChild(thead);
      var tbody = api.el("tbody");
      issues.forEach(function (i) {
        var row = api.el("tr", {"class": "sev-" + i.severity});
        [i.severity, i.code, i.location, i.message].forEach(function (c) { row.appendChild(api.el("td", {}, c)); });
        tbody.appendChild(row);
      });
      table.appendChild(tbody);
      var wrap = api.el("div", {"class": "scroll"}); wrap.appendChild(table);
      result.appendChild(wrap);
    }
    if (dryRun && p.status === "dry-run") {
      checked = document.getElementById("file").files[0];
      confirmBtn.hidden = false;
      confirmBtn.focus();
    }
  }

  form.addEventListener("submit", function (ev) { ev.preventDefault(); send(true); });
  document.getElementById("file").addEventListener("change", function () { confirmBtn.hidden = true; checked = null; });
  confirmBtn.addEventListener("click", function () {
    if (checked && document.getElementById("file").files[0] === checked) { send(false); }
  });
}());
