// Apiary console: small progressive enhancements. Everything works as plain forms without it, except the
// Test pane and upload progress. Data is only ever written with textContent, never innerHTML.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Destructive actions ask first.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // Copy buttons (the one-time key reveal).
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var input = document.querySelector(button.getAttribute("data-copy"));
      input.select();
      var done = function () { button.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
    });
  });

  // Pages with work in progress (training runs) refresh themselves until it is done.
  var main = document.querySelector("main[data-refresh-seconds]");
  if (main) {
    window.setTimeout(function () { window.location.reload(); }, 1000 * Number(main.getAttribute("data-refresh-seconds")));
  }

  // Endpoint editor: show only the fields of the chosen kind.
  var kindSwitch = document.querySelector("[data-kind-switch]");
  if (kindSwitch) {
    var showKind = function () {
      document.querySelectorAll("fieldset[data-kind]").forEach(function (set) {
        var kinds = set.getAttribute("data-kind").split(" ");
        set.hidden = kinds.indexOf(kindSwitch.value) === -1;
        set.disabled = set.hidden;
      });
    };
    kindSwitch.addEventListener("change", showKind);
    showKind();
  }

  // Model endpoint editor: another blank enrichment block (the form works without it: one blank block is always
  // there). A block is a copy of the <template> with its number written into ids, names and labels.
  var addEnrichment = document.getElementById("add-enrichment");
  var enrichmentTemplate = document.getElementById("enrichment-template");
  if (addEnrichment && enrichmentTemplate) {
    addEnrichment.hidden = false;
    addEnrichment.addEventListener("click", function () {
      var holder = document.querySelector("[data-enrichments]");
      var n = holder.querySelectorAll("[data-enrichment]").length;
      while (document.querySelector('[name="enr-' + n + '-dataset"]')) { n += 1; }
      var block = enrichmentTemplate.content.firstElementChild.cloneNode(true);
      [block].concat(Array.prototype.slice.call(block.querySelectorAll("*"))).forEach(function (el) {
        ["id", "name", "for", "data-enrichment"].forEach(function (attr) {
          var value = el.getAttribute(attr);
          if (value && value.indexOf("__N__") !== -1) { el.setAttribute(attr, value.split("__N__").join(String(n))); }
        });
      });
      holder.appendChild(block);
      block.querySelector("select").focus();
    });
  }

  // Test pane: a model answer's explanations as horizontal bars (SVG built with createElementNS and textContent).
  var SVG = "http://www.w3.org/2000/svg";
  var svgEl = function (name, attrs, text) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (key) { el.setAttribute(key, String(attrs[key])); });
    if (text !== undefined) { el.textContent = text; }
    return el;
  };
  var fmt = function (x) { return Number(Number(x).toPrecision(4)).toString(); };  // 4 significant digits
  var explanationChart = function (index, explanation) {
    var box = document.createElement("div");
    box.className = "explain-row";
    box.setAttribute("data-explain-row", String(index));
    var title = document.createElement("h4");
    title.textContent = "Row " + index + ": output " + fmt(explanation.output) + " = base " + fmt(explanation.base) +
      " + contributions";
    box.appendChild(title);
    var bars = Object.keys(explanation.contributions || {}).map(function (name) {
      return { name: name, value: Number(explanation.contributions[name]) };
    }).sort(function (a, b) { return Math.abs(b.value) - Math.abs(a.value); });
    if (explanation.others) { bars.push({ name: "(others)", value: Number(explanation.others), others: true }); }
    var max = bars.reduce(function (m, b) { return Math.max(m, Math.abs(b.value)); }, 0) || 1;
    var rowH = 22, labelW = 150, barW = 260, valueW = 80, mid = labelW + barW / 2;
    var svg = svgEl("svg", { "class": "explain-chart", role: "img", viewBox: "0 0 " + (labelW + barW + valueW) + " " +
      (rowH * (bars.length + 1) + 4), "aria-label": "Contributions of row " + index });
    bars.forEach(function (bar, i) {
      var y = i * rowH + 2, width = Math.max(1, (Math.abs(bar.value) / max) * (barW / 2 - 4));
      var g = svgEl("g", { "data-feature": bar.name, "data-value": bar.value });
      g.appendChild(svgEl("text", { x: labelW - 6, y: y + 14, "text-anchor": "end" }, bar.name));
      g.appendChild(svgEl("rect", { x: bar.value >= 0 ? mid : mid - width, y: y + 3, width: width, height: rowH - 8,
        "class": bar.value >= 0 ? "bar-pos" : "bar-neg" }));
      g.appendChild(svgEl("text", { x: labelW + barW + 4, y: y + 14, "class": "bar-value" }, (bar.value >= 0 ? "+" : "") + fmt(bar.value)));
      svg.appendChild(g);
    });
    svg.appendChild(svgEl("line", { "class": "axis", x1: mid, x2: mid, y1: 0, y2: rowH * bars.length + 2 }));
    svg.appendChild(svgEl("text", { x: labelW - 6, y: rowH * bars.length + 16, "text-anchor": "end", "data-base": explanation.base },
      "base"));
    svg.appendChild(svgEl("text", { x: labelW + barW + 4, y: rowH * bars.length + 16, "class": "base-value" }, fmt(explanation.base)));
    box.appendChild(svg);
    return box;
  };
  var renderExtras = function (holder, body) {
    while (holder.firstChild) { holder.removeChild(holder.firstChild); }
    if (!body || typeof body !== "object") { return; }
    var addLine = function (attr, label, value) {
      var p = document.createElement("p");
      p.className = "test-extra small";
      p.setAttribute(attr, "");
      var strong = document.createElement("strong");
      strong.textContent = label + " ";
      var code = document.createElement("span");
      code.className = "mono";
      code.textContent = typeof value === "string" ? value : JSON.stringify(value);
      p.appendChild(strong);
      p.appendChild(code);
      holder.appendChild(p);
      return p;
    };
    if (body.context !== undefined) { addLine("data-result-context", "Context (audited, never scored):", body.context); }
    (Array.isArray(body.predictions) ? body.predictions : []).forEach(function (prediction, i) {
      if (prediction && typeof prediction === "object" && prediction.ignored) {
        addLine("data-ignored-row", "Row " + i + " ignored:", prediction.reason || "").classList.add("ignored-row");
      }
    });
    var explanations = body.explanations;
    if (explanations && !Array.isArray(explanations)) { explanations = [explanations]; }
    (explanations || []).forEach(function (explanation, i) {
      if (explanation && typeof explanation === "object" && explanation.contributions) {
        holder.appendChild(explanationChart(i, explanation));
      }
    });
  };

  // Training form: target columns of the chosen dataset, algorithms of the chosen task.
  var trainForm = document.getElementById("train-form");
  if (trainForm) {
    var columns = JSON.parse(document.getElementById("dataset-columns").textContent);
    var algorithms = JSON.parse(document.getElementById("algorithms").textContent);
    var fill = function (select, names) {
      var keep = select.value || select.getAttribute("data-selected");
      while (select.firstChild) { select.removeChild(select.firstChild); }
      names.forEach(function (name) {
        var option = document.createElement("option");
        option.value = name;
        option.textContent = name;
        if (name === keep) { option.selected = true; }
        select.appendChild(option);
      });
    };
    var table = trainForm.querySelector('[name="input_table"]');
    var target = trainForm.querySelector('[name="target_column"]');
    var task = trainForm.querySelector('[name="task_type"]');
    var algorithm = trainForm.querySelector('[name="algorithm"]');
    // Defaults per dataset: a target and features that are never ids, free text or person names. The features
    // field follows the dataset and the target until the user types in it.
    var defaults = JSON.parse(document.getElementById("train-defaults").textContent);
    var features = trainForm.querySelector('[name="feature_columns"]');
    var featuresTyped = false;
    features.addEventListener("input", function () { featuresTyped = true; });
    var suggestFeatures = function () {
      var d = defaults[table.value];
      if (!d || featuresTyped) { return; }
      features.value = d.usable.filter(function (name) { return name !== target.value; }).join(", ");
    };
    var sync = function () {
      fill(target, columns[table.value] || []);
      fill(algorithm, algorithms[task.value] || []);
    };
    table.addEventListener("change", function () {
      var d = defaults[table.value];
      target.value = "";
      target.setAttribute("data-selected", d ? d.target : "");
      sync();
      suggestFeatures();
    });
    target.addEventListener("change", suggestFeatures);
    task.addEventListener("change", function () { algorithm.value = ""; sync(); });
    sync();
  }

  // CSV upload with a progress bar; the server answers JSON to this request.
  var uploadForm = document.getElementById("upload-form");
  if (uploadForm) {
    uploadForm.addEventListener("submit", function (event) {
      if (!window.FormData || !window.XMLHttpRequest) { return; }
      event.preventDefault();
      var box = document.getElementById("upload-progress");
      var bar = box.querySelector("progress");
      var label = box.querySelector("[data-progress-label]");
      var button = uploadForm.querySelector('button[type="submit"]');
      uploadForm.querySelectorAll(".js-error").forEach(function (el) { el.remove(); });
      uploadForm.querySelectorAll(".has-error").forEach(function (el) { el.classList.remove("has-error"); });
      box.hidden = false;
      button.disabled = true;
      var xhr = new XMLHttpRequest();
      xhr.open("POST", uploadForm.action);
      xhr.setRequestHeader("X-CSRF-Token", csrfToken());
      xhr.setRequestHeader("X-Requested-With", "fetch");
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          var pct = Math.round((e.loaded / e.total) * 100);
          bar.value = pct;
          label.textContent = pct < 100 ? pct + "%" : "Loading into the warehouse…";
        }
      });
      xhr.addEventListener("load", function () {
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (err) { body = null; }
        if (body && body.ok) { window.location.assign(body.redirect); return; }
        button.disabled = false;
        box.hidden = true;
        var errors = (body && body.errors) || { "": [(body && body.error && body.error.message) || "Upload failed (" + xhr.status + ")."] };
        Object.keys(errors).forEach(function (field) {
          var input = field ? uploadForm.querySelector('[name="' + CSS.escape(field) + '"]') : null;
          var holder = input ? input.closest(".field") : uploadForm;
          (errors[field] || []).forEach(function (message) {
            var p = document.createElement("p");
            p.className = "field-error js-error";
            p.setAttribute("role", "alert");
            p.textContent = message;
            if (input) { holder.classList.add("has-error"); holder.appendChild(p); } else { uploadForm.prepend(p); }
          });
        });
      });
      xhr.addEventListener("error", function () {
        button.disabled = false;
        label.textContent = "The upload was interrupted. Try again.";
      });
      xhr.send(new FormData(uploadForm));
    });
  }

  // Test pane: send JSON to the dry run, show the status, latency and JSON result.
  var pane = document.getElementById("test-pane");
  if (pane) {
    var select = pane.querySelector("#test-endpoint");
    var bodyInput = pane.querySelector("#test-body");
    var hint = pane.querySelector("[data-test-hint]");
    var error = pane.querySelector("[data-test-error]");
    var result = document.getElementById("test-result");
    var loadExample = function () {
      var option = select.options[select.selectedIndex];
      bodyInput.value = option.getAttribute("data-example") || "{}";
      hint.textContent = "(" + option.getAttribute("data-hint") + ")";
    };
    select.addEventListener("change", loadExample);
    loadExample();
    pane.addEventListener("submit", function (event) {
      event.preventDefault();
      error.hidden = true;
      var payload;
      try {
        payload = bodyInput.value.trim() ? JSON.parse(bodyInput.value) : null;
      } catch (err) {
        error.textContent = "Not valid JSON: " + err.message;
        error.hidden = false;
        return;
      }
      var button = pane.querySelector('button[type="submit"]');
      button.disabled = true;
      fetch(pane.getAttribute("data-url"), {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken(), "X-Requested-With": "fetch" },
        body: JSON.stringify({ endpoint_id: select.value, body: payload })
      }).then(function (response) {
        return response.json().then(function (data) {
          if (data.status === undefined) { data = { status: response.status, latency_ms: null, body: data }; }
          return data;
        });
      }).then(function (data) {
        var badge = result.querySelector("[data-result-status]");
        badge.textContent = String(data.status);
        badge.className = "badge " + (data.status < 400 ? "badge-published" : "badge-revoked");
        result.querySelector("[data-result-latency]").textContent =
          data.latency_ms === null ? "" : data.latency_ms + " ms";
        renderExtras(result.querySelector("[data-result-extras]"), data.body);
        result.querySelector("[data-result-body]").textContent = JSON.stringify(data.body, null, 2);
        result.hidden = false;
      }).catch(function (err) {
        error.textContent = "The request failed: " + err.message;
        error.hidden = false;
      }).finally(function () { button.disabled = false; });
    });
  }
})();
