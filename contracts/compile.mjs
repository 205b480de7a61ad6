// Compiles one Solidity file, a user's own, with the project's pinned npm `solc` and settings;
// `loadgen.solc` runs it. Usage: node contracts/compile.mjs SOURCE.sol
//
// Prints one JSON object on stdout, also when the source does not compile:
//   main      the source's unit name: its file name, as build.mjs names the project's sources,
//             so the same file gives the same bytecode (the metadata hash covers unit names)
//   sources   {unit name: sha256 of the file read} for the source and every file it imports
//   contracts {unit name: {contract name: artifact, in build.mjs's shape}}
//   errors    solc's errors (not warnings), each with the file and line they point at
// Imports resolve against the source's folder: `import "./lib/A.sol"` and `import "lib/A.sol"`
// both read <folder>/lib/A.sol. Exits non-zero only when it cannot run at all.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import solc from "solc";
import { artifact, settings } from "./settings.mjs";

const source = path.resolve(process.argv[2]);
const folder = path.dirname(source);
const main = path.basename(source);
const read = {}; // unit name -> file content, for the line numbers of errors

function load(unit) {
  const buffer = fs.readFileSync(path.resolve(folder, unit));
  read[unit] = { buffer, sha256: crypto.createHash("sha256").update(buffer).digest("hex") };
  return buffer.toString("utf8");
}

function findImports(unit) {
  try {
    return { contents: load(unit) };
  } catch (e) {
    return { error: `${path.resolve(folder, unit)}: ${e.code === "ENOENT" ? "no such file" : e.message}` };
  }
}

const input = { language: "Solidity", sources: { [main]: { content: load(main) } }, settings };
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));

function located(e) {
  const where = e.sourceLocation;
  const file = where && read[where.file];
  if (!file || where.start < 0) return { file: where ? where.file : null, line: null, column: null };
  // solc's offsets count bytes, not characters
  const before = file.buffer.subarray(0, where.start);
  const lineStart = before.lastIndexOf(0x0a) + 1;
  return { file: where.file, line: before.filter((b) => b === 0x0a).length + 1, column: where.start - lineStart + 1 };
}

const result = {
  compiler: solc.version(),
  main,
  sources: Object.fromEntries(Object.entries(read).map(([unit, f]) => [unit, f.sha256])),
  contracts: {},
  errors: (output.errors || [])
    .filter((e) => e.severity === "error")
    .map((e) => ({ type: e.type, message: e.message, ...located(e), formatted: e.formattedMessage })),
};
for (const [file, contracts] of Object.entries(output.contracts || {})) {
  result.contracts[file] = {};
  for (const [name, c] of Object.entries(contracts)) result.contracts[file][name] = artifact(solc, file, name, c);
}
process.stdout.write(JSON.stringify(result) + "\n");
