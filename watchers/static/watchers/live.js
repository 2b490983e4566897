// The connection to the ws/dashboard/ websocket, shared by the pages that
// update themselves: the incident list and the incident page.
//
// The server sends a snapshot on connect and then one typed message per
// change, each with a sequence number. A skipped number or a reconnect makes
// the page ask for a fresh snapshot, so no change is lost while it was away.
// A ping every heartbeat interval finds a connection that died silently.
(function () {
  "use strict";

  const MAX_MISSED_PONGS = 2;
  const FIRST_RETRY_MS = 500;
  const MAX_RETRY_MS = 15000;
  // Codes the consumer closes with when the user may not see incidents.
  const REFUSALS = {
    4401: "offline: signed out, reload the page to sign in",
    4403: "offline: you may not view incidents",
  };

  // Open the stream and call onSnapshot(message) for each snapshot and
  // onChange(message) for each change in sequence. Returns an object whose
  // requestSnapshot() asks for a fresh snapshot.
  function connect(options) {
    const status = options.status;
    const heartbeatMs = Number(options.heartbeatSeconds || 15) * 1000;
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

    function open() {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + location.host + options.socketPath);
      socket.addEventListener("open", onOpen);
      socket.addEventListener("message", onMessage);
      socket.addEventListener("close", onClose);
    }

    function onOpen() {
      retries = 0;
      awaitingPong = false;
      missedPongs = 0;
      clearInterval(heartbeat);
      heartbeat = setInterval(beat, heartbeatMs);
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
      setTimeout(open, delay);
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
        if (lastSeq !== null && message.seq > lastSeq) {
          requestSnapshot();
        }
      } else if (message.type === "snapshot") {
        lastSeq = message.seq;
        options.onSnapshot(message);
      } else if (message.type === "error") {
        console.warn("dashboard stream:", message.error);
      } else if (typeof message.seq === "number") {
        applyChange(message);
      }
    }

    function applyChange(message) {
      if (lastSeq !== null && message.seq <= lastSeq) {
        return; // Already part of a newer snapshot.
      }
      const gap = lastSeq !== null && message.seq > lastSeq + 1;
      lastSeq = message.seq;
      options.onChange(message);
      if (gap) {
        requestSnapshot();
      }
    }

    open();
    return { requestSnapshot: requestSnapshot };
  }

  // Return the incident rows a change message carries, whatever its type.
  function changedIncidents(message) {
    if (Array.isArray(message.incidents)) {
      return message.incidents;
    }
    return message.incident ? [message.incident] : [];
  }

  // Send an approve or reject button's decision, with the reason a person
  // gives for a reject, say the outcome in resultNode, then call done().
  // The buttons of the approval are disabled meanwhile, so a second click
  // sends nothing.
  async function decide(button, resultNode, csrfToken, done) {
    const box = button.closest(".pending-approval");
    const action = box.querySelector("a").textContent;
    let comment = "";
    if (button.dataset.decision === "reject") {
      // Cancel sends nothing, and an empty reason still rejects.
      comment = window.prompt("Reject " + action + "? Reason (optional):", "");
      if (comment === null) {
        return;
      }
    }
    box.querySelectorAll("button.decide").forEach((node) => (node.disabled = true));
    resultNode.textContent = "sending…";

    const body = new URLSearchParams({ decision: button.dataset.decision, comment: comment });
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
      resultNode.textContent = decided
        ? "You " + verb + " " + action + "."
        : "The decision on " + action + " failed (HTTP " + response.status +
          "): open the approval for details.";
    } catch (error) {
      resultNode.textContent =
        "The decision on " + action + " was not sent (" + error.message + "): try again.";
    }
    box.querySelectorAll("button.decide").forEach((node) => (node.disabled = false));
    done();
  }

  window.BastionLive = {
    connect: connect,
    changedIncidents: changedIncidents,
    decide: decide,
  };
})();
