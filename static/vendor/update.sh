#!/usr/bin/env bash
# Re-fetches the vendored browser packages by name with npm and checks them against VERSIONS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent htmx.org@2.0.8 htmx-ext-ws@2.0.4 >/dev/null
mkdir a b
tar xzf htmx.org-2.0.8.tgz -C a
tar xzf htmx-ext-ws-2.0.4.tgz -C b
cp a/package/dist/htmx.min.js "$here/htmx-2.0.8.min.js"
cp b/package/dist/ws.min.js "$here/htmx-ext-ws-2.0.4.min.js"
cp a/package/LICENSE "$here/LICENSE.htmx"
cp b/package/LICENSE "$here/LICENSE.htmx-ext-ws"
echo "vendored htmx.org 2.0.8 and htmx-ext-ws 2.0.4 into $here"
