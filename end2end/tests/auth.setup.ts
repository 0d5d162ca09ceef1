import { test as setup } from "@playwright/test";
import { admin, adminState, logIn } from "./stack";

setup("sign in as the first admin", async ({ page }) => {
  await logIn(page, admin.email, admin.password);
  await page.context().storageState({ path: adminState });
});
