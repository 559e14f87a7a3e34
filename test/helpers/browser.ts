/**
 * Debian's chromium (installed by scripts/bootstrap.mjs) driven by playwright-core, headless and
 * quiet: no sandbox (we run as root), no background traffic, no updates. Nothing is downloaded.
 */
import { type Browser, chromium } from "playwright-core";

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--headless",
    ],
  });
}
