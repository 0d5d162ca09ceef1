import { test, expect } from "@playwright/test";
import { hydrated, logIn, signUp, smallCsv, uploadCsv, watchConsole } from "./stack";

// These start signed out: each makes accounts of its own.
test.use({ storageState: { cookies: [], origins: [] } });

test("sign up, log in, upload, see the badge reach synced, log out", async ({ page }, testInfo) => {
  const problems = watchConsole(page);
  const email = `ada-${Date.now()}@example.org`;
  const password = "correct horse battery";
  await signUp(page, email, password, "Analytical Engines");
  await page.screenshot({ path: testInfo.outputPath("1-signed-up.png"), fullPage: true });

  await page.getByRole("button", { name: "Log out" }).click();
  await expect(page).toHaveURL(/\/login\?signed_out=1$/);
  await expect(page.getByRole("status")).toContainText("logged out");
  // Signed out, the datasets page sends us to log in.
  await page.goto("/");
  await expect(page).toHaveURL(/\/login\?next=%2F$/);
  await page.screenshot({ path: testInfo.outputPath("2-logged-out.png"), fullPage: true });

  await logIn(page, email, password);
  await hydrated(page);
  const name = `Notes ${Date.now()}`;
  const row = await uploadCsv(page, name, smallCsv);
  await expect(row.locator(".badge")).toHaveText("synced", { timeout: 60_000 });
  await page.screenshot({ path: testInfo.outputPath("3-synced.png"), fullPage: true });

  await page.getByRole("button", { name: "Log out" }).click();
  await expect(page).toHaveURL(/\/login/);
  await page.screenshot({ path: testInfo.outputPath("4-logged-out-again.png"), fullPage: true });
  expect(problems).toEqual([]);
});

test("a second team in another browser sees none of the first team's data", async ({ browser }, testInfo) => {
  const first = await browser.newContext();
  const second = await browser.newContext();
  const a = await first.newPage();
  const b = await second.newPage();
  await signUp(a, `a-${Date.now()}@example.org`, "first team password", "Team A");
  await hydrated(a);
  const name = `Team A only ${Date.now()}`;
  const row = await uploadCsv(a, name, smallCsv);
  const href = await row.getByRole("link", { name }).getAttribute("href");
  expect(href).toMatch(/^\/datasets\/[0-9a-f-]{36}$/);

  await signUp(b, `b-${Date.now()}@example.org`, "second team password", "Team B");
  await hydrated(b);
  await expect(b.locator("table.datasets")).toHaveCount(0);
  await expect(b.getByText(name)).toHaveCount(0);
  const response = await b.goto(href!);
  expect(response!.status()).toBe(404);
  await expect(b.getByText("dataset not found")).toBeVisible();
  await b.screenshot({ path: testInfo.outputPath("other-team-404.png"), fullPage: true });
  // A change to A's dataset never reaches B's open page.
  await b.goto("/");
  await hydrated(b);
  await a.reload();
  await expect(b.getByText(name)).toHaveCount(0);
  await first.close();
  await second.close();
});

test("a dataset and a column named like HTML render as text", async ({ page }, testInfo) => {
  const problems = watchConsole(page);
  const dialogs: string[] = [];
  page.on("dialog", async (d) => {
    dialogs.push(d.message());
    await d.dismiss();
  });
  await signUp(page, `x-${Date.now()}@example.org`, "inert html password", "Markup");
  await hydrated(page);
  const evil = "<img src=x onerror=alert(1)>";
  const row = await uploadCsv(page, evil, `"${evil}",n\nvalue,1\n`);
  await expect(row).toContainText(evil);
  await row.getByRole("link", { name: evil }).click();
  await expect(page.getByRole("heading", { level: 1 })).toHaveText(evil);
  await expect(page.locator("table.schema")).toContainText(evil);
  await expect(page.locator('img[src="x"]')).toHaveCount(0);
  await page.screenshot({ path: testInfo.outputPath("inert.png"), fullPage: true });
  expect(dialogs).toEqual([]);
  expect(problems).toEqual([]);
});

test.describe("without JavaScript", () => {
  test.use({ javaScriptEnabled: false });

  test("log-in works", async ({ page }) => {
    await logIn(page, "admin@e2e.example.org", "e2e admin password");
    await expect(page.getByRole("heading", { name: "Upload a dataset" })).toBeVisible();
  });
});
