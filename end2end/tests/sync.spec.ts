import { test, expect } from "@playwright/test";
import { adminState, hydrated, smallCsv, startMcp, stopMcp, uploadCsv, watchConsole } from "./stack";

// The stack (.ci/e2e-server) runs with DATABRICKS_RETRY_ATTEMPTS=3 and
// DATABRICKS_RETRY_INTERVAL=3 s.

test.afterEach(async () => {
  // Whatever a test did, the next one starts with MCP up.
  await startMcp();
});

test("with MCP stopped the badge shows retrying, and turns synced live once MCP is back", async ({ page }, testInfo) => {
  const problems = watchConsole(page);
  await stopMcp();
  await page.goto("/");
  await hydrated(page);
  const row = await uploadCsv(page, `Retrying ${Date.now()}`, smallCsv);
  const badge = row.locator(".badge");
  await expect(badge).toContainText("retrying", { timeout: 20_000 });
  await expect(badge).toContainText(/attempt \d of 3, (next in \d+ s|retrying now)/);
  await expect(badge).toHaveAttribute("title", /MCP/);
  await page.screenshot({ path: testInfo.outputPath("retrying.png"), fullPage: true });

  await startMcp();
  await expect(badge).toHaveText("synced", { timeout: 30_000 });
  await page.screenshot({ path: testInfo.outputPath("synced.png"), fullPage: true });
  expect(problems).toEqual([]);
});

test("after failed, the retry button leads to synced", async ({ page }, testInfo) => {
  await stopMcp();
  await page.goto("/");
  await hydrated(page);
  const name = `Failing ${Date.now()}`;
  const row = await uploadCsv(page, name, smallCsv);
  await expect(row.locator(".badge")).toHaveText("failed", { timeout: 40_000 });

  await row.getByRole("link", { name }).click();
  // The list page is hydrated too: wait for the dataset page before asking.
  await expect(page).toHaveURL(/\/datasets\/[0-9a-f-]{36}$/);
  await hydrated(page);
  await expect(page.locator("#sync .badge")).toHaveText("failed");
  await expect(page.locator("#sync-error")).toContainText("MCP");
  await expect(page.locator('#timeline tr[data-outcome="failed"]')).toHaveCount(1);
  await page.screenshot({ path: testInfo.outputPath("failed.png"), fullPage: true });

  await startMcp();
  await page.getByRole("button", { name: "Retry sync" }).click();
  await expect(page.locator("#sync .badge")).toHaveText("synced", { timeout: 30_000 });
  await expect(page.locator("#silver-table")).toContainText("_silver.");
  await page.screenshot({ path: testInfo.outputPath("retried.png"), fullPage: true });
});

test("the dataset page shows the preview, the schema and the timeline with every step", async ({ page }, testInfo) => {
  const problems = watchConsole(page);
  await page.goto("/");
  await hydrated(page);
  const name = `Timeline ${Date.now()}`;
  const row = await uploadCsv(page, name, smallCsv);
  await expect(row.locator(".badge")).toHaveText("synced", { timeout: 30_000 });
  await row.getByRole("link", { name }).click();
  // The list page is hydrated too: wait for the dataset page before asking.
  await expect(page).toHaveURL(/\/datasets\/[0-9a-f-]{36}$/);
  await hydrated(page);

  await expect(page.locator("table.preview")).toContainText("Bergen");
  await expect(page.locator("table.schema")).toContainText("population");
  for (const step of ["queued", "bronze", "silver", "metadata"]) {
    await expect(page.locator(`#timeline tr[data-step="${step}"][data-outcome="succeeded"]`)).toHaveCount(1);
  }
  await expect(page.locator("#bronze-table")).toContainText("_bronze.");
  await expect(page.locator("#silver-table")).toContainText("_silver.");
  await expect(page.locator("#last-sync")).toContainText("ago");
  await page.screenshot({ path: testInfo.outputPath("timeline.png"), fullPage: true });
  expect(problems).toEqual([]);
});

test("two browser contexts both see one change live", async ({ browser }) => {
  const first = await browser.newContext({ storageState: adminState });
  const second = await browser.newContext({ storageState: adminState });
  const a = await first.newPage();
  const b = await second.newPage();
  await stopMcp();
  await a.goto("/");
  await hydrated(a);
  const name = `Shared ${Date.now()}`;
  await uploadCsv(a, name, smallCsv);
  await b.goto("/");
  await hydrated(b);
  const rowA = a.locator("table.datasets tr", { hasText: name });
  const rowB = b.locator("table.datasets tr", { hasText: name });
  await expect(rowB.locator(".badge")).toContainText("retrying", { timeout: 20_000 });

  await startMcp();
  await Promise.all([
    expect(rowA.locator(".badge")).toHaveText("synced", { timeout: 30_000 }),
    expect(rowB.locator(".badge")).toHaveText("synced", { timeout: 30_000 }),
  ]);
  await first.close();
  await second.close();
});

test("at a phone's width the pages fit", async ({ browser }, testInfo) => {
  const context = await browser.newContext({
    viewport: { width: 375, height: 740 },
    isMobile: true,
    storageState: adminState,
  });
  const page = await context.newPage();
  await page.goto("/");
  await hydrated(page);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: testInfo.outputPath("phone.png"), fullPage: true });
  await context.close();
});
