// Validate Flux objects against Flux's published CRD schemas (from @kubernetes-models/flux-cd).
// stdin: a JSON array of objects; stdout: a JSON array, one list of error messages per object.
// Used by tests/testbed/schemas.py; run `scripts/setup` first (npm ci in this directory).
import { readFileSync } from "node:fs";

const objects = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const obj of objects) {
  const [group, version] = String(obj.apiVersion ?? "").split("/");
  const kind = String(obj.kind ?? "");
  let model;
  try {
    model = (await import(`@kubernetes-models/flux-cd/${group}/${version}`))[kind];
  } catch (err) {
    model = undefined;
  }
  if (typeof model !== "function") {
    results.push([`no published Flux schema for ${obj.apiVersion} ${kind}`]);
    continue;
  }
  try {
    new model(obj).validate();
    results.push([]);
  } catch (err) {
    results.push([String(err.message)]);
  }
}
process.stdout.write(JSON.stringify(results));
