// Live updates for the incident list over the ws/dashboard/ websocket.
//
// The server sends a snapshot on connect and then one typed message per
// change, each with a sequence number. A skipped number or a reconnect makes
// the page ask for a fresh snapshot, so no change is lost while it was away.
(function () {
  "use strict";

  const config = document.getElementById("dashboard");
  const status = document.getElementById("live-status");
  if (!config || !status || !("WebSocket" in window)) {
    return;
  }

  const HEARTBEAT_MS = Number(config.dataset.heartbeatSeconds || 15) * 1000;
  const MAX_MISSED_PONGS = 2;
  const FIRST_RETRY_MS = 500;
  const MAX_RETRY_MS = 15000;
  // Codes the consumer closes with when the user may not see the list.
  const REFUSALS = {
    4401: "offline: signed out, reload the page to sign in",
    4403: "offline: you may not view incidents",
  };

  const liveRows = config.dataset.liveRows === "true";
  const canDecide = config.dataset.canDecide === "true";
  const csrfInput = config.querySelector("input[name=csrfmiddlewaretoken]");
  const csrfToken = csrfInput ? csrfInput.value : "";

  let socket = null;
  let lastSeq = null;
  let awaitingPong = false;
  let missedPongs = 0;
  let heartbeat = null;
  let retries = 0;

  function showStatus(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + config.dataset.socketPath);
    socket.addEventListener("open", onOpen);
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", onClose);
  }

  function onOpen() {
    retries = 0;
    awaitingPong = false;
    missedPongs = 0;
    clearInterval(heartbeat);
    heartbeat = setInterval(beat, HEARTBEAT_MS);
    showStatus("live", "live");
  }

  function onClose(event) {
    clearInterval(heartbeat);
    if (event.target !== socket) {
      return;
    }
    socket = null;
    if (REFUSALS[event.code]) {
      showStatus("refused", REFUSALS[event.code]);
      return;
    }
    scheduleReconnect();
  }

  function scheduleReconnect() {
    // Exponential backoff with jitter, so a restarted server is not hit by
    // every open page in the same instant.
    const base = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** retries);
    const delay = base / 2 + Math.random() * (base / 2);
    retries += 1;
    showStatus("reconnecting", "reconnecting…");
    setTimeout(connect, delay);
  }

  function beat() {
    if (awaitingPong) {
      missedPongs += 1;
      if (missedPongs >= MAX_MISSED_PONGS) {
        dropDeadSocket();
        return;
      }
    }
    send({ type: "ping" });
    awaitingPong = true;
  }

  function dropDeadSocket() {
    // A dead connection may take minutes to report its close, so stop
    // listening to it and reconnect at once.
    const dead = socket;
    socket = null;
    clearInterval(heartbeat);
    if (dead) {
      dead.close();
    }
    scheduleReconnect();
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(message));
    }
  }

  function requestSnapshot() {
    send({ type: "resume", after: lastSeq });
  }

  function onMessage(event) {
    const message = JSON.parse(event.data);
    if (message.type === "pong") {
      awaitingPong = false;
      missedPongs = 0;
    } else if (message.type === "snapshot") {
      applySnapshot(message);
    } else if (message.incident) {
      applyChange(message);
    }
  }

  function applySnapshot(message) {
    lastSeq = message.seq;
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
    if (lastSeq !== null && message.seq <= lastSeq) {
      return; // Already part of a newer snapshot.
    }
    const gap = lastSeq !== null && message.seq > lastSeq + 1;
    lastSeq = message.seq;
    if (liveRows) {
      updateRow(message.incident);
    } else {
      replaceExistingRow(message.incident);
    }
    if (gap) {
      requestSnapshot();
    }
  }

  function rowsBody() {
    return document.getElementById("incident-rows");
  }

  function buildRow(entry) {
    const template = document.createElement("template");
    template.innerHTML = entry.html;
    const row = template.content.firstElementChild;
    if (!canDecide) {
      row.querySelectorAll(".decide-buttons").forEach((node) => node.remove());
    }
    return row;
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
    heading.colSpan = 10;
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

  async function decide(button) {
    const box = button.closest(".pending-approval");
    const result = document.getElementById("decide-result");
    const action = box.querySelector("a").textContent;
    box.querySelectorAll("button.decide").forEach((node) => (node.disabled = true));
    result.textContent = "sending…";

    const body = new URLSearchParams({ decision: button.dataset.decision, comment: "" });
    try {
      const response = await fetch(button.dataset.decideUrl, {
        method: "POST",
        headers: { "X-CSRFToken": csrfToken },
        body: body,
        credentials: "same-origin",
        // Success redirects to the approval page, which needs another
        // permission, so the redirect itself is the success signal.
        redirect: "manual",
      });
      const decided = response.type === "opaqueredirect" || response.ok;
      const verb = button.dataset.decision === "approve" ? "approved" : "rejected";
      result.textContent = decided
        ? "You " + verb + " " + action + "."
        : "The decision on " + action + " failed (HTTP " + response.status +
          "): open the approval for details.";
    } catch (error) {
      result.textContent =
        "The decision on " + action + " was not sent (" + error.message + "): try again.";
    }
    box.querySelectorAll("button.decide").forEach((node) => (node.disabled = false));
    // The decision changes rows through QuerySet.update(), which may send no
    // message, so fetch the list again.
    requestSnapshot();
  }

  const table = rowsBody();
  if (table) {
    table.addEventListener("click", (event) => {
      const button = event.target.closest("button.decide");
      if (button) {
        decide(button);
      }
    });
    if (!canDecide) {
      table.querySelectorAll(".decide-buttons").forEach((node) => node.remove());
    }
  }
  connect();
})();
