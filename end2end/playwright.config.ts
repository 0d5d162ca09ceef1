import { defineConfig } from "@playwright/test";

const port = Number(process.env.E2E_PORT ?? 3100);

export default defineConfig({
  testDir: "./tests",
  timeout: 60_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [["list"]],
  outputDir: "test-results",
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    screenshot: "on",
    trace: "retain-on-failure",
    launchOptions: {
      // Debian's Chromium; Playwright never downloads a browser here.
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    },
  },
  projects: [
    // Signs in as the first admin (.ci/e2e-server sets ADMIN_EMAIL) once and
    // keeps the session for every other test.
    { name: "sign-in", testMatch: /auth\.setup\.ts/ },
    {
      name: "app",
      testMatch: /.*\.spec\.ts/,
      dependencies: ["sign-in"],
      use: { storageState: ".auth/admin.json" },
    },
  ],
  webServer: {
    // Starts the built server against a fresh database and data directory.
    command: `bash ../.ci/e2e-server ${port}`,
    url: `http://127.0.0.1:${port}/readyz`,
    timeout: 120_000,
    reuseExistingServer: false,
    stdout: "pipe",
    stderr: "pipe",
    // SIGTERM, so .ci/e2e-server's clean-up runs: it also stops an MCP server
    // a test restarted, which lives in a process group of its own.
    gracefulShutdown: { signal: "SIGTERM", timeout: 10_000 },
  },
});
