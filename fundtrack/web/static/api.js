// The GraphQL client of the upload and history screens: bearer token + CSRF header.
(function () {
  "use strict";
  var KEY = "fundtrack-token";
  var api = {
    token: function () { return sessionStorage.getItem(KEY) || ""; },
    setToken: function (t) { if (t) { sessionStorage.setItem(KEY, t); } else { sessionStorage.removeItem(KEY); } },
    headers: function () {
      var h = {"GraphQL-Preflight": "1"};
      if (api.token()) { h.Authorization = "Bearer " + api.token(); }
      return h;
    },
    // A JSON request; resolves to the parsed body (with "errors" when the API refused).
    query: function (query, variables) {
      var h = api.headers();
      h["Content-Type"] = "application/json";
      return fetch("/graphql", {method: "POST", headers: h, body: JSON.stringify({query: query, variables: variables || {}})})
        .then(api.body);
    },
    // The GraphQL multipart request spec: operations, map, then the file.
    upload: function (query, variables, path, file) {
      var files = {};
      files[path] = file;
      return api.uploadFiles(query, variables, files);
    },
    // Several files: {"variables.input.file": file, "variables.input.mapping": other}.
    uploadFiles: function (query, variables, files) {
      var form = new FormData();
      form.append("operations", JSON.stringify({query: query, variables: variables}));
      var paths = Object.keys(files);
      var map = {};
      paths.forEach(function (path, i) { map[i] = [path]; });
      form.append("map", JSON.stringify(map));
      paths.forEach(function (path, i) { form.append(String(i), files[path], files[path].name); });
      return fetch("/graphql", {method: "POST", headers: api.headers(), body: form}).then(api.body);
    },
    body: function (r) {
      return r.text().then(function (t) {
        try { return JSON.parse(t); } catch (e) { return {errors: [{message: "HTTP " + r.status + ": " + t.slice(0, 200)}]}; }
      });
    },
    errors: function (out) { return (out.errors || []).map(function (e) { return e.message; }).join("; "); },
    text: function (el, s) { el.textContent = s; return el; },
    el: function (tag, attrs, text) {
      var e = document.createElement(tag);
      Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
      if (text !== undefined && text !== null) { e.textContent = String(text); }
      return e;
    },
    bindToken: function (onChange) {
      var form = document.getElementById("token-form");
      var input = document.getElementById("token");
      var status = document.getElementById("token-status");
      var out = document.getElementById("signout");
      function show() {
        status.textContent = api.token() ? "Token set for this tab." : "No token: you can look, not change.";
        if (out) { out.hidden = !api.token(); }
        if (onChange) { onChange(); }
      }
      form.addEventListener("submit", function (ev) {
        ev.preventDefault(); api.setToken(input.value.trim()); input.value = ""; show();
      });
      if (out) { out.addEventListener("click", function () { api.setToken(""); show(); }); }
      show();
    }
  };
  window.fundtrackApi = api;
}());
