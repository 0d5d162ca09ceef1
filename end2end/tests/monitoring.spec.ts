import { test, expect } from "@playwright/test";
import { hydrated, smallCsv, uploadCsv, watchConsole } from "./stack";

test("the monitoring page charts the tenant's syncs", async ({ page }, testInfo) => {
  const problems = watchConsole(page);
  await page.goto("/");
  await hydrated(page);
  const name = `Monitored ${Date.now()}`;
  const row = await uploadCsv(page, name, smallCsv);
  await expect(row.locator(".badge")).toHaveText("synced", { timeout: 30_000 });

  await page.getByRole("link", { name: "Monitoring" }).click();
  await expect(page).toHaveURL(/\/monitoring$/);
  await expect(page.locator("#success-rate")).toHaveText(/^\d+\.\d %$/);
  // Bars of synced syncs over time, and each step's p50/p95.
  await expect(page.locator("#monitor-outcomes svg rect.ok").first()).toBeVisible();
  for (const step of ["bronze", "silver", "metadata"]) {
    await expect(page.locator("#monitor-steps svg")).toContainText(`${step} p50`);
  }
  await expect(page.locator("#outbox-depth")).toHaveText(/^\d+$/);
  // The slowest syncs, each with the Restate invocation an operator can look up.
  const slow = page.locator("#slowest-syncs tbody tr");
  await expect(slow.first()).toBeVisible();
  await expect(slow.first().locator("code.invocation")).toHaveText(/^inv_/);
  await page.screenshot({ path: testInfo.outputPath("monitoring.png"), fullPage: true });

  // Another window of time is one link away.
  await page.getByRole("link", { name: "7d" }).click();
  await expect(page.locator("#monitoring")).toHaveAttribute("data-window", "7d");
  await expect(page.locator("#monitor-outcomes svg")).toBeVisible();
  expect(problems).toEqual([]);
});
