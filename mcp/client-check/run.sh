#!/usr/bin/env bash
# Runs the independent TypeScript MCP client against servicetsunami-mcp,
# started by the stack harness. Builds nothing: build the server-side packages
# first (bash .ci/test does). Prints "N passed, M failed"; exits non-zero on failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
stack="$target/debug/stack"
[[ -x "$stack" ]] || { echo "missing $stack; build the server-side packages first (bash .ci/test)" >&2; exit 1; }
command -v node >/dev/null || { echo "node is required" >&2; exit 1; }
if [[ ! -d "$here/node_modules/@modelcontextprotocol/sdk" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent)
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

key="check-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# The file server: writes a small Parquet file, then serves it where the app's
# internal listener serves datasets (/internal/storage/datasets/…); the MCP
# server downloads only from there (MCP_INTERNAL_BASE_URL) and sends no
# credential, which the server checks.
read -r -d '' files_js <<'JS' || true
import http from 'node:http'
import { parquetWriteFile } from 'hyparquet-writer'
const [file, key, portFile] = process.argv.slice(1)
parquetWriteFile({
  filename: file,
  columnData: [
    { name: 'Order ID', data: ['1', '2', '2', '3'], type: 'STRING' },
    { name: 'Customer Code', data: ['007', ' 010 ', '010', '120'], type: 'STRING' },
    { name: 'Amount', data: ['10.50', '3.25', '3.25', 'N/A'], type: 'STRING' },
  ],
})
const { readFileSync, writeFileSync } = await import('node:fs')
const body = readFileSync(file)
const server = http.createServer((req, res) => {
  if (req.headers.authorization !== undefined) {
    res.writeHead(400).end('the MCP server must send no credential here')
    return
  }
  if (req.url !== '/internal/storage/datasets/data.parquet') {
    res.writeHead(404).end('not found')
    return
  }
  res.writeHead(200, { 'Content-Type': 'application/vnd.apache.parquet', 'Content-Length': body.length }).end(body)
})
server.listen(0, '127.0.0.1', () => writeFileSync(portFile, String(server.address().port)))
JS
# Evaluated from the package directory so its imports resolve to node_modules.
(cd "$here" && exec node --input-type=module -e "$files_js" "$work/data.parquet" "$key" "$work/files.port") &
pids+=($!)

for _ in $(seq 1 150); do
  if [[ -s "$work/files.port" ]]; then break; fi
  sleep 0.1
done
[[ -s "$work/files.port" ]] || { echo "file server did not start" >&2; exit 1; }
files="http://127.0.0.1:$(cat "$work/files.port")"

MCP_API_KEY="$key" MCP_INTERNAL_BASE_URL="$files" RUST_LOG="${RUST_LOG:-warn}" \
  "$stack" up --services mcp --state "$work/stack" &
pids+=($!)
for _ in $(seq 1 150); do
  if [[ -s "$work/stack/stack.json" ]]; then break; fi
  sleep 0.1
done
[[ -s "$work/stack/stack.json" ]] || { echo "servicetsunami-mcp did not start" >&2; exit 1; }
mcp_url="$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).mcp.url)' "$work/stack/stack.json")"

cd "$here"
MCP_URL="$mcp_url" MCP_API_KEY="$key" PARQUET_URL="$files/internal/storage/datasets/data.parquet" \
  node check.mjs
