// Canopy console: the few behaviours HTML cannot do alone. Every page works without this
// file; it only makes menus close, copy buttons copy, the connect form show one provider's
// fields, typed confirmations arm their button, and charts draw.
(function () {
  "use strict";

  var PALETTE = ["#3451d1", "#d9480f", "#12a150", "#b5179e", "#0c8599",
    "#e8a200", "#6741d9", "#c92a2a", "#5c7080", "#2b8a3e"];

  function each(root, selector, fn) {
    Array.prototype.forEach.call(root.querySelectorAll(selector), fn);
  }

  // Menus are <details>: close the open one on an outside click or Escape, one at a time.
  function closeMenus(except) {
    each(document, "details.menu[open], details.confirm[open]", function (d) {
      if (d !== except && !d.contains(except)) { d.removeAttribute("open"); }
    });
  }
  document.addEventListener("click", function (e) {
    var inside = e.target.closest && e.target.closest("details.menu, details.confirm");
    closeMenus(inside);
  });
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") { return; }
    var open = document.querySelector("details.menu[open], details.confirm[open]");
    if (open) {
      open.removeAttribute("open");
      var summary = open.querySelector("summary");
      if (summary) { summary.focus(); }
    }
  });

  // Copy buttons: data-copy names the element whose text is copied.
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("[data-copy]");
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) { return; }
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      var label = button.textContent;
      button.textContent = "Copied";
      button.setAttribute("aria-live", "polite");
      setTimeout(function () { button.textContent = label; }, 1600);
    });
  });

  // The connect form shows the chosen provider's fields only.
  function showProvider(form) {
    var checked = form.querySelector("input[name=provider]:checked");
    if (!checked) { return; }
    each(form, "[data-provider]", function (group) {
      group.hidden = group.getAttribute("data-provider") !== checked.value;
    });
  }

  // A typed confirmation arms its button once the expected text is typed.
  function armConfirm(form) {
    var input = form.querySelector("[data-expect]");
    var button = form.querySelector("button[type=submit]");
    if (!input || !button) { return; }
    var check = function () {
      button.disabled = input.value.trim() !== input.getAttribute("data-expect");
    };
    input.addEventListener("input", check);
    check();
  }

  // Charts: one line per account from the JSON in data-chart; the legend toggles lines.
  function drawCharts(root) {
    if (!window.uPlot) { return; }
    each(root, "[data-chart]", function (el) {
      if (el.getAttribute("data-drawn")) { return; }
      var data = JSON.parse(el.getAttribute("data-chart"));
      var series = [{}];
      var columns = [data.x];
      // A percent chart keeps its decimals and its unit; a count chart reads in whole numbers.
      var show = data.unit === "%"
        ? function (v) { return v.toFixed(1) + "%"; }
        : function (v) { return Math.round(v).toLocaleString(); };
      data.series.forEach(function (s) {
        var colour = PALETTE[s.swatch % PALETTE.length];
        series.push({ label: s.label, stroke: colour, width: 2, points: { show: data.x.length < 40 },
          value: function (u, v) { return v == null ? "–" : show(v); } });
        columns.push(s.values);
      });
      var scales = { x: { time: true } };
      if (data.range) { scales.x.range = function () { return data.range; }; }
      if (data.unit === "%") { scales.y = { range: [0, 100] }; }
      var width = function () { return Math.max(el.clientWidth, 280); };
      var plot = new window.uPlot({
        width: width(),
        height: 300,
        series: series,
        legend: { live: true },
        cursor: { drag: { x: false, y: false } },
        scales: scales,
        axes: [
          { stroke: "#5f6877", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e3e6eb" } },
          { stroke: "#5f6877", grid: { stroke: "#eef0f3" }, ticks: { stroke: "#e3e6eb" }, size: 60,
            values: function (u, vals) { return vals.map(show); } }
        ]
      }, columns, el);
      el.setAttribute("data-drawn", "1");
      el.setAttribute("data-series", String(data.series.length));
      if (window.ResizeObserver) {
        new ResizeObserver(function () { plot.setSize({ width: width(), height: 300 }); }).observe(el);
      }
      if (window.performance && performance.mark) { performance.mark("canopy:chart-drawn"); }
    });
  }

  // The wizard's tree: checking a node checks its subtree, and a node whose boxes are partly
  // checked shows it (indeterminate) and is left out of the form, its checked parts sent
  // instead. Members loaded later take their node's state.
  function boxesBelow(node) {
    var list = node.querySelector(":scope > details > ul");
    return list ? list.querySelectorAll("input[type=checkbox]:not(:disabled)") : [];
  }
  function settle(tree) {
    var nodes = Array.prototype.slice.call(tree.querySelectorAll("li.tree-node")).reverse();
    nodes.forEach(function (node) {
      var box = node.querySelector(":scope > input[data-node]");
      var list = node.querySelector(":scope > details > ul");
      if (!box || !list) { return; }
      var kids = list.querySelectorAll(":scope > li > label > input:not(:disabled), :scope > li.tree-node > input[data-node]");
      if (!kids.length) { return; }
      var on = 0, mixed = false;
      kids.forEach(function (k) { if (k.checked) { on++; } if (k.indeterminate) { mixed = true; } });
      box.checked = on === kids.length && !mixed;
      box.indeterminate = !box.checked && (on > 0 || mixed);
    });
    var form = tree.closest("form");
    var count = form && form.querySelector("[data-selected-count]");
    if (count) {
      var picked = tree.querySelectorAll("input[name=account]:checked").length;
      var whole = tree.querySelectorAll("input[data-node]:checked").length;
      count.textContent = whole || picked ? (whole ? whole + " OU or folder(s) and " : "") + picked + " account(s) chosen" : "";
    }
  }
  function armTree(tree) {
    document.documentElement.classList.add("tree-live");
    tree.addEventListener("change", function (e) {
      var box = e.target;
      if (box.hasAttribute("data-node")) {
        boxesBelow(box.closest("li.tree-node")).forEach(function (b) { b.checked = box.checked; b.indeterminate = false; });
      }
      settle(tree);
    });
    // A partly checked node is not sent: only its checked parts are.
    tree.closest("form").addEventListener("submit", function () {
      tree.querySelectorAll("input[data-node]").forEach(function (b) { b.disabled = b.indeterminate; });
      tree.querySelectorAll("li.tree-node").forEach(function (node) {
        var box = node.querySelector(":scope > input[data-node]");
        if (box && box.checked) { boxesBelow(node).forEach(function (b) { b.disabled = true; }); }
      });
    });
  }

  // The technique picker: the catalog list narrows as one types or picks a tactic, and Enter
  // in the search box searches instead of saving the form.
  function armPicker(picker) {
    var q = picker.querySelector("[data-picker-q]");
    var tactic = picker.querySelector("[data-picker-tactic]");
    var count = picker.querySelector("[data-picker-count]");
    var narrow = function () {
      var text = q.value.trim().toLowerCase();
      var t = tactic.value;
      var shown = 0;
      each(picker, "[data-pick]", function (li) {
        var hit = (!text || li.getAttribute("data-text").indexOf(text) !== -1) &&
          (!t || (" " + li.getAttribute("data-tactics") + " ").indexOf(" " + t + " ") !== -1);
        li.hidden = !hit;
        if (hit) { shown++; }
      });
      if (count) { count.textContent = String(shown); }
    };
    q.addEventListener("input", narrow);
    tactic.addEventListener("change", narrow);
    q.addEventListener("keydown", function (e) {
      if (e.key === "Enter") { e.preventDefault(); narrow(); }
    });
  }

  function enhance(root) {
    each(root, "[data-picker]", armPicker);
    each(root, "[data-tree]", armTree);
    each(root, "form", function (form) {
      if (form.querySelector("input[name=provider]")) {
        showProvider(form);
        form.addEventListener("change", function () { showProvider(form); });
      }
      if (form.hasAttribute("data-typed-confirm")) { armConfirm(form); }
    });
    drawCharts(root);
  }

  document.addEventListener("DOMContentLoaded", function () { enhance(document); });

  // The dashboard's filters fetch the figures with htmx; the address bar follows them so the
  // view can be bookmarked, and Back shows the previous filters.
  document.addEventListener("htmx:afterSwap", function (e) {
    var target = e.detail.target;
    if (target) { target.setAttribute("aria-busy", "false"); drawCharts(target); }
    var node = target && target.closest && target.closest("li.tree-node");
    if (node) {
      var box = node.querySelector(":scope > input[data-node]");
      if (box && box.checked) { boxesBelow(node).forEach(function (b) { b.checked = true; }); }
      settle(node.closest("[data-tree]"));
    }
    var form = e.detail.requestConfig && e.detail.requestConfig.elt;
    if (form && form.closest) { form = form.closest("form[data-push]"); }
    if (form) {
      var query = new URLSearchParams(new FormData(form)).toString();
      history.pushState({ canopy: true }, "", form.getAttribute("data-push") + "?" + query);
    }
  });
  document.addEventListener("htmx:beforeRequest", function (e) {
    var target = e.detail.target;
    if (target && target.id === "figures") { target.setAttribute("aria-busy", "true"); }
  });
  // A fragment that failed (the database away, the session ended) says so where the figures
  // would be, with a way to try again, instead of a loader that never ends.
  function fragmentFailed(e) {
    var target = e.detail.target;
    if (!target || target.id !== "figures") { return; }
    var xhr = e.detail.xhr;
    if (xhr && xhr.status === 401) { location.reload(); return; }
    var box = document.createElement("div");
    box.className = "alert alert-error";
    box.setAttribute("role", "alert");
    var text = document.createElement("p");
    text.textContent = xhr && xhr.status === 503
      ? "Canopy cannot reach its database right now. Nothing was lost."
      : "The figures could not be loaded.";
    var retry = document.createElement("a");
    retry.className = "button small";
    retry.href = location.href;
    retry.textContent = "Try again";
    box.appendChild(text);
    box.appendChild(retry);
    target.replaceChildren(box);
    target.setAttribute("aria-busy", "false");
  }
  document.addEventListener("htmx:responseError", fragmentFailed);
  document.addEventListener("htmx:sendError", fragmentFailed);
  window.addEventListener("popstate", function (e) {
    if (!e.state || !e.state.htmx) { location.reload(); }
  });
})();
