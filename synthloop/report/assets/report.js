// The records browser (search, kept/dropped and reason filters, paging, a record opened in full) and the
// before/after "changed only" switch. Plain JavaScript: the page works from disk, without any network.
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };

  var changed = $("changed-only");
  if (changed) {
    changed.addEventListener("change", function () {
      document.body.classList.toggle("changed-only", changed.checked);
    });
  }

  var source = $("records-data");
  if (!source) { return; }
  var data = JSON.parse(source.textContent);
  var rows = data.rows, scoreNames = data.scoreNames;
  var state = { query: "", status: "all", reason: "", page: 0, size: 50, open: {} };
  var matching = rows;

  var reasonKind = function (reason) {
    var head = (reason || "").split("(")[0].split(":")[0].trim();
    return head || "(no reason given)";
  };
  data.reasons.forEach(function (reason) {
    var option = document.createElement("option");
    option.value = reason;
    option.textContent = reason;
    $("reason-filter").appendChild(option);
  });

  var haystack = function (row) {
    if (row._h === undefined) {
      row._h = [row.id, row.status, row.reason, row.filter, JSON.stringify(row.record)].join(" ").toLowerCase();
    }
    return row._h;
  };

  var apply = function () {
    var q = state.query.toLowerCase();
    matching = rows.filter(function (row) {
      if (state.status !== "all" && row.status !== state.status) { return false; }
      if (state.reason && (row.status !== "dropped" || reasonKind(row.reason) !== state.reason)) { return false; }
      return !q || haystack(row).indexOf(q) !== -1;
    });
    state.page = 0;
    draw();
  };

  var cell = function (tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (cls) { td.className = cls; }
    tr.appendChild(td);
    return td;
  };

  var draw = function () {
    var pages = Math.max(1, Math.ceil(matching.length / state.size));
    state.page = Math.min(state.page, pages - 1);
    var start = state.page * state.size, end = Math.min(start + state.size, matching.length);
    var body = $("records-table").tBodies[0];
    var fragment = document.createDocumentFragment();
    matching.slice(start, end).forEach(function (row) {
      var tr = document.createElement("tr");
      tr.className = "row " + row.status;
      tr.dataset.id = String(row.id);
      tr.dataset.status = row.status;
      cell(tr, row.id, "id");
      var status = cell(tr, "", "status");
      var badge = document.createElement("span");
      badge.className = "badge " + row.status;
      badge.textContent = row.status;
      status.appendChild(badge);
      cell(tr, row.reason + (row.filter ? " [" + row.filter + "]" : ""), "reason");
      scoreNames.forEach(function (name) {
        var value = row.scores[name];
        cell(tr, value === undefined || value === null ? "" : Number(value).toPrecision(3), "n score");
      });
      cell(tr, row.prompt, "text prompt");
      cell(tr, row.response, "text response");
      fragment.appendChild(tr);
      var key = row.status + ":" + row.id;
      var detail = document.createElement("tr");
      detail.className = "detail";
      detail.hidden = !state.open[key];
      var td = document.createElement("td");
      td.colSpan = 5 + scoreNames.length;
      var pre = document.createElement("pre");
      td.appendChild(pre);
      detail.appendChild(td);
      var fill = function () { if (!pre.textContent) { pre.textContent = JSON.stringify(row.record, null, 2); } };
      if (!detail.hidden) { fill(); tr.classList.add("open"); }
      tr.addEventListener("click", function () {
        state.open[key] = detail.hidden;
        detail.hidden = !detail.hidden;
        tr.classList.toggle("open", !detail.hidden);
        fill();
      });
      fragment.appendChild(detail);
    });
    body.replaceChildren(fragment);
    $("match-count").textContent = matching.length === rows.length
      ? rows.length.toLocaleString("en") + " records"
      : matching.length.toLocaleString("en") + " of " + rows.length.toLocaleString("en") + " records match";
    $("match-count").dataset.count = String(matching.length);
    $("page-info").textContent = matching.length
      ? (start + 1) + "–" + end + " · page " + (state.page + 1) + " of " + pages : "nothing matches";
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
  };

  var timer = null;
  $("search").addEventListener("input", function (event) {
    clearTimeout(timer);
    timer = setTimeout(function () { state.query = event.target.value.trim(); apply(); }, 150);
  });
  $("status-filter").addEventListener("change", function (event) { state.status = event.target.value; apply(); });
  $("reason-filter").addEventListener("change", function (event) { state.reason = event.target.value; apply(); });
  $("page-size").addEventListener("change", function (event) { state.size = Number(event.target.value); draw(); });
  $("prev").addEventListener("click", function () { state.page -= 1; draw(); });
  $("next").addEventListener("click", function () { state.page += 1; draw(); });
  apply();
}());
