// The browser rows of the fault matrix (tests/matrix): each client streams one reply from a mock
// server with a fault in the query and reports what it observed, in the shape the Python and Node
// clients report (tests/matrix/observation.py): {text, errors, ended, hung, notes}.
// Each client runs the typical hand-written loop: it stops at [DONE] and raises on {"error": ...}.
"use strict";

/** A browser holds at most 6 connections to one host:port; streams beyond that would wait. */
const PER_SERVER = 5;

/** An error and its causes, outermost first, as {type, message, code}. */
function chain(error) {
  const links = [];
  for (let link = error; link !== undefined && link !== null && links.length < 6; link = link.cause) {
    const isError = link instanceof Error;
    const code = typeof link.code === "string" ? link.code : null;
    links.push({
      type: isError ? link.constructor.name : typeof link,
      message: String(isError ? link.message : link).slice(0, 300),
      code,
    });
  }
  return links;
}

/** The content a chat.completion.chunk adds; raises on {"error": ...}. */
function chatContent(data) {
  const chunk = JSON.parse(data);
  if (chunk.error) throw new Error(`stream error: ${chunk.error.message}`);
  return chunk.choices?.[0]?.delta?.content ?? "";
}

/** The reply text in raw SSE: the data lines of every complete event, up to [DONE]. */
function textOfFrames(raw) {
  const complete = raw.slice(0, raw.lastIndexOf("\n\n") + 1);
  let text = "";
  for (const line of complete.split("\n")) {
    if (line === "data: [DONE]") break;
    if (line.startsWith("data: ")) text += chatContent(line.slice(6));
  }
  return text;
}

function completionsUrl(job, query) {
  return `${job.url}/completions?${new URLSearchParams({ ...query, fault: job.fault })}`;
}

const clients = {
  /** Native EventSource: closes at [DONE] and on {"error"}; a JSON.parse failure in the handler is
   * reported (as the browser reports it) and the stream goes on. Ends when the browser gives up. */
  eventsource(job, seen, signal) {
    return new Promise((resolve, reject) => {
      const source = new EventSource(completionsUrl(job, { messages: job.prompt, model: job.model }));
      seen.notes.opens = 0;
      signal.addEventListener("abort", () => source.close());
      source.onopen = () => {
        seen.notes.opens += 1;
      };
      source.onmessage = (event) => {
        if (event.data === "[DONE]") {
          source.close();
          resolve();
          return;
        }
        try {
          seen.text += chatContent(event.data);
        } catch (error) {
          if (!(error instanceof SyntaxError)) {
            source.close();
            reject(error);
          } else seen.errors.push(chain(error));
        }
      };
      source.onerror = () => {
        const closed = source.readyState === EventSource.CLOSED;
        seen.errors.push([{ type: closed ? "onerror (CLOSED)" : "onerror", message: "", code: null }]);
        if (closed) resolve();
      };
    });
  },

  /** fetchEventSource POSTing chat messages; onerror rethrows, so the library does not retry. */
  async "fetch-event-source"(job, seen, signal) {
    await fetchEventSource(completionsUrl(job, {}), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: job.model, stream: true, messages: [{ role: "user", content: job.prompt }] }),
      signal,
      openWhenHidden: true,
      onmessage(message) {
        if (message.event !== "" && message.event !== "message") return;
        if (message.data === "" || message.data === "[DONE]") return;
        seen.text += chatContent(message.data);
      },
      onerror(error) {
        throw error;
      },
    });
  },

  /** axios POST: onDownloadProgress shows the frames so far; the whole body is read at the end. */
  async axios(job, seen, signal) {
    const response = await axios.post(
      completionsUrl(job, {}),
      { model: job.model, stream: true, messages: [{ role: "user", content: job.prompt }] },
      {
        responseType: "text",
        timeout: job.timeoutMs,
        signal,
        onDownloadProgress(progress) {
          try {
            seen.text = textOfFrames(progress.event.target.responseText);
          } catch {
            // a frame that does not parse: the page keeps what it showed
          }
        },
      },
    );
    seen.notes.status = response.status;
    seen.text = textOfFrames(response.data);
  },
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Plays the job once with another prompt, ignoring what it sees: its CORS preflight's answer is then
 * cached, and after settleMs the server has closed every connection the browser kept alive. */
async function prime(job) {
  const controller = new AbortController();
  const seen = { text: "", errors: [], notes: {} };
  const timer = setTimeout(() => controller.abort(), job.deadlineMs);
  try {
    await clients[job.client]({ ...job, prompt: job.prime.prompt }, seen, controller.signal);
  } catch {
    // the prime meets the cell's fault too
  }
  clearTimeout(timer);
  await sleep(job.prime.settleMs);
}

async function runJob(job) {
  await sleep(job.startMs ?? 0);
  if (job.prime) await prime(job);
  const seen = { text: "", errors: [], ended: false, hung: false, notes: {} };
  const controller = new AbortController();
  let timer;
  const deadline = new Promise((resolve) => {
    timer = setTimeout(() => {
      seen.hung = true;
      resolve();
    }, job.deadlineMs);
  });
  const work = (async () => {
    try {
      await clients[job.client](job, seen, controller.signal);
    } catch (error) {
      if (!seen.hung) seen.errors.push(chain(error));
    }
    if (!seen.hung) seen.ended = true;
  })();
  await Promise.race([work, deadline]);
  clearTimeout(timer);
  controller.abort();
  return seen;
}

/** Runs every job, at most PER_SERVER at a time against one server; resolves with {key: observation}. */
async function runMatrix(jobs) {
  const queues = new Map();
  for (const job of jobs) queues.set(job.url, [...(queues.get(job.url) ?? []), job]);
  const results = {};
  const worker = async (queue) => {
    for (let job = queue.shift(); job !== undefined; job = queue.shift()) {
      results[job.key] = await runJob({ ...job, startMs: Math.max(0, job.startMs - (performance.now() - began)) });
    }
  };
  const began = performance.now();
  const workers = [];
  for (const queue of queues.values()) for (let i = 0; i < PER_SERVER; i++) workers.push(worker(queue));
  await Promise.all(workers);
  return results;
}

window.matrixReady = typeof fetchEventSource === "function" && typeof axios === "function";
