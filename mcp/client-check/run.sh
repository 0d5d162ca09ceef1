#!/usr/bin/env bash
# Runs the independent TypeScript MCP client against the already-built
# servicetsunami-mcp binary. Builds nothing: run `cargo build -p
# servicetsunami-mcp` first. Prints "N passed, M failed"; exits non-zero on failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="$target/debug/servicetsunami-mcp"
[[ -x "$bin" ]] || { echo "missing $bin; run: cargo build -p servicetsunami-mcp" >&2; exit 1; }
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

# The file server: writes a small Parquet file, then serves it only to
# requests bearing the MCP key (as ServiceTsunami's storage endpoint does).
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
  if (req.headers.authorization !== `Bearer ${key}`) {
    res.writeHead(401).end('unauthorized')
    return
  }
  res.writeHead(200, { 'Content-Type': 'application/vnd.apache.parquet', 'Content-Length': body.length }).end(body)
})
server.listen(0, '127.0.0.1', () => writeFileSync(portFile, String(server.address().port)))
JS
# Evaluated from the package directory so its imports resolve to node_modules.
(cd "$here" && exec node --input-type=module -e "$files_js" "$work/data.parquet" "$key" "$work/files.port") &
pids+=($!)

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port="$(free_port)"
MCP_API_KEY="$key" MCP_BIND_ADDR="127.0.0.1:$port" LAKEHOUSE_PATH="$work/lakehouse" RUST_LOG="${RUST_LOG:-warn}" \
  "$bin" &
pids+=($!)

for _ in $(seq 1 100); do
  if [[ -s "$work/files.port" ]] && curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then break; fi
  sleep 0.1
done
[[ -s "$work/files.port" ]] || { echo "file server did not start" >&2; exit 1; }
curl -fs "http://127.0.0.1:$port/healthz" >/dev/null || { echo "servicetsunami-mcp did not start" >&2; exit 1; }

cd "$here"
MCP_URL="http://127.0.0.1:$port/mcp" MCP_API_KEY="$key" PARQUET_URL="http://127.0.0.1:$(cat "$work/files.port")/data.parquet" \
  node check.mjs
