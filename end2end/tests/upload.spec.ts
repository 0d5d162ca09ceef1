import { test, expect } from "@playwright/test";
import { hydrated, watchConsole } from "./stack";

test("upload a CSV: progress bar, listed, badge reaches synced without reload, preview", async ({ page }, testInfo) => {
  const problems = watchConsole(page);
  await page.goto("/");
  await hydrated(page);

  const name = `Cities ${Date.now()}`;
  // Big enough (~11 MB) that the progress bar is on screen for a moment.
  let csv = "city,country,population\nOslo,Norway,709037\nBergen,Norway,291940\nLyon,France,522250\n";
  for (let i = 0; i < 400_000; i++) csv += `Town ${i},Country ${i % 50},${i * 3}\n`;
  await page.locator('input[type="file"]').setInputFiles({
    name: "cities.csv",
    mimeType: "text/csv",
    buffer: Buffer.from(csv),
  });
  await expect(page.locator('input[name="name"]')).toHaveValue("cities");
  await page.locator('input[name="name"]').fill(name);
  await page.getByRole("button", { name: "Upload" }).click();
  await expect(page.locator("#upload-progress")).toBeVisible();

  await expect(page.locator("#upload-notice")).toContainText("400,003 rows");
  const row = page.locator("table.datasets tr", { hasText: name });
  await expect(row).toBeVisible();
  await expect(row).toContainText("csv");
  // Live over SSE: pending → queued → syncing → synced, no reload.
  const navigations: string[] = [];
  page.on("framenavigated", (f) => navigations.push(f.url()));
  await expect(row.locator(".badge")).toHaveText("synced", { timeout: 60_000 });
  expect(navigations).toEqual([]);
  await page.screenshot({ path: testInfo.outputPath("datasets.png"), fullPage: true });

  await row.getByRole("link", { name }).click();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(name);
  await expect(page.locator("table.preview")).toContainText("Bergen");
  await expect(page.locator("table.schema")).toContainText("population");
  await expect(page.locator("table.schema")).toContainText("BIGINT");
  await expect(page.locator("table.schema svg.spark")).toHaveCount(1);
  await page.screenshot({ path: testInfo.outputPath("dataset.png"), fullPage: true });

  expect(problems).toEqual([]);
});

test("a malformed file shows its error inline and adds nothing", async ({ page }) => {
  await page.goto("/");
  await hydrated(page);
  const before = await page.locator("table.datasets tbody tr").count();
  await page.locator('input[type="file"]').setInputFiles({
    name: "ragged.csv",
    mimeType: "text/csv",
    buffer: Buffer.from("a,b\n1,2\n3,4,5\n"),
  });
  await page.getByRole("button", { name: "Upload" }).click();
  await expect(page.locator("#upload-error")).toContainText("Line 3 has 3 fields but the header has 2");
  await expect(page.locator("table.datasets tbody tr")).toHaveCount(before);
});

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  test("the pages render and the form still uploads", async ({ page }) => {
    await page.goto("/");
    await expect(page.getByRole("heading", { name: "Upload a dataset" })).toBeVisible();
    await page.locator('input[type="file"]').setInputFiles({
      name: "nojs.csv",
      mimeType: "text/csv",
      buffer: Buffer.from("k,v\na,1\nb,2\n"),
    });
    await page.getByRole("button", { name: "Upload" }).click();
    await expect(page).toHaveURL(/\/datasets\/[0-9a-f-]{36}$/);
    await expect(page.locator("table.preview")).toContainText("b");
    await expect(page.locator("#row-count")).toHaveText("2");
  });
});
