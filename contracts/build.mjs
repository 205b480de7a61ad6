// Compiles contracts/src/*.sol with the pinned npm `solc` into contracts/artifacts/<Name>.json.
// `node contracts/build.mjs --out DIR` writes elsewhere (the staleness test compares the two).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";
import { artifact, settings } from "./settings.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const srcDir = path.join(here, "src");
const outFlag = process.argv.indexOf("--out");
const outDir = outFlag >= 0 ? path.resolve(process.argv[outFlag + 1]) : path.join(here, "artifacts");

const sources = {};
for (const file of fs.readdirSync(srcDir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[file] = { content: fs.readFileSync(path.join(srcDir, file), "utf8") };
}
const output = JSON.parse(solc.compile(JSON.stringify({ language: "Solidity", sources, settings })));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);

fs.mkdirSync(outDir, { recursive: true });
for (const [file, contracts] of Object.entries(output.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    const json = JSON.stringify(artifact(solc, file, name, c), null, 2) + "\n";
    fs.writeFileSync(path.join(outDir, `${name}.json`), json);
    console.log(`${name}: ${c.evm.deployedBytecode.object.length / 2} bytes deployed`);
  }
}
