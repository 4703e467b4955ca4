#!/usr/bin/env node
/**
 * Bundles the operator dashboard (src/dashboard) into dist/dashboard, served by the api at /dashboard:
 *   index.html               revalidated on every load (Cache-Control: no-cache)
 *   assets/app-<hash>.js     Preact + uPlot + the app, one minified IIFE (no inline script: the CSP forbids it)
 *   assets/styles-<hash>.css uPlot's stylesheet + ours
 *   assets/icon-<hash>.svg
 * Hashed names let the assets be cached for a year. Prints what the browser downloads, gzipped, and fails
 * when that exceeds the budget.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import zlib from 'node:zlib';
import * as esbuild from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SRC = path.join(ROOT, 'src', 'dashboard');
const OUT = path.join(ROOT, 'dist', 'dashboard');
const ASSETS = path.join(OUT, 'assets');
/** The budget for what the browser downloads (gzipped). */
const BUDGET_BYTES = 150 * 1024;

fs.rmSync(OUT, { recursive: true, force: true });
fs.mkdirSync(ASSETS, { recursive: true });

const result = await esbuild.build({
  absWorkingDir: ROOT,
  entryPoints: { app: path.join(SRC, 'main.tsx'), styles: path.join(SRC, 'styles.css') },
  outdir: ASSETS,
  entryNames: '[name]-[hash]',
  bundle: true,
  minify: true,
  sourcemap: 'linked',
  format: 'iife',
  platform: 'browser',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  tsconfig: path.join(SRC, 'tsconfig.json'),
  jsx: 'automatic',
  jsxImportSource: 'preact',
  define: { 'process.env.NODE_ENV': '"production"' },
  metafile: true,
  logLevel: 'warning',
});

/** The output file (relative to dist/dashboard) built from an entry point. */
function outputOf(entry) {
  const [file] = Object.entries(result.metafile.outputs).find(([, o]) => o.entryPoint && path.resolve(ROOT, o.entryPoint) === entry) ?? [];
  if (!file) throw new Error(`esbuild produced nothing for ${entry}`);
  return path.relative(OUT, path.resolve(ROOT, file)).split(path.sep).join('/');
}
const js = outputOf(path.join(SRC, 'main.tsx'));
const css = outputOf(path.join(SRC, 'styles.css'));

const iconSource = fs.readFileSync(path.join(SRC, 'icon.svg'));
const icon = `assets/icon-${crypto.createHash('sha256').update(iconSource).digest('hex').slice(0, 8)}.svg`;
fs.writeFileSync(path.join(OUT, icon), iconSource);

const html = fs.readFileSync(path.join(SRC, 'index.html'), 'utf8').replace('%JS%', js).replace('%CSS%', css).replace('%ICON%', icon);
fs.writeFileSync(path.join(OUT, 'index.html'), html);

// What a first visit downloads (source maps only load with the developer tools open).
const files = ['index.html', js, css, icon];
let total = 0;
const rows = files.map((f) => {
  const raw = fs.readFileSync(path.join(OUT, f));
  const gz = zlib.gzipSync(raw, { level: 9 }).length;
  total += gz;
  return `  ${f.padEnd(34)} ${(raw.length / 1024).toFixed(1).padStart(7)} KB  ${(gz / 1024).toFixed(1).padStart(6)} KB gzipped`;
});
console.log(`dashboard → ${path.relative(ROOT, OUT)}/\n${rows.join('\n')}`);
console.log(`  total ${(total / 1024).toFixed(1)} KB gzipped (budget ${BUDGET_BYTES / 1024} KB)`);
if (total > BUDGET_BYTES) {
  console.error(`dashboard bundle is ${(total / 1024).toFixed(1)} KB gzipped, over the ${BUDGET_BYTES / 1024} KB budget`);
  process.exit(1);
}
