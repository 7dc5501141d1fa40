// Parse Mermaid diagrams with the real `mermaid` package (what GitHub renders).
// stdin: a JSON array of diagram texts. stdout: a JSON array of
// {"ok": true, "diagramType": "..."} or {"ok": false, "error": "..."}, one per diagram.
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!DOCTYPE html><html><body></body></html>", { pretendToBeVisual: true });
globalThis.window = dom.window;
globalThis.document = dom.window.document;
for (const name of ["DOMParser", "Element", "HTMLElement", "SVGElement", "Node", "navigator"]) {
  if (!(name in globalThis) && name in dom.window) {
    Object.defineProperty(globalThis, name, { value: dom.window[name], configurable: true });
  }
}

const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });

let input = "";
for await (const chunk of process.stdin) input += chunk;
const diagrams = JSON.parse(input);
const results = [];
for (const text of diagrams) {
  try {
    const parsed = await mermaid.parse(text);
    results.push({ ok: true, diagramType: parsed.diagramType });
  } catch (err) {
    results.push({ ok: false, error: String(err && err.message ? err.message : err).split("\n").slice(0, 4).join(" ") });
  }
}
process.stdout.write(JSON.stringify(results));
