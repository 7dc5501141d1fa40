// Render GitHub-flavoured Markdown to HTML with micromark and its GFM extension
// (CommonMark + tables, autolink literals, strikethrough, task lists, footnotes), the
// way GitHub's cmark-gfm parses a comment. Raw HTML is passed through, as GitHub does
// before its sanitiser, so tests can see any HTML a report smuggled in.
// stdin: a JSON array of Markdown texts. stdout: a JSON array of HTML strings.
import { micromark } from "micromark";
import { gfm, gfmHtml } from "micromark-extension-gfm";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).map((text) =>
  micromark(text, { allowDangerousHtml: true, extensions: [gfm()], htmlExtensions: [gfmHtml()] }),
);
process.stdout.write(JSON.stringify(out));
