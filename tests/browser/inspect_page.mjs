// Opens a local HTML file in headless Chromium and reports what a person would see.
//
// Usage: node inspect_page.mjs '<json>' with {"file", "screenshot", "selectors", "chromium",
// "userDataDir"}. Prints one JSON object: for each selector, every matching element's box,
// whether it is visible and not covered at its centre, and for images whether the browser
// decoded them (natural size); plus every request the page tried that was not the file itself
// or an inline data: URI. The full-page screenshot goes where the caller says (a temp folder).
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";

const spec = JSON.parse(process.argv[2]);
const context = await chromium.launchPersistentContext(spec.userDataDir, {
  executablePath: spec.chromium,
  headless: true,
  chromiumSandbox: false,
  viewport: { width: 1366, height: 900 },
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
const external = [];
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const url = pathToFileURL(spec.file).href;
  await page.route("**/*", (route) => {
    const target = route.request().url();
    if (target === url || target.startsWith("data:")) return route.continue();
    external.push(target);
    return route.abort();
  });
  await page.goto(url, { waitUntil: "load" });
  const report = { title: await page.title(), selectors: {}, external };
  for (const selector of spec.selectors) {
    const elements = [];
    for (const handle of await page.locator(selector).elementHandles()) {
      await handle.scrollIntoViewIfNeeded();
      const visible = await handle.isVisible();
      const box = await handle.boundingBox();
      const facts = await handle.evaluate((element) => {
        const rect = element.getBoundingClientRect();
        const hit = document.elementFromPoint(rect.left + rect.width / 2, rect.top + rect.height / 2);
        return {
          tag: element.tagName.toLowerCase(),
          text: (element.innerText || "").slice(0, 2000),
          uncovered: hit !== null && (hit === element || element.contains(hit)),
          naturalWidth: element.naturalWidth ?? null,
          naturalHeight: element.naturalHeight ?? null,
          complete: element.complete ?? null,
        };
      });
      elements.push({ visible, box, ...facts });
    }
    report.selectors[selector] = elements;
  }
  await page.screenshot({ path: spec.screenshot, fullPage: true });
  process.stdout.write(JSON.stringify(report));
} finally {
  await context.close();
}
