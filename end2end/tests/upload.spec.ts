import { test, expect, type Page, type ConsoleMessage } from "@playwright/test";

/** Collects console errors and warnings (hydration mismatches show up here). */
function watchConsole(page: Page): string[] {
  const problems: string[] = [];
  page.on("console", (msg: ConsoleMessage) => {
    if (msg.type() === "error" || msg.type() === "warning") problems.push(`${msg.type()}: ${msg.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`pageerror: ${err.message}`));
  return problems;
}

/** Resolves once the WebAssembly bundle has hydrated the page. */
async function hydrated(page: Page) {
  await page.waitForFunction(() => (window as any).__servicetsunami_hydrated === true);
}

test("upload a CSV, see it listed, open its preview", async ({ page }, testInfo) => {
  const problems = watchConsole(page);
  await page.goto("/");
  await hydrated(page);

  const name = `Cities ${Date.now()}`;
  const csv = "city,country,population\nOslo,Norway,709037\nBergen,Norway,291940\nLyon,France,522250\n";
  await page.locator('input[type="file"]').setInputFiles({
    name: "cities.csv",
    mimeType: "text/csv",
    buffer: Buffer.from(csv),
  });
  await expect(page.locator('input[name="name"]')).toHaveValue("cities");
  await page.locator('input[name="name"]').fill(name);
  await page.getByRole("button", { name: "Upload" }).click();

  await expect(page.locator("#upload-notice")).toContainText("3 rows");
  const row = page.locator("table.datasets tr", { hasText: name });
  await expect(row).toBeVisible();
  await expect(row).toContainText("csv");
  await expect(row.locator(".badge")).toHaveText("local only");
  await page.screenshot({ path: testInfo.outputPath("datasets.png"), fullPage: true });

  await row.getByRole("link", { name }).click();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(name);
  await expect(page.locator("table.preview")).toContainText("Bergen");
  await expect(page.locator("table.schema")).toContainText("population");
  await expect(page.locator("table.schema")).toContainText("BIGINT");
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
