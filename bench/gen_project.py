#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/gen_project.py — a large dorm project for the migrations benchmark.

    python3 bench/gen_project.py DIR [MODELS=200] [MIGRATIONS=500]

Writes DIR/models.json with MODELS models (a few fields each, a foreign key
to an earlier model for most of them) and DIR/migrations/ with MIGRATIONS
migrations whose replay gives exactly those models: the models are created
over the first migrations, then the remaining ones add, alter and remove
fields spread over the models, so makemigrations afterwards finds nothing
to do.  Deterministic: the same arguments give the same files.
"""
import json
import os
import sys

out = sys.argv[1]
nmodels = int(sys.argv[2]) if len(sys.argv) > 2 else 200
nmig = int(sys.argv[3]) if len(sys.argv) > 3 else 500
os.makedirs(os.path.join(out, "migrations"), exist_ok=True)


def base_fields(i):
    f = [{"name": "id", "type": "auto", "primary_key": True},
         {"name": "name", "type": "varchar", "max_length": 100},
         {"name": "created", "type": "datetime"},
         {"name": "score", "type": "integer", "null": True}]
    if i > 0:
        f.append({"name": "parent", "type": "foreign_key", "to": "M%d" % (i // 2),
                  "on_delete": "cascade", "null": True})
    return f


models = {i: {"name": "M%d" % i, "table": "m%d" % i, "fields": base_fields(i)}
          for i in range(nmodels)}
migs = []
# Creations: 4 models per migration.
per = 4
i = 0
while i < nmodels:
    ops = []
    for j in range(i, min(i + per, nmodels)):
        m = models[j]
        ops.append({"op": "create_model", "name": m["name"], "table": m["table"],
                    "fields": json.loads(json.dumps(m["fields"]))})
    migs.append(ops)
    i += per
# Changes, round-robin over the models: add a field, alter it, sometimes
# remove it again.
k = 0
while len(migs) < nmig:
    i = k % nmodels
    m = models[i]
    step = (k // nmodels) % 3
    fname = "extra%d" % (k // (nmodels * 3))
    if step == 0:
        f = {"name": fname, "type": "integer", "null": True}
        m["fields"].append(f)
        migs.append([{"op": "add_field", "model": m["name"], "field": dict(f)}])
    elif step == 1:
        old = next(f for f in m["fields"] if f["name"] == fname)
        new = {"name": fname, "type": "bigint", "null": True}
        m["fields"][m["fields"].index(old)] = new
        migs.append([{"op": "alter_field", "model": m["name"], "field": new,
                      "old_field": old}])
    else:
        old = next(f for f in m["fields"] if f["name"] == fname)
        m["fields"].remove(old)
        migs.append([{"op": "remove_field", "model": m["name"], "field": old}])
    k += 1
prev = None
for n, ops in enumerate(migs, 1):
    name = "%04d_step" % n
    doc = {"name": name, "dependencies": [prev] if prev else [], "operations": ops}
    with open(os.path.join(out, "migrations", name + ".json"), "w") as fh:
        json.dump(doc, fh, indent=1)
    prev = name
with open(os.path.join(out, "models.json"), "w") as fh:
    json.dump({"models": [models[i] for i in range(nmodels)]}, fh, indent=1)
