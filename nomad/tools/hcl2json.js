#!/usr/bin/env node
// Parses HCL files with HashiCorp's own HCL parser (hcl/v2, compiled to WASM in
// the npm package @cdktf/hcl2json) and prints {"<path>": <json>} or
// {"<path>": {"__error__": "<diagnostics>"}} for each file given. Used by
// scripts/check-nomad; install with `npm ci` in this directory.
"use strict";
const fs = require("fs");
const { parse } = require("@cdktf/hcl2json");

(async () => {
  const out = {};
  for (const path of process.argv.slice(2)) {
    try {
      out[path] = await parse(path, fs.readFileSync(path, "utf8"));
    } catch (e) {
      out[path] = { __error__: String(e && e.message ? e.message : e) };
    }
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => {
  console.error(e);
  process.exit(2);
});
