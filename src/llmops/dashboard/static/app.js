/* LLMOps dashboard behaviour: charts, the column chooser, clickable rows, tidy filter URLs.
 *
 * No inline script anywhere (the pages' CSP is script-src 'self'): page data arrives in
 * <script type="application/json"> blocks, read here. Listeners are delegated to the document,
 * so they keep working on content that htmx swaps in.
 */
(function () {
  "use strict";

  var PALETTE = ["#3b5bdb", "#f08c00", "#2f9e44", "#c2255c", "#7048e8", "#1098ad", "#868e96"];
  var COLUMNS_KEY = "llmops.requests.hiddenColumns";

  /* --- numbers, as format.py shows them -------------------------------------------------- */

  function money(micro) {
    if (micro == null) return "—";
    var d = micro / 1e6, a = Math.abs(d), sign = d < 0 ? "-" : "";
    if (a === 0) return "$0";
    if (a >= 1) return sign + "$" + a.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
    if (a < 0.000001) return "<$0.000001";
    return sign + "$" + String(Number(a.toPrecision(3)));
  }

  function tokens(n) {
    if (n == null) return "—";
    var a = Math.abs(n), steps = [[1e9, "B"], [1e6, "M"], [1e3, "k"]];
    for (var i = 0; i < steps.length; i++) {
      if (a >= steps[i][0]) {
        var v = n / steps[i][0];
        return (Math.abs(v) >= 100 ? v.toFixed(0) : String(Number(v.toFixed(1)))) + steps[i][1];
      }
    }
    return String(Math.round(n));
  }

  function count(n) {
    return n == null ? "—" : Math.round(n).toLocaleString("en-US");
  }

  var FORMATS = {usd_micro: money, tokens: tokens, count: count};
  var EMPTY_MAX = {usd_micro: 10000};  // an empty money chart still reads $0 to $0.01

  function tick(unit, v, incr) {
    // Axis labels: as many decimals as the tick step needs, so no two ticks look the same.
    if (unit !== "usd_micro") return unit === "tokens" ? tokens(v) : count(v);
    var step = incr / 1e6, places = Math.min(6, Math.max(2, Math.ceil(-Math.log10(step))));
    return "$" + (v / 1e6).toFixed(v === 0 ? 0 : places);
  }

  /* --- charts ---------------------------------------------------------------------------- */

  function cssVar(name, fallback) {
    var v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  function drawChart(el) {
    var source = document.getElementById(el.getAttribute("data-chart"));
    if (!source || typeof uPlot === "undefined") return;
    var spec = JSON.parse(source.textContent);
    var fmt = FORMATS[spec.unit] || count;
    var muted = cssVar("--muted", "#5f6b7a"), grid = cssVar("--border", "#d6dae1");
    var many = spec.series.length > 2;
    var series = [{value: function (u, ts) { return ts == null ? "—" : utcLabel(ts, spec.x); }}];
    spec.series.forEach(function (s, i) {
      var color = PALETTE[i % PALETTE.length];
      series.push({
        label: s.label,
        stroke: color,
        width: many && i === 0 ? 2.5 : 2,
        fill: spec.series.length === 1 ? color + "22" : undefined,
        points: {show: spec.x.length <= 48, size: 5},
        value: function (u, v) { return fmt(v); }
      });
    });
    var axis = {stroke: muted, grid: {stroke: grid, width: 1}, ticks: {stroke: grid, width: 1}};
    var opts = {
      width: Math.max(el.clientWidth, 200),
      height: el.classList.contains("tall") ? 280 : 220,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      scales: {x: {time: true}, y: {range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : EMPTY_MAX[spec.unit] || 5]; }}},
      series: series,
      axes: [
        Object.assign({}, axis),
        Object.assign({}, axis, {size: 72, values: function (u, vals, i, space, incr) {
          return vals.map(function (v) { return tick(spec.unit, v, incr); });
        }})
      ],
      cursor: {drag: {x: false, y: false}},
      legend: {live: true}
    };
    var data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
    var plot = new uPlot(opts, data, el);
    if (typeof ResizeObserver !== "undefined") {
      new ResizeObserver(function () {
        var width = Math.max(el.clientWidth, 200);
        if (width !== plot.width) plot.setSize({width: width, height: opts.height});
      }).observe(el);
    }
  }

  function utcLabel(ts, xs) {
    var iso = new Date(ts * 1000).toISOString();
    var daily = xs.length > 1 && xs[1] - xs[0] >= 86400;
    return daily ? iso.slice(0, 10) : iso.slice(0, 10) + " " + iso.slice(11, 16) + " UTC";
  }

  /* --- the column chooser, remembered in this browser ------------------------------------ */

  function hiddenColumns() {
    try {
      var value = JSON.parse(localStorage.getItem(COLUMNS_KEY) || "[]");
      return Array.isArray(value) ? value : [];
    } catch (e) {
      return [];
    }
  }

  function applyColumns() {
    var hidden = hiddenColumns();
    document.querySelectorAll("[data-requests-table] [data-col]").forEach(function (cell) {
      cell.hidden = hidden.indexOf(cell.getAttribute("data-col")) >= 0;
    });
    document.querySelectorAll("[data-column-toggle]").forEach(function (box) {
      box.checked = hidden.indexOf(box.value) < 0;
    });
  }

  function saveColumns() {
    var hidden = [];
    document.querySelectorAll("[data-column-toggle]").forEach(function (box) {
      if (!box.checked) hidden.push(box.value);
    });
    try {
      localStorage.setItem(COLUMNS_KEY, JSON.stringify(hidden));
    } catch (e) { /* storage disabled: the choice lasts until the page reloads */ }
    applyColumns();
  }

  /* --- events ---------------------------------------------------------------------------- */

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches("[data-column-toggle]")) {
      saveColumns();
    } else if (target.matches("select[data-autosubmit]") && target.form) {
      target.form.requestSubmit();
    }
  });

  document.addEventListener("submit", function (event) {
    // Leave empty fields out of the URL, and let typed dates replace the range preset.
    var form = event.target;
    if ((form.method || "get").toLowerCase() !== "get") return;
    var custom = Array.prototype.some.call(form.querySelectorAll("[data-custom-range]"), function (input) {
      return input.value;
    });
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!field.name) return;
      if (!field.value || (custom && field.name === "range")) {
        field.disabled = true;
        field.setAttribute("data-off-for-submit", "");
      }
    });
  });

  window.addEventListener("pageshow", function () {
    document.querySelectorAll("[data-off-for-submit]").forEach(function (field) {
      field.disabled = false;
      field.removeAttribute("data-off-for-submit");
    });
  });

  document.addEventListener("click", function (event) {
    // Copy buttons (the new secret, code snippets): copy the target's value or text.
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var source = document.querySelector(copy.getAttribute("data-copy"));
      if (!source) return;
      var text = source.value != null && source.tagName === "INPUT" ? source.value : source.textContent;
      if (source.select) source.select();
      var done = function () { copy.textContent = "Copied"; };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, function () { /* select it instead */ });
      }
      return;
    }
    var row = event.target.closest("tr[data-href]");
    if (!row || event.target.closest("a, button, input, select, label")) return;
    if (window.getSelection && String(window.getSelection())) return;  // selecting text
    if (event.ctrlKey || event.metaKey) {
      window.open(row.getAttribute("data-href"), "_blank");
    } else {
      window.location.href = row.getAttribute("data-href");
    }
  });

  document.addEventListener("keydown", function (event) {
    // Enter in the tag search picks the first suggestion.
    if (event.key !== "Enter" || !event.target.matches("#tag-search")) return;
    event.preventDefault();
    var first = document.querySelector("#tag-suggestions a.suggestion");
    if (first) window.location.href = first.href;
  });

  document.addEventListener("htmx:afterSettle", applyColumns);

  document.addEventListener("DOMContentLoaded", function () {
    applyColumns();
    document.querySelectorAll("[data-chart]").forEach(drawChart);
  });
})();
