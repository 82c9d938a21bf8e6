// Bundles the npm clients the browser tests drive into plain scripts for the test page:
// dist/fetch-event-source.js sets window.fetchEventSource and window.EventStreamContentType,
// dist/axios.js sets window.axios. Usage: node build_bundles.mjs [OUTDIR]  (default: dist)
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(process.argv[2] ?? path.join(here, "dist"));

const bundles = {
  "fetch-event-source.js": `
    import { fetchEventSource, EventStreamContentType } from "@microsoft/fetch-event-source";
    Object.assign(window, { fetchEventSource, EventStreamContentType });`,
  "axios.js": `
    import axios from "axios";
    window.axios = axios;`,
};

for (const [name, contents] of Object.entries(bundles)) {
  await build({
    stdin: { contents, resolveDir: here, sourcefile: name },
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "chrome110",
    outfile: path.join(outdir, name),
    logLevel: "warning",
  });
}
console.log(`bundles written to ${outdir}`);
