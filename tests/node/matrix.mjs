// Runs fault-matrix cells through the Node clients and prints what each client observed.
// Input (stdin): a line {warmup, jobs}, lists of jobs {key, client, url, model, prompt, fault,
// timeoutMs, deadlineMs, startMs}. The warm-up jobs run first and are not reported: they load and
// compile each client's code, which would otherwise stretch the first retries of the jobs. Then
// every job runs at once, each from its startMs on (spreading the load); a job that has not ended by
// its deadline is aborted and reported as hung.
// Output (stdout): a JSON object {key: observation}; an observation is {text, errors, ended, hung,
// notes}, the same shape the Python and browser clients report (tests/matrix/observation.py).
// Each job has a connection pool of its own (an undici Agent behind Node's fetch), so that a retry
// reuses only its own connections: in a shared pool it could pick one another job left idle for as
// long as the server's keep-alive, and meet the server closing it.
import { createOpenAI } from "@ai-sdk/openai";
import Anthropic from "@anthropic-ai/sdk";
import { streamText } from "ai";
import { EventSource } from "eventsource";
import { createInterface } from "node:readline";
import OpenAI from "openai";
import { Agent } from "undici";

/** An error and its causes, outermost first: constructor name, message, and code where there is one. */
function chain(error) {
  const links = [];
  for (let link = error; link !== undefined && link !== null && links.length < 6; link = link.cause) {
    if (typeof link !== "object") {
      links.push({ type: typeof link, message: String(link), code: null });
      break;
    }
    let type = link instanceof Error ? link.constructor.name : "Object";
    let message = link instanceof Error ? link.message : JSON.stringify(link);
    if (link instanceof DOMException) {
      type = "DOMException";
      message = `${link.name}: ${link.message}`;
    }
    const code = typeof link.code === "string" ? link.code : null;
    links.push({ type, message: String(message).slice(0, 300), code });
  }
  return links;
}

/** The content a chat.completion.chunk adds, as the typical hand-written loop reads it: it stops at
 * [DONE] and raises on {"error": ...}. */
function chatContent(data) {
  const chunk = JSON.parse(data);
  if (chunk.error) throw new Error(`stream error: ${chunk.error.message}`);
  return chunk.choices?.[0]?.delta?.content ?? "";
}

const clients = {
  /** openai: chat.completions.create({stream: true}) and the README's loop over chunk.choices[0]. */
  async openai(job, seen, signal, fetch) {
    const client = new OpenAI({
      baseURL: `${job.url}/v1`,
      apiKey: "x",
      fetch,
      timeout: job.timeoutMs,
      defaultHeaders: { "X-Mock-Fault": job.fault },
    });
    const stream = await client.chat.completions.create(
      { model: job.model, messages: [{ role: "user", content: job.prompt }], stream: true },
      { signal },
    );
    for await (const chunk of stream) seen.text += chunk.choices[0].delta.content ?? "";
  },

  /** @anthropic-ai/sdk: messages.stream(), the text deltas, then finalMessage(). */
  async anthropic(job, seen, signal, fetch) {
    const client = new Anthropic({
      baseURL: job.url,
      apiKey: "x",
      fetch,
      timeout: job.timeoutMs,
      defaultHeaders: { "X-Mock-Fault": job.fault },
    });
    const stream = client.messages.stream(
      { model: job.model, max_tokens: 256, messages: [{ role: "user", content: job.prompt }] },
      { signal },
    );
    stream.on("text", (text) => {
      seen.text += text;
    });
    const message = await stream.finalMessage();
    seen.notes.stop_reason = message.stop_reason;
  },

  /** The Vercel AI SDK: streamText on provider.chat(), reading fullStream; chunkMs is its read timeout. */
  async "ai-sdk"(job, seen, signal, fetch) {
    const provider = createOpenAI({
      baseURL: `${job.url}/v1`,
      apiKey: "x",
      headers: { "X-Mock-Fault": job.fault },
      fetch,
    });
    const result = streamText({
      model: provider.chat(job.model),
      prompt: job.prompt,
      abortSignal: signal,
      timeout: { chunkMs: job.timeoutMs },
      onError() {}, // errors are read from fullStream below; the default handler only logs them
    });
    for await (const part of result.fullStream) {
      if (part.type === "text-delta") seen.text += part.text;
      else if (part.type === "error") {
        seen.errors.push(chain(part.error));
        seen.notes.errorParts = (seen.notes.errorParts ?? 0) + 1;
      }
    }
    // A chunk timeout ends fullStream with an `abort` part, and finishReason rejects with its error;
    // after an error part it rejects too, with NoOutputGeneratedError, which says nothing more.
    try {
      seen.notes.finishReason = await result.finishReason;
    } catch (error) {
      if (seen.errors.length === 0) throw error;
    }
  },

  /** eventsource: GET /completions with the fault in the query (EventSource sends no headers); the
   * typical loop closes at [DONE] and on {"error": ...}; a JSON.parse failure is reported and the
   * stream goes on, as it does in an event handler. The source ends when it gives up (CLOSED). */
  eventsource(job, seen, signal, fetch) {
    return new Promise((resolve, reject) => {
      const query = new URLSearchParams({ messages: job.prompt, model: job.model, fault: job.fault });
      const source = new EventSource(`${job.url}/completions?${query}`, { fetch });
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
          if (error instanceof SyntaxError) {
            seen.errors.push(chain(error));
          } else {
            source.close();
            reject(error);
          }
        }
      };
      source.onerror = (event) => {
        const closed = source.readyState === EventSource.CLOSED;
        const error = { type: closed ? "onerror (CLOSED)" : "onerror", message: event.message ?? "", code: null };
        if (typeof event.code === "number") error.code = String(event.code);
        seen.errors.push([error]);
        if (closed) resolve();
      };
    });
  },
};

async function run(job) {
  await new Promise((resolve) => setTimeout(resolve, job.startMs ?? 0));
  const seen = { text: "", errors: [], ended: false, hung: false, notes: {} };
  const controller = new AbortController();
  const pool = new Agent();
  const fetchOnPool = (input, init) => fetch(input, { ...init, dispatcher: pool });
  let timer;
  const deadline = new Promise((resolve) => {
    timer = setTimeout(() => {
      seen.hung = true;
      controller.abort();
      resolve();
    }, job.deadlineMs);
  });
  const work = (async () => {
    try {
      await clients[job.client](job, seen, controller.signal, fetchOnPool);
    } catch (error) {
      if (!seen.hung) seen.errors.push(chain(error));
    }
    if (!seen.hung) seen.ended = true;
  })();
  await Promise.race([work, deadline]);
  clearTimeout(timer);
  controller.abort();
  pool.destroy().catch(() => {});
  return seen;
}

// The protocol of tests/matrix/child.py: a line of input, then the output.
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const { warmup, jobs } = JSON.parse((await lines.next()).value);
await Promise.all(warmup.map(run));
const results = await Promise.all(jobs.map(run));
process.stdout.write(JSON.stringify(Object.fromEntries(jobs.map((job, i) => [job.key, results[i]]))));
// Sockets a hung client left open would keep the process alive.
process.exit(0);
