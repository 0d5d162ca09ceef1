// Independent client check: the official MCP TypeScript SDK talks to a
// running servicetsunami-mcp. It starts nothing; run.sh provides
// MCP_URL, MCP_API_KEY and PARQUET_URL.
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'

const { MCP_URL, MCP_API_KEY, PARQUET_URL } = process.env
if (!MCP_URL || !MCP_API_KEY || !PARQUET_URL) {
  console.error('MCP_URL, MCP_API_KEY and PARQUET_URL must be set')
  process.exit(2)
}

let passed = 0
let failed = 0
async function check(name, fn) {
  try {
    await fn()
    passed++
    console.log(`ok   ${name}`)
  } catch (e) {
    failed++
    console.log(`FAIL ${name}: ${e?.stack ?? e}`)
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message)
}

async function connect(key) {
  const client = new Client({ name: 'client-check', version: '1.0.0' })
  const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } },
  })
  await client.connect(transport)
  return client
}

async function callOk(client, name, args) {
  const result = await client.callTool({ name, arguments: args })
  assert(!result.isError, `${name} failed: ${JSON.stringify(result.content)}`)
  assert(result.structuredContent, `${name} returned no structured content`)
  return result.structuredContent
}

const tenant = 'client-check'
let client
let bronze
let silver

await check('a wrong key is refused', async () => {
  // The SDK reports auth failures in its own words, so check the status directly too.
  const response = await fetch(MCP_URL, {
    method: 'POST',
    headers: { Authorization: 'Bearer wrong-key', 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '0' } } }),
  })
  assert(response.status === 401, `expected 401, got ${response.status}`)
  let refused = false
  try {
    const c = await connect('wrong-key')
    await c.close()
  } catch {
    refused = true
  }
  assert(refused, 'the SDK should fail to connect with a wrong key')
})

await check('connects with the key', async () => {
  client = await connect(MCP_API_KEY)
})

await check('tools/list has seven tools with schemas and annotations', async () => {
  const { tools } = await client.listTools()
  const names = tools.map((t) => t.name).sort()
  const expected = ['create_dataset', 'dataset_status', 'describe_table', 'drop_dataset', 'list_tables', 'query', 'transform_to_silver']
  assert(JSON.stringify(names) === JSON.stringify(expected), `tools: ${names}`)
  for (const t of tools) {
    assert(t.inputSchema?.type === 'object', `${t.name} input schema`)
    assert(t.outputSchema?.type === 'object', `${t.name} output schema`)
    assert(t.annotations && typeof t.annotations.readOnlyHint === 'boolean', `${t.name} annotations`)
  }
})

await check('create_dataset builds bronze', async () => {
  bronze = await callOk(client, 'create_dataset', {
    tenant_id: tenant,
    dataset_id: 'check-1',
    dataset_name: 'Client Check',
    parquet_url: PARQUET_URL,
    schema: {},
  })
  assert(bronze.bronze_table.startsWith('servicetsunami.client_check_bronze.client_check_'), bronze.bronze_table)
  assert(bronze.row_count === 4, `row_count ${bronze.row_count}`)
})

await check('transform_to_silver types and de-duplicates', async () => {
  silver = await callOk(client, 'transform_to_silver', { tenant_id: tenant, bronze_table: bronze.bronze_table })
  assert(silver.duplicates_removed === 1, `duplicates_removed ${silver.duplicates_removed}`)
  const types = Object.fromEntries(silver.columns.map((c) => [c.name, c.data_type]))
  assert(types.order_id === 'BIGINT', `order_id ${types.order_id}`)
  assert(types.customer_code === 'VARCHAR', `customer_code ${types.customer_code}`)
  assert(types._ingested_at === 'TIMESTAMP', `lineage ${JSON.stringify(types)}`)
})

await check('query reads the silver rows', async () => {
  const out = await callOk(client, 'query', {
    tenant_id: tenant,
    sql: `SELECT order_id, customer_code, amount FROM ${silver.silver_table} ORDER BY order_id`,
  })
  assert(out.row_count === 3, `row_count ${out.row_count}`)
  assert(out.rows[0].customer_code === '007', `leading zeros: ${JSON.stringify(out.rows[0])}`)
  assert(out.rows[2].amount === null, `N/A becomes NULL: ${JSON.stringify(out.rows[2])}`)
})

await check('query refuses writes as a tool error', async () => {
  const result = await client.callTool({
    name: 'query',
    arguments: { tenant_id: tenant, sql: `DROP TABLE ${silver.silver_table}` },
  })
  assert(result.isError === true, 'DROP should be refused')
})

await check('drop_dataset drops both tables, and again drops nothing', async () => {
  const dropped = await callOk(client, 'drop_dataset', { tenant_id: tenant, dataset_id: 'check-1' })
  assert(dropped.dropped_tables.length === 2, `dropped ${JSON.stringify(dropped)}`)
  const status = await callOk(client, 'dataset_status', { tenant_id: tenant, dataset_id: 'check-1' })
  assert(!status.bronze.exists && !status.silver.exists, `status ${JSON.stringify(status)}`)
  const again = await callOk(client, 'drop_dataset', { tenant_id: tenant, dataset_id: 'check-1' })
  assert(again.dropped_tables.length === 0 && again.removed_files === 0, `again ${JSON.stringify(again)}`)
})

await client?.close()
console.log(`${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
