/**
 * Test helpers: console watching, hydration, uploads, and control of the MCP
 * server that the stack harness started (.ci/e2e-server runs `stack up`; the
 * same CLI stops and restarts MCP here).
 */
import { expect, type ConsoleMessage, type Page } from "@playwright/test";
import { execFileSync } from "node:child_process";
import { homedir } from "node:os";
import { join } from "node:path";

/** The first admin's signed-in browser state (written by auth.setup.ts). */
export const adminState = join(__dirname, "..", ".auth", "admin.json");
export const admin = { email: "admin@e2e.example.org", password: "e2e admin password" };

const stateDir = process.env.E2E_STATE_DIR ?? join(__dirname, "..", ".state");
const targetDir = process.env.CARGO_TARGET_DIR ?? join(homedir(), ".cache", "servicetsunami", "target");
const stackBin = join(targetDir, "debug", "stack");

function stack(command: "mcp-stop" | "mcp-start") {
  execFileSync(stackBin, [command, "--state", stateDir], { stdio: "inherit", timeout: 30_000 });
}

/** Stops the MCP server (SIGKILL); returns once its port is closed. */
export async function stopMcp() {
  stack("mcp-stop");
}

/** Starts the MCP server again on the same port and lakehouse; returns once it answers. */
export async function startMcp() {
  stack("mcp-start");
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

/** Signs up a new team through the form (open sign-up) and lands signed in. */
export async function signUp(page: Page, email: string, password: string, team: string) {
  await page.goto("/signup");
  await page.locator('input[name="team"]').fill(team);
  await page.locator('input[name="email"]').fill(email);
  await page.locator('input[name="password"]').fill(password);
  await page.getByRole("button", { name: "Sign up" }).click();
  await expect(page).toHaveURL(/\/$/);
  await expect(page.locator("#signed-in-as")).toHaveText(email);
}

/** Logs in through the form. */
export async function logIn(page: Page, email: string, password: string) {
  await page.goto("/login");
  await page.locator('input[name="email"]').fill(email);
  await page.locator('input[name="password"]').fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await expect(page.locator("#signed-in-as")).toHaveText(email);
}
