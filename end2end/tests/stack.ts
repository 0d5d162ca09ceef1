/**
 * Test helpers: console watching, hydration, uploads, and control of the MCP
 * server that .ci/e2e-server started (it records its pid and command in
 * .state/mcp.json).
 */
import { expect, type ConsoleMessage, type Page } from "@playwright/test";
import { spawn } from "node:child_process";
import { openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const stateDir = process.env.E2E_STATE_DIR ?? join(__dirname, "..", ".state");
const mcpFile = join(stateDir, "mcp.json");

interface McpInfo {
  pid: number;
  port: number;
  bin: string;
  env: Record<string, string>;
  log: string;
}

function mcpInfo(): McpInfo {
  return JSON.parse(readFileSync(mcpFile, "utf8"));
}

async function mcpAnswers(port: number): Promise<boolean> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/healthz`);
    return r.ok;
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops the MCP server (SIGKILL) and waits until its port is closed. */
export async function stopMcp() {
  const info = mcpInfo();
  if (alive(info.pid)) process.kill(info.pid, "SIGKILL");
  await expect.poll(() => mcpAnswers(info.port), { timeout: 10_000 }).toBe(false);
}

/** Starts the MCP server again on the same port and lakehouse. */
export async function startMcp() {
  const info = mcpInfo();
  if (await mcpAnswers(info.port)) return;
  const log = openSync(info.log, "a");
  const child = spawn(info.bin, [], {
    env: { ...process.env, ...info.env },
    detached: true,
    stdio: ["ignore", log, log],
  });
  child.unref();
  writeFileSync(mcpFile, JSON.stringify({ ...info, pid: child.pid }));
  await expect.poll(() => mcpAnswers(info.port), { timeout: 20_000 }).toBe(true);
}

/** Collects console errors and warnings (hydration mismatches show up here). */
export function watchConsole(page: Page): string[] {
  const problems: string[] = [];
  page.on("console", (msg: ConsoleMessage) => {
    if (msg.type() === "error" || msg.type() === "warning") problems.push(`${msg.type()}: ${msg.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
  return problems;
}

/** Resolves once the WebAssembly bundle has hydrated the page. */
export async function hydrated(page: Page) {
  await page.waitForFunction(() => (window as any).__servicetsunami_hydrated === true);
}

/** Uploads a CSV through the form and returns the new dataset's row in the list. */
export async function uploadCsv(page: Page, name: string, csv: string) {
  await page.locator('input[type="file"]').setInputFiles({
    name: "data.csv",
    mimeType: "text/csv",
    buffer: Buffer.from(csv),
  });
  await page.locator('input[name="name"]').fill(name);
  await page.getByRole("button", { name: "Upload" }).click();
  await expect(page.locator("#upload-notice")).toBeVisible();
  const row = page.locator("table.datasets tr", { hasText: name });
  await expect(row).toBeVisible();
  return row;
}

export const smallCsv = "city,country,population\nOslo,Norway,709037\nBergen,Norway,291940\nLyon,France,522250\n";
