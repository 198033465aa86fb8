// The fastagentic dashboard page: one Server-Sent Events feed (a summary per second, aggregated by
// the server) redrawn at most once per tick, and JSON calls for task details and dead letters.
// Plain browser JavaScript: no build step. Every value from the server is escaped before display.
(() => {
  const $ = (id) => document.getElementById(id);
  const esc = (v) =>
    String(v ?? "").replace(
      /[&<>"']/g,
      (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c],
    );
  const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : "");
  const ago = (ms) => (ms ? `${Math.max(0, Math.round((Date.now() - ms) / 1000))} s ago` : "");
  const duration = (s) => {
    const n = Math.round(s);
    return n < 90 ? `${n} s` : n < 5400 ? `${Math.round(n / 60)} min` : `${(n / 3600).toFixed(1)} h`;
  };
  const PRIORITIES = [20, 10, 5, 0];
  const compact = (v) =>
    v == null
      ? ""
      : Math.abs(v) >= 1e6
        ? `${+(v / 1e6).toFixed(1)}M`
        : Math.abs(v) >= 1e4
          ? `${+(v / 1e3).toFixed(1)}k`
          : `${v}`;

  let history = 900;
  const series = { t: [], done: [], failed: [], p50: [], p95: [] };
  let charts = null;
  let lastTick = null;
  let deadTotal = -1;
  let deadCursor;

  function api(path, init) {
    return fetch(path, { headers: { accept: "application/json" }, ...init }).then(async (r) => {
      const body = await r.json().catch(() => ({}));
      if (!r.ok)
        throw new Error(body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${r.status}`);
      return body;
    });
  }

  // ---- charts -------------------------------------------------------------------------------
  function makeCharts() {
    if (charts || typeof uPlot === "undefined") return;
    const width = () => Math.max(300, $("chart-throughput").clientWidth - 10);
    const base = (labels, colors) => ({
      width: width(),
      height: 200,
      series: [{}, ...labels.map((label, i) => ({ label, stroke: colors[i], width: 1.5, spanGaps: false }))],
      axes: [{}, { size: 56, values: (_, ticks) => ticks.map(compact) }],
      legend: { show: true },
      scales: { x: { time: true } },
    });
    charts = {
      throughput: new uPlot(
        base(["completed/s", "failed/s"], ["#1f8a4c", "#c0392b"]),
        [[], [], []],
        $("chart-throughput"),
      ),
      latency: new uPlot(
        base(["p50 ms", "p95 ms"], ["#3465a4", "#b7791f"]),
        [[], [], []],
        $("chart-latency"),
      ),
    };
    window.addEventListener("resize", () => {
      for (const c of Object.values(charts)) c.setSize({ width: width(), height: 200 });
    });
  }

  function addPoints(points) {
    for (const [s, done, failed, , p50, p95] of points) {
      const last = series.t[series.t.length - 1];
      if (last !== undefined && s <= last) continue;
      series.t.push(s);
      series.done.push(done);
      series.failed.push(failed);
      series.p50.push(p50);
      series.p95.push(p95);
    }
    const extra = series.t.length - history;
    if (extra > 0) for (const k of Object.keys(series)) series[k].splice(0, extra);
  }

  function drawCharts() {
    makeCharts();
    if (!charts) return;
    charts.throughput.setData([series.t, series.done, series.failed]);
    charts.latency.setData([series.t, series.p50, series.p95]);
  }

  // ---- the feed -----------------------------------------------------------------------------
  function connect() {
    const source = new EventSource("events");
    source.addEventListener("hello", (e) => {
      const hello = JSON.parse(e.data);
      history = hello.historySeconds;
      $("queue-name").textContent = `queue ${hello.queue} on ${hello.transport}`;
      for (const k of Object.keys(series)) series[k] = [];
      addPoints(hello.points);
      $("events").innerHTML = "";
      addEvents(hello.events);
      renderProviders(hello.providers);
      loadEntityTypes();
      setFeed("live", "ok");
    });
    source.addEventListener("tick", (e) => {
      lastTick = JSON.parse(e.data);
      render(lastTick);
    });
    source.addEventListener("problem", (e) =>
      banner(`The server could not build an update: ${JSON.parse(e.data).error}`),
    );
    source.onerror = () => setFeed("reconnecting…", "bad");
    source.onopen = () => setFeed("live", "ok");
  }

  function setFeed(text, cls) {
    const el = $("feed-state");
    el.textContent = text;
    el.className = `badge ${cls}`;
  }

  function banner(text) {
    const el = $("banner");
    el.hidden = !text;
    el.textContent = text || "";
  }

  function render(t) {
    banner("");
    const ts = $("transport-state");
    ts.textContent = `broker ${t.transportState}`;
    ts.className = `badge ${t.transportState === "connected" ? "ok" : "bad"}`;
    $("updated").textContent = `updated ${time(t.at)}`;
    $("c-running").textContent = t.stats.running;
    $("c-queued").textContent = t.stats.queued;
    $("c-completed").textContent = t.stats.completed;
    $("c-failed").textContent = t.stats.failed + t.stats.timeout;
    $("c-workers").textContent = t.workerCount;
    addPoints(t.points);
    drawCharts();
    renderWorkers(t.workers);
    renderQueues(t.queues);
    addEvents(t.events);
    renderTasks(t.tasks);
    renderDeadCount(t.deadLetters);
    renderProviderData(t.providers);
  }

  function renderWorkers(workers) {
    $("workers").tBodies[0].innerHTML = workers
      .map(
        (w) =>
          `<tr data-worker="${esc(w.id)}"><td>${esc(w.id)}</td><td>${esc(w.pid)}</td><td>${esc(w.host)}</td>` +
          `<td>${esc(w.tags.join(", "))}</td><td class="status-${esc(w.status)}">${esc(w.status)}</td>` +
          `<td>${esc(w.running)}/${esc(w.max)}</td><td>${duration(w.uptimeSeconds)}</td><td>${ago(w.lastHeartbeat)}</td></tr>`,
      )
      .join("");
  }

  function renderQueues(sample) {
    const problem = $("queues-problem");
    problem.hidden = sample.ok || !sample.at;
    problem.textContent = sample.ok ? "" : `Queue depths unavailable: ${sample.error ?? ""}`;
    if (!sample.ok) return;
    $("queues").tBodies[0].innerHTML = sample.value
      .map((q) => {
        const levels = PRIORITIES.map(
          (p) => `<td>${q.byPriority ? esc(q.byPriority[p] ?? 0) : "–"}</td>`,
        ).join("");
        return `<tr><td>${esc(q.name)}</td><td>${esc(q.total)}</td>${levels}</tr>`;
      })
      .join("");
  }

  function addEvents(events) {
    const list = $("events");
    for (const e of events) {
      const li = document.createElement("li");
      li.textContent = `${time(e.at)} ${e.text}`;
      list.prepend(li);
    }
    while (list.children.length > 200) list.lastChild.remove();
  }

  // ---- tasks --------------------------------------------------------------------------------
  let taskFilterActive = false;
  function renderTasks(tasks) {
    if (taskFilterActive) return; // the filtered list is fetched instead
    fillTasks(tasks);
  }

  function fillTasks(tasks) {
    $("tasks").tBodies[0].innerHTML = tasks
      .map((t) => {
        const took = t.completedAt && t.startedAt ? `${t.completedAt - t.startedAt} ms` : "";
        return (
          `<tr class="clickable" data-task="${esc(t.id)}"><td>${esc(t.id)}</td><td>${esc(t.type)}</td>` +
          `<td class="status-${esc(t.status)}">${esc(t.status)}</td><td>${esc(t.attempts)}</td><td>${esc(t.workerId)}</td>` +
          `<td>${time(t.createdAt)}</td><td>${took}</td><td class="error">${esc(t.error)}</td></tr>`
        );
      })
      .join("");
  }

  function refreshTaskFilter() {
    const status = $("task-status").value;
    const type = $("task-type").value.trim();
    taskFilterActive = Boolean(status || type);
    if (!taskFilterActive) {
      if (lastTick) fillTasks(lastTick.tasks);
      return;
    }
    const q = new URLSearchParams({ limit: "100" });
    if (status) q.set("status", status);
    if (type) q.set("type", type);
    api(`api/tasks?${q}`).then(
      (r) => fillTasks(r.tasks),
      (e) => banner(e.message),
    );
  }

  function showTask(id) {
    api(`api/tasks/${encodeURIComponent(id)}`).then(
      (t) =>
        detail(
          `Task ${t.id}`,
          {
            type: t.type,
            status: t.status,
            attempts: `${t.attempts} (retries allowed: ${t.retries})`,
            worker: t.workerId,
            priority: t.priority,
            created: time(t.createdAt),
            started: time(t.startedAt),
            finished: time(t.completedAt),
            duration: t.completedAt && t.startedAt ? `${t.completedAt - t.startedAt} ms` : "",
            error: t.error,
          },
          { data: t.data, result: t.result, metadata: t.metadata, tags: t.tags },
        ),
      (e) => banner(e.message),
    );
  }

  // ---- dead letters -------------------------------------------------------------------------
  function renderDeadCount(sample) {
    const problem = $("dead-problem");
    problem.hidden = sample.ok || !sample.at;
    problem.textContent = sample.ok ? "" : `Dead letters unavailable: ${sample.error ?? ""}`;
    if (!sample.ok) return;
    $("c-dead").textContent = sample.value.total;
    if (sample.value.total !== deadTotal) {
      deadTotal = sample.value.total;
      loadDead(false);
    }
  }

  function loadDead(more) {
    const q = new URLSearchParams({ limit: "50" });
    const type = $("dead-type").value.trim();
    if (type) q.set("type", type);
    if (more && deadCursor) q.set("cursor", deadCursor);
    api(`api/dead-letters?${q}`).then(
      (r) => {
        const rows = r.letters
          .map(
            (l) =>
              `<tr class="clickable" data-dead="${esc(l.id)}"><td>${esc(l.taskId ?? "(not a task)")}</td><td>${esc(l.type)}</td>` +
              `<td>${esc(l.attempts)}</td><td>${time(l.deadAt)}</td><td class="error">${esc(l.error)}</td>` +
              `<td><button type="button" data-retry="${esc(l.id)}">retry</button> ` +
              `<button type="button" data-delete="${esc(l.id)}" class="danger">delete</button></td></tr>`,
          )
          .join("");
        const body = $("dead").tBodies[0];
        if (more) body.insertAdjacentHTML("beforeend", rows);
        else body.innerHTML = rows;
        deadCursor = r.next;
        $("dead-more").hidden = !r.next;
        $("dead-problem").hidden = true;
      },
      (e) => {
        $("dead-problem").hidden = false;
        $("dead-problem").textContent = e.message;
      },
    );
  }

  function deadAction(promise, what) {
    $("dead-message").textContent = `${what}…`;
    promise.then(
      (r) => {
        $("dead-message").textContent = `${what}: ${JSON.stringify(r)}`;
        deadTotal = -1;
        loadDead(false);
      },
      (e) => {
        $("dead-message").textContent = `${what} failed: ${e.message}`;
      },
    );
  }

  function showDead(id) {
    api(`api/dead-letters/${encodeURIComponent(id)}`).then(
      (l) =>
        detail(
          `Dead letter ${l.taskId ?? l.id}`,
          {
            id: l.id,
            type: l.type,
            "work queue": l.workQueue,
            attempts: l.attempts,
            died: time(l.deadAt),
            error: l.error,
          },
          l.decoded
            ? { data: l.data, metadata: l.metadata, tags: l.tags, headers: l.headers }
            : { body: l.body },
          l.id,
        ),
      (e) => banner(e.message),
    );
  }

  // ---- detail panel -------------------------------------------------------------------------
  function detail(title, fields, json, deadId) {
    $("detail-title").textContent = title;
    $("detail-fields").innerHTML = Object.entries(fields)
      .filter(([, v]) => v !== undefined && v !== "")
      .map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`)
      .join("");
    $("detail-actions").innerHTML = deadId
      ? `<button type="button" data-retry="${esc(deadId)}">retry</button> <button type="button" class="danger" data-delete="${esc(deadId)}">delete</button>`
      : "";
    $("detail-json").textContent = JSON.stringify(json, null, 2);
    $("detail").hidden = false;
  }

  // ---- providers (entities, event groups, …) ------------------------------------------------
  function renderProviders(providers) {
    $("providers").innerHTML = providers
      .map(
        (p) =>
          `<section data-provider="${esc(p.name)}"><h2>${esc(p.title)}</h2>` +
          (p.lookup
            ? `<form class="filters" data-lookup="${esc(p.name)}"><input name="id" placeholder="id" size="24"><button>look up</button></form><pre hidden></pre>`
            : "") +
          (p.summary ? `<p class="problem" hidden></p><table><thead></thead><tbody></tbody></table>` : "") +
          "</section>",
      )
      .join("");
  }

  function renderProviderData(data) {
    for (const [name, sample] of Object.entries(data)) {
      const section = document.querySelector(`section[data-provider="${CSS.escape(name)}"]`);
      const table = section?.querySelector("table");
      if (!table) continue;
      const problem = section.querySelector("p.problem");
      problem.hidden = sample.ok;
      problem.textContent = sample.ok ? "" : `Unavailable: ${sample.error}`;
      if (!sample.ok) continue;
      const rows = Array.isArray(sample.value) ? sample.value : [];
      const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
      table.tHead.innerHTML = `<tr>${keys.map((k) => `<th>${esc(k)}</th>`).join("")}</tr>`;
      table.tBodies[0].innerHTML = rows
        .map(
          (r) =>
            `<tr>${keys.map((k) => `<td>${esc(typeof r[k] === "object" ? JSON.stringify(r[k]) : r[k])}</td>`).join("")}</tr>`,
        )
        .join("");
    }
  }

  // ---- entities ---------------------------------------------------------------------------
  function loadEntityTypes() {
    api("api/entities").then(
      (r) => {
        $("entity-types").innerHTML = r.types.map((t) => `<option value="${esc(t)}"></option>`).join("");
        if (!$("entity-type").value && r.types.length === 1) $("entity-type").value = r.types[0];
      },
      () => {}, // the type can still be typed in
    );
  }

  function lookUpEntity() {
    const type = $("entity-type").value.trim();
    const id = $("entity-id").value.trim();
    const fields = $("entity-fields");
    const context = $("entity-context");
    $("entity-message").textContent = "…";
    api(`api/entities/${encodeURIComponent(type)}?id=${encodeURIComponent(id)}`).then(
      (e) => {
        $("entity-message").textContent = `read at ${time(Date.now())}`;
        const rows = {
          type: e.type,
          id: e.id,
          state: JSON.stringify(e.value),
          status: e.status,
          version: e.version,
        };
        fields.innerHTML = Object.entries(rows)
          .map(([k, v]) => `<dt>${esc(k)}</dt><dd data-field="${esc(k)}">${esc(v)}</dd>`)
          .join("");
        context.textContent = JSON.stringify(e.context, null, 2);
        fields.hidden = false;
        context.hidden = false;
      },
      (err) => {
        $("entity-message").textContent = err.message;
        fields.hidden = true;
        context.hidden = true;
      },
    );
  }

  // ---- events from the page -----------------------------------------------------------------
  document.addEventListener("click", (e) => {
    const target = e.target.closest("[data-retry],[data-delete],[data-task],[data-dead]");
    if (!target) return;
    if (target.dataset.retry) {
      const id = target.dataset.retry;
      deadAction(api(`api/dead-letters/${encodeURIComponent(id)}/retry`, { method: "POST" }), "retry");
      $("detail").hidden = true;
    } else if (target.dataset.delete) {
      const id = target.dataset.delete;
      deadAction(api(`api/dead-letters/${encodeURIComponent(id)}`, { method: "DELETE" }), "delete");
      $("detail").hidden = true;
    } else if (target.dataset.task) showTask(target.dataset.task);
    else if (target.dataset.dead) showDead(target.dataset.dead);
  });
  $("entity-form").addEventListener("submit", (e) => {
    e.preventDefault();
    lookUpEntity();
  });
  document.addEventListener("submit", (e) => {
    const form = e.target.closest("form[data-lookup]");
    if (!form) return;
    e.preventDefault();
    const id = form.elements.id.value.trim();
    const out = form.nextElementSibling;
    api(`api/providers/${encodeURIComponent(form.dataset.lookup)}/lookup?id=${encodeURIComponent(id)}`).then(
      (r) => {
        out.hidden = false;
        out.textContent = JSON.stringify(r, null, 2);
      },
      (err) => {
        out.hidden = false;
        out.textContent = err.message;
      },
    );
  });
  $("detail-close").addEventListener("click", () => {
    $("detail").hidden = true;
  });
  $("task-status").addEventListener("change", refreshTaskFilter);
  $("task-type").addEventListener("change", refreshTaskFilter);
  $("dead-type").addEventListener("change", () => loadDead(false));
  $("dead-refresh").addEventListener("click", () => loadDead(false));
  $("dead-more").addEventListener("click", () => loadDead(true));
  $("dead-retry-all").addEventListener("click", () => {
    const type = $("dead-type").value.trim();
    deadAction(
      api(`api/dead-letters/retry${type ? `?type=${encodeURIComponent(type)}` : ""}`, { method: "POST" }),
      "retry all",
    );
  });
  $("dead-purge").addEventListener("click", () => {
    const type = $("dead-type").value.trim();
    if (!window.confirm(`Delete every dead letter${type ? ` of type ${type}` : ""} for good?`)) return;
    deadAction(
      api(`api/dead-letters${type ? `?type=${encodeURIComponent(type)}` : ""}`, { method: "DELETE" }),
      "purge",
    );
  });

  connect();
})();
