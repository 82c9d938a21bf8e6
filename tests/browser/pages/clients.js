// The three client styles of a chat UI, each streaming one reply from the mock server into #reply
// and resolving with what the client saw. The mock server's origin comes in the page URL (?api=),
// so every request here is cross-origin.
"use strict";

const api = new URLSearchParams(location.search).get("api");
const reply = document.getElementById("reply");
const log = document.getElementById("log");
const started = performance.now();

/** The text a chat.completion.chunk adds (empty for the role and finish chunks). */
function contentOf(data) {
  return JSON.parse(data).choices?.[0]?.delta?.content ?? "";
}

/** The reply text in raw SSE received so far: the `data:` lines of every complete event. */
function textOfFrames(raw) {
  const complete = raw.slice(0, raw.lastIndexOf("\n\n") + 1);
  let text = "";
  for (const line of complete.split("\n")) {
    if (line.startsWith("data: ") && line !== "data: [DONE]") text += contentOf(line.slice(6));
  }
  return text;
}

function show(text) {
  reply.textContent = text;
}

/** A line in the page's log, so that a failing test's screenshot tells what the client went through. */
function note(line) {
  log.textContent += `+${Math.round(performance.now() - started)} ms  ${line}\n`;
}

/** Resolves with `seen` once `work` settles; rejects after `ms`, telling what was seen until then. */
function within(ms, seen, work) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no end after ${ms} ms; seen so far: ${JSON.stringify(seen)}`)), ms);
  });
  return Promise.race([work.then(() => seen), timeout]).finally(() => clearTimeout(timer));
}

/** Native EventSource on GET /completions. Ends when the browser gives up (an error that leaves it
 * CLOSED), or at `[DONE]` when `closeOnDone` is set, as a chat UI does.
 * `reopen` makes it a hand-written reconnect loop, as pages often have: on an error that left the
 * source CLOSED ("closed"), or on any error ("error"), the page closes it and opens a new one after
 * `reopenDelayMs`, `maxOpens` sources in all. A new EventSource sends no Last-Event-ID. */
function streamWithEventSource({
  query,
  closeOnDone = true,
  reopen = "never",
  reopenDelayMs = 0,
  maxOpens = 1,
  timeoutMs = 20000,
}) {
  const seen = { text: "", ids: [], opens: 0, sources: 0, errors: [], lastIdAtErrors: [], done: false };
  const url = `${api}/completions?${new URLSearchParams(query)}`;
  let source;
  const work = new Promise((resolve) => {
    const start = () => {
      seen.sources += 1;
      source = new EventSource(url);
      source.onopen = () => {
        seen.opens += 1;
        note("EventSource open");
      };
      source.onmessage = (event) => {
        note(`EventSource message id=${event.lastEventId} ${event.data.slice(0, 60)}`);
        seen.ids.push(event.lastEventId);
        if (event.data === "[DONE]") {
          seen.done = true;
          if (closeOnDone) resolve();
          return;
        }
        seen.text += contentOf(event.data);
        show(seen.text);
      };
      source.onerror = () => {
        // CONNECTING: the browser reconnects by itself; CLOSED: it has given up for good.
        const closed = source.readyState === EventSource.CLOSED;
        seen.errors.push(closed ? "closed" : "reconnecting");
        seen.lastIdAtErrors.push(seen.ids.at(-1) ?? null);
        note(`EventSource error, ${closed ? "closed" : "reconnecting"}`);
        if (reopen === "error" || (reopen === "closed" && closed)) {
          source.close();
          if (seen.sources < maxOpens) setTimeout(start, reopenDelayMs);
          else resolve();
        } else if (closed) resolve();
      };
    };
    start();
  });
  return within(timeoutMs, seen, work).finally(() => source.close());
}

/** fetchEventSource POSTing `{model, stream: true, request}` with a bearer token. onerror lets the
 * library retry `retries` times, then stops it by throwing; `abortAfterChunks` aborts the request
 * after that many text chunks, as a "stop generating" button does. */
function streamWithFetchEventSource({
  request,
  query = {},
  model = "gpt-4o",
  token = "sk-browser-test",
  retries = 0,
  abortAfterChunks = null,
  timeoutMs = 20000,
}) {
  const seen = {
    text: "",
    events: [],
    errors: [],
    lastIdAtErrors: [],
    closed: false,
    aborted: false,
    failure: null,
  };
  const controller = new AbortController();
  let chunks = 0;
  const work = fetchEventSource(`${api}/completions?${new URLSearchParams(query)}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ model, stream: true, request }),
    signal: controller.signal,
    openWhenHidden: true,
    onmessage(message) {
      seen.events.push({ event: message.event, id: message.id, data: message.data });
      note(`fetchEventSource message event=${message.event} id=${message.id} ${message.data.slice(0, 60)}`);
      // Unlike EventSource, fetchEventSource also calls onmessage for events without data (a blank
      // line after a `: ping` comment): JSON.parse("") would throw, and the library would retry.
      if (message.event !== "" || message.data === "" || message.data === "[DONE]") return;
      const content = contentOf(message.data);
      seen.text += content;
      show(seen.text);
      if (content && abortAfterChunks !== null && ++chunks >= abortAfterChunks) {
        seen.aborted = true;
        note("fetchEventSource abort");
        controller.abort();
      }
    },
    onclose() {
      seen.closed = true;
      note("fetchEventSource close");
    },
    onerror(error) {
      seen.errors.push(String(error));
      seen.lastIdAtErrors.push(seen.events.findLast((event) => event.id)?.id ?? null);
      note(`fetchEventSource error ${error}`);
      if (seen.errors.length > retries) throw error; // returning nothing would retry
    },
  }).catch((error) => {
    seen.failure = String(error);
  });
  return within(timeoutMs, seen, work).finally(() => controller.abort());
}

/** axios POST reading the partial response in onDownloadProgress: with the XHR adapter, the
 * request's responseText holds every frame received so far. */
function streamWithAxios({ request, query = {}, token = "sk-browser-test", timeoutMs = 20000 }) {
  const seen = { text: "", partials: [], status: null };
  const work = axios
    .post(
      `${api}/completions`,
      { model: "gpt-4o", stream: true, request },
      {
        params: query,
        headers: { Authorization: `Bearer ${token}` },
        responseType: "text",
        onDownloadProgress(progress) {
          seen.text = textOfFrames(progress.event.target.responseText);
          seen.partials.push(seen.text);
          note(`axios progress ${progress.loaded} bytes`);
          show(seen.text);
        },
      },
    )
    .then((response) => {
      seen.status = response.status;
      note(`axios response ${response.status}`);
      seen.text = textOfFrames(response.data);
      show(seen.text);
    });
  return within(timeoutMs, seen, work);
}

window.clientsReady = typeof fetchEventSource === "function" && typeof axios === "function";
