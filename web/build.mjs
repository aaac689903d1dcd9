// `npm run build`: bundles src/login.js with @stytch/vanilla-js into dist/login.js and copies
// the HTML and CSS. dist/ is committed (the local server embeds it), so the output must depend
// only on src/ and the locked packages: no timestamps, no absolute paths, no source maps.
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = dirname(fileURLToPath(import.meta.url));
const src = join(root, "src");
const dist = join(root, "dist");

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist);

await build({
  absWorkingDir: root,
  entryPoints: ["src/login.js"],
  outfile: "dist/login.js",
  bundle: true,
  format: "iife",
  platform: "browser",
  target: ["es2020"],
  conditions: ["production"],
  define: { "process.env.NODE_ENV": '"production"' },
  minify: true,
  legalComments: "eof",
  charset: "utf8",
  logLevel: "warning",
});

for (const file of ["index.html", "style.css"]) {
  copyFileSync(join(src, file), join(dist, file));
}
