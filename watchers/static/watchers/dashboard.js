// The incident list: rows applied from the live stream (live.js), approve
// and reject buttons, and ages that keep counting between updates.
//
// Row and summary HTML come from the server's own templates, which escape
// every label and name and add approve and reject buttons only for users
// who may decide. Values of a "values" message are set with textContent.
(function () {
  "use strict";

  const config = document.getElementById("dashboard");
  const status = document.getElementById("live-status");
  if (!config || !status || !window.BastionLive || !("WebSocket" in window)) {
    return;
  }

  const COLUMNS = 9;
  const AGE_REFRESH_MS = 15000;
  const liveRows = config.dataset.liveRows === "true";
  const csrfInput = config.querySelector("input[name=csrfmiddlewaretoken]");
  const csrfToken = csrfInput ? csrfInput.value : "";

  function applySnapshot(message) {
    applySummary(message);
    if (!liveRows) {
      message.incidents.forEach(replaceExistingRow);
      return;
    }
    const body = rowsBody();
    body.replaceChildren();
    message.incidents
      .filter((entry) => entry.listed)
      .forEach((entry) => placeRow(entry, true));
    refreshEmptyState();
  }

  function applyChange(message) {
    if (message.type === "values") {
      message.values.forEach(updateValues);
      return;
    }
    applySummary(message);
    window.BastionLive.changedIncidents(message).forEach((entry) => {
      if (liveRows) {
        updateRow(entry);
      } else {
        replaceExistingRow(entry);
      }
    });
  }

  // The open count comes with every message that carries rows, because the
  // page may hold only some of the open incidents.
  function applySummary(message) {
    const summary = document.getElementById("open-summary");
    if (summary && typeof message.summary_html === "string") {
      summary.innerHTML = message.summary_html;
    }
  }

  function updateValues(entry) {
    const row = document.getElementById("incident-" + entry.id);
    if (!row) {
      return;
    }
    const value = row.querySelector('[data-cell="value"]');
    const peak = row.querySelector('[data-cell="peak"]');
    if (value) {
      value.textContent = entry.value;
    }
    if (peak) {
      peak.textContent = entry.peak;
    }
  }

  function rowsBody() {
    return document.getElementById("incident-rows");
  }

  function buildRow(entry) {
    const template = document.createElement("template");
    template.innerHTML = entry.html;
    return template.content.firstElementChild;
  }

  function replaceExistingRow(entry) {
    const current = document.getElementById("incident-" + entry.id);
    if (current) {
      current.replaceWith(buildRow(entry));
    }
  }

  function updateRow(entry) {
    const current = document.getElementById("incident-" + entry.id);
    if (current && entry.listed && current.dataset.state === entry.state) {
      current.replaceWith(buildRow(entry));
    } else {
      if (current) {
        current.remove();
      }
      if (entry.listed) {
        placeRow(entry, false);
      }
    }
    removeEmptyGroups();
    refreshEmptyState();
  }

  // NOTE: a new or moved row goes to the top of its section, not to its
  // severity rank. The next snapshot (on reconnect or a gap) restores the
  // server's order.
  function placeRow(entry, atEnd) {
    let anchor = groupRow(entry.state);
    // A snapshot lists rows in the server's order, so each goes last.
    while (atEnd && anchor.nextElementSibling && !anchor.nextElementSibling.dataset.group) {
      anchor = anchor.nextElementSibling;
    }
    anchor.after(buildRow(entry));
  }

  function groupRow(state) {
    const body = rowsBody();
    const existing = body.querySelector('tr[data-group="' + state + '"]');
    if (existing) {
      return existing;
    }
    const row = document.createElement("tr");
    row.className = "group-row";
    row.dataset.group = state;
    const heading = document.createElement("th");
    heading.colSpan = COLUMNS;
    heading.scope = "rowgroup";
    heading.textContent =
      state === "firing" ? "Open" : "Resolved in the last 24 hours";
    row.append(heading);
    if (state === "firing") {
      body.prepend(row);
    } else {
      body.append(row);
    }
    return row;
  }

  function removeEmptyGroups() {
    rowsBody()
      .querySelectorAll("tr[data-group]")
      .forEach((group) => {
        const next = group.nextElementSibling;
        if (!next || next.dataset.group) {
          group.remove();
        }
      });
  }

  function refreshEmptyState() {
    const hasRows = rowsBody().querySelector("tr[data-incident-id]") !== null;
    const wrap = rowsBody().closest(".table-wrap");
    const empty = document.getElementById("empty-state");
    wrap.hidden = !hasRows;
    if (empty) {
      empty.hidden = hasRows;
    }
  }

  // Same units as the server's "age" filter, so a refreshed age reads alike.
  function ageText(seconds) {
    if (seconds < 60) {
      return seconds + " s";
    }
    if (seconds < 3600) {
      return Math.floor(seconds / 60) + " min";
    }
    if (seconds < 48 * 3600) {
      return Math.floor(seconds / 3600) + " h";
    }
    return Math.floor(seconds / 86400) + " d";
  }

  function refreshAges() {
    const now = Date.now();
    rowsBody()
      .querySelectorAll(".age time[datetime]")
      .forEach((node) => {
        const moment = Date.parse(node.getAttribute("datetime"));
        if (!Number.isNaN(moment)) {
          node.textContent = ageText(Math.max(0, Math.floor((now - moment) / 1000)));
        }
      });
  }

  const table = rowsBody();
  if (!table) {
    return;
  }
  const stream = window.BastionLive.connect({
    socketPath: config.dataset.socketPath,
    heartbeatSeconds: config.dataset.heartbeatSeconds,
    status: status,
    onSnapshot: applySnapshot,
    onChange: applyChange,
  });
  table.addEventListener("click", (event) => {
    const button = event.target.closest("button.decide");
    if (button) {
      // The decision's own message updates the row; a snapshot also covers
      // a decision that failed because someone else decided first.
      window.BastionLive.decide(
        button,
        document.getElementById("decide-result"),
        csrfToken,
        stream.requestSnapshot
      );
    }
  });
  setInterval(refreshAges, AGE_REFRESH_MS);
})();
