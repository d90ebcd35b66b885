// Upload screen: dry run, say in plain words what would happen, list every problem with
// its place in the file, confirm, then say what was imported, replaced and skipped.
(function () {
  "use strict";
  var api = window.fundtrackApi;
  var MUTATION = "mutation($input: ImportReportInput!) { importReport(input: $input) { " +
    "status message fileName counts issues { severity code location message } issuesTotal " +
    "batch { number importer status publisherRef } errors { code message field } } }";
  var form = document.getElementById("upload-form");
  var result = document.getElementById("result");
  var confirmBtn = document.getElementById("confirm");
  var checked = null;
  api.bindToken();

  function send(dryRun) {
    var file = document.getElementById("file").files[0];
    if (!file) { return Promise.resolve(null); }
    var mapping = document.getElementById("mapping").files[0];
    var input = {file: null, dryRun: dryRun, strict: document.getElementById("strict").checked};
    var fmt = document.getElementById("format").value;
    if (fmt) { input.format = fmt; }
    var files = {"variables.input.file": file};
    if (mapping) { input.mapping = null; files["variables.input.mapping"] = mapping; }
    result.setAttribute("aria-busy", "true");
    api.text(result, dryRun ? "Checking " + file.name + " …" : "Importing " + file.name + " …");
    return api.uploadFiles(MUTATION, {input: input}, files).then(function (out) {
      result.removeAttribute("aria-busy");
      show(out, dryRun);
      return out;
    });
  }

  function n(c, key) { return (c && c[key]) || 0; }
  function plural(k, one, many) { return k + " " + (k === 1 ? one : many); }

  // One sentence part per kind of record, with a data-count the tests can read.
  function what(c) {
    var span = api.el("span");
    var parts = [["activities", "activity", "activities"], ["flows", "flow of money", "flows of money"],
                 ["budgets", "budget line", "budget lines"],
                 ["organisations", "organisation description", "organisation descriptions"]];
    var shown = parts.filter(function (p) { return n(c, p[0]); });
    if (!shown.length) { span.textContent = "nothing"; return span; }
    shown.forEach(function (p, i) {
      if (i) { span.appendChild(document.createTextNode(i === shown.length - 1 ? " and " : ", ")); }
      var k = n(c, p[0]);
      span.appendChild(api.el("strong", {"data-count": p[0]}, k));
      span.appendChild(document.createTextNode(" " + (k === 1 ? p[1] : p[2])));
    });
    return span;
  }

  function line(list, label, content) {
    var li = api.el("li");
    li.appendChild(api.el("span", {"class": "label"}, label + " "));
    if (typeof content === "string") { li.appendChild(document.createTextNode(content)); }
    else { li.appendChild(content); }
    list.appendChild(li);
  }

  function summary(p, dryRun) {
    var c = p.counts || {};
    var ul = api.el("ul", {id: "upload-summary"});
    line(ul, dryRun ? "Would import:" : "Imported:", what(c));
    var ra = n(c, "replaced_activities"), rf = n(c, "replaced_flows");
    line(ul, dryRun ? "Would replace:" : "Replaced:", ra || rf
      ? plural(ra, "activity", "activities") + " and " + plural(rf, "flow", "flows") +
        " from earlier reports of the same publisher (kept, so the import can be reverted)"
      : "nothing (none of it was reported before)");
    var skipped = n(c, "skipped");
    line(ul, "Skipped:", skipped
      ? plural(skipped, "record", "records") + " that could not be read; each is listed below with where it is in the file"
      : "nothing");
    var warnings = n(c, "warnings");
    if (warnings) {
      line(ul, "Warnings:", plural(warnings, "record was", "records were") +
        " imported with something missing or repaired (listed below)");
    }
    var noUsd = n(c, "flows_without_usd");
    if (noUsd) {
      line(ul, "Without a USD amount:", plural(noUsd, "flow", "flows") +
        " (no exchange rate for the currency and date, and the report gives none)");
    }
    return ul;
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
    var name = p.fileName;
    if (p.status === "dry-run") {
      head.textContent = "Checked " + name + ": it can be imported. Nothing has been written yet; " +
        "press \u201cImport this file\u201d below to import it.";
    } else if (p.status === "applied") {
      head.textContent = "Imported " + name + " as batch " + p.batch.number + ".";
    } else if (p.status === "unchanged") {
      head.textContent = name + " was imported before with exactly the same content" +
        (p.batch ? " (batch " + p.batch.number + ")" : "") + ": nothing changed.";
    } else if (p.status === "refused") {
      head.textContent = name + " was not imported: " + p.message;
    } else {
      head.textContent = name + " was not imported, and nothing of it was written. " + p.message +
        (/format not recognised/.test(p.message) ? ". Choose its format in the list above." : "");
    }
    result.appendChild(head);
    if (p.status === "dry-run" || p.status === "applied") { result.appendChild(summary(p, dryRun)); }
    if (p.batch && p.status === "applied") {
      var b = api.el("p", {id: "batch-summary"});
      b.appendChild(document.createTextNode("Batch " + p.batch.number + " (" + p.batch.importer + ", " +
        (p.batch.publisherRef || "no publisher") + ") is " + p.batch.status + ". "));
      b.appendChild(api.el("a", {href: "/imports#batch-" + p.batch.number}, "See it in the import history"));
      b.appendChild(document.createTextNode(", where it can be reverted."));
      result.appendChild(b);
    }
    var issues = p.issues || [];
    var total = p.issuesTotal || issues.length;
    if (!total && !ok) { return; }
    var h = api.el("h3", {}, total ? plural(total, "problem", "problems") + " found" +
                   (total > issues.length ? " (the first " + issues.length + " are listed)" : "")
                                   : "No problems found");
    result.appendChild(h);
    if (issues.length) {
      var table = api.el("table", {id: "issues"});
      var thead = api.el("thead");
      var tr = api.el("tr");
      ["Where in the file", "What is wrong", "What was done", "Code"].forEach(function (c) {
        tr.appendChild(api.el("th", {scope: "col"}, c));
      });
      thead.appendChild(tr); table.appendChild(thead);
      var tbody = api.el("tbody");
      issues.forEach(function (i) {
        var row = api.el("tr", {"class": "sev-" + i.severity});
        var done = i.severity === "error" ? "record skipped" : "imported with a warning";
        [i.location || "the whole file", i.message, done, i.code].forEach(function (c) {
          row.appendChild(api.el("td", {}, c));
        });
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
  ["file", "mapping", "format"].forEach(function (id) {
    document.getElementById(id).addEventListener("change", function () { confirmBtn.hidden = true; checked = null; });
  });
  confirmBtn.addEventListener("click", function () {
    if (checked && document.getElementById("file").files[0] === checked) { send(false); }
  });
}());
