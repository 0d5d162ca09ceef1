import { test, expect } from "@playwright/test";
import { adminState, hydrated, smallCsv, uploadCsv, watchConsole } from "./stack";

test("a dataset uploaded in one window appears live in another", async ({ browser }) => {
  const first = await browser.newContext({ storageState: adminState });
  const second = await browser.newContext({ storageState: adminState });
  const a = await first.newPage();
  const b = await second.newPage();
  await b.goto("/");
  await hydrated(b);
  await a.goto("/");
  await hydrated(a);
  const name = `Appears ${Date.now()}`;
  await uploadCsv(a, name, smallCsv);
  // No reload in b.
  await expect(b.locator("table.datasets tr", { hasText: name })).toBeVisible({ timeout: 15_000 });
  await first.close();
  await second.close();
});

test("delete names what goes, and the row leaves every open window", async ({ browser }, testInfo) => {
  const first = await browser.newContext({ storageState: adminState });
  const second = await browser.newContext({ storageState: adminState });
  const a = await first.newPage();
  const b = await second.newPage();
  const problems = watchConsole(a);
  await a.goto("/");
  await hydrated(a);
  const name = `Doomed ${Date.now()}`;
  const row = await uploadCsv(a, name, smallCsv);
  await expect(row.locator(".badge")).toHaveText("synced", { timeout: 30_000 });
  await b.goto("/");
  await hydrated(b);
  const rowB = b.locator("table.datasets tr", { hasText: name });
  await expect(rowB).toBeVisible();

  await row.getByRole("link", { name }).click();
  // The list page is hydrated too: wait for the dataset page before asking.
  await expect(a).toHaveURL(/\/datasets\/[0-9a-f-]{36}$/);
  await hydrated(a);
  await a.locator("#delete-dataset").click();
  // The confirmation names the dataset, its rows and its lakehouse tables.
  const scope = a.locator("#delete-scope");
  await expect(scope).toContainText(name);
  await expect(scope).toContainText("3 rows");
  await expect(scope).toContainText("_bronze.");
  await expect(scope).toContainText("_silver.");
  await a.screenshot({ path: testInfo.outputPath("confirm.png"), fullPage: true });
  await a.locator("#confirm-delete").click();

  // The deleting window lands on the list without the dataset; the other
  // window's row leaves without a reload.
  await expect(a).toHaveURL(/\/$/, { timeout: 15_000 });
  await expect(rowB).toHaveCount(0, { timeout: 30_000 });
  await hydrated(a);
  await expect(a.locator("table.datasets tr", { hasText: name })).toHaveCount(0, { timeout: 30_000 });
  await b.screenshot({ path: testInfo.outputPath("gone.png"), fullPage: true });
  expect(problems).toEqual([]);
  await first.close();
  await second.close();
});

test("a dataset page open elsewhere says the dataset was deleted", async ({ browser }) => {
  const first = await browser.newContext({ storageState: adminState });
  const second = await browser.newContext({ storageState: adminState });
  const a = await first.newPage();
  const b = await second.newPage();
  await a.goto("/");
  await hydrated(a);
  const name = `Watched ${Date.now()}`;
  const row = await uploadCsv(a, name, smallCsv);
  await expect(row.locator(".badge")).toHaveText("synced", { timeout: 30_000 });
  const href = await row.getByRole("link", { name }).getAttribute("href");
  await b.goto(href!);
  await hydrated(b);
  await a.goto(href!);
  await hydrated(a);
  await a.locator("#delete-dataset").click();
  await a.locator("#confirm-delete").click();
  await expect(b.locator("#deleted-elsewhere")).toBeVisible({ timeout: 30_000 });
  await first.close();
  await second.close();
});

test("a new version shows its schema difference, then replaces the dataset and syncs", async ({ page }, testInfo) => {
  const problems = watchConsole(page);
  await page.goto("/");
  await hydrated(page);
  const name = `Versioned ${Date.now()}`;
  const row = await uploadCsv(page, name, smallCsv);
  await expect(row.locator(".badge")).toHaveText("synced", { timeout: 30_000 });
  await row.getByRole("link", { name }).click();
  await expect(page).toHaveURL(/\/datasets\/[0-9a-f-]{36}$/);
  await hydrated(page);
  await expect(page.locator("#version-history tbody tr")).toHaveCount(1);

  // population gone, area added, city unchanged: append cannot take it.
  await page.locator("#new-version-file").setInputFiles({
    name: "cities-2024.csv",
    mimeType: "text/csv",
    buffer: Buffer.from("city,country,area_km2\nOslo,Norway,454.0\nTromsø,Norway,NA\n"),
  });
  await page.locator("#new-version-submit").click();
  await expect(page.locator("#staged-version h1")).toContainText("New version 2");
  await expect(page.locator('#schema-diff tr[data-change="added"]')).toContainText("area_km2");
  await expect(page.locator('#schema-diff tr[data-change="removed"]')).toContainText("population");
  await expect(page.locator("#append-version")).toBeDisabled();
  await expect(page.locator("#append-conflicts")).toContainText("population");
  await page.screenshot({ path: testInfo.outputPath("schema-diff.png"), fullPage: true });

  await page.locator("#replace-version").click();
  await expect(page).toHaveURL(/\/datasets\/[0-9a-f-]+#versions$/);
  await hydrated(page);
  await expect(page.locator("#version-history tbody tr")).toHaveCount(2);
  await expect(page.locator('#version-history tr[data-version="2"]')).toContainText("replace");
  await expect(page.locator("main")).toContainText("Tromsø");
  // The new version syncs too.
  await expect(page.locator("#sync .badge").first()).toHaveText("synced", { timeout: 30_000 });
  expect(problems).toEqual([]);
});
