// Draw the Sankey from the JSON the server embedded; the table stays the accessible source.
(function () {
  "use strict";
  var el = document.getElementById("sankey");
  var src = document.getElementById("sankey-data");
  var me = document.currentScript;
  // Changing a filter reloads the page with it (the Apply button does the same without JS).
  document.querySelectorAll("form.filters select").forEach(function (s) {
    s.addEventListener("change", function () { if (!s.disabled) { s.form.submit(); } });
  });
  if (!el || !src) { return; }
  // plotly (1.5 MB compressed, cached for a year) loads after the page and its table are
  // usable, so a slow link shows the figures first and the picture when it arrives.
  el.textContent = "Loading the chart…";
  var script = document.createElement("script");
  script.src = me.getAttribute("data-plotly");
  script.onload = function () { el.textContent = ""; draw(JSON.parse(src.textContent)); };
  script.onerror = function () { el.textContent = "The chart could not load; the table below has every band."; };
  document.head.appendChild(script);
}());

function draw(d) {
  "use strict";
  var fmt = new Intl.NumberFormat("en", {maximumFractionDigits: 0});
  var custom = d.exact.map(function (x) { return fmt.format(Number(x)); });
  var el = document.getElementById("sankey");
  var trace = {
    type: "sankey", orientation: "h", valueformat: ",.0f", valuesuffix: " USD",
    node: {label: d.labels, pad: 12, thickness: 14, line: {color: "#333", width: 0.5},
           color: "#2b5c8a"},
    link: {source: d.source, target: d.target, value: d.value, customdata: custom,
           color: "rgba(43, 92, 138, 0.28)",
           hovertemplate: "%{source.label} → %{target.label}<br>%{customdata} USD<extra></extra>"}
  };
  var height = Math.max(420, Math.min(1400, d.labels.length * 22));
  window.Plotly.newPlot(el, [trace], {
    height: height, margin: {l: 8, r: 8, t: 8, b: 8}, font: {size: 12, color: "#1a1a1a"}
  }, {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"]})
    .then(function () { el.setAttribute("data-ready", "1"); });
}
