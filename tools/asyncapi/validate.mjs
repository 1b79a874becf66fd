// Validate an AsyncAPI document with the official AsyncAPI parser (@asyncapi/parser).
//
// Usage: node tools/asyncapi/validate.mjs [path/to/asyncapi.yaml]
//        (default: schemas/asyncapi.yaml of this repository)
//
// Exit 0: the parser reported no error; stdout holds the names of the document's messages
//         (their `name`, else their key), sorted and without duplicates, as one JSON array.
// Exit 1: the parser reported errors; they are printed on stderr, one per line.
// Exit 2: the document could not be read.
// Warnings, when there are any, are printed on stderr in every case.
//
// Relative $refs (./payloads/*.schema.json) are resolved from the document's own location by
// the parser's file resolver, so the payload schemas are read from disk, never copied.

import { access } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { DiagnosticSeverity, Parser, fromFile } from '@asyncapi/parser';

const here = path.dirname(fileURLToPath(import.meta.url));
const target = path.resolve(process.argv[2] ?? path.join(here, '..', '..', 'schemas', 'asyncapi.yaml'));

const SEVERITY = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

// Paths under the working directory are shown relative to it, others in full.
function shown(file) {
  const relative = path.relative(process.cwd(), file);
  return relative.startsWith('..') || path.isAbsolute(relative) ? file : relative;
}

function describe(diagnostic) {
  const where = diagnostic.path.length > 0 ? diagnostic.path.join('/') : '(document)';
  const start = diagnostic.range?.start;
  const line = start ? `:${start.line + 1}:${start.character + 1}` : '';
  const source = shown(diagnostic.source ?? target);
  const severity = SEVERITY[diagnostic.severity] ?? String(diagnostic.severity);
  return `${source}${line}: ${severity} [${diagnostic.code}] ${where}: ${diagnostic.message}`;
}

try {
  await access(target);
} catch {
  console.error(`cannot read ${target}`);
  process.exit(2);
}

const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, target).parse();

const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
const warnings = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning);
for (const diagnostic of [...errors, ...warnings]) {
  console.error(describe(diagnostic));
}
if (errors.length > 0 || document === undefined) {
  console.error(`${shown(target)}: invalid (${errors.length} error(s))`);
  process.exit(1);
}

const names = new Set();
for (const message of document.allMessages()) {
  names.add(message.name() ?? message.id());
}
console.log(JSON.stringify([...names].sort()));
