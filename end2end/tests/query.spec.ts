import { test, expect } from "@playwright/test";
import { readFileSync } from "node:fs";
import { hydrated, smallCsv, uploadCsv, watchConsole } from "./stack";

test("the query page runs a query in each mode and charts the result", async ({ page }, testInfo) => {
  const problems = watchConsole(page);
  await page.goto("/");
  await hydrated(page);
  const name = `Cities ${Date.now()}`;
  const row = await uploadCsv(page, name, smallCsv);
  await expect(row.locator(".badge")).toHaveText("synced", { timeout: 30_000 });
  const table = name.toLowerCase().replace(" ", "_");

  await page.goto("/query");
  await hydrated(page);
  await expect(page.locator(`#query-tables li[data-table="${table}"]`)).toBeVisible();
  const sql = `SELECT city, population FROM ${table} ORDER BY population DESC`;
  for (const [engine, ran] of [
    ["local", "local"],
    ["lakehouse", "lakehouse"],
    ["auto", "lakehouse"],
  ]) {
    await page.locator("#sql").fill(sql);
    await page.locator("#engine").selectOption(engine);
    await page.locator("#run-query").click();
    await expect(page.locator("#query-engine")).toHaveText(ran, { timeout: 30_000 });
    await expect(page.locator("#query-result tbody tr")).toHaveCount(3);
    await expect(page.locator("#query-result tbody tr").first()).toContainText("Oslo");
  }
  await hydrated(page);
  await page.locator("#query-chart summary").click();
  await expect(page.locator("#query-chart svg rect")).toHaveCount(3);
  await page.locator("#chart-kind").selectOption("line");
  await expect(page.locator("#query-chart svg polyline")).toHaveCount(1);
  await page.screenshot({ path: testInfo.outputPath("query.png"), fullPage: true });

  // A file is refused with a reason, not a 500 page.
  await page.locator("#sql").fill("SELECT * FROM read_csv('/etc/passwd')");
  await page.locator("#engine").selectOption("local");
  await page.locator("#run-query").click();
  await expect(page.locator("#query-error")).toContainText("table functions");
  expect(problems).toEqual([]);
});

test("a query's whole result downloads as CSV", async ({ page }) => {
  await page.goto("/");
  await hydrated(page);
  const name = `Download ${Date.now()}`;
  await uploadCsv(page, name, smallCsv);
  const table = name.toLowerCase().replace(" ", "_");
  await page.goto(`/query?engine=local&sql=${encodeURIComponent(`SELECT city, population FROM ${table} ORDER BY city`)}`);
  await expect(page.locator("#query-result tbody tr")).toHaveCount(3);
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.locator("#download-csv").click(),
  ]);
  expect(download.suggestedFilename()).toMatch(/^query-\d{8}-\d{6}\.csv$/);
  const text = readFileSync(await download.path(), "utf8");
  expect(text).toBe("city,population\nBergen,291940\nLyon,522250\nOslo,709037\n");
});
