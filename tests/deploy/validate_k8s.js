// Validates Kubernetes objects against the API schemas of the npm package kubernetes-models.
// Input on stdin: a JSON array of objects (tests/deploy_check.sh converts the YAML). Exit 1 on the first invalid one.
'use strict';

const fs = require('fs');

const docs = JSON.parse(fs.readFileSync(0, 'utf8'));
let failures = 0;
let checked = 0;
for (const doc of docs) {
  if (doc === null) continue;
  const where = `${doc.kind}/${doc.metadata && doc.metadata.name}`;
  // kustomize files are not API objects.
  if (String(doc.apiVersion).startsWith('kustomize.config.k8s.io/')) continue;
  // apps/v1 -> kubernetes-models/apps/v1/StatefulSet; v1 -> kubernetes-models/v1/Service.
  const modulePath = `kubernetes-models/${doc.apiVersion}/${doc.kind}`;
  let Model;
  try {
    Model = require(modulePath)[doc.kind];
  } catch (err) {
    console.error(`${where}: no schema for ${doc.apiVersion} ${doc.kind} (${err.code || err.message})`);
    failures++;
    continue;
  }
  try {
    new Model(doc).validate();
    checked++;
  } catch (err) {
    console.error(`${where}: ${err.message}`);
    failures++;
  }
}
console.log(`kubernetes-models: ${checked} objects valid, ${failures} invalid`);
process.exit(failures === 0 && checked > 0 ? 0 : 1);
