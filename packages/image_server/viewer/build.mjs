// Builds the viewer into ONE self-contained HTML file (script and styles inlined), the
// package data the server offers as ui://image-mcp/viewer.html. Deterministic: the same
// sources and the locked packages give the same bytes (a test rebuilds and compares).
//
//   node build.mjs                 writes ../src/image_server/app_ui/viewer.html
//   node build.mjs --out FILE      writes FILE instead (the test's fresh build)
//   node build.mjs --host IN OUT   bundles a test host page script IN into OUT
import { build } from "esbuild";
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const target = ["es2020", "chrome100", "firefox100", "safari15"];

// zod (which the SDK validates its messages with) carries every language's error
// messages; the viewer needs none of them but English, the default. Leaving the others
// out takes about 260 KB off the page.
const englishOnly = {
  name: "zod-english-only",
  setup(b) {
    b.onLoad({ filter: /[\\/]zod[\\/]v4[\\/]locales[\\/]index\.js$/ }, (args) => ({
      contents: 'export { default as en } from "./en.js";\n',
      resolveDir: dirname(args.path),
      loader: "js",
    }));
  },
};

async function bundle(entry) {
  const result = await build({
    entryPoints: [entry],
    // A test host page lives outside this folder; its imports resolve to these packages.
    nodePaths: [join(here, "node_modules")],
    bundle: true,
    minify: true,
    format: "iife",
    target,
    write: false,
    legalComments: "none",
    charset: "utf8",
    plugins: [englishOnly],
    logLevel: "warning",
  });
  return result.outputFiles[0].text;
}

async function viewer(out) {
  const [template, css, js] = await Promise.all([
    readFile(join(here, "src", "viewer.html"), "utf8"),
    build({
      entryPoints: [join(here, "src", "viewer.css")],
      bundle: true,
      minify: true,
      write: false,
      target,
      logLevel: "warning",
    }).then((r) => r.outputFiles[0].text.trim()),
    bundle(join(here, "src", "viewer.ts")),
  ]);
  // Inlined script text must not close its element early.
  const script = js.trim().replaceAll("</script", "<\\/script").replaceAll("<!--", "<\\!--");
  const html = template
    .replace("/*STYLE*/", () => css.replaceAll("</style", "<\\/style"))
    .replace("/*SCRIPT*/", () => script);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, html, "utf8");
  return Buffer.byteLength(html, "utf8");
}

const args = process.argv.slice(2);
if (args[0] === "--host") {
  await mkdir(dirname(args[2]), { recursive: true });
  await writeFile(args[2], await bundle(args[1]), "utf8");
} else {
  const out =
    args[0] === "--out"
      ? args[1]
      : join(here, "..", "src", "image_server", "app_ui", "viewer.html");
  const size = await viewer(out);
  console.log(`${out}: ${size} bytes`);
}
