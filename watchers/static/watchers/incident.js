// The incident page: when the live stream (live.js) reports a change to this
// incident, or the connection comes back, fetch the summary and timeline
// again from the server and swap them in.
//
// The fetched HTML comes from the server's templates, which escape every
// label and name, and DOMParser runs no script in it.
(function () {
  "use strict";

  const config = document.getElementById("incident-page");
  const status = document.getElementById("live-status");
  if (!config || !status || !window.BastionLive || !("WebSocket" in window)) {
    return;
  }

  const incidentId = Number(config.dataset.incidentId);
  const csrfInput = config.querySelector("input[name=csrfmiddlewaretoken]");
  const csrfToken = csrfInput ? csrfInput.value : "";
  const PARTS = ["incident-summary", "incident-timeline"];
  // Changes often come in bursts (a step starts and finishes), so wait a
  // moment and fetch once.
  const DEBOUNCE_MS = 200;
  let timer = null;
  let fetching = false;
  let again = false;

  function concernsThisIncident(message) {
    if (message.type === "values") {
      return message.values.some((entry) => entry.id === incidentId);
    }
    return window.BastionLive.changedIncidents(message).some(
      (entry) => entry.id === incidentId
    );
  }

  function scheduleRefresh() {
    clearTimeout(timer);
    timer = setTimeout(refresh, DEBOUNCE_MS);
  }

  async function refresh() {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    try {
      const response = await fetch(config.dataset.liveUrl, { credentials: "same-origin" });
      if (response.ok) {
        swapParts(await response.text());
      }
    } catch (error) {
      console.warn("incident page: refresh failed:", error);
    }
    fetching = false;
    if (again) {
      again = false;
      scheduleRefresh();
    }
  }

  function swapParts(html) {
    const fresh = new DOMParser().parseFromString(html, "text/html");
    PARTS.forEach((id) => {
      const current = document.getElementById(id);
      const replacement = fresh.getElementById(id);
      if (current && replacement) {
        current.replaceWith(document.adoptNode(replacement));
      }
    });
  }

  const stream = window.BastionLive.connect({
    socketPath: config.dataset.socketPath,
    heartbeatSeconds: config.dataset.heartbeatSeconds,
    status: status,
    // A snapshot comes on every (re)connect: whatever happened while the
    // page was away shows after one fetch.
    onSnapshot: scheduleRefresh,
    onChange: (message) => {
      if (concernsThisIncident(message)) {
        scheduleRefresh();
      }
    },
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("#incident-summary button.decide");
    if (button) {
      window.BastionLive.decide(
        button,
        document.getElementById("decide-result"),
        csrfToken,
        () => {
          stream.requestSnapshot();
          scheduleRefresh();
        }
      );
    }
  });
})();
